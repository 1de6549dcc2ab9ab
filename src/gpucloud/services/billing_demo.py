"""Billing history for `gpucloud serve --demo`: a few closed months for the demo customer
(backdated usage, invoices, payments), an account with an active GPU trial, one with a
pending request, and a promo code to redeem. Seeded once, with the demo's accounts."""

from __future__ import annotations

from datetime import datetime, timedelta

from gpucloud.clock import utcnow
from gpucloud.config import Settings
from gpucloud.domain.billing import Period
from gpucloud.services import accounts, billing, promotions, trials
from gpucloud.store.db import Database
from gpucloud.store.tables import UsageInterval

PROMO_CODE = "WELCOME-GPU"
TRIAL_EMAIL = "trial@example.com"
PENDING_EMAIL = "pending@example.com"
HISTORY_IDS = 2_000_000_000  # instances of the past, deleted long ago: ids no live instance reaches


def seed_billing_demo(db: Database, settings: Settings, customer_email: str, now: datetime | None = None) -> str:
    """Seed the history; returns the promo code to print."""
    moment = now or utcnow()
    customer = accounts.get_account(db, customer_email)
    this = Period.of(moment)
    months = [this.previous().previous().previous(), this.previous().previous(), this.previous()]
    with db.write() as s:
        first = months[0].start
        s.add_all([
            _past(customer.id, 1, "train-1", "us-east", "g1-gpu-rtx6000-1", first + timedelta(days=3, hours=9),
                  first + timedelta(days=12, hours=17, minutes=20)),
            _past(customer.id, 1, "train-1", "us-east", "g1-gpu-rtx6000-2", first + timedelta(days=12, hours=17,
                                                                                               minutes=20),
                  first + timedelta(days=16, hours=2)),
            _past(customer.id, 2, "web-1", "ap-west", "g6-nanode-1", first + timedelta(days=1),
                  this.start + (moment - this.start) / 2),  # deleted this month: it shows in this month's usage
            _past(customer.id, 3, "notebook", "ap-south", "g2-gpu-rtx4000a1-s", months[1].start + timedelta(days=20),
                  months[2].start + timedelta(days=9, hours=4, minutes=45)),
        ])
    for period in months:
        billing.close_month(db, period, settings.billing_tax_percent, now=moment)
    for invoice in billing.invoices(db, customer.id)[:-1]:  # the last one is still to be paid
        billing.record_payment(db, customer.id, f"{invoice.total_cents / 100:.2f}", actor="demo",
                               note=f"wire for {invoice.label}", date=invoice.date + timedelta(days=9))
    promotions.create_code(db, PROMO_CODE, credit="100", days=30, covers=["gpu"], redemptions=100, actor="demo",
                           description="$100 of GPU time for new customers")
    trial_account = _account(db, TRIAL_EMAIL, "trial")
    started = trials.request(db, settings, trial_account, "Fine-tuning a 7B model for our support bot",
                             now=moment - timedelta(days=2, hours=3))
    trials.approve(db, settings, started.id, actor="demo", why="verified company", now=moment - timedelta(days=2))
    trials.request(db, settings, _account(db, PENDING_EMAIL, "pending"), "Benchmarking H100 vs RTX 6000 for CFD",
                   now=moment - timedelta(hours=5))
    return PROMO_CODE


def _past(account_id: int, n: int, label: str, region: str, type_id: str, start: datetime,
          end: datetime) -> UsageInterval:
    return UsageInterval(account_id=account_id, instance_id=HISTORY_IDS + n, label=label, region_id=region,
                         type_id=type_id, started_at=start, ended_at=end)


def _account(db: Database, email: str, username: str) -> int:
    return accounts.create_account(db, email, username=username, company="Demo Labs").id
