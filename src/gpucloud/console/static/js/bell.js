// The notifications bell: the account's notifications (trial ending, maintenance) and
// events not yet seen; opening it marks the events seen.

import { ApiError, get, optional, post } from './api.js';
import { h, when } from './dom.js';

const EVERY = 30_000;

export function mountBell(slot) {
  let timer = null;
  let items = [];
  let newest = null;
  const count = h('span', { class: 'bell-count', hidden: true });
  const button = h('button', { type: 'button', class: 'bell', 'aria-expanded': 'false',
    'aria-controls': 'bell-panel', 'aria-label': 'Notifications' },
  h('img', { src: '/assets/bell.svg', alt: '', width: 20, height: 20 }), count);
  const panel = h('div', { id: 'bell-panel', class: 'bell-panel', hidden: true });
  slot.replaceChildren(button, panel);

  async function refresh() {
    if (document.hidden) return;  // a tab in the background asks nothing (and lets the session lapse)
    try {
      const notes = await optional('/account/notifications');
      const events = await get('/account/events?page_size=25', { 'X-Filter': JSON.stringify({ seen: false }) });
      newest = events.data.length ? events.data[0].id : null;
      items = [
        ...((notes && notes.data) || []).map(n => ({ text: n.label || n.message, detail: n.message, when: n.when || n.until, kind: n.severity || 'minor' })),
        ...events.data.map(e => ({ text: describe(e), detail: e.message, when: e.created, kind: e.status })),
      ];
      count.textContent = String(items.length);
      count.hidden = items.length === 0;
      button.setAttribute('aria-label', items.length ? `Notifications (${items.length} new)` : 'Notifications');
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
    }
  }

  function draw() {
    panel.replaceChildren(h('h2', {}, 'Notifications'), items.length
      ? h('ul', {}, items.map(item => h('li', { class: `note note-${item.kind}` }, h('strong', {}, item.text),
        item.detail && item.detail !== item.text ? h('span', { class: 'note-detail' }, item.detail) : null,
        item.when ? h('time', {}, when(item.when)) : null)))
      : h('p', { class: 'muted' }, 'Nothing new.'), h('a', { href: '/events' }, 'All events'));
  }

  button.addEventListener('click', async () => {
    const open = panel.hidden;
    panel.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (open) {
      draw();
      if (newest) { await post(`/account/events/${newest}/seen`); newest = null; }
    } else {
      await refresh();
    }
  });
  panel.addEventListener('click', event => { if (event.target.closest('a')) { panel.hidden = true; button.setAttribute('aria-expanded', 'false'); } });
  const outside = event => {
    if (!panel.hidden && !slot.contains(event.target)) { panel.hidden = true; button.setAttribute('aria-expanded', 'false'); }
  };
  document.addEventListener('click', outside);
  const onKey = event => {
    if (event.key === 'Escape' && !panel.hidden) { panel.hidden = true; button.setAttribute('aria-expanded', 'false'); button.focus(); }
  };
  document.addEventListener('keydown', onKey);
  refresh();
  timer = setInterval(refresh, EVERY);
  return () => { clearInterval(timer); document.removeEventListener('click', outside); document.removeEventListener('keydown', onKey); };
}

export function describe(event) {
  const what = event.action.replace(/_/g, ' ');
  const label = event.entity ? event.entity.label : '';
  return `${label ? `${label}: ` : ''}${what} ${event.status}`;
}
