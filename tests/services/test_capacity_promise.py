"""`sellable` is a promise kept through the real store: right after it says N for a plan,
N creates succeed and the next one is refused; racing creators end with the same count and
never share a GPU or a core."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from gpucloud.errors import GpucloudError
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, hosts, instances
from gpucloud.services.capacity import capacity
from gpucloud.store.tables import CpuClaim, GpuClaim, Instance
from tests.conftest import make_settings


@pytest.fixture
def fleet(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url)
    for name, profile in (("a", "rtx6000-2s4g"), ("b", "rtx6000-blocked-group"), ("c", "rtx6000-numa-unknown")):
        hosts.register_host(store_db, settings, name=name, region="us-east", topology=load_profile(profile),
                            driver="sim", profile=profile)
    account = accounts.create_account(store_db, "buyer@example.com")
    return store_db, settings, account


def sellable(db, settings, plan: str) -> int:
    (row,) = [r for r in capacity(db, settings, "us-east") if r["gpu_model"] == "rtx6000"]
    return row["sellable"][plan]


def create(db, settings, account, plan: str):
    new = instances.NewInstance(type=plan, region="us-east")
    return instances.create_instance(db, settings, account.id, account.username, new, bypass_flags=True)


@pytest.mark.parametrize("plan", ["g1-gpu-rtx6000-1", "g1-gpu-rtx6000-2", "g1-gpu-rtx6000-3"])
def test_sellable_n_means_n_creates_then_a_refusal(fleet, plan):
    db, settings, account = fleet
    promised = sellable(db, settings, plan)
    assert promised > 0
    for _ in range(promised):
        create(db, settings, account, plan)
    with pytest.raises(GpucloudError, match="No capacity"):
        create(db, settings, account, plan)
    assert sellable(db, settings, plan) == 0


def test_after_a_mixed_fill_the_promise_still_holds(fleet):
    db, settings, account = fleet
    create(db, settings, account, "g1-gpu-rtx6000-1")
    create(db, settings, account, "g1-gpu-rtx6000-3")
    promised = sellable(db, settings, "g1-gpu-rtx6000-1")
    for _ in range(promised):
        create(db, settings, account, "g1-gpu-rtx6000-1")
    with pytest.raises(GpucloudError, match="No capacity"):
        create(db, settings, account, "g1-gpu-rtx6000-1")


def test_racing_creators_sell_exactly_the_promise_and_share_nothing(fleet):
    db, settings, account = fleet
    promised = sellable(db, settings, "g1-gpu-rtx6000-1")
    made, refused, other = [], [], []
    barrier = threading.Barrier(4)

    def buyer():
        barrier.wait()
        while True:
            try:
                made.append(create(db, settings, account, "g1-gpu-rtx6000-1").id)
            except GpucloudError as exc:
                (refused if "No capacity" in exc.reason else other).append(exc.reason)
                return
            except Exception as exc:  # noqa: BLE001 - anything else breaks the promise
                other.append(repr(exc))
                return

    threads = [threading.Thread(target=buyer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert other == []
    assert len(made) == promised and len(refused) == 4
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == promised
        assert s.scalar(select(func.count()).select_from(GpuClaim)) == promised
        assert s.scalar(select(func.count(func.distinct(CpuClaim.cpu_id)))) == \
            s.scalar(select(func.count()).select_from(CpuClaim)) == promised * 8


def test_racing_creates_without_a_label_each_get_their_own(fleet):
    db, settings, account = fleet
    labels, errors = [], []

    def buyer():
        try:
            labels.append(create(db, settings, account, "g1-gpu-rtx6000-1").label)
        except Exception as exc:  # noqa: BLE001 - any refusal fails the test below
            errors.append(repr(exc))

    threads = [threading.Thread(target=buyer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(labels)) == 6
