"""Workers that wake instead of poll: on PostgreSQL a job entering `queued` notifies idle
workers (LISTEN/NOTIFY), so it starts at once even when the worker polls rarely; a retry's
backoff is waited for exactly. SQLite keeps polling."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event

from gpucloud.jobs.worker import start_workers
from tests.jobs.handlers import HANDLERS
from tests.jobs.test_worker import enq, outcomes, states, wait_for

RARE_POLL = 30.0  # far longer than any wait below: only a wake-up can explain a quick start


@pytest.mark.postgres
def test_an_idle_worker_starts_a_new_job_at_once(postgres_db, fast_settings, tmp_path):
    settings = fast_settings(postgres_db, worker_poll_seconds=RARE_POLL)
    worker = start_workers(postgres_db, settings, HANDLERS, concurrency=2, periodic=[])
    try:
        wait_for(lambda: worker._wakeup.listening, what="the worker to listen")
        time.sleep(0.5)  # idle now, asleep until woken
        started = time.monotonic()
        job = enq(postgres_db, "record", payload={"log": str(tmp_path / "log")})
        wait_for(lambda: states(postgres_db, job) == ["succeeded"], timeout=RARE_POLL / 3, what="the job to run")
        assert time.monotonic() - started < RARE_POLL / 3
    finally:
        worker.stop(timeout=5)


@pytest.mark.postgres
def test_a_retry_starts_when_its_backoff_ends_not_at_the_next_poll(postgres_db, fast_settings):
    settings = fast_settings(postgres_db, worker_poll_seconds=RARE_POLL, job_backoff_seconds=1.0,
                             job_backoff_max_seconds=1.0)
    worker = start_workers(postgres_db, settings, HANDLERS, concurrency=2, periodic=[])
    try:
        wait_for(lambda: worker._wakeup.listening, what="the worker to listen")
        job = enq(postgres_db, "fail", payload={"error": "retryable", "until": 2}, max_attempts=2)
        wait_for(lambda: states(postgres_db, job) == ["succeeded"], timeout=RARE_POLL / 3, what="the retry")
        assert [o for _, o in outcomes(postgres_db, job)] == ["failed", "succeeded"]
    finally:
        worker.stop(timeout=5)


@pytest.mark.postgres
def test_an_idle_listening_worker_does_not_poll(postgres_db, fast_settings):
    """Polling every 0.05 s would be some 40 rounds in 2 s; a listening worker with nothing
    due sleeps until a notification or its next known moment (here: none within 2 s)."""
    settings = fast_settings(postgres_db, worker_poll_seconds=0.05, job_lease_seconds=30.0)
    statements: list[str] = []
    event.listen(postgres_db.write_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    worker = start_workers(postgres_db, settings, HANDLERS, concurrency=2, periodic=[])
    try:
        wait_for(lambda: worker._wakeup.listening, what="the worker to listen")
        time.sleep(0.5)
        before = len(statements)
        time.sleep(2)
        assert len(statements) - before <= 2, statements[before:]
    finally:
        worker.stop(timeout=5)


@pytest.mark.postgres
def test_a_listening_worker_waits_for_a_busy_instance_without_spinning(postgres_db, fast_settings, tmp_path):
    """A queued job whose instance has a job running is due but not claimable: the worker polls
    for it every `worker_poll_seconds` (here 0.2 s), not in a tight loop."""
    settings = fast_settings(postgres_db, worker_poll_seconds=0.2, job_lease_seconds=30.0)
    statements: list[str] = []
    event.listen(postgres_db.write_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    worker = start_workers(postgres_db, settings, HANDLERS, concurrency=2, periodic=[])
    try:
        wait_for(lambda: worker._wakeup.listening, what="the worker to listen")
        log = str(tmp_path / "log")
        first = enq(postgres_db, "record", instance_id=9, payload={"log": log, "seconds": 1.5})
        wait_for(lambda: states(postgres_db, first) == ["running"], what="the first job to run")
        second = enq(postgres_db, "record", instance_id=9, payload={"log": log})
        before = len(statements)
        time.sleep(1.0)
        assert len(statements) - before < 40, f"{len(statements) - before} statements in 1 s"
        wait_for(lambda: states(postgres_db, first, second) == ["succeeded", "succeeded"], what="both jobs")
    finally:
        worker.stop(timeout=5)
