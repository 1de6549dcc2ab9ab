"""A worker process killed (SIGKILL) in the middle of a job: once its lease expires another
worker takes the job over and finishes it, and the host ends with exactly one domain."""

from __future__ import annotations

import signal
import time

from gpucloud.hypervisor.sim import read_state
from gpucloud.jobs import queue
from gpucloud.store import events
from gpucloud.store import jobs as store_jobs
from gpucloud.store.tables import Event, Job


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
