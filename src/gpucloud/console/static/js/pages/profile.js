// /profile/tokens (personal access tokens, the secret shown once), /profile/keys (SSH keys) and
// /profile/password (a new password; every other console session ends).

import { ApiError, all, changePassword, del, optional, post } from '../api.js';
import { strengthMeter } from '../password.js';
import { clearErrors, field, formAlert, h, showErrors, when, announce } from '../dom.js';

const RESOURCES = ['account', 'databases', 'domains', 'events', 'firewall', 'images', 'ips', 'linodes',
  'lke', 'longview', 'nodebalancers', 'object_storage', 'stackscripts', 'volumes', 'vpc'];
const EXPIRY = [['never', 'Never'], ['1', '1 day'], ['30', '30 days'], ['90', '90 days'], ['180', '180 days']];

// Send a profile form: the button is off while the call runs; the API's refusal shows at the fields.
async function send(form, submit, call, errorsOf = error => error.errors) {
  submit.disabled = true;
  try {
    await call();
    form.reset();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    showErrors(form, errorsOf(error));
  } finally {
    submit.disabled = false;
  }
}

function scopeText(scopes) { return scopes === '*' ? 'All (read/write)' : scopes.split(' ').join(', '); }

export async function tokens(main) {
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'API tokens')));
  const listCard = h('section', { class: 'card', 'aria-labelledby': 'tokens-h' });
  const shown = h('div', { role: 'status' });
  const label = h('input', { name: 'label', maxlength: 100 });
  const expiry = h('select', { name: 'expiry' }, EXPIRY.map(([v, t]) => h('option', { value: v }, t)));
  const scopeRows = RESOURCES.map(r => {
    const select = h('select', { name: `scope-${r}`, 'aria-label': `Access to ${r.replace('_', ' ')}` },
      h('option', { value: 'none' }, 'None'), h('option', { value: 'read_only' }, 'Read only'),
      h('option', { value: 'read_write', selected: true }, 'Read/write'));
    select.value = 'read_write';
    return h('tr', {}, h('th', { scope: 'row' }, r.replace('_', ' ')), h('td', {}, select));
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create token');
  const form = h('form', { novalidate: true, dataset: { tokenForm: '' } }, formAlert(),
    field('Label', label), field('Expiry', expiry),
    h('div', { class: 'field', dataset: { field: 'scopes' } }, h('p', { class: 'label-like' }, h('strong', {}, 'Access')),
      h('div', { class: 'table-wrap' }, h('table', { class: 'list' }, h('caption', { class: 'visually-hidden' }, 'Scopes'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Resource'), h('th', { scope: 'col' }, 'Access'))), h('tbody', {}, scopeRows))),
      h('p', { class: 'field-error', 'aria-live': 'polite' })),
    submit);

  async function refresh() {
    const list = await all('/profile/tokens');
    listCard.replaceChildren(h('h2', { id: 'tokens-h' }, 'Personal access tokens'), list.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'list', dataset: { tokens: '' } },
        h('thead', {}, h('tr', {}, ['Label', 'Prefix', 'Scopes', 'Created', 'Expires', ''].map(c => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, list.map(t => h('tr', { dataset: { token: String(t.id) } },
          h('th', { scope: 'row' }, t.label || '(no label)'), h('td', { class: 'mono' }, t.token),
          h('td', {}, scopeText(t.scopes)), h('td', {}, when(t.created)), h('td', {}, t.expiry ? when(t.expiry) : 'Never'),
          h('td', {}, h('button', { type: 'button', onclick: async () => {
            await del(`/profile/tokens/${t.id}`);
            announce(`Token ${t.label} revoked`);
            await refresh();
          } }, 'Revoke', h('span', { class: 'visually-hidden' }, ` ${t.label}`))))))))
      : h('p', { class: 'muted' }, 'No personal access tokens yet.'));
  }

  form.addEventListener('submit', async event => {
    event.preventDefault();
    clearErrors(form);
    const chosen = RESOURCES.map(r => [r, form.querySelector(`[name=scope-${r}]`).value]).filter(([, v]) => v !== 'none');
    const scopes = chosen.length === RESOURCES.length && chosen.every(([, v]) => v === 'read_write') ? '*'
      : chosen.map(([r, v]) => `${r}:${v}`).join(' ');
    const body = { label: label.value, scopes };
    if (expiry.value !== 'never') body.expiry = new Date(Date.now() + Number(expiry.value) * 86400000).toISOString().slice(0, 19);
    if (!scopes) { showErrors(form, [{ field: 'scopes', reason: 'Give the token access to at least one resource.' }]); return; }
    await send(form, submit, async () => {
      const made = await post('/profile/tokens', body);
      shown.replaceChildren(h('div', { class: 'notice' }, h('h2', {}, 'Your new token'),
        h('p', {}, 'Copy it now: it is shown only once.'), h('p', { class: 'secret', dataset: { secret: '' } }, made.token)));
      await refresh();
    });
  });
  main.append(shown, h('div', { class: 'grid2' }, listCard,
    h('section', { class: 'card', 'aria-labelledby': 'new-token-h' }, h('h2', { id: 'new-token-h' }, 'Create a token'), form)));
  await refresh();
}

export async function keys(main) {
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'SSH keys')));
  const first = await optional('/profile/sshkeys');
  if (first === null) {
    main.append(h('div', { class: 'card' }, h('p', {}, 'This server does not manage SSH keys yet.')));
    return;
  }
  const listCard = h('section', { class: 'card', 'aria-labelledby': 'keys-h' });
  const label = h('input', { name: 'label', maxlength: 64 });
  const key = h('textarea', { name: 'ssh_key', spellcheck: 'false', rows: 4 });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Add SSH key');
  const form = h('form', { novalidate: true, dataset: { keyForm: '' } }, formAlert(), field('Label', label),
    field('SSH public key', key, { hint: 'The contents of ~/.ssh/id_ed25519.pub (or another .pub file).' }), submit);

  async function refresh() {
    const list = await all('/profile/sshkeys');
    listCard.replaceChildren(h('h2', { id: 'keys-h' }, 'Your SSH keys'), list.length
      ? h('ul', { class: 'events', dataset: { keys: '' } }, list.map(k => h('li', { dataset: { key: String(k.id) } },
        h('span', {}, h('strong', {}, k.label), h('br'), h('span', { class: 'mono muted' }, `${k.ssh_key.slice(0, 40)}…`)),
        h('button', { type: 'button', onclick: async () => {
          await del(`/profile/sshkeys/${k.id}`);
          announce(`Key ${k.label} removed`);
          await refresh();
        } }, 'Remove', h('span', { class: 'visually-hidden' }, ` ${k.label}`)))))
      : h('p', { class: 'muted' }, 'No SSH keys yet. Keys added here can be put on new Linodes.'));
  }
  form.addEventListener('submit', async event => {
    event.preventDefault();
    clearErrors(form);
    await send(form, submit, async () => {
      await post('/profile/sshkeys', { label: label.value, ssh_key: key.value.trim() });
      await refresh();
    });
  });
  main.append(h('div', { class: 'grid2' }, listCard,
    h('section', { class: 'card', 'aria-labelledby': 'add-key-h' }, h('h2', { id: 'add-key-h' }, 'Add a key'), form)));
  await refresh();
}

export function password(main) {
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Password')));
  const current = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', name: 'new_password', autocomplete: 'new-password', required: true });
  const done = h('div', { role: 'status' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Change password');
  const form = h('form', { class: 'card', novalidate: true, dataset: { passwordForm: '' } }, formAlert(),
    field('Current password', current),
    field('New password', next, { hint: 'At least 7 characters that are hard to guess. Your other console sessions end.' }),
    strengthMeter(next), submit, done);
  form.addEventListener('submit', async event => {
    event.preventDefault();
    clearErrors(form);
    done.replaceChildren();
    await send(form, submit, async () => {
      await changePassword(current.value, next.value);
      done.replaceChildren(h('p', { class: 'notice' }, 'Password changed. Your other console sessions have ended.'));
    }, error => (error.status === 401 ? [{ field: 'password', reason: error.errors[0].reason }] : error.errors));
  });
  main.append(form);
}
