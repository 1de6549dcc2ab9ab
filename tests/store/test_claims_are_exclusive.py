"""The database itself refuses a second claim of one GPU or one CPU thread, however many
writers race for it. Code above may be wrong; the schema must not be."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gpucloud.services import accounts, hosts
from gpucloud.store.tables import CpuClaim, CpuRow, GpuClaim, GpuRow, Instance
from tests.factories import two_node_host

RACERS = 16


def _instances(db, settings, n: int) -> tuple[int, list[int]]:
    host = hosts.register_host(db, settings, name="race-host", region="us-east", topology=two_node_host(),
                               driver="sim", profile="test")
    account = accounts.create_account(db, "racer@example.com")
    with db.write() as s:
        rows = [Instance(account_id=account.id, label=f"racer-{i}", region_id="us-east", type_id="g1-gpu-rtx6000-1",
                         host_id=host.id, ipv4=f"198.51.100.{i + 1}", ipv6=f"2600:3c03::{i + 1}/128")
                for i in range(n)]
        s.add_all(rows)
        s.flush()
        return host.id, [r.id for r in rows]


def _race(db, make_row) -> tuple[int, int]:
    """Every thread tries to commit its own row at the same moment; count wins and refusals."""
    barrier = threading.Barrier(RACERS)
    wins, refusals, other = [], [], []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            with db.write() as s:
                s.add(make_row(i))
            wins.append(i)
        except IntegrityError:
            refusals.append(i)
        except Exception as exc:  # noqa: BLE001 - anything else is a failure of the test's premise
            other.append(repr(exc))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert other == []
    return len(wins), len(refusals)


def test_one_gpu_cannot_be_claimed_twice(store_db, settings):
    host_id, instance_ids = _instances(store_db, settings, RACERS)
    with store_db.read() as s:
        gpu_id = s.scalar(select(GpuRow.id).where(GpuRow.host_id == host_id).limit(1))

    wins, refusals = _race(store_db, lambda i: GpuClaim(gpu_id=gpu_id, instance_id=instance_ids[i], host_id=host_id))

    assert (wins, refusals) == (1, RACERS - 1)
    with store_db.read() as s:
        assert s.scalar(select(func.count()).select_from(GpuClaim).where(GpuClaim.gpu_id == gpu_id)) == 1


def test_one_core_thread_cannot_be_claimed_twice(store_db, settings):
    host_id, instance_ids = _instances(store_db, settings, RACERS)
    with store_db.read() as s:
        cpu_id = s.scalar(select(CpuRow.id).where(CpuRow.host_id == host_id, CpuRow.reserved.is_(False)).limit(1))

    wins, refusals = _race(
        store_db, lambda i: CpuClaim(cpu_id=cpu_id, instance_id=instance_ids[i], host_id=host_id, guest_vcpu=0)
    )

    assert (wins, refusals) == (1, RACERS - 1)
    with store_db.read() as s:
        assert s.scalar(select(func.count()).select_from(CpuClaim).where(CpuClaim.cpu_id == cpu_id)) == 1


def test_one_instance_cannot_hold_the_same_guest_vcpu_twice(store_db, settings):
    host_id, (instance_id,) = _instances(store_db, settings, 1)
    with store_db.read() as s:
        cpu_a, cpu_b = s.scalars(select(CpuRow.id).where(CpuRow.host_id == host_id).limit(2)).all()
    with pytest.raises(IntegrityError), store_db.write() as s:
        s.add(CpuClaim(cpu_id=cpu_a, instance_id=instance_id, host_id=host_id, guest_vcpu=0))
        s.add(CpuClaim(cpu_id=cpu_b, instance_id=instance_id, host_id=host_id, guest_vcpu=0))
    with store_db.read() as s:
        assert s.scalar(select(func.count()).select_from(CpuClaim)) == 0  # nothing half-written
