"""Billing use cases: this month's accrual of an account, its balance, and the figures
`GET /v4/account` shows. The rules are `domain.billing`; the usage they price is the
`usage_intervals` the lifecycle records (`store.usage`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache

from sqlalchemy.orm import Session

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.domain import billing as rules
from gpucloud.domain.billing import Applied, Bill, Charge, Credit, Period, Price, Segment
from gpucloud.errors import NotFound
from gpucloud.store import billing as q
from gpucloud.store import usage
from gpucloud.store.accounts import account_by_ref
from gpucloud.store.db import Database
from gpucloud.store.tables import AccountPromotion, UsageInterval


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
              tax_percent: float = 0.0) -> tuple[Accrual, list[AccountPromotion]]:
    """The accrual of `period` (up to `until`; the whole month when None), read in the
    caller's transaction, and the promotions it drew on."""
    end = min(period.end, until) if until is not None else period.end
    rows = usage.of_account(s, account_id, period.start, end)
    promos = q.promotions_overlapping(s, account_id, period.start, end)
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
