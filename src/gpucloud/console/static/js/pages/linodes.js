// /linodes: the customer's instances; statuses refresh live while any is transitional.

import { all } from '../api.js';
import { catalog } from '../catalog.js';
import { h, statusBadge, TRANSITIONAL } from '../dom.js';

const FAST = 2000;
const SLOW = 15000;

function instanceRows(linodes, cat) {
  return linodes.map(l => {
    const plan = cat.type(l.type);
    return h('tr', { dataset: { linode: String(l.id) } },
      h('th', { scope: 'row' }, h('a', { href: `/linodes/${l.id}` }, l.label)),
      h('td', { dataset: { col: 'status' } }, statusBadge(l.status)),
      h('td', {}, plan ? plan.label : l.type),
      h('td', { class: 'num' }, String(l.specs.gpus)),
      h('td', {}, cat.city(l.region)),
      h('td', { class: 'mono' }, l.ipv4.join(', ')));
  });
}

export function instanceTable(linodes, cat) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'list', dataset: { linodes: '' } },
    h('caption', { class: 'visually-hidden' }, 'Your Linodes'),
    h('thead', {}, h('tr', {}, ['Label', 'Status', 'Plan', 'GPUs', 'Region', 'IPv4'].map(c => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, instanceRows(linodes, cat))));
}

export async function list(main) {
  const header = h('div', { class: 'page-head' }, h('h1', {}, 'Linodes'),
    h('a', { class: 'button primary', href: '/linodes/create' }, 'Create Linode'));
  const body = h('div', { class: 'card' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(header, body);
  const first = all('/linode/instances');  // asked beside the catalog, not after it
  const cat = await catalog();
  let timer = null;
  let stopped = false;
  let shown = null;

  async function refresh(pending = null) {
    const linodes = await (pending || all('/linode/instances'));
    if (stopped) return;
    const key = JSON.stringify(linodes.map(l => [l.id, l.label, l.status, l.type, l.ipv4]));
    if (key === shown) {
      // unchanged: keep the table (and the keyboard focus in it)
    } else if (!linodes.length) {
      body.replaceChildren(h('div', { class: 'empty' }, h('h2', {}, 'No Linodes yet'),
        h('p', {}, 'A Linode is a virtual machine with dedicated CPU cores, memory and, on GPU plans, whole GPUs.'),
        h('a', { class: 'button primary', href: '/linodes/create' }, 'Create your first Linode')));
    } else {
      body.replaceChildren(instanceTable(linodes, cat));
    }
    shown = key;
    const busy = linodes.some(l => TRANSITIONAL.has(l.status));
    timer = setTimeout(tick, busy ? FAST : SLOW);
  }

  async function tick() {
    if (document.hidden) { timer = setTimeout(tick, FAST); return; }  // a tab in the background asks nothing
    try { await refresh(); } catch { timer = setTimeout(tick, FAST); }
  }

  try {
    await refresh(first);
  } catch {
    body.replaceChildren(h('p', { class: 'muted', role: 'status' }, 'Could not reach the API; trying again…'));
    timer = setTimeout(tick, FAST);
  }
  return () => { stopped = true; clearTimeout(timer); };
}
