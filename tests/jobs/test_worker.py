"""The worker runtime in this process: concurrency, outcomes of handler errors, events,
graceful stop, takeover of a job whose worker stopped heartbeating, periodic jobs."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from gpucloud.hypervisor import sim
from gpucloud.jobs import queue
from gpucloud.jobs.metrics import CONTENT_TYPE, render_metrics
from gpucloud.jobs.queue import LeaseLost, PeriodicJob
from gpucloud.jobs.worker import INTERNAL_ERROR, Worker, start_workers
from gpucloud.store import events
from gpucloud.store import jobs as store_jobs
from gpucloud.store.tables import Event, Job
from tests.jobs.handlers import HANDLERS


def enq(db, kind: str, **fields) -> int:
    with db.write() as s:
        return store_jobs.enqueue(s, kind=kind, **fields)


def enq_with_event(db, kind: str, **fields) -> tuple[int, int]:
    with db.write() as s:
        event_id = events.create(s, action="linode_create", account_id=None)
        return store_jobs.enqueue(s, kind=kind, event_id=event_id, **fields), event_id


def wait_for(predicate, timeout: float = 10, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def states(db, *job_ids: int) -> list[str]:
    with db.read() as s:
        return [s.get(Job, j).state for j in job_ids]


def all_finished(db, *job_ids: int) -> bool:
    return all(state in ("succeeded", "failed", "cancelled") for state in states(db, *job_ids))


def outcomes(db, job_id: int) -> list[tuple[str, str]]:
    with db.read() as s:
        return [(a.worker, a.outcome) for a in queue.attempts(s, job_id)]


def test_runs_up_to_its_concurrency_at_once(sqlite_db, fast_settings):
    release, lock = threading.Event(), threading.Lock()
    running, peak = [0], [0]

    def busy(ctx):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1

    ids = [enq(sqlite_db, "busy") for _ in range(5)]
    worker = start_workers(sqlite_db, fast_settings(sqlite_db), {"busy": busy}, concurrency=3, periodic=[])
    try:
        wait_for(lambda: len(worker.running_jobs()) == 3, what="three jobs running")
        time.sleep(0.3)  # a fourth would have been claimed by now
        assert states(sqlite_db, *ids).count("queued") == 2
        release.set()
        wait_for(lambda: all_finished(sqlite_db, *ids), what="all jobs done")
    finally:
        assert worker.stop(timeout=5)
    assert peak[0] == 3 and states(sqlite_db, *ids) == ["succeeded"] * 5


def test_handler_errors_retry_or_fail_with_readable_events(store_db, fast_settings):
    jobs = {
        "retry-then-ok": enq_with_event(store_db, "fail", payload={"error": "retryable", "until": 3}),
        "permanent": enq_with_event(store_db, "fail", payload={"error": "permanent"}),
        "driver-then-ok": enq_with_event(store_db, "fail", payload={"error": "driver", "until": 2}),
        "driver-permanent": enq_with_event(store_db, "fail", payload={"error": "driver-permanent"}),
        "bug": enq_with_event(store_db, "fail", payload={"error": "bug"}, max_attempts=2),
    }
    worker = start_workers(store_db, fast_settings(store_db), HANDLERS, concurrency=4, periodic=[])
    try:
        wait_for(lambda: all_finished(store_db, *(j for j, _ in jobs.values())), what="all jobs done")
    finally:
        worker.stop(timeout=5)
    with store_db.read() as s:
        seen = {name: (s.get(Job, j).state, s.get(Job, j).attempts, s.get(Event, e).status, s.get(Event, e).shown_message,
                       s.get(Job, j).last_error) for name, (j, e) in jobs.items()}
    assert seen["retry-then-ok"][:3] == ("succeeded", 3, "finished")
    assert seen["driver-then-ok"][:3] == ("succeeded", 2, "finished")
    assert seen["permanent"][:4] == ("failed", 1, "failed", "that image does not exist")
    assert seen["driver-permanent"][:4] == ("failed", 1, "failed", "no PCI device 0000:99:00.0 on this host")
    assert seen["bug"][:4] == ("failed", 2, "failed", INTERNAL_ERROR)
    assert seen["bug"][4].startswith("KeyError")  # the operator sees what went wrong
    assert [o for _, o in outcomes(store_db, jobs["retry-then-ok"][0])] == ["failed", "failed", "succeeded"]


def test_a_sim_boot_reports_progress_and_finishes_its_event(sqlite_db, fast_settings, make_host, tmp_path):
    settings = fast_settings(sqlite_db)
    host = make_host(sqlite_db, name="sim-boot-1")
    job_id, event_id = enq_with_event(sqlite_db, "sim_boot", instance_id=41, host_id=host)
    worker = start_workers(sqlite_db, settings, HANDLERS, concurrency=1, periodic=[])
    try:
        wait_for(lambda: all_finished(sqlite_db, job_id), what="the boot")
    finally:
        worker.stop(timeout=5)
    with sqlite_db.read() as s:
        event = s.get(Event, event_id)
        assert (event.status, event.percent_complete, event.step_message, event.shown_message) == (
            "finished", 100, "booting", "")  # its last step, no longer shown once finished
    domains = sim.read_state(settings.data_dir, "sim-boot-1")["domains"]
    assert list(domains) == ["gpucloud-41"] and domains["gpucloud-41"]["state"] == "running"


def test_stop_lets_running_jobs_finish_and_claims_nothing_more(sqlite_db, fast_settings):
    started = threading.Event()

    def slow(ctx):
        started.set()
        time.sleep(0.5)

    first = enq(sqlite_db, "slow")
    worker = start_workers(sqlite_db, fast_settings(sqlite_db), {"slow": slow}, concurrency=1, periodic=[])
    assert started.wait(5)
    later = enq(sqlite_db, "slow")
    assert worker.stop(timeout=5) is True
    assert states(sqlite_db, first, later) == ["succeeded", "queued"]


def test_a_worker_that_stops_heartbeating_loses_its_job_to_another(store_db, fast_settings):
    """Worker A is stopped with a job still running: its heartbeats end, the lease runs out,
    worker B takes the job over and finishes it; A's handler, released late, is refused."""
    settings = fast_settings(store_db, job_lease_seconds=1.0)
    release, in_a = threading.Event(), threading.Event()
    seen_by_a: list[str] = []

    def stuck(ctx):
        in_a.set()
        release.wait(15)
        try:
            ctx.progress(50)
            seen_by_a.append("progress accepted")
        except LeaseLost:
            seen_by_a.append("lease lost")

    job_id, event_id = enq_with_event(store_db, "stuck")
    expiries = REGISTRY.get_sample_value("gpucloud_job_lease_expiries_total", {"kind": "stuck"}) or 0
    a = start_workers(store_db, settings, {"stuck": stuck}, name="worker-a", periodic=[])
    assert in_a.wait(5)
    assert a.stop(timeout=0.1) is False  # A stops heartbeating, its handler still runs

    b = start_workers(store_db, settings, {"stuck": lambda ctx: ctx.progress(70)}, name="worker-b", periodic=[])
    try:
        wait_for(lambda: all_finished(store_db, job_id), what="B finishing the job")
    finally:
        b.stop(timeout=5)
    release.set()
    wait_for(lambda: not a.running_jobs(), what="A's handler to end")
    assert seen_by_a == ["lease lost"]
    assert outcomes(store_db, job_id) == [("worker-a", "lost"), ("worker-b", "succeeded")]
    with store_db.read() as s:
        assert (s.get(Job, job_id).state, s.get(Event, event_id).status) == ("succeeded", "finished")
    assert REGISTRY.get_sample_value("gpucloud_job_lease_expiries_total", {"kind": "stuck"}) == expiries + 1


def test_periodic_jobs_keep_one_per_shard_with_several_workers(store_db, fast_settings, make_host):
    runs: dict[int, int] = {}
    lock = threading.Lock()

    def sweep(ctx):
        with lock:
            runs[ctx.payload["shard"]] = runs.get(ctx.payload["shard"], 0) + 1

    hosts = [make_host(store_db, "active"), make_host(store_db, "down"), make_host(store_db, "maintenance")]
    every = [PeriodicJob("host_sweep", 0.2, ("active", "down"), shard_size=1)]  # a shard per host
    settings = fast_settings(store_db)
    workers = [Worker(store_db, settings, {"host_sweep": sweep}, periodic=every, name=f"w{i}").start()
               for i in range(2)]
    unfinished_seen = []
    try:
        for _ in range(15):
            with store_db.read() as s:
                unfinished_seen.append(Counter(p["shard"] for p in s.scalars(
                    select(Job.payload).where(Job.state.in_(("queued", "running"))))))
            time.sleep(0.1)
    finally:
        for w in workers:
            w.stop(timeout=5)
    assert all(n == 1 for snapshot in unfinished_seen for n in snapshot.values())
    assert set(runs) == set(hosts[:2]) and min(runs.values()) >= 2


def test_metrics_show_jobs_by_kind_and_state_depth_and_durations(sqlite_db, fast_settings):
    done = [enq(sqlite_db, "fail", payload={"error": "permanent"}) for _ in range(2)]
    waiting = [enq(sqlite_db, "nobody-runs-this") for _ in range(3)]
    labels = {"kind": "fail", "outcome": "failed"}
    before = REGISTRY.get_sample_value("gpucloud_job_duration_seconds_count", labels) or 0
    worker = start_workers(sqlite_db, fast_settings(sqlite_db), HANDLERS, periodic=[])
    try:
        wait_for(lambda: all_finished(sqlite_db, *done), what="the failing jobs")
    finally:
        worker.stop(timeout=5)
    text = render_metrics(sqlite_db).decode()
    assert 'gpucloud_jobs{kind="fail",state="failed"} 2.0' in text
    assert 'gpucloud_jobs{kind="fail",state="running"} 0.0' in text
    assert 'gpucloud_jobs{kind="nobody-runs-this",state="queued"} 3.0' in text
    assert f'gpucloud_job_queue_depth{{kind="nobody-runs-this"}} {len(waiting)}.0' in text
    assert 'gpucloud_job_queue_depth{kind="fail"} 0.0' in text
    assert "# TYPE gpucloud_job_duration_seconds histogram" in text
    assert "# TYPE gpucloud_job_lease_expiries_total counter" in text
    assert REGISTRY.get_sample_value("gpucloud_job_duration_seconds_count", labels) == before + 2
    assert CONTENT_TYPE.startswith("text/plain")
    assert "gpucloud_jobs{" not in render_metrics().decode()  # without a database: this process only


def test_handlers_must_be_callables_and_concurrency_positive(sqlite_db, fast_settings):
    settings = fast_settings(sqlite_db)
    with pytest.raises(ValueError, match="callables"):
        Worker(sqlite_db, settings, {"x": "not callable"})
    with pytest.raises(ValueError, match="concurrency"):
        Worker(sqlite_db, settings, {}, concurrency=0)


def test_a_worker_writes_a_handlers_first_step_with_the_claim(store_db, fast_settings):
    """The handler finds its first step already written when it starts: no write of its own."""
    seen: list[tuple[int, str, int]] = []

    @queue.first_step(30, "Warming up")
    def warm(ctx) -> None:
        with store_db.read() as s:
            event, job = s.get(Event, ctx.event_id), s.get(Job, ctx.id)
            seen.append((event.percent_complete, event.shown_message, job.progress))

    job_id, event_id = enq_with_event(store_db, "warm")
    worker = start_workers(store_db, fast_settings(store_db), {"warm": warm}, concurrency=1, periodic=[])
    try:
        wait_for(lambda: all_finished(store_db, job_id), what="the job")
    finally:
        worker.stop(timeout=5)
    assert seen == [(30, "Warming up", 30)]
    with store_db.read() as s:
        assert (s.get(Event, event_id).status, s.get(Event, event_id).percent_complete) == ("finished", 100)
