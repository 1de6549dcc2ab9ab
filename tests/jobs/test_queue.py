"""The queue on both databases: what enqueue, claim, heartbeat, complete, fail, reap,
cancel and retry write, and what they refuse."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gpucloud.clock import utcnow
from gpucloud.errors import Conflict, GpucloudError, NotFound
from gpucloud.jobs import queue
from gpucloud.jobs.queue import Backoff, PeriodicJob
from gpucloud.store import events
from gpucloud.store import jobs as store_jobs
from gpucloud.store.tables import AuditEntry, Event, Host, Job

KINDS = ["work", "other"]


def enq(db, kind: str = "work", **fields) -> int:
    with db.write() as s:
        return store_jobs.enqueue(s, kind=kind, **fields)


def claim(db, worker: str = "w1", kinds=KINDS, lease: float = 30, now=None):
    with db.write() as s:
        return queue.claim(s, worker=worker, kinds=kinds, lease_seconds=lease, now=now)


def job_row(db, job_id: int) -> Job:
    with db.read() as s:
        return s.get(Job, job_id)


def event_row(db, event_id: int) -> Event:
    with db.read() as s:
        return s.get(Event, event_id)


def new_event(db, action: str = "linode_boot", message: str = "") -> int:
    with db.write() as s:
        return events.create(s, action=action, account_id=None, entity_id=7, entity_label="box", message=message)


def attempts(db, job_id: int) -> list[tuple[str, str, str]]:
    with db.read() as s:
        return [(a.worker, a.outcome, a.error) for a in queue.attempts(s, job_id)]


def test_enqueue_belongs_to_the_callers_transaction(store_db):
    with pytest.raises(RuntimeError), store_db.write() as s:
        store_jobs.enqueue(s, kind="work", instance_id=1)
        raise RuntimeError("the instance write failed")
    with store_db.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
    job_id = enq(store_db, instance_id=1, payload={"plan": "g1"})
    row = job_row(store_db, job_id)
    assert (row.state, row.attempts, row.max_attempts, row.payload) == ("queued", 0, 5, {"plan": "g1"})


def test_bad_enqueue_is_refused_and_writes_nothing(store_db):
    cases = [({"kind": ""}, "kind"), ({"kind": "k" * 33}, "kind"), ({"max_attempts": 0}, "max_attempts"),
             ({"payload": {"when": utcnow()}}, "payload"), ({"payload": ["not", "an", "object"]}, "payload")]
    for fields, field in cases:
        with pytest.raises(GpucloudError) as err, store_db.write() as s:
            store_jobs.enqueue(s, **{"kind": "work", **fields})
        assert err.value.field == field
    with store_db.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_claim_takes_the_oldest_due_job_of_known_kinds(store_db):
    now = utcnow()
    later = enq(store_db, run_after=now + timedelta(hours=1))
    unknown = enq(store_db, kind="nobody-handles-this", run_after=now - timedelta(minutes=5))
    second = enq(store_db, run_after=now - timedelta(minutes=1))
    first = enq(store_db, kind="other", run_after=now - timedelta(minutes=2))

    assert claim(store_db).id == first
    assert claim(store_db).id == second
    assert claim(store_db) is None  # `later` is not due, `unknown` has no handler here
    assert claim(store_db, now=now + timedelta(hours=2)).id == later
    assert job_row(store_db, unknown).state == "queued"
    assert claim(store_db, kinds=[]) is None


def test_claim_takes_a_lease_and_opens_an_attempt(store_db):
    job_id = enq(store_db, payload={"x": 1}, instance_id=3, host_id=None, max_attempts=2)
    before = utcnow()
    held = claim(store_db, worker="w-a", lease=30)
    assert (held.id, held.attempt, held.max_attempts, held.worker, held.payload, held.instance_id) == \
        (job_id, 1, 2, "w-a", {"x": 1}, 3)
    row = job_row(store_db, job_id)
    assert row.state == "running" and row.lease_owner == "w-a" and row.attempts == 1
    assert before + timedelta(seconds=29) < row.lease_expires_at <= utcnow() + timedelta(seconds=30)
    assert attempts(store_db, job_id) == [("w-a", "running", "")]


def test_jobs_of_one_instance_run_one_at_a_time_in_order(store_db):
    a1, a2, a3 = (enq(store_db, instance_id=1, payload={"n": n}) for n in range(3))
    b1 = enq(store_db, instance_id=2)
    loose = enq(store_db)

    first = claim(store_db)
    assert first.id == a1
    # a2 waits for a1; the other instance and instance-less jobs do not.
    assert [claim(store_db).id, claim(store_db).id, claim(store_db)] == [b1, loose, None]

    with store_db.write() as s:
        assert queue.fail(s, first, "host busy", retryable=True, delay_s=3600) == "retrying"
    assert claim(store_db) is None  # a1 waits for its retry; a2 still may not overtake it
    retried = claim(store_db, now=utcnow() + timedelta(hours=2))
    assert retried.id == a1
    with store_db.write() as s:
        assert queue.complete(s, retried)
    assert claim(store_db).id == a2
    assert claim(store_db) is None  # a3 waits for a2, which runs
    assert job_row(store_db, a3).state == "queued"


def test_a_failed_or_cancelled_job_no_longer_holds_its_instance(store_db):
    a1, a2, a3 = (enq(store_db, instance_id=1) for _ in range(3))
    held = claim(store_db)
    with store_db.write() as s:
        assert queue.fail(s, held, "bad image", retryable=False, delay_s=0) == "failed"
    with store_db.write() as s:
        store_jobs.cancel(s, a2, actor="ops")
    assert claim(store_db).id == a3
    assert (job_row(store_db, a1).state, job_row(store_db, a2).state) == ("failed", "cancelled")


def test_retryable_failures_back_off_until_the_last_attempt(store_db):
    event_id = new_event(store_db)
    job_id = enq(store_db, max_attempts=3, event_id=event_id)
    now = utcnow()
    for attempt in (1, 2):
        held = claim(store_db, worker=f"w{attempt}", now=now)
        assert held.attempt == attempt
        with store_db.write() as s:
            outcome = queue.fail(s, held, f"timeout {attempt}", retryable=True, delay_s=10 * attempt, now=now)
        assert outcome == "retrying"
        row = job_row(store_db, job_id)
        assert (row.state, row.last_error, row.lease_owner) == ("queued", f"timeout {attempt}", None)
        assert row.run_after == now + timedelta(seconds=10 * attempt)
        assert event_row(store_db, event_id).status == "started"  # still in progress for the customer
        now = row.run_after
    held = claim(store_db, worker="w3", now=now)
    assert held.last_attempt
    with store_db.write() as s:
        assert queue.fail(s, held, "timeout 3", retryable=True, delay_s=10,
                          public_message="The host did not answer.") == "failed"
    row = job_row(store_db, job_id)
    assert (row.state, row.attempts) == ("failed", 3) and row.finished_at is not None
    event = event_row(store_db, event_id)
    assert (event.status, event.message) == ("failed", "The host did not answer.")
    assert attempts(store_db, job_id) == [("w1", "failed", "timeout 1"), ("w2", "failed", "timeout 2"),
                                          ("w3", "failed", "timeout 3")]


def test_a_permanent_failure_ends_the_job_at_once(store_db):
    event_id = new_event(store_db)
    job_id = enq(store_db, max_attempts=5, event_id=event_id)
    held = claim(store_db)
    with store_db.write() as s:
        assert queue.fail(s, held, "no such image", retryable=False, delay_s=1) == "failed"
    assert (job_row(store_db, job_id).state, job_row(store_db, job_id).attempts) == ("failed", 1)
    assert (event_row(store_db, event_id).status, event_row(store_db, event_id).message) == ("failed", "no such image")


def test_backoff_doubles_with_jitter_up_to_its_cap():
    backoff = Backoff(base_seconds=2, max_seconds=60, jitter=0.5)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (30, 60)]:
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # spread out, not all at once
    assert Backoff(jitter=0).delay(3) == 8


def test_event_moves_scheduled_started_finished_and_progress_never_goes_back(store_db):
    event_id = new_event(store_db)
    job_id = enq(store_db, event_id=event_id)
    assert (event_row(store_db, event_id).status, event_row(store_db, event_id).percent_complete) == ("scheduled", 0)
    held = claim(store_db)
    event = event_row(store_db, event_id)
    assert event.status == "started" and event.started_at is not None
    with store_db.write() as s:
        assert queue.progress(s, held, 60, "booting")
        assert queue.progress(s, held, 30)
    assert (job_row(store_db, job_id).progress, event_row(store_db, event_id).percent_complete) == (60, 60)
    assert event_row(store_db, event_id).shown_message == "booting"
    for bad in (-1, 101, 50.5, True):
        with pytest.raises(ValueError), store_db.write() as s:
            queue.progress(s, held, bad)
    with store_db.write() as s:
        assert queue.complete(s, held)
    event = event_row(store_db, event_id)
    assert (event.status, event.percent_complete) == ("finished", 100) and event.finished_at is not None
    assert (job_row(store_db, job_id).state, job_row(store_db, job_id).progress) == ("succeeded", 100)
    assert attempts(store_db, job_id) == [("w1", "succeeded", "")]


def test_the_event_starts_once_even_over_several_attempts(store_db):
    event_id = new_event(store_db)
    enq(store_db, event_id=event_id)
    first = claim(store_db)
    started_at = event_row(store_db, event_id).started_at
    with store_db.write() as s:
        queue.progress(s, first, 40)
        queue.fail(s, first, "flaky", retryable=True, delay_s=0)
    claim(store_db, worker="w2")
    event = event_row(store_db, event_id)
    assert (event.status, event.started_at, event.percent_complete) == ("started", started_at, 40)


def test_a_kinds_first_step_is_written_by_the_claim_and_never_lowers_progress(store_db):
    steps = {"work": queue.Step(10, "Preparing the disk")}
    event_id = new_event(store_db)
    job_id = enq(store_db, event_id=event_id)
    with store_db.write() as s:
        first = queue.claim(s, worker="w1", kinds=KINDS, lease_seconds=30, first_steps=steps)
    assert first is not None
    event = event_row(store_db, event_id)
    assert (event.status, event.percent_complete, event.shown_message) == ("started", 10, "Preparing the disk")
    assert job_row(store_db, job_id).progress == 10
    started_at = event.started_at
    with store_db.write() as s:
        queue.progress(s, first, 40, "Booting")
        queue.fail(s, first, "flaky", retryable=True, delay_s=0)
    with store_db.write() as s:
        assert queue.claim(s, worker="w2", kinds=KINDS, lease_seconds=30, first_steps=steps) is not None
    event = event_row(store_db, event_id)
    assert (event.started_at, event.percent_complete, event.shown_message) == (started_at, 40, "Preparing the disk")
    assert job_row(store_db, job_id).progress == 40
    other = enq(store_db, kind="other", event_id=new_event(store_db))
    claim(store_db, kinds=["other"])
    assert job_row(store_db, other).progress == 0


def test_steps_never_hide_the_reason_an_event_was_created_with(store_db):
    steps = {"work": queue.Step(20, "Shutting down")}
    reasoned = new_event(store_db, "linode_shutdown", message="Shut down: Your GPU trial ended")
    plain = new_event(store_db, "linode_shutdown")
    jobs = {enq(store_db, event_id=reasoned, instance_id=1): reasoned, enq(store_db, event_id=plain, instance_id=2): plain}
    for _ in jobs:
        with store_db.write() as s:
            job = queue.claim(s, worker="w1", kinds=KINDS, lease_seconds=30, first_steps=steps)
        assert job is not None
        with store_db.write() as s:
            queue.progress(s, job, 60, "Waiting for the guest")
            queue.complete(s, job)
    said = {e: (event_row(store_db, e).status, event_row(store_db, e).shown_message) for e in jobs.values()}
    assert said == {reasoned: ("finished", "Shut down: Your GPU trial ended"), plain: ("finished", "")}  # no stale step
    failed = new_event(store_db, message="Booted again after its host came back")
    enq(store_db, event_id=failed, instance_id=3)
    with store_db.write() as s:
        job = queue.claim(s, worker="w1", kinds=KINDS, lease_seconds=30, first_steps=steps)
        assert job is not None
        queue.fail(s, job, "host unreachable", retryable=False, delay_s=0, public_message="The host did not answer")
    assert event_row(store_db, failed).shown_message == "The host did not answer"  # a failure says why it failed


def test_an_expired_lease_is_reaped_and_the_old_holder_can_no_longer_write(store_db):
    event_id = new_event(store_db)
    job_id = enq(store_db, event_id=event_id)
    stale = claim(store_db, worker="w-old", lease=1)
    with store_db.read() as s:
        assert not queue.any_expired(s)
    later = utcnow() + timedelta(seconds=2)
    with store_db.read() as s:
        assert queue.any_expired(s, later)
    with store_db.write() as s:
        reaped = queue.reap_expired(s, later)
    assert [(r.job_id, r.worker, r.requeued) for r in reaped] == [(job_id, "w-old", True)]
    fresh = claim(store_db, worker="w-new", now=later)
    assert (fresh.id, fresh.attempt) == (job_id, 2)

    with store_db.write() as s:
        assert not queue.heartbeat(s, stale, 30)
        assert not queue.progress(s, stale, 99)
        assert not queue.complete(s, stale)
        assert queue.fail(s, stale, "late", retryable=False, delay_s=0) is None
    row = job_row(store_db, job_id)
    assert (row.state, row.lease_owner, row.progress) == ("running", "w-new", 0)
    with store_db.write() as s:
        assert queue.heartbeat(s, fresh, 30)
        assert queue.complete(s, fresh)
    assert [(w, o) for w, o, _ in attempts(store_db, job_id)] == [("w-old", "lost"), ("w-new", "succeeded")]
    assert event_row(store_db, event_id).status == "finished"


def test_the_same_worker_reclaiming_a_job_does_not_revive_its_old_attempt(store_db):
    enq(store_db)
    old = claim(store_db, worker="w", lease=1)
    later = utcnow() + timedelta(seconds=2)
    with store_db.write() as s:
        queue.reap_expired(s, later)
    new = claim(store_db, worker="w", now=later)
    with store_db.write() as s:
        assert not queue.complete(s, old)  # same worker name, older attempt
        assert queue.complete(s, new)


def test_a_lease_lost_on_the_last_attempt_fails_the_job(store_db):
    event_id = new_event(store_db)
    job_id = enq(store_db, max_attempts=1, event_id=event_id)
    claim(store_db, lease=1)
    with store_db.write() as s:
        reaped = queue.reap_expired(s, utcnow() + timedelta(seconds=2))
    assert [r.requeued for r in reaped] == [False]
    assert job_row(store_db, job_id).state == "failed"
    assert event_row(store_db, event_id).status == "failed"
    assert "lease expired" in job_row(store_db, job_id).last_error


def test_cancel_a_queued_job_but_not_a_running_one(store_db):
    event_id = new_event(store_db)
    queued = enq(store_db, event_id=event_id, instance_id=5)
    with store_db.write() as s:
        store_jobs.cancel(s, queued, actor="admin:alice", why="customer asked")
    row = job_row(store_db, queued)
    assert row.state == "cancelled" and "admin:alice" in row.last_error
    assert event_row(store_db, event_id).status == "failed"
    assert claim(store_db) is None
    with store_db.read() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "job.cancel"))
        assert (entry.actor, entry.target_id, entry.why) == ("admin:alice", str(queued), "customer asked")

    running = enq(store_db)
    claim(store_db)
    with pytest.raises(Conflict, match="running"), store_db.write() as s:
        store_jobs.cancel(s, running, actor="ops")
    with pytest.raises(NotFound), store_db.write() as s:
        store_jobs.cancel(s, 999_999, actor="ops")


def test_retry_requeues_a_failed_job_with_fresh_attempts(store_db):
    event_id = new_event(store_db)
    job_id = enq(store_db, max_attempts=1, event_id=event_id)
    held = claim(store_db)
    with store_db.write() as s:
        queue.progress(s, held, 50)
        queue.fail(s, held, "boom", retryable=True, delay_s=0)
    assert job_row(store_db, job_id).state == "failed"
    with store_db.write() as s:
        store_jobs.retry(s, job_id, actor="ops")
    row = job_row(store_db, job_id)
    assert (row.state, row.attempts, row.progress, row.finished_at) == ("queued", 0, 0, None)
    event = event_row(store_db, event_id)
    assert (event.status, event.percent_complete, event.message) == ("scheduled", 0, "")
    again = claim(store_db, worker="w2")
    assert (again.id, again.attempt) == (job_id, 1)
    with store_db.write() as s:
        queue.complete(s, again)
    assert event_row(store_db, event_id).status == "finished"
    assert [o for _, o, _ in attempts(store_db, job_id)] == ["failed", "succeeded"]  # history stays
    with pytest.raises(Conflict, match="succeeded"), store_db.write() as s:
        store_jobs.retry(s, job_id, actor="ops")


def test_periodic_jobs_one_per_shard_with_a_host_in_the_right_status(store_db, make_host):
    active, down, maintenance = (make_host(store_db, status) for status in ("active", "down", "maintenance"))
    checks = PeriodicJob("host_sweep", 15, ("active", "down"), shard_size=1)  # a shard per host
    with store_db.write() as s:
        first = queue.ensure_periodic(s, [checks])
        assert sorted(s.get(Job, j).payload["shard"] for j in first) == [active, down]
        assert {s.get(Job, j).host_id for j in first} == {None}
        shards = {s.get(Job, j).payload["shard"] for j in first}
    with store_db.write() as s:
        assert queue.ensure_periodic(s, [checks]) == []  # idempotent

    held = claim(store_db, kinds=["host_sweep"])
    with store_db.write() as s:
        queue.complete(s, held)
        nxt = queue.enqueue_next_run(s, held, checks)
        assert nxt is not None and s.get(Job, nxt).run_after > utcnow() + timedelta(seconds=14)
        assert s.get(Job, nxt).payload == held.payload
    with store_db.write() as s:
        assert queue.ensure_periodic(s, [checks]) == []  # the chained run fills the place

    with store_db.write() as s:  # a shard whose only host went into maintenance gets no next run
        s.execute(Job.__table__.update().where(Job.kind == "host_sweep").values(state="succeeded"))
        s.get(Host, held.payload["shard"]).status = "maintenance"
    with store_db.write() as s:
        assert queue.enqueue_next_run(s, held, checks) is None
    assert maintenance not in shards


def test_periodic_jobs_per_shard_cover_many_hosts_each(store_db, make_host):
    hosts = [make_host(store_db) for _ in range(7)]
    sweep = PeriodicJob("host_sweep", 15, shard_size=3)
    with store_db.write() as s:
        added = [s.get(Job, j).payload["shard"] for j in queue.ensure_periodic(s, [sweep])]
    assert sorted(added) == sorted({h // 3 for h in hosts})
    assert len(added) in (3, 4)  # 7 consecutive ids over shards of 3


def test_old_succeeded_periodic_jobs_are_pruned(store_db, make_host):
    host = make_host(store_db)
    checks = PeriodicJob("host_sweep", 15, shard_size=250)
    old = enq(store_db, kind="host_sweep", payload={"shard": host // 250})
    keep = enq(store_db, kind="work")
    with store_db.write() as s:
        for job_id in (old, keep):
            row = s.get(Job, job_id)
            row.state, row.finished_at = "succeeded", utcnow() - timedelta(hours=2)
    with store_db.write() as s:
        queue.ensure_periodic(s, [checks])
    assert job_row(store_db, old) is None
    assert job_row(store_db, keep).state == "succeeded"
