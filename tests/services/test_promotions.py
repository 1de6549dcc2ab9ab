"""Promo codes: created by operators, redeemed once per account and never past their
limit, and spent on covered usage first (both databases)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from gpucloud.domain.billing import Period
from gpucloud.errors import GpucloudError
from gpucloud.services import accounts, billing, promotions
from gpucloud.store.tables import AccountPromotion, AuditEntry, InvoiceItem, PromoCode, UsageInterval


def test_codes_are_checked_audited_and_redeemed_within_their_limits(store_db):
    for bad, field in ((dict(code="x"), "code"), (dict(credit="0"), "credit"), (dict(covers=["g9-nothing"]), "covers"),
                       (dict(covers=[]), "covers")):
        args = {"code": "GPU100", "credit": "100", "days": 30, "covers": ["gpu"], "redemptions": 2, **bad}
        with pytest.raises(GpucloudError) as err:
            promotions.create_code(store_db, args.pop("code"), actor="op", **args)
        assert err.value.field == field
    code = promotions.create_code(store_db, "gpu100", credit="100", days=30, covers=["gpu"], redemptions=2,
                                  actor="op", description="$100 of GPU time")
    assert code.code == "GPU100"
    with pytest.raises(GpucloudError, match="exists already"):
        promotions.create_code(store_db, "GPU100", credit="5", days=1, covers=["all"], redemptions=1, actor="op")
    a, b, c = (accounts.create_account(store_db, f"p{i}@example.com") for i in range(3))
    now = datetime(2026, 11, 10, 12)
    got = promotions.redeem(store_db, a.id, " gpu100 ", now=now)
    assert (got.credit_cents, got.covers, got.starts_at, got.expires_at) == (10000, ["gpu"], now, now + timedelta(30))
    with pytest.raises(GpucloudError, match="already been applied"):
        promotions.redeem(store_db, a.id, "GPU100", now=now)
    promotions.redeem(store_db, b.id, "GPU100", now=now)
    with pytest.raises(GpucloudError, match="fully redeemed"):
        promotions.redeem(store_db, c.id, "GPU100", now=now)
    with pytest.raises(GpucloudError, match="not found") as err:
        promotions.redeem(store_db, c.id, "NOPE", now=now)
    assert err.value.field == "promo_code"
    promotions.create_code(store_db, "LATE", credit="5", days=1, covers=["all"], redemptions=9, actor="op",
                           redeem_by=datetime(2026, 11, 1))
    with pytest.raises(GpucloudError, match="expired"):
        promotions.redeem(store_db, c.id, "LATE", now=now)
    with store_db.read() as s:
        assert s.scalar(select(PromoCode.redemptions).where(PromoCode.code == "GPU100")) == 2
        assert [e.action for e in s.scalars(select(AuditEntry))] == ["billing.promo_create"] * 2


@pytest.mark.postgres
def test_racing_redeemers_never_exceed_the_limit(postgres_db):
    promotions.create_code(postgres_db, "RACE", credit="10", days=5, covers=["all"], redemptions=3, actor="op")
    ids = [accounts.create_account(postgres_db, f"r{i}@example.com").id for i in range(8)]
    barrier, wins = threading.Barrier(len(ids)), []

    def go(account_id):
        barrier.wait()
        try:
            promotions.redeem(postgres_db, account_id, "RACE")
            wins.append(account_id)
        except GpucloudError:
            pass

    threads = [threading.Thread(target=go, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(wins) == 3
    with postgres_db.read() as s:
        assert s.scalar(select(PromoCode.redemptions)) == 3
        assert len(list(s.scalars(select(AccountPromotion)))) == 3


def test_credit_pays_covered_usage_first_then_shows_what_is_left(store_db):
    account = accounts.create_account(store_db, "gpuuser@example.com")
    promotions.create_code(store_db, "GPU50", credit="50", days=60, covers=["gpu"], redemptions=1, actor="op",
                           description="$50 off GPUs")
    promotions.redeem(store_db, account.id, "GPU50", now=datetime(2026, 10, 30))
    with store_db.write() as s:
        s.add_all([UsageInterval(account_id=account.id, instance_id=1, label="gpu-box", region_id="us-east",
                                 type_id="g1-gpu-rtx6000-1", started_at=datetime(2026, 10, 31, 10),
                                 ended_at=datetime(2026, 11, 1, 10)),  # 14 h in October: 21.00; 10 h in November
                   UsageInterval(account_id=account.id, instance_id=2, label="web-box", region_id="us-east",
                                 type_id="g6-nanode-1", started_at=datetime(2026, 10, 1), ended_at=None)])
    report = billing.close_month(store_db, Period(2026, 10), now=datetime(2026, 11, 1, 1))
    (invoice_id,) = report.created
    with store_db.read() as s:
        items = list(s.scalars(select(InvoiceItem).where(InvoiceItem.invoice_id == invoice_id)
                               .order_by(InvoiceItem.position)))
    assert [(i.type, i.amount_cents) for i in items] == [("hourly", 500), ("hourly", 2100), ("promotion", -2100)]
    f = billing.figures(store_db, account.id, now=datetime(2026, 11, 2))
    (active,) = f.promotions
    assert active.this_month == Decimal("15.00") and active.remaining == Decimal("14.00")  # 50 - 21 - 15
    assert f.uninvoiced == Decimal("0.18")  # nanode: 24 h x 0.0075; the GPU hours are paid by credit
