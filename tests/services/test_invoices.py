"""Closing a month writes each account's invoice exactly once: rerun, two closers at once,
and a closer SIGKILLed mid-close (PostgreSQL for the last two, as production runs it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gpucloud.domain.billing import Period
from gpucloud.errors import GpucloudError
from gpucloud.services import accounts, billing
from gpucloud.store.tables import AccountPromotion, Invoice, InvoiceItem, UsageInterval

OCT = Period(2026, 10)
NOW = datetime(2026, 11, 1, 0, 5)
ROOT = Path(__file__).resolve().parents[2]


def seed(db, n: int, *, promo: bool = False) -> list[int]:
    """n accounts with a GPU instance resized mid-October and a small one all month."""
    ids = []
    for i in range(n):
        account = accounts.create_account(db, f"inv{i}@example.com")
        ids.append(account.id)
        with db.write() as s:
            s.add_all([
                UsageInterval(account_id=account.id, instance_id=1000 + i, label=f"gpu-{i}", region_id="us-east",
                              type_id="g1-gpu-rtx6000-1", started_at=datetime(2026, 10, 3, 9, 15),
                              ended_at=datetime(2026, 10, 10, 12)),
                UsageInterval(account_id=account.id, instance_id=1000 + i, label=f"gpu-{i}", region_id="us-east",
                              type_id="g1-gpu-rtx6000-2", started_at=datetime(2026, 10, 10, 12),
                              ended_at=datetime(2026, 10, 11, 0, 30)),
                UsageInterval(account_id=account.id, instance_id=2000 + i, label=f"web-{i}", region_id="ap-west",
                              type_id="g6-nanode-1", started_at=datetime(2026, 9, 1), ended_at=None),
            ])
            if promo:
                s.add(AccountPromotion(account_id=account.id, summary="$100 off GPUs", credit_cents=10000,
                                       covers=["gpu"], starts_at=datetime(2026, 10, 1),
                                       expires_at=datetime(2026, 12, 1)))
    return ids


def check_invoices(db, account_ids: list[int]) -> list[Invoice]:
    with db.read() as s:
        found = list(s.scalars(select(Invoice).where(Invoice.period == str(OCT)).order_by(Invoice.account_id)))
        assert [i.account_id for i in found] == sorted(account_ids)
        for invoice in found:
            items = list(s.scalars(select(InvoiceItem).where(InvoiceItem.invoice_id == invoice.id)))
            assert items and sum(i.total_cents for i in items) == invoice.total_cents
            assert sum(i.amount_cents for i in items) == invoice.subtotal_cents
    return found


def test_a_month_closes_once_with_items_summing_to_the_total(store_db):
    (account_id,) = seed(store_db, 1, promo=True)
    with pytest.raises(GpucloudError, match="not over yet"):
        billing.close_month(store_db, Period(2026, 11), now=NOW)
    report = billing.close_month(store_db, OCT, now=NOW)
    assert len(report.created) == 1 and report.already == 0
    (invoice,) = check_invoices(store_db, [account_id])
    items = billing.invoice_items(store_db, account_id, invoice.id)
    assert [(i.type, i.quantity, i.unit_price, i.amount_cents) for i in items] == [
        ("hourly", 744, "0.0075", 500),  # the whole month: capped at 5.00
        ("hourly", 171, "1.5", 25650),  # Oct 3 09:15 to Oct 10 12:00
        ("hourly", 13, "3", 3900),  # 12:00 to 00:30
        ("promotion", None, None, -10000),
    ]
    assert (invoice.subtotal_cents, invoice.total_cents, invoice.date) == (20050, 20050, datetime(2026, 11, 1))
    with store_db.read() as s:
        assert s.scalar(select(AccountPromotion.used_cents)) == 10000  # spent once
    again = billing.close_month(store_db, OCT, now=NOW + timedelta(hours=1))
    assert again.created == [] and again.already == 1
    check_invoices(store_db, [account_id])
    with store_db.read() as s:
        assert s.scalar(select(AccountPromotion.used_cents)) == 10000
    assert billing.figures(store_db, account_id, now=NOW).balance == Decimal("200.50")
    billing.record_payment(store_db, account_id, "150", actor="test", note="wire 1")
    assert billing.figures(store_db, account_id, now=NOW).balance == Decimal("50.50")
    with pytest.raises(GpucloudError, match="positive amount"):
        billing.record_payment(store_db, account_id, "-3", actor="test")


def test_the_periodic_sweep_closes_last_month_from_the_first(store_db):
    ids = seed(store_db, 2)
    assert billing.close_due(store_db, now=NOW).created  # on the 1st: October
    assert billing.close_due(store_db, now=NOW + timedelta(days=3)).created == []
    check_invoices(store_db, ids)


@pytest.mark.postgres
def test_two_closers_at_once_write_each_invoice_once(postgres_db):
    ids = seed(postgres_db, 12, promo=True)
    reports, errors = [], []
    start = threading.Barrier(2)

    def close():
        try:
            start.wait()
            reports.append(billing.close_month(postgres_db, OCT, now=NOW))
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=close) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    created = [i for r in reports for i in r.created]
    assert len(created) == len(set(created)) == 12
    check_invoices(postgres_db, ids)
    with postgres_db.read() as s:
        assert set(s.scalars(select(AccountPromotion.used_cents))) == {10000}  # no credit spent twice


@pytest.mark.postgres
def test_a_closer_killed_mid_close_leaves_whole_invoices_and_a_rerun_finishes(postgres_db):
    ids = seed(postgres_db, 30, promo=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.services.billing_closer", postgres_db.url, str(OCT)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with postgres_db.read() as s:
                written = s.scalar(select(func.count()).select_from(Invoice))
            if written >= 5:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    with postgres_db.read() as s:
        partial = list(s.scalars(select(Invoice.account_id)))
    assert 5 <= len(partial) < 30, proc.stderr.read()
    check_invoices(postgres_db, partial)  # each committed invoice is whole
    report = billing.close_month(postgres_db, OCT, now=NOW)
    assert len(report.created) == 30 - len(partial)
    check_invoices(postgres_db, ids)
    with postgres_db.read() as s:
        assert set(s.scalars(select(AccountPromotion.used_cents))) == {10000}


@pytest.mark.postgres
def test_two_months_of_one_account_closed_at_once_spend_its_credit_once(postgres_db):
    account = accounts.create_account(postgres_db, "twomonths@example.com")
    with postgres_db.write() as s:
        s.add_all([UsageInterval(account_id=account.id, instance_id=77, label="gpu", region_id="us-east",
                                 type_id="g1-gpu-rtx6000-1", started_at=datetime(2026, 9, 20), ended_at=None),
                   AccountPromotion(account_id=account.id, summary="$300 off", credit_cents=30000, covers=["all"],
                                    starts_at=datetime(2026, 9, 1), expires_at=datetime(2026, 12, 1))])
    start, errors = threading.Barrier(2), []

    def close(period):
        try:
            start.wait()
            billing.close_month(postgres_db, period, now=datetime(2026, 11, 2))
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=close, args=(p,)) for p in (Period(2026, 9), OCT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with postgres_db.read() as s:
        spent = -sum(s.scalars(select(InvoiceItem.amount_cents).where(InvoiceItem.type == "promotion")))
        assert spent == 30000 == s.scalar(select(AccountPromotion.used_cents))
