// /account/billing: balance, this month's accrual, invoices with items, payments, promo
// codes and the GPU trial, from the account API as Linode documents it.

import { ApiError, all, get, optional, post } from '../api.js';
import { clearErrors, field, formAlert, h, money, showErrors, when } from '../dom.js';
import { trialOffer } from '../trial.js';

export async function billing(main) {
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Billing')));
  const overview = h('section', { class: 'card', 'aria-labelledby': 'balance-h' });
  async function drawOverview() {
    const account = await get('/account');
    overview.replaceChildren(h('h2', { id: 'balance-h' }, 'Balance'), 'balance' in account
      ? h('dl', { class: 'summary', dataset: { balance: '' } },
        h('dt', {}, 'Balance'), h('dd', {}, money(account.balance)),
        h('dt', {}, 'This month so far'), h('dd', { dataset: { accrued: '' } }, money(account.balance_uninvoiced || 0)),
        ...(account.active_promotions || []).flatMap(p => [h('dt', {}, 'Promotion'),
          h('dd', { dataset: { promotion: '' } }, `${p.summary || p.description || ''} (${money(p.credit_remaining || 0)} left)`)]))
      : h('p', { class: 'muted' }, 'Billing is not enabled on this server yet.'));
  }
  await drawOverview();
  main.append(overview);

  const trial = await trialOffer();
  if (trial) main.append(trial);

  const invoices = await optional('/account/invoices?page_size=100');
  const payments = await optional('/account/payments?page_size=100');
  const invoiceCard = h('section', { class: 'card', 'aria-labelledby': 'invoices-h' }, h('h2', { id: 'invoices-h' }, 'Invoices'));
  const items = h('div', { role: 'region', 'aria-live': 'polite', 'aria-label': 'Invoice items' });
  if (invoices && invoices.data.length) {
    invoiceCard.append(h('div', { class: 'table-wrap' }, h('table', { class: 'list', dataset: { invoices: '' } },
      h('thead', {}, h('tr', {}, ['Invoice', 'Date', 'Total', ''].map(c => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, invoices.data.map(inv => h('tr', {}, h('th', { scope: 'row' }, inv.label || `#${inv.id}`),
        h('td', {}, when(inv.date)), h('td', { class: 'num' }, money(inv.total)),
        h('td', {}, h('button', { type: 'button', onclick: async () => {
          const rows = await all(`/account/invoices/${inv.id}/items`);
          items.replaceChildren(h('h3', {}, `Items of ${inv.label || `invoice ${inv.id}`}`), h('div', { class: 'table-wrap' },
            h('table', { class: 'list' }, h('thead', {}, h('tr', {}, ['Item', 'From', 'To', 'Amount'].map(c => h('th', { scope: 'col' }, c)))),
              h('tbody', {}, rows.map(r => h('tr', {}, h('td', {}, r.label), h('td', {}, when(r.from)), h('td', {}, when(r.to)),
                h('td', { class: 'num' }, money(r.total ?? r.amount))))))));
        } }, 'Items', h('span', { class: 'visually-hidden' }, ` of ${inv.label || inv.id}`)))))))), items);
  } else {
    invoiceCard.append(h('p', { class: 'muted' }, invoices ? 'No invoices yet.' : 'Invoices are not available on this server yet.'));
  }
  const paymentCard = h('section', { class: 'card', 'aria-labelledby': 'payments-h' }, h('h2', { id: 'payments-h' }, 'Payments'),
    payments && payments.data.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'list', dataset: { payments: '' } },
      h('thead', {}, h('tr', {}, ['Date', 'Amount'].map(c => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, payments.data.map(p => h('tr', {}, h('td', {}, when(p.date)), h('td', { class: 'num' }, money(p.usd)))))))
      : h('p', { class: 'muted' }, payments ? 'No payments yet.' : 'Payments are not available on this server yet.'));

  const code = h('input', { name: 'promo_code', autocomplete: 'off' });
  const apply = h('button', { type: 'submit' }, 'Apply promo code');
  const promo = h('form', { novalidate: true, dataset: { promoForm: '' } }, formAlert(), field('Promo code', code), apply);
  const promoDone = h('p', { role: 'status' });
  promo.addEventListener('submit', async event => {
    event.preventDefault();
    clearErrors(promo);
    apply.disabled = true;
    try {
      await post('/account/promo-codes', { promo_code: code.value.trim() });
      promoDone.textContent = 'Promo code applied.';
      promo.reset();
      await drawOverview();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showErrors(promo, error.errors);
    } finally {
      apply.disabled = false;
    }
  });
  main.append(h('div', { class: 'grid2' }, h('div', {}, invoiceCard, paymentCard),
    h('section', { class: 'card', 'aria-labelledby': 'promo-h' }, h('h2', { id: 'promo-h' }, 'Promotions'), promo, promoDone)));
}
