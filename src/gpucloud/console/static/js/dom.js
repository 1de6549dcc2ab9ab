// Small DOM helpers: h() builds elements, field() a labelled input with its error slot.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

let uid = 0;
export function nextId(prefix = 'f') { uid += 1; return `${prefix}-${uid}`; }

// A label, the control, a hint and an error slot announced to screen readers.
export function field(label, control, { hint = null, name = null } = {}) {
  const id = control.id || nextId('field');
  control.id = id;
  const errorId = `${id}-error`;
  const describedBy = [errorId];
  const parts = [h('label', { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    parts.push(h('p', { class: 'hint', id: hintId }, hint));
    describedBy.push(hintId);
  }
  parts.push(h('p', { class: 'field-error', id: errorId, 'aria-live': 'polite' }));
  control.setAttribute('aria-describedby', describedBy.join(' '));
  return h('div', { class: 'field', dataset: { field: name || control.name || '' } }, parts);
}

// A group of choices (radio cards) with a legend and its own error slot.
export function fieldset(legend, body, name) {
  const errorId = nextId('group-error');
  return h('fieldset', { class: 'group', dataset: { field: name }, 'aria-describedby': errorId },
    h('legend', {}, legend), body, h('p', { class: 'field-error', id: errorId, 'aria-live': 'polite' }));
}

// Shows the API's errors next to the fields they name; the rest in the form's alert.
export function showErrors(form, errors, aliases = {}) {
  clearErrors(form);
  const general = [];
  let first = null;
  for (const error of errors) {
    const name = aliases[error.field] || error.field;
    const slot = name ? form.querySelector(`[data-field="${CSS.escape(name)}"]`) : null;
    if (!slot) { general.push(error.field ? `${error.field}: ${error.reason}` : error.reason); continue; }
    const message = slot.querySelector('.field-error');
    message.textContent = message.textContent ? `${message.textContent} ${error.reason}` : error.reason;
    slot.classList.add('invalid');
    const control = slot.querySelector('input, select, textarea');
    if (control) control.setAttribute('aria-invalid', 'true');
    first = first || control;
  }
  const alert = form.querySelector('.form-alert');
  if (alert && general.length) { alert.textContent = general.join(' '); alert.hidden = false; }
  if (general.length && alert) alert.focus();
  else if (first) first.focus();
}

export function clearErrors(form) {
  form.querySelectorAll('.field-error').forEach(e => { e.textContent = ''; });
  form.querySelectorAll('.invalid').forEach(e => e.classList.remove('invalid'));
  form.querySelectorAll('[aria-invalid]').forEach(e => e.removeAttribute('aria-invalid'));
  const alert = form.querySelector('.form-alert');
  if (alert) { alert.textContent = ''; alert.hidden = true; }
}

export function formAlert() {
  return h('div', { class: 'form-alert', role: 'alert', tabindex: '-1', hidden: true });
}

export function announce(text) {
  const el = document.getElementById('announcer');
  el.textContent = '';
  setTimeout(() => { el.textContent = text; }, 30);
}

export function statusBadge(status) {
  return h('span', { class: `status status-${status}`, dataset: { status } }, status.replace(/_/g, ' '));
}

export const TRANSITIONAL = new Set(['provisioning', 'booting', 'rebooting', 'shutting_down', 'migrating',
  'resizing', 'rebuilding', 'cloning', 'restoring', 'deleting', 'billing_suspension']);

export function gib(mib) { return `${Math.round(mib / 1024)} GB`; }
export function money(value, digits = 2) { return `$${Number(value).toFixed(digits)}`; }
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso.endsWith('Z') || iso.includes('+') ? iso : `${iso}Z`);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}
