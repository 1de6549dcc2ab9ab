// /linodes/:id: summary, power, resize, delete (type the label), live events with progress.

import { ApiError, all, get, optional, post, del } from '../api.js';
import { catalog } from '../catalog.js';
import { clearErrors, field, formAlert, gib, h, money, showErrors, statusBadge, TRANSITIONAL, announce, when } from '../dom.js';
import { navigate } from '../main.js';
import { describe } from '../bell.js';
import { lineChart } from '../charts.js';
import { strengthMeter } from '../password.js';

const FAST = 1500;
const SLOW = 10000;

// "2 × RTX6000" from a GPU plan's label ("Dedicated 64GB + RTX6000 GPU x2").
function gpuText(count, plan) {
  const model = plan && plan.label.match(/\+\s*(.+?)\s+GPU/);
  return count && model ? `${count} × ${model[1]}` : String(count);
}

function summary(l, cat, ips) {
  const plan = cat.type(l.type);
  const v4 = ips && ips.ipv4.public[0];
  const v6 = ips && ips.ipv6.slaac;
  return h('dl', { class: 'summary', dataset: { summary: '' } },
    h('dt', {}, 'Status'), h('dd', { dataset: { col: 'status' } }, statusBadge(l.status)),
    h('dt', {}, 'Plan'), h('dd', {}, plan ? plan.label : l.type),
    h('dt', {}, 'GPUs'), h('dd', {}, gpuText(l.specs.gpus, plan)),
    h('dt', {}, 'vCPUs'), h('dd', {}, String(l.specs.vcpus)),
    h('dt', {}, 'Memory'), h('dd', {}, gib(l.specs.memory)),
    h('dt', {}, 'Disk'), h('dd', {}, gib(l.specs.disk)),
    h('dt', {}, 'Region'), h('dd', {}, cat.city(l.region)),
    h('dt', {}, 'Image'), h('dd', {}, l.image || 'None'),
    h('dt', {}, 'IPv4'), h('dd', { class: 'mono' }, v4 ? `${v4.address} (gateway ${v4.gateway})` : l.ipv4.join(', ') || '—'),
    h('dt', {}, 'IPv6'), h('dd', { class: 'mono' }, v6 ? `${v6.address}/${v6.prefix} (gateway ${v6.gateway})` : l.ipv6 || '—'),
    h('dt', {}, 'Price'), h('dd', {}, plan ? `${money(plan.price.monthly)}/mo (${money(plan.price.hourly, 3)}/hr)` : '—'),
    h('dt', {}, 'Created'), h('dd', {}, when(l.created)));
}

function eventList(events) {
  if (!events.length) return h('p', { class: 'muted' }, 'No events yet.');
  return h('ul', { class: 'events', dataset: { events: '' } }, events.map(e => h('li', { dataset: { event: e.action, eventStatus: e.status } },
    h('span', {}, describe(e)), h('time', { datetime: e.created }, when(e.created)),
    e.status === 'finished' || e.status === 'failed' ? null
      : h('progress', { max: 100, value: e.percent_complete || 0, 'aria-label': `${e.action.replace(/_/g, ' ')} progress` }))));
}

// Rebuild (image + root password) and reset root password: POSTs whose refusals show at their fields.
function guestForm({ id, name, button, cat, linode, hint }) {
  const password = h('input', { type: 'password', name: 'root_pass', autocomplete: 'new-password' });
  const submit = h('button', { type: 'submit' }, button);
  const done = h('p', { role: 'status' });
  const parts = [formAlert()];
  let image = null;
  if (name === 'rebuild') {
    image = h('select', { name: 'image' }, cat.images.filter(i => !i.deprecated).map(i => h('option', { value: i.id }, i.label)));
    image.value = linode.image || (cat.images[0] && cat.images[0].id) || '';
    parts.push(field('Image', image));
  }
  parts.push(field(name === 'rebuild' ? 'Root password' : 'New root password', password, { hint }), strengthMeter(password), submit, done);
  const form = h('form', { novalidate: true, dataset: { guestForm: name } }, parts);
  form.addEventListener('submit', async event => {
    event.preventDefault();
    clearErrors(form);
    done.textContent = '';
    submit.disabled = true;
    try {
      await post(`/linode/instances/${id}/${name}`, image ? { image: image.value, root_pass: password.value } : { root_pass: password.value });
      done.textContent = name === 'rebuild' ? 'Rebuild started.' : 'Root password changed.';
      form.reset();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showErrors(form, error.status === 404 ? [{ reason: 'This server does not offer this yet.' }] : error.errors);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export async function detail(main, id) {
  const cat = await catalog();
  let linode;
  try {
    linode = await get(`/linode/instances/${id}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      main.append(h('h1', {}, 'Linode not found'), h('p', {}, 'There is no Linode with this id on your account. ',
        h('a', { href: '/linodes' }, 'Back to your Linodes')));
      return null;
    }
    throw error;
  }
  const title = h('h1', {}, linode.label);
  const summaryCard = h('section', { class: 'card', 'aria-labelledby': 'summary-h' }, h('h2', { id: 'summary-h' }, 'Summary'));
  const eventsCard = h('section', { class: 'card', 'aria-labelledby': 'events-h' }, h('h2', { id: 'events-h' }, 'Activity'));
  const power = h('div', { class: 'actions' });
  const powerAlert = formAlert();

  const action = (text, path, alert = powerAlert) => h('button', { type: 'button', dataset: { action: path }, onclick: async event => {
    const button = event.currentTarget;
    button.disabled = true;
    alert.hidden = true;
    try {
      await post(`/linode/instances/${id}/${path}`);
      announce(`${text}: requested`);
      await refresh();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      alert.textContent = error.status === 404 ? 'This server does not offer this yet.' : error.message;
      alert.hidden = false;
    } finally {
      button.disabled = false;
    }
  } }, text);

  const resizeSelect = h('select', { name: 'type' }, cat.types.filter(t => t.id !== linode.type).map(t =>
    h('option', { value: t.id }, `${t.label} — ${money(t.price.monthly)}/mo`)));
  const resizeButton = h('button', { type: 'submit' }, 'Resize');
  const resizeForm = h('form', { novalidate: true, dataset: { resizeForm: '' } }, formAlert(), field('New plan', resizeSelect), resizeButton);
  resizeForm.addEventListener('submit', async event => {
    event.preventDefault();
    clearErrors(resizeForm);
    resizeButton.disabled = true;
    try {
      await post(`/linode/instances/${id}/resize`, { type: resizeSelect.value });
      announce('Resize requested');
      await refresh();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showErrors(resizeForm, error.errors);
    } finally {
      resizeButton.disabled = false;
    }
  });

  const confirm = h('input', { name: 'confirm', autocomplete: 'off' });
  const deleteButton = h('button', { type: 'submit', class: 'danger', disabled: true }, 'Delete Linode');
  const deleteForm = h('form', { novalidate: true, dataset: { deleteForm: '' } }, formAlert(),
    field('Type the label to confirm', confirm, { hint: `Deleting ${linode.label} destroys its disk. This cannot be undone.` }), deleteButton);
  confirm.addEventListener('input', () => { deleteButton.disabled = confirm.value !== linode.label; });
  deleteForm.addEventListener('submit', async event => {
    event.preventDefault();
    if (confirm.value !== linode.label) return;
    deleteButton.disabled = true;
    try {
      await del(`/linode/instances/${id}`);
      announce(`${linode.label} is being deleted`);
      navigate('/linodes');
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showErrors(deleteForm, error.errors);
      deleteButton.disabled = false;
    }
  });

  const statsCard = h('section', { class: 'card', 'aria-labelledby': 'stats-h' }, h('h2', { id: 'stats-h' }, 'Last 24 hours'));
  const rebuildCard = h('section', { class: 'card', 'aria-labelledby': 'rebuild-h' }, h('h2', { id: 'rebuild-h' }, 'Rebuild'),
    guestForm({ id, name: 'rebuild', button: 'Rebuild', cat, linode,
      hint: 'Wipes the disk and writes the image anew. Plan, GPUs and addresses stay.' }));
  const passwordCard = h('section', { class: 'card', 'aria-labelledby': 'password-h' }, h('h2', { id: 'password-h' }, 'Reset root password'),
    guestForm({ id, name: 'password', button: 'Reset root password', cat, linode, hint: 'The Linode must be powered off.' }));
  const rescueAlert = formAlert();
  const rescueCard = h('section', { class: 'card', 'aria-labelledby': 'rescue-h' }, h('h2', { id: 'rescue-h' }, 'Rescue'),
    h('p', { class: 'muted' }, 'Reboot from a rescue system with this Linode\'s disk attached; the next boot is normal again.'),
    rescueAlert, h('div', { class: 'actions' }, action('Reboot into rescue mode', 'rescue', rescueAlert)));

  main.append(h('div', { class: 'page-head' }, title, h('a', { href: '/linodes' }, 'All Linodes')),
    h('div', { class: 'grid2' },
      h('div', {}, summaryCard, statsCard, eventsCard),
      h('div', {},
        h('section', { class: 'card', 'aria-labelledby': 'power-h' }, h('h2', { id: 'power-h' }, 'Power'), powerAlert, power),
        h('section', { class: 'card', 'aria-labelledby': 'resize-h' }, h('h2', { id: 'resize-h' }, 'Resize'), resizeForm),
        rebuildCard, passwordCard, rescueCard,
        h('section', { class: 'card danger-zone', 'aria-labelledby': 'delete-h' }, h('h2', { id: 'delete-h' }, 'Delete'), deleteForm))));

  async function drawStats() {
    const stats = await optional(`/linode/instances/${id}/stats`);
    if (stats === null) { statsCard.hidden = true; return; }
    const d = stats.data;
    statsCard.replaceChildren(h('h2', { id: 'stats-h' }, 'Last 24 hours'),
      lineChart('CPU', '%', [{ name: 'CPU', points: d.cpu, className: 's1' }]),
      lineChart('Network (IPv4)', 'bits/s', [{ name: 'In', points: d.netv4.in, className: 's1' }, { name: 'Out', points: d.netv4.out, className: 's2' }]),
      lineChart('Disk I/O', 'ops/s', [{ name: 'I/O', points: d.io.io, className: 's1' }]));
  }
  drawStats();

  let timer = null;
  let stopped = false;
  let shownPower = null;

  async function refresh() {
    let ips = null;
    try {
      [linode, ips] = await Promise.all([get(`/linode/instances/${id}`), get(`/linode/instances/${id}/ips`)]);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {  // deleted meanwhile
        stopped = true;
        summaryCard.replaceChildren(h('h2', { id: 'summary-h' }, 'Summary'), h('p', {}, 'This Linode has been deleted.'));
        return;
      }
      throw error;
    }
    const events = await all('/account/events', { 'entity.id': Number(id), 'entity.type': 'linode' });
    if (stopped) return;
    title.textContent = linode.label;
    summaryCard.replaceChildren(h('h2', { id: 'summary-h' }, 'Summary'), summary(linode, cat, ips));
    eventsCard.replaceChildren(h('h2', { id: 'events-h' }, 'Activity'), eventList(events.slice(0, 20)));
    const powerKey = linode.status;
    if (powerKey !== shownPower) {
      const busy = TRANSITIONAL.has(linode.status);
      power.replaceChildren(...(busy ? [h('p', { class: 'muted' }, 'Working…')]
        : linode.status === 'running' ? [action('Reboot', 'reboot'), action('Power off', 'shutdown')]
          : [action('Power on', 'boot')]));
      shownPower = powerKey;
    }
    const busy = TRANSITIONAL.has(linode.status) || events.some(e => e.status === 'started' || e.status === 'scheduled');
    clearTimeout(timer);
    timer = setTimeout(tick, busy ? FAST : SLOW);
  }
  async function tick() {
    if (document.hidden) { timer = setTimeout(tick, FAST); return; }  // a tab in the background asks nothing
    try { await refresh(); } catch { timer = setTimeout(tick, SLOW); }
  }
  try { await refresh(); } catch { timer = setTimeout(tick, FAST); }
  return () => { stopped = true; clearTimeout(timer); };
}
