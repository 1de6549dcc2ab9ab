// /linodes/create: region, plan, image, root password, SSH keys, label, user data, and an
// order summary; POST /v4/linode/instances. A refusal shows the API's reason at its field.

import { ApiError, optional, post } from '../api.js';
import { catalog } from '../catalog.js';
import { clearErrors, field, fieldset, formAlert, gib, h, money, nextId, showErrors } from '../dom.js';
import { navigate } from '../main.js';
import { strengthMeter } from '../password.js';
import { trialOffer } from '../trial.js';

const CLASS_ORDER = ['gpu', 'dedicated', 'standard', 'nanode', 'highmem', 'premium'];
const CLASS_NAMES = { gpu: 'GPU', dedicated: 'Dedicated CPU', standard: 'Shared CPU', nanode: 'Nanode',
  highmem: 'High Memory', premium: 'Premium' };
const ALIASES = { type: 'type', region: 'region', 'metadata.user_data': 'user_data' };

// Which (region, plan) pairs are sold out, from /v4/regions/availability when the server has it.
async function soldOut() {
  const found = await optional('/regions/availability?page_size=500');
  const out = new Set();
  if (!found) return out;
  for (const row of found.data || found) if (row.available === false) out.add(`${row.region} ${row.plan}`);
  return out;
}

function regionCards(regions, onChange) {
  return h('div', { class: 'cards' }, regions.map(r => h('label', { class: 'choice' },
    h('input', { type: 'radio', name: 'region', value: r.id, onchange: onChange }),
    h('span', { class: 'title' }, r.label), h('span', { class: 'sub' }, r.id))));
}

function planTables(types, onChange) {
  const classes = CLASS_ORDER.filter(c => types.some(t => t.class === c))
    .concat([...new Set(types.map(t => t.class))].filter(c => !CLASS_ORDER.includes(c)));
  const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Plan classes' });
  const panels = [];
  classes.forEach((cls, index) => {
    const tabId = nextId('tab');
    const panelId = nextId('panel');
    const rows = types.filter(t => t.class === cls).map(t => h('tr', { dataset: { plan: t.id } },
      h('th', { scope: 'row' }, h('label', {}, h('input', { type: 'radio', name: 'type', value: t.id, onchange: onChange }),
        t.label, h('span', { class: 'tag', hidden: true, dataset: { soldOut: '' } }, 'Sold out'))),
      h('td', { class: 'num' }, String(t.gpus)), h('td', { class: 'num' }, String(t.vcpus)),
      h('td', { class: 'num' }, gib(t.memory)), h('td', { class: 'num' }, gib(t.disk)),
      h('td', { class: 'num' }, money(t.price.hourly, 3)), h('td', { class: 'num' }, money(t.price.monthly))));
    const panel = h('div', { id: panelId, role: 'tabpanel', 'aria-labelledby': tabId, hidden: index !== 0, class: 'table-wrap' },
      h('table', { class: 'list plans' }, h('thead', {}, h('tr', {}, ['Plan', 'GPUs', 'vCPUs', 'Memory', 'Disk', 'Hourly', 'Monthly']
        .map(c => h('th', { scope: 'col', class: c === 'Plan' ? '' : 'num' }, c)))), h('tbody', {}, rows)));
    const tab = h('button', { type: 'button', role: 'tab', id: tabId, 'aria-controls': panelId,
      'aria-selected': String(index === 0), tabindex: index === 0 ? '0' : '-1', dataset: { class: cls } }, CLASS_NAMES[cls] || cls);
    tab.addEventListener('click', () => select(tab));
    tab.addEventListener('keydown', event => {
      const all_ = [...tabs.children];
      const at = all_.indexOf(tab);
      if (event.key === 'ArrowRight') select(all_[(at + 1) % all_.length], true);
      if (event.key === 'ArrowLeft') select(all_[(at - 1 + all_.length) % all_.length], true);
    });
    tabs.append(tab);
    panels.push(panel);
  });
  function select(tab, focus = false) {
    for (const t of tabs.children) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute('aria-controls')).hidden = !on;
    }
    if (focus) tab.focus();
  }
  return h('div', {}, tabs, panels);
}

function imageSelect(images) {
  const vendors = [...new Set(images.map(i => i.vendor || 'Other'))];
  const select = h('select', { name: 'image' }, vendors.map(v => h('optgroup', { label: v },
    images.filter(i => (i.vendor || 'Other') === v && !i.deprecated).map(i => h('option', { value: i.id }, i.label)))));
  const preferred = images.find(i => i.id === 'linode/ubuntu24.04') || images[0];
  if (preferred) select.value = preferred.id;
  return select;
}

function utf8Base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  bytes.forEach(b => { binary += String.fromCharCode(b); });
  return btoa(binary);
}

export async function create(main) {
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Create a Linode')));
  const cat = await catalog();
  const [sold, keys] = await Promise.all([soldOut(), optional('/profile/sshkeys?page_size=500')]);
  const form = h('form', { novalidate: true, dataset: { createForm: '' } });
  const summary = h('dl', { class: 'summary' });
  const price = h('p', { class: 'price', dataset: { price: '' } }, '—');
  const submit = h('button', { type: 'submit', class: 'primary wide' }, 'Create Linode');
  const hourly = h('p', { class: 'muted' });

  const label = h('input', { name: 'label', autocomplete: 'off', maxlength: 64 });
  const password = h('input', { type: 'password', name: 'root_pass', autocomplete: 'new-password' });
  const userData = h('textarea', { name: 'user_data', spellcheck: 'false' });
  const image = imageSelect(cat.images);
  const keyBoxes = keys && keys.data ? keys.data.map(k => h('label', { class: 'choice' },
    h('input', { type: 'checkbox', name: 'ssh_key', value: k.ssh_key }), h('span', { class: 'title' }, k.label),
    h('span', { class: 'sub mono' }, `${k.ssh_key.slice(0, 28)}…`))) : null;

  const update = () => {
    const region = form.querySelector('input[name=region]:checked');
    const plan = form.querySelector('input[name=type]:checked');
    for (const row of form.querySelectorAll('tr[data-plan]')) {
      const out = Boolean(region) && sold.has(`${region.value} ${row.dataset.plan}`);
      row.classList.toggle('sold-out', out);
      row.querySelector('[data-sold-out]').hidden = !out;
      const radio = row.querySelector('input');
      radio.disabled = out;
      if (out && radio.checked) radio.checked = false;
    }
    const chosen = plan && !plan.disabled ? cat.type(plan.value) : null;
    summary.replaceChildren(
      h('dt', {}, 'Region'), h('dd', {}, region ? cat.city(region.value) : 'Choose a region'),
      h('dt', {}, 'Plan'), h('dd', {}, chosen ? chosen.label : 'Choose a plan'),
      h('dt', {}, 'GPUs'), h('dd', {}, chosen ? String(chosen.gpus) : '—'),
      h('dt', {}, 'vCPUs / memory'), h('dd', {}, chosen ? `${chosen.vcpus} / ${gib(chosen.memory)}` : '—'),
      h('dt', {}, 'Image'), h('dd', {}, image.selectedOptions[0] ? image.selectedOptions[0].textContent : 'None'));
    price.textContent = chosen ? `${money(chosen.price.monthly)}/mo` : '—';
    price.title = chosen ? `${money(chosen.price.hourly, 3)} per hour` : '';
    hourly.textContent = chosen ? `${money(chosen.price.hourly, 3)} per hour, billed by the hour up to the monthly price` : '';
  };
  image.addEventListener('change', update);

  const hasGpu = cat.types.some(t => t.class === 'gpu');
  const trial = await trialOffer({ offer: !hasGpu });  // its state shows on the plans page either way
  if (trial) main.append(trial);
  form.append(
    formAlert(),
    h('div', { class: 'card' }, fieldset('Region', regionCards(cat.regions, update), 'region')),
    h('div', { class: 'card' }, fieldset('Plan', planTables(cat.types, update), 'type')),
    h('div', { class: 'card' },
      field('Image', image),
      field('Root password', password, { hint: 'Used to log in as root. 7-128 characters that are hard to guess.' }),
      strengthMeter(password),
      keyBoxes && keyBoxes.length ? fieldset('SSH keys', h('div', { class: 'cards' }, keyBoxes), 'authorized_keys') : null,
      field('Label', label, { hint: 'Optional: 3-64 letters, numbers, - _ or . (one is made up when empty).' }),
      field('User data (optional)', userData, { hint: 'A cloud-init config or script, run on first boot.', name: 'user_data' })));
  const layout = h('div', { class: 'grid2' }, form,
    h('aside', { class: 'card sticky', 'aria-label': 'Order summary' }, h('h2', {}, 'Order summary'), summary, price, hourly, submit));
  main.append(layout);
  submit.setAttribute('form', form.id = nextId('form'));
  update();

  form.addEventListener('submit', async event => {
    event.preventDefault();
    clearErrors(form);
    const region = form.querySelector('input[name=region]:checked');
    const plan = form.querySelector('input[name=type]:checked');
    const body = { region: region ? region.value : undefined, type: plan ? plan.value : undefined,
      image: image.value || undefined, root_pass: password.value || undefined, label: label.value.trim() || undefined };
    const chosenKeys = [...form.querySelectorAll('input[name=ssh_key]:checked')].map(k => k.value);
    if (chosenKeys.length) body.authorized_keys = chosenKeys;
    if (userData.value.trim()) body.metadata = { user_data: utf8Base64(userData.value) };
    submit.disabled = true;
    try {
      const made = await post('/linode/instances', body);
      navigate(`/linodes/${made.id}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showErrors(form, error.errors.map(e => (e.reason.startsWith('No capacity') && !e.field ? { ...e, field: 'type' } : e)), ALIASES);
    } finally {
      submit.disabled = false;
    }
  });
}

