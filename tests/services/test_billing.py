"""Metering below the API, on both databases: the lifecycle's three facts write usage in
their own transactions, and an account's figures are priced from them."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.errors import NotFound
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, billing, hosts, instances, provisioning
from gpucloud.store.tables import InstanceTransfer, UsageInterval
from tests.conftest import make_settings

GPU1, GPU2 = "g1-gpu-rtx6000-1", "g1-gpu-rtx6000-2"


@pytest.fixture
def env(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url)
    hosts.register_host(store_db, settings, name="sim-a", region="us-east", topology=load_profile("rtx6000-2s4g"),
                        driver="sim", profile="rtx6000-2s4g")
    account = accounts.create_account(store_db, "bill@example.com")
    return store_db, settings, account


def create(db, settings, account, plan=GPU1, label=None):
    new = instances.NewInstance(type=plan, region="us-east", image="linode/debian12", label=label,
                                root_pass="aComplex@Password123")
    return instances.create_instance(db, settings, account.id, account.username, new, bypass_flags=True)


def intervals(db, instance_id):
    with db.read() as s:
        return list(s.scalars(select(UsageInterval).where(UsageInterval.instance_id == instance_id)
                              .order_by(UsageInterval.id)))


def backdate(db, instance_id, *moments):
    """Move the instance's recorded transitions to chosen moments (a controllable clock)."""
    with db.write() as s:
        rows = list(s.scalars(select(UsageInterval).where(UsageInterval.instance_id == instance_id)
                              .order_by(UsageInterval.id)))
        bounds = list(moments)
        for i, row in enumerate(rows):
            row.started_at = bounds[i]
            if row.ended_at is not None:
                row.ended_at = bounds[i + 1]


def test_create_resize_delete_record_usage(env):
    db, settings, account = env
    vm = create(db, settings, account, label="train")
    (first,) = intervals(db, vm.id)
    assert (first.type_id, first.label, first.region_id, first.ended_at) == (GPU1, "train", "us-east", None)
    assert provisioning.resize_claims(db, settings, vm.id, GPU2) is not None
    provisioning.resize_claims(db, settings, vm.id, GPU2)  # a retried job: no second split
    old, new = intervals(db, vm.id)
    assert (old.type_id, new.type_id) == (GPU1, GPU2) and old.ended_at == new.started_at and new.ended_at is None
    provisioning.remove_instance(db, vm.id)
    assert all(r.ended_at is not None for r in intervals(db, vm.id))


def test_figures_price_the_month_so_far(env):
    db, settings, account = env
    a = create(db, settings, account, label="vm-a")
    b = create(db, settings, account, GPU2, label="vm-b")
    provisioning.resize_claims(db, settings, a.id, GPU2)
    backdate(db, a.id, datetime(2026, 10, 20), datetime(2026, 11, 3, 10, 30))  # GPU1 then GPU2
    backdate(db, b.id, datetime(2026, 11, 5, 23, 59))
    now = datetime(2026, 11, 6, 1, 0)
    accrual = billing.current_usage(db, account.id, now=now)
    amounts = {(c.instance_id, c.type_id): (c.hours, c.amount) for c in accrual.charges}
    assert amounts == {(a.id, GPU1): (59, Decimal("88.50")),  # Nov 1 00:00 to Nov 3 10:30
                       (a.id, GPU2): (63, Decimal("189.00")),  # 10:00 hour again, to Nov 6 01:00
                       (b.id, GPU2): (2, Decimal("6.00"))}
    f = billing.figures(db, account.id, now=now)
    assert f.uninvoiced == Decimal("283.50") and f.balance == Decimal("0.00") and f.promotions == []
    assert billing.current_usage(db, account.email, now=now).bill.total == Decimal("283.50")
    with pytest.raises(NotFound):
        billing.current_usage(db, "nobody@example.com")


def test_deleted_instances_still_bill_their_month(env):
    db, settings, account = env
    vm = create(db, settings, account)
    provisioning.remove_instance(db, vm.id)
    with db.write() as s:
        s.execute(update(UsageInterval).values(started_at=datetime(2026, 11, 1, 8),
                                               ended_at=datetime(2026, 11, 1, 8) + timedelta(minutes=61)))
    assert billing.current_usage(db, account.id, now=datetime(2026, 11, 30)).bill.total == Decimal("3.00")


def test_account_transfer_pools_the_plans_used_this_month(env):
    db, settings, account = env
    vm = create(db, settings, account, label="xfer-1")
    month = utcnow().strftime("%Y-%m")
    with db.write() as s:
        s.add(InstanceTransfer(instance_id=vm.id, month=month, rx_bytes=5 * 1024**3, tx_bytes=3 * 1024**3 + 1))
    pool = billing.account_transfer(db, account.id)
    plan = load_catalog().plan(GPU1)
    assert pool == {"used": 4, "quota": plan.transfer_gb, "billable": 0}  # outbound only, whole GB up
