// /events: the account's event feed (last 90 days, newest first).

import { all } from '../api.js';
import { h, when } from '../dom.js';
import { describe } from '../bell.js';

export async function events(main) {
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Events')));
  const list = await all('/account/events');
  if (!list.length) { main.append(h('div', { class: 'card empty' }, h('p', {}, 'No events yet.'))); return; }
  main.append(h('div', { class: 'card table-wrap' }, h('table', { class: 'list', dataset: { eventList: '' } },
    h('caption', { class: 'visually-hidden' }, 'Events'),
    h('thead', {}, h('tr', {}, ['Event', 'Status', 'Progress', 'When'].map(c => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, list.map(e => h('tr', {},
      h('td', {}, e.entity && e.entity.type === 'linode' ? h('a', { href: `/linodes/${e.entity.id}` }, describe(e)) : describe(e)),
      h('td', {}, e.status), h('td', { class: 'num' }, `${e.percent_complete ?? 0}%`),
      h('td', {}, h('time', { datetime: e.created }, when(e.created)))))))));
}
