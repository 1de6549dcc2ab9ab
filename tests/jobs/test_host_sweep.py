"""The host sweep: one job checks a whole shard of hosts, marks a silent one down after
`host_down_after_missed` sweeps and back up when it answers, and starts a reconciliation only
on the hosts whose domains disagree with the database; both databases, a real worker, sim hosts."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from gpucloud.clock import utcnow
from gpucloud.domain.flags import GPU_INSTANCES
from gpucloud.domain.guest import domain_name
from gpucloud.hypervisor import sim
from gpucloud.hypervisor.drivers import driver_for
from gpucloud.hypervisor.profile import load_profile
from gpucloud.jobs import host_jobs, instance_jobs
from gpucloud.jobs.worker import start_workers
from gpucloud.services import accounts, flags, host_health, hosts, instances
from gpucloud.store import jobs as store_jobs
from gpucloud.store.tables import AuditEntry, Event, Host, Instance, Job
from tests.conftest import make_settings
from tests.jobs.handlers import spec_for

NAMES = ("sweep-a", "sweep-b", "sweep-c", "sweep-d")


@pytest.fixture
def fleet(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url, job_lease_seconds=3, worker_poll_seconds=0.02,
                             sim_boot_seconds=0.05, driver_timeout_seconds=0.5, host_down_after_missed=2,
                             host_sweep_shard_size=10**6)  # every host in shard 0
    ids = {name: hosts.register_host(store_db, settings, name=name, region="us-east",
                                     topology=load_profile("rtx6000-2s4g"), driver="sim",
                                     profile="rtx6000-2s4g").id for name in NAMES}
    account = accounts.create_account(store_db, "sweep@example.com", staff=True)
    flags.set_state(store_db, GPU_INSTANCES, "staff", why="staff try GPU plans", actor="test")
    worker = start_workers(store_db, settings, {**instance_jobs.HANDLERS, **host_jobs.HANDLERS}, concurrency=4,
                           periodic=[])
    yield store_db, settings, ids, account
    worker.stop(timeout=5)


def create_running(db, settings, account) -> Instance:
    new = instances.NewInstance(type="g1-gpu-rtx6000-1", region="us-east", image="linode/debian12",
                                root_pass="aComplex@Password123")
    inst = instances.create_instance(db, settings, account.id, account.username, new, bypass_flags=True)
    settle(db)
    with db.read() as s:
        inst = s.get(Instance, inst.id)
    assert inst.status == "running"
    return inst


def sweep(db) -> None:
    """One sweep of shard 0, as the scheduler queues it, and whatever it starts."""
    with db.write() as s:
        store_jobs.enqueue(s, kind="host_sweep", payload={"shard": 0}, max_attempts=1)
    settle(db)


def settle(db, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read() as s:
            if not s.scalar(select(func.count()).select_from(Job).where(Job.state.in_(("queued", "running")))):
                return
        time.sleep(0.05)
    raise AssertionError("jobs still open")


def jobs_of(db, kind: str) -> list[tuple[int | None, str]]:
    with db.read() as s:
        return [(j.host_id, j.state) for j in s.scalars(select(Job).where(Job.kind == kind).order_by(Job.id))]


def a_while_ago(db) -> None:
    """Every finished job ended longer ago than a repair is retried after."""
    with db.write() as s:
        s.execute(update(Job).where(Job.finished_at.is_not(None))
                  .values(finished_at=utcnow() - host_jobs.REPAIR_AT_MOST_EVERY - timedelta(seconds=1)))


def driver(db, settings, host_id: int):
    with db.read() as s:
        return driver_for(s.get(Host, host_id), settings)


def test_a_silent_host_goes_down_after_missed_sweeps_and_comes_back(fleet):
    db, settings, ids, account = fleet
    inst = create_running(db, settings, account)
    silent = inst.host_id
    sim.inject_fault(settings.data_dir, next(n for n, i in ids.items() if i == silent), "list_domains", "unreachable")

    sweep(db)
    with db.read() as s:
        rows = {h.id: h for h in s.scalars(select(Host))}
    assert (rows[silent].status, rows[silent].missed_checks) == ("active", 1)
    assert all(h.missed_checks == 0 and h.last_seen_at is not None for i, h in rows.items() if i != silent)
    assert jobs_of(db, "reconcile") == []  # nothing disagrees: no per-host job at all

    sweep(db)
    with db.read() as s:
        host = s.get(Host, silent)
        assert host.status == "down" and "host unreachable" in host.status_reason
        down = s.get(Instance, inst.id)
        assert (down.status, down.status_reason) == ("offline", host_health.HOST_UNREACHABLE)
        assert [e.action for e in s.scalars(select(Event).where(Event.entity_type == "host"))] == ["host_down"]
        audited = s.scalars(select(AuditEntry).where(AuditEntry.action == "host.status")).all()
        assert [(a.actor, a.target_id, a.after) for a in audited] == [("health-check", str(silent), {"status": "down"})]

    sim.clear_faults(settings.data_dir, next(n for n, i in ids.items() if i == silent))
    sweep(db)
    with db.read() as s:
        assert s.get(Host, silent).status == "active"
        assert s.get(Instance, inst.id).status == "running"  # reconciled: the guest kept running
        assert [e.action for e in s.scalars(select(Event).where(Event.entity_type == "host"))] == ["host_down",
                                                                                                "host_up"]
    assert jobs_of(db, "reconcile") == [(silent, "succeeded")]  # the host back, and only it
    assert [state for _, state in jobs_of(db, "host_sweep")] == ["succeeded"] * 3


def test_a_sweep_reconciles_only_the_hosts_that_drifted(fleet):
    db, settings, ids, account = fleet
    gone, off = create_running(db, settings, account), create_running(db, settings, account)
    busy = {gone.host_id, off.host_id}
    stray_host, clean_host = [i for i in ids.values() if i not in busy][:2]
    driver(db, settings, stray_host).define(spec_for(999_999))  # a guest of ours without its instance
    driver(db, settings, gone.host_id).destroy(domain_name(gone.id))  # its domain vanished
    driver(db, settings, gone.host_id).undefine(domain_name(gone.id))
    driver(db, settings, off.host_id).destroy(domain_name(off.id))  # powered off from inside

    sweep(db)
    assert sorted(h for h, _ in jobs_of(db, "reconcile")) == sorted(busy | {stray_host})
    assert clean_host not in {h for h, _ in jobs_of(db, "reconcile")}
    assert sim.read_state(settings.data_dir, NAMES[list(ids.values()).index(stray_host)])["domains"] == {}
    with db.read() as s:
        assert s.get(Instance, gone.id).status == "running"
        stopped = s.get(Instance, off.id)
        assert (stopped.status, stopped.status_reason, stopped.booted) == (
            "offline", "powered off from inside the guest", False)
        told = {e.action for e in s.scalars(select(Event).where(Event.entity_type == "host"))}
    assert told == {"reconcile_stray_domain", "reconcile_missing_domain"}
    gone_host = NAMES[list(ids.values()).index(gone.host_id)]
    assert sim.read_state(settings.data_dir, gone_host)["domains"][domain_name(gone.id)]["state"] == "running"

    repaired = len(jobs_of(db, "reconcile"))
    a_while_ago(db)
    sweep(db)
    assert len(jobs_of(db, "reconcile")) == repaired  # nothing left to repair: no new job


def test_a_repair_that_keeps_failing_is_tried_again_a_minute_later_not_every_sweep(fleet):
    db, settings, ids, account = fleet
    driver(db, settings, ids["sweep-a"]).define(spec_for(999_999))
    sim.inject_fault(settings.data_dir, "sweep-a", "destroy", "fail")  # the stray cannot be removed

    sweep(db)
    sweep(db)
    assert jobs_of(db, "reconcile") == [(ids["sweep-a"], "failed")]  # on the job board, once
    a_while_ago(db)
    sweep(db)
    assert jobs_of(db, "reconcile") == [(ids["sweep-a"], "failed")] * 2
    sim.clear_faults(settings.data_dir, "sweep-a")
    a_while_ago(db)
    sweep(db)
    assert jobs_of(db, "reconcile")[-1] == (ids["sweep-a"], "succeeded")
    assert sim.read_state(settings.data_dir, "sweep-a")["domains"] == {}


def test_a_sweep_of_a_shard_without_hosts_ends_and_writes_nothing(fleet):
    db, settings, ids, account = fleet
    with db.read() as s:
        seen = {h.id: h.last_seen_at for h in s.scalars(select(Host))}
    with db.write() as s:
        store_jobs.enqueue(s, kind="host_sweep", payload={"shard": 1}, max_attempts=1)  # ids from 10**6 on: none
    settle(db)
    assert jobs_of(db, "host_sweep") == [(None, "succeeded")]
    with db.read() as s:
        assert {h.id: h.last_seen_at for h in s.scalars(select(Host))} == seen
    assert sum(sim.read_state(settings.data_dir, n)["calls"].get("list_domains", 0) for n in NAMES) == 0
