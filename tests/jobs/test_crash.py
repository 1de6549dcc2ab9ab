"""A worker process killed (SIGKILL) in the middle of a job: once its lease expires another
worker takes the job over and finishes it, and the host ends with exactly one domain. A host
sweep killed midway has written nothing, and the next sweep of its shard checks again."""

from __future__ import annotations

import signal
import time

from sqlalchemy import select

from gpucloud.hypervisor import sim
from gpucloud.hypervisor.sim import read_state
from gpucloud.jobs import queue
from gpucloud.store import events
from gpucloud.store import jobs as store_jobs
from gpucloud.store.tables import Event, Host, Job


def test_a_job_survives_its_worker_being_killed(sqlite_db, spawn_worker, make_host, tmp_path):
    host_id = make_host(sqlite_db, name="crash-host")
    with sqlite_db.write() as s:
        event_id = events.create(s, action="linode_boot", account_id=None, entity_id=77)
        job_id = store_jobs.enqueue(s, kind="sim_boot", instance_id=77, host_id=host_id, event_id=event_id)
    victim = spawn_worker(sqlite_db.url, name="victim", lease=1.0, sim_boot_seconds=3)

    deadline = time.monotonic() + 30
    while read_state(tmp_path, "crash-host")["domains"].get("gpucloud-77", {}).get("state") != "running":
        assert time.monotonic() < deadline, victim.text()
        time.sleep(0.02)
    victim.signal(signal.SIGKILL)  # mid-boot: the guest is launched, the job half done
    victim.proc.wait(10)
    with sqlite_db.read() as s:
        assert s.get(Job, job_id).state == "running"
        assert s.get(Event, event_id).percent_complete == 40

    heir = spawn_worker(sqlite_db.url, name="heir", lease=1.0, sim_boot_seconds=3)
    deadline = time.monotonic() + 30
    while True:
        with sqlite_db.read() as s:
            if s.get(Job, job_id).state == "succeeded":
                break
        assert time.monotonic() < deadline, heir.text()
        time.sleep(0.05)
    assert heir.stop() == 0

    with sqlite_db.read() as s:
        assert [(a.worker, a.outcome) for a in queue.attempts(s, job_id)] == [("victim", "lost"), ("heir", "succeeded")]
        finished = s.get(Event, event_id)
        assert (finished.status, finished.percent_complete) == ("finished", 100)
    domains = read_state(tmp_path, "crash-host")["domains"]
    assert list(domains) == ["gpucloud-77"] and domains["gpucloud-77"]["state"] == "running"


def test_a_host_sweep_killed_midway_is_done_again_by_the_next(sqlite_db, spawn_worker, make_host, tmp_path):
    answers, hangs, dead = (make_host(sqlite_db, name=n) for n in ("sweep-ok", "sweep-hang", "sweep-dead"))
    sim.inject_fault(tmp_path, "sweep-hang", "list_domains", "hang", times=1)
    sim.inject_fault(tmp_path, "sweep-dead", "list_domains", "unreachable")
    config = dict(lease=1.0, host_sweep=True, driver_timeout_seconds=60, host_down_after_missed=1,
                  host_check_seconds=3600)  # the next period is far: only a gap the scheduler fills runs again
    victim = spawn_worker(sqlite_db.url, name="victim", **config)

    def listed(host: str) -> int:
        return read_state(tmp_path, host)["calls"].get("list_domains", 0)

    deadline = time.monotonic() + 30
    while not (listed("sweep-ok") and listed("sweep-hang") and listed("sweep-dead")):  # one host left hanging
        assert time.monotonic() < deadline, victim.text()
        time.sleep(0.02)
    victim.signal(signal.SIGKILL)
    victim.proc.wait(10)
    with sqlite_db.read() as s:
        (first,) = s.scalars(select(Job).where(Job.kind == "host_sweep"))
        assert first.state == "running"
        hosts = [s.get(Host, h) for h in (answers, hangs, dead)]
        assert [(h.status, h.missed_checks, h.last_seen_at) for h in hosts] == [("active", 0, None)] * 3

    heir = spawn_worker(sqlite_db.url, name="heir", **config)
    deadline = time.monotonic() + 30
    while True:
        with sqlite_db.read() as s:
            if s.get(Host, dead).status == "down":
                break
        assert time.monotonic() < deadline, heir.text()
        time.sleep(0.05)
    assert heir.stop() == 0

    with sqlite_db.read() as s:
        assert [(a.worker, a.outcome) for a in queue.attempts(s, first.id)] == [("victim", "lost")]
        again = s.scalars(select(Job).where(Job.kind == "host_sweep", Job.id != first.id)).all()
        assert [(j.payload, j.state) for j in again][:1] == [(first.payload, "succeeded")]
        assert all(s.get(Host, h).last_seen_at is not None for h in (answers, hangs))
        downs = s.scalars(select(Event).where(Event.action == "host_down", Event.entity_id == dead)).all()
        assert len(downs) == 1 and "host unreachable" in downs[0].message
