// The one-week GPU trial (our extension, GET/POST /v4/account/gpu-trial): offered to an
// account that cannot see GPU plans; its state shows on the create page and in billing.

import { ApiError, optional, post } from './api.js';
import { clearErrors, field, formAlert, h, showErrors, when } from './dom.js';
import { forgetCatalog } from './catalog.js';

function trialState(trial) {
  switch (trial.status) {
    case 'pending': return `Your GPU trial request (sent ${when(trial.requested)}) is waiting for review.`;
    case 'active': return `Your GPU trial is active until ${when(trial.ends)}.`;
    case 'declined': return `Your GPU trial request was declined${trial.reason ? `: ${trial.reason}` : '.'}`;
    case 'ended': return `Your GPU trial ended on ${when(trial.ends)}.`;
    default: return 'GPU plans are not open to your account yet.';
  }
}

// A card with the trial's state, and the request form when there is none (or it was
// declined) and `offer`; null when the server does not offer trials or there is nothing to say.
export async function trialOffer({ offer = true } = {}) {
  let trial;
  try { trial = await optional('/account/gpu-trial'); } catch { return null; }
  if (!trial || (!offer && trial.status === 'none')) return null;
  const box = h('section', { class: 'card notice', dataset: { trial: trial.status }, 'aria-labelledby': 'trial-heading' },
    h('h2', { id: 'trial-heading' }, 'GPU plans'));
  if (trial.status !== 'none') {
    box.append(h('p', { dataset: { trialState: '' } }, trialState(trial)));
    if (trial.status !== 'declined' || !offer) return box;  // a declined request may be made again
  }
  const reason = h('textarea', { name: 'reason', rows: 3 });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Request GPU trial');
  const form = h('form', { novalidate: true, dataset: { trialForm: '' } }, formAlert(),
    field('What will you run on the GPUs?', reason), submit);
  box.append(h('p', {}, 'GPU plans are opened to new accounts after a short review. Request a one-week GPU trial:'), form);
  form.addEventListener('submit', async event => {
    event.preventDefault();
    event.stopPropagation();
    clearErrors(form);
    submit.disabled = true;
    try {
      const made = await post('/account/gpu-trial', { reason: reason.value });
      forgetCatalog();
      form.replaceWith(h('p', { dataset: { trialState: '' }, role: 'status' }, trialState(made)));
      box.dataset.trial = made.status;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showErrors(form, error.errors);
      submit.disabled = false;
    }
  });
  return box;
}
