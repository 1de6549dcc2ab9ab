"""Billing use cases: this month's accrual of an account, its balance, the figures
`GET /v4/account` shows, closing a month into invoices, and payments. The rules are
`domain.billing`; the usage they price is the `usage_intervals` the lifecycle records
(`store.usage`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.domain import billing as rules
from gpucloud.domain.billing import Applied, Bill, Charge, Credit, Period, Price, Segment
from gpucloud.domain.guest_stats import GIB
from gpucloud.errors import GpucloudError, NotFound
from gpucloud.store import audit, usage
from gpucloud.store import billing as q
from gpucloud.store import guest_stats as stats_q
from gpucloud.store.accounts import account_by_ref
from gpucloud.store.db import Database
from gpucloud.store.tables import AccountPromotion, Invoice, InvoiceItem, Payment, UsageInterval


@cache
def prices() -> dict[str, Price]:
    """Every plan's price, from the catalog (fixed for the life of the process)."""
    return {p.id: Price.of(p.label, p.price_hourly, p.price_monthly, p.is_gpu) for p in load_catalog().plans}


def tax_rate(percent: float) -> Decimal:
    return Decimal(str(percent)) / 100


@dataclass(frozen=True)
class Accrual:
    """What an account owes for `period` up to `until`: charges, credit spent, the bill."""

    account_id: int
    period: Period
    until: datetime
    charges: list[Charge]
    applied: list[Applied]
    bill: Bill


@dataclass(frozen=True)
class ActivePromotion:
    promotion: AccountPromotion
    remaining: Decimal  # credit left after this month's accrual so far
    this_month: Decimal  # credit spent this month so far


def fresh(p: AccountPromotion) -> ActivePromotion:
    """A promotion just granted: nothing spent yet."""
    return ActivePromotion(p, rules.from_cents(p.credit_cents - p.used_cents), rules.ZERO)


@dataclass(frozen=True)
class Figures:
    balance: Decimal  # invoiced and not paid (negative: paid ahead)
    uninvoiced: Decimal  # this month so far, after promotion credit
    promotions: list[ActivePromotion]


def segments(rows: list[UsageInterval]) -> list[Segment]:
    return [Segment(r.instance_id, r.label, r.region_id, r.type_id, r.started_at, r.ended_at) for r in rows]


def credit(p: AccountPromotion) -> Credit:
    return Credit(p.id, p.summary, rules.from_cents(p.credit_cents - p.used_cents), frozenset(p.covers),
                  p.starts_at, p.expires_at)


def accrue_in(s: Session, account_id: int, period: Period, until: datetime | None = None,
              tax_percent: float = 0.0, *, lock: bool = False) -> tuple[Accrual, list[AccountPromotion]]:
    """The accrual of `period` (up to `until`; the whole month when None), read in the
    caller's transaction, and the promotions it drew on (`lock`: held until commit)."""
    end = min(period.end, until) if until is not None else period.end
    rows = usage.of_account(s, account_id, period.start, end)
    promos = q.promotions_overlapping(s, account_id, period.start, end, lock=lock)
    found, applied, bill = rules.accrue(segments(rows), prices(), period, [credit(p) for p in promos],
                                        tax_rate(tax_percent), until=end)
    return Accrual(account_id, period, end, found, applied, bill), promos


def current_usage(db: Database, account_ref: str | int, now: datetime | None = None,
                  tax_percent: float = 0.0) -> Accrual:
    """This month's accrual so far (`gpucloud billing usage`, the account's uninvoiced balance)."""
    moment = now or utcnow()
    with db.read() as s:
        account = account_by_ref(s, account_ref)
        if account is None:
            raise NotFound(f"no account {account_ref}")
        return accrue_in(s, account.id, Period.of(moment), moment, tax_percent)[0]


def figures(db: Database, account_id: int, now: datetime | None = None, tax_percent: float = 0.0) -> Figures:
    """Balance, this month's estimate and the promotions with credit left, in one read."""
    moment = now or utcnow()
    with db.read() as s:
        accrual, promos = accrue_in(s, account_id, Period.of(moment), moment, tax_percent)
        balance = rules.from_cents(q.invoiced_cents(s, account_id) - q.paid_cents(s, account_id))
    spent = {a.promotion_id: a.amount for a in accrual.applied}
    active = [ActivePromotion(p, rules.from_cents(p.credit_cents - p.used_cents) - spent.get(p.id, rules.ZERO),
                              spent.get(p.id, rules.ZERO))
              for p in promos if p.starts_at <= moment < p.expires_at]
    return Figures(balance, accrual.bill.total, active)


# --- closing a month ------------------------------------------------------------------


@dataclass(frozen=True)
class CloseReport:
    period: Period
    created: list[int]  # invoice ids written by this run
    already: int  # accounts whose invoice existed (an earlier or concurrent run)


def close_account(db: Database, account_id: int, period: Period, tax_percent: float = 0.0,
                  now: datetime | None = None) -> Invoice | None:
    """Write the account's invoice for `period` with its items and the credit it spent, in
    one transaction: None when it exists already (this run or another closer's, whose
    insert the unique key (account, period) refused) or there was no usage."""
    try:
        with db.write() as s:
            if q.invoice_for(s, account_id, str(period)) is not None:
                return None
            accrual, _ = accrue_in(s, account_id, period, None, tax_percent, lock=True)
            bill = accrual.bill
            if not bill.lines:
                return None
            invoice = Invoice(account_id=account_id, period=str(period), label=f"Invoice {period}",
                              date=period.end, subtotal_cents=rules.to_cents(bill.subtotal),
                              tax_cents=rules.to_cents(bill.tax), total_cents=rules.to_cents(bill.total),
                              created_at=now or utcnow())
            s.add(invoice)
            s.flush()  # the unique key decides here, before any credit is spent
            s.add_all(InvoiceItem(invoice_id=invoice.id, position=i, label=line.label, type=line.type,
                                  amount_cents=rules.to_cents(line.amount), quantity=line.quantity,
                                  unit_price=line.unit_price, from_at=line.start, to_at=line.end,
                                  region=line.region, tax_cents=rules.to_cents(line.tax),
                                  total_cents=rules.to_cents(line.total))
                      for i, line in enumerate(bill.lines))
            for applied in accrual.applied:
                q.spend_promotion(s, applied.promotion_id, rules.to_cents(applied.amount))
            return invoice
    except IntegrityError:
        return None  # another closer wrote it first; nothing of ours was kept


def close_month(db: Database, period: Period, tax_percent: float = 0.0, now: datetime | None = None) -> CloseReport:
    """Invoice every account with usage in `period`, one transaction per account: safe to
    rerun, to run twice at once, and to kill at any moment (what committed stays, the rest
    is written by the next run)."""
    moment = now or utcnow()
    if period.end > moment:
        raise GpucloudError(f"{period} is not over yet: a month is closed from the 1st of the next one")
    with db.read() as s:
        wanted = usage.accounts_with_usage(s, period.start, period.end)
        done = q.invoiced_accounts(s, str(period))
    created = []
    for account_id in wanted:
        if account_id in done:
            continue
        invoice = close_account(db, account_id, period, tax_percent, moment)
        if invoice is not None:
            created.append(invoice.id)
    return CloseReport(period, created, len(wanted) - len(created))


def close_due(db: Database, tax_percent: float = 0.0, now: datetime | None = None) -> CloseReport:
    """The periodic job's part: close last month (from the 1st on; a no-op once done)."""
    moment = now or utcnow()
    return close_month(db, Period.of(moment).previous(), tax_percent, moment)


# --- invoices and payments, read by customers and operators ------------------------------------


def invoices(db: Database, account_id: int) -> list[Invoice]:
    with db.read() as s:
        return q.invoices_of(s, account_id)


def invoice(db: Database, account_id: int, invoice_id: int) -> Invoice:
    with db.read() as s:
        found = q.invoice_of(s, account_id, invoice_id)
        if found is None:
            raise NotFound()
        return found


def invoice_items(db: Database, account_id: int, invoice_id: int) -> list[InvoiceItem]:
    with db.read() as s:
        if q.invoice_of(s, account_id, invoice_id) is None:
            raise NotFound()
        return q.items_of(s, invoice_id)


def all_invoices(db: Database, account_ref: str | int | None = None) -> list[Invoice]:
    """Operators' view: one account's invoices, or every account's (newest first)."""
    with db.read() as s:
        if account_ref is None:
            return q.all_invoices(s)
        account = account_by_ref(s, account_ref)
        if account is None:
            raise NotFound(f"no account {account_ref}")
        return q.invoices_of(s, account.id)


def payments(db: Database, account_id: int) -> list[Payment]:
    with db.read() as s:
        return q.payments_of(s, account_id)


def record_payment(db: Database, account_ref: str | int, amount: str, *, actor: str, note: str = "",
                   date: datetime | None = None) -> Payment:
    """A payment received outside the product (no card processing here), audited."""
    try:
        usd = rules.money(amount)
    except ValueError as exc:
        raise GpucloudError(str(exc)) from None
    with db.write() as s:
        account = account_by_ref(s, account_ref)
        if account is None:
            raise NotFound(f"no account {account_ref}")
        payment = Payment(account_id=account.id, usd_cents=rules.to_cents(usd), note=note, recorded_by=actor,
                          date=date or utcnow())
        s.add(payment)
        s.flush()
        audit.record(s, actor=actor, action="billing.payment", target_type="account", target_id=account.id,
                     after={"payment": payment.id, "usd": f"{usd:.2f}"}, why=note)
        return payment


# --- operators' figures ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRate:
    region: str
    gpu_model: str  # "cpu" for plans without GPUs
    accrued: Decimal  # this month so far, before promotion credit
    run_rate: Decimal  # accrued, scaled to the whole month


def run_rates(db: Database, now: datetime | None = None) -> list[RunRate]:
    """Revenue this month per region and GPU model, and the month's run-rate at this pace."""
    moment = now or utcnow()
    period = Period.of(moment)
    with db.read() as s:
        rows = usage.all_overlapping(s, period.start, moment)
    catalog = load_catalog()
    totals: dict[tuple[str, str], Decimal] = {}
    for charge in rules.charges(segments(rows), prices(), period, until=moment):
        plan = catalog.plan(charge.type_id)
        key = (charge.region, (plan.gpu_model or "cpu") if plan else "cpu")
        totals[key] = totals.get(key, rules.ZERO) + charge.amount
    elapsed = (moment - period.start) / (period.end - period.start)
    scale = Decimal(1) / Decimal(str(elapsed)) if elapsed > 0 else Decimal(0)
    return [RunRate(region, model, amount, rules.cents(amount * scale))
            for (region, model), amount in sorted(totals.items())]


@dataclass(frozen=True)
class AccountBilling:
    """The admin account page's billing panel."""

    accrual: Accrual
    figures: Figures
    invoices: list[Invoice]
    payments: list[Payment]
    promotions: list[AccountPromotion]


def account_billing(db: Database, account_id: int, tax_percent: float = 0.0,
                    now: datetime | None = None) -> AccountBilling:
    moment = now or utcnow()
    with db.read() as s:
        accrual = accrue_in(s, account_id, Period.of(moment), moment, tax_percent)[0]
        found = q.invoices_of(s, account_id)
        paid = q.payments_of(s, account_id)
        held = q.promotions_of(s, account_id)
    return AccountBilling(accrual, figures(db, account_id, moment, tax_percent), found, paid, held)


def account_transfer(db: Database, account_id: int, now: datetime | None = None) -> dict:
    """GET /account/transfer: the account's pool this month. `quota`: the monthly transfer of
    every plan an instance of the account used this month (deleted ones included, not
    prorated); `used`: what those instances sent this month, whole GB rounded up; `billable`:
    GB over the pool."""
    moment = now or utcnow()
    period = Period.of(moment)
    catalog = load_catalog()
    with db.read() as s:
        rows = usage.of_account(s, account_id, period.start, moment)
        quotas: dict[int, int] = {}
        for row in rows:
            plan = catalog.plan(row.type_id)
            quotas[row.instance_id] = max(quotas.get(row.instance_id, 0), plan.transfer_gb if plan else 0)
        sent = sum(t.tx_bytes for i in quotas if (t := stats_q.transfer(s, i, str(period))) is not None)
    used = math.ceil(sent / GIB)
    quota = sum(quotas.values())
    return {"used": used, "quota": quota, "billable": max(used - quota, 0)}
