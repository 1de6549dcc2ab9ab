// Log in and sign up: the only pages outside /v4 (they get the console's access token).

import { ApiError, signIn } from '../api.js';
import { clearErrors, field, formAlert, h, showErrors } from '../dom.js';
import { navigate } from '../main.js';
import { strengthMeter } from '../password.js';

function page(main, { kind, title, button, other }) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'email', required: true });
  const password = h('input', { type: 'password', name: 'password', required: true,
    autocomplete: kind === 'signup' ? 'new-password' : 'current-password' });
  const submit = h('button', { type: 'submit', class: 'primary wide' }, button);
  const form = h('form', { class: 'card auth-card', novalidate: true },
    h('h1', {}, title), formAlert(),
    field('Email', email),
    field('Password', password, kind === 'signup'
      ? { hint: 'At least 7 characters that are hard to guess: a few unrelated words or 12+ random characters.' }
      : {}),
    kind === 'signup' ? strengthMeter(password) : null,
    submit, h('p', { class: 'muted center' }, other));
  form.addEventListener('submit', async event => {
    event.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    try {
      await signIn(kind, email.value, password.value);
      navigate('/linodes', { replace: true });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const errors = error.status === 401 ? [{ field: 'password', reason: error.errors[0].reason }] : error.errors;
      showErrors(form, errors);
    } finally {
      submit.disabled = false;
    }
  });
  main.append(h('div', { class: 'auth' }, form));
  email.focus();
}

export function login(main) {
  page(main, { kind: 'login', title: 'Log in to gpucloud', button: 'Log in',
    other: ['New here? ', h('a', { href: '/signup' }, 'Create an account')] });
}

export function signup(main) {
  page(main, { kind: 'signup', title: 'Create your gpucloud account', button: 'Sign up',
    other: ['Already have an account? ', h('a', { href: '/login' }, 'Log in')] });
}
