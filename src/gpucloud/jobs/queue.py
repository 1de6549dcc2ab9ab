"""The job queue, in the same database as the state it changes (the Oban / River / good_job
pattern): a job is enqueued in the caller's transaction (`store.jobs.enqueue`, a plain store
write, so services need nothing from here), and exists exactly when the change that needs it
was committed. This module is the workers' side: claims, leases, outcomes, periodic runs.

Life of a job: `queued` -> claimed by a worker (`running`, with a lease kept alive by
heartbeats, one `JobAttempt` per claim) -> `succeeded`, or `failed` after its last attempt,
or back to `queued` with a backoff for another attempt. A lease that runs out (a worker
killed, a machine gone) is reaped: that attempt is recorded as `lost` and the job queued
again for anyone to take over. An operator may cancel a queued job or re-queue a failed one
(`store.jobs.cancel` and `retry`).

Jobs of one instance run one at a time and in id order: a queued job waits while another
job of its instance runs or an earlier one is still queued.

Every function takes the caller's session and writes nothing outside it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session

from gpucloud.clock import utcnow
from gpucloud.store import events
from gpucloud.store import jobs as q
from gpucloud.store.jobs import enqueue
from gpucloud.store.tables import JobAttempt

H = TypeVar("H", bound=Callable)


class JobError(Exception):
    """Raised by a handler to fail the attempt with `reason`, a sentence a customer may read."""

    retryable = True

    def __init__(self, reason: str, *, delay_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s  # None: the queue's backoff


class RetryableJobError(JobError):
    """Try again later (after `delay_s`, or the backoff), while attempts remain."""


class PermanentJobError(JobError):
    """Retrying cannot help: the job fails now, whatever attempts remain."""

    retryable = False


@dataclass(frozen=True)
class Step:
    """A handler's first step (its event's percentage and message), written by the claim
    itself: a job that starts with it costs one transaction less."""

    percent: int
    message: str


def first_step(percent: int, message: str) -> Callable[[H], H]:
    """Declare a handler's first step; the worker writes it with the claim, so the handler
    starts past it (and does not write it again)."""

    def mark(handler: H) -> H:
        setattr(handler, "first_step", Step(percent, message))  # noqa: B010 - read back with getattr
        return handler

    return mark


def step_of(handler: object) -> Step | None:
    step = getattr(handler, "first_step", None)
    return step if isinstance(step, Step) else None


class LeaseLost(Exception):
    """The job's lease went to another worker; this attempt must stop and write nothing."""


@dataclass(frozen=True)
class Backoff:
    """Exponential, capped, with jitter: attempt n waits between (1 - jitter) and 1 times
    min(cap, base * 2 ** (n - 1)), so retries of many jobs hit a recovering host spread out."""

    base_seconds: float = 2.0
    max_seconds: float = 300.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        return ceiling * (1 - self.jitter * (rng or _JITTER).random())


# its own generator: worker threads drawing from the global one disturb seeded code in-process
_JITTER = random.Random()


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker holds while it runs a job; (id, worker, attempt) is the lease."""

    id: int
    kind: str
    instance_id: int | None
    host_id: int | None
    event_id: int | None
    payload: dict
    attempt: int  # 1 for the first attempt
    max_attempts: int
    worker: str
    attempt_id: int

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


@dataclass(frozen=True)
class ReapedLease:
    job_id: int
    kind: str
    worker: str
    requeued: bool  # False: that was the last attempt and the job failed


def claim(session: Session, *, worker: str, kinds: list[str] | tuple[str, ...] | set[str],
          lease_seconds: float, now: datetime | None = None,
          first_steps: Mapping[str, Step] | None = None) -> ClaimedJob | None:
    """Take the oldest due job of these kinds whose instance is free, or None. A kind with a
    first step in `first_steps` starts at it (job progress, event percentage and message).

    On PostgreSQL the row is locked with SKIP LOCKED (so claimers never wait on each other)
    and the instance's advisory lock is taken before the UPDATE that starts the job re-checks
    that no other job of the instance runs or waits ahead: two claimers cannot start two jobs
    of one instance even when each saw the other's job still queued.
    """
    if not kinds:
        return None
    now = now or utcnow()
    job = q.next_claimable(session, kinds=kinds, now=now)
    if job is None:
        return None
    if job.instance_id is not None and not q.lock_instance(session, job.instance_id):
        return None
    step = (first_steps or {}).get(job.kind)
    attempt_id = q.start(session, job.id, attempt=job.attempts + 1, worker=worker,
                         lease_expires_at=now + timedelta(seconds=lease_seconds),
                         progress=max(job.progress, step.percent) if step else job.progress, now=now)
    if attempt_id is None:
        return None
    if job.event_id is not None:
        events.mark_started(session, job.event_id, now, *((step.percent, step.message) if step else ()))
    return ClaimedJob(id=job.id, kind=job.kind, instance_id=job.instance_id, host_id=job.host_id,
                      event_id=job.event_id, payload=dict(job.payload or {}), attempt=job.attempts + 1,
                      max_attempts=job.max_attempts, worker=worker, attempt_id=attempt_id)


def heartbeat(session: Session, job: ClaimedJob, lease_seconds: float, now: datetime | None = None) -> bool:
    """Extend the lease; False when it is no longer ours (the job was taken over)."""
    until = (now or utcnow()) + timedelta(seconds=lease_seconds)
    return q.update_held(session, q.HEARTBEAT, job.id, job.worker, job.attempt, until=until)


def progress(session: Session, job: ClaimedJob, percent: int, message: str | None = None) -> bool:
    """Raise the job's progress and its event's `percent_complete` (never lower them)."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"progress must be a whole percentage 0-100, not {percent!r}")
    if not q.update_held(session, q.PROGRESS, job.id, job.worker, job.attempt, pct=percent):
        return False
    if job.event_id is not None:
        events.advance(session, job.event_id, percent, message)
    return True


def complete(session: Session, job: ClaimedJob, now: datetime | None = None) -> bool:
    """The job succeeded: event finished at 100 %. False (and nothing written) without the lease."""
    now = now or utcnow()
    if not q.update_held(session, q.SUCCEED, job.id, job.worker, job.attempt, now=now):
        return False
    q.close_attempt(session, job.attempt_id, "succeeded", "", now)
    if job.event_id is not None:
        events.mark_finished(session, job.event_id, now)
    return True


def fail(session: Session, job: ClaimedJob, error: str, *, retryable: bool, delay_s: float,
         public_message: str | None = None, now: datetime | None = None) -> str | None:
    """Record a failed attempt. Returns 'retrying' (queued again after `delay_s`), 'failed'
    (no retry: not retryable or the last attempt; the event fails with `public_message`),
    or None when the lease was lost and nothing was written."""
    now = now or utcnow()
    if retryable and not job.last_attempt:
        ok = q.update_held(session, q.RETRY, job.id, job.worker, job.attempt, error=error,
                           after=now + timedelta(seconds=delay_s))
        outcome = "retrying"
    else:
        ok = q.update_held(session, q.FAIL, job.id, job.worker, job.attempt, error=error, now=now)
        outcome = "failed"
    if not ok:
        return None
    q.close_attempt(session, job.attempt_id, "failed", error, now)
    if outcome == "failed" and job.event_id is not None:
        events.mark_failed(session, job.event_id, public_message or error, now)
    return outcome


def reap_expired(session: Session, now: datetime | None = None) -> list[ReapedLease]:
    """Jobs whose lease ran out: their attempt is `lost`; the job is queued again at once
    (another worker takes it over) or, if that was its last attempt, fails."""
    now = now or utcnow()
    reaped = []
    for job in q.expired_leases(session, now):
        owner = job.lease_owner or "?"
        error = f"lease expired: worker {owner} stopped renewing it"
        attempt = q.running_attempt(session, job.id)
        if attempt is not None:
            q.close_attempt(session, attempt.id, "lost", error, now)
        requeued = job.attempts < job.max_attempts
        job.lease_owner, job.lease_expires_at, job.last_error = None, None, error
        if requeued:
            job.state, job.run_after = "queued", now
        else:
            job.state, job.finished_at = "failed", now
            if job.event_id is not None:
                events.mark_failed(session, job.event_id, "The operation was interrupted and could not be "
                                   "completed; please try again.", now)
        reaped.append(ReapedLease(job.id, job.kind, owner, requeued))
    return reaped


@dataclass(frozen=True)
class PeriodicJob:
    """A job kind that runs about every `every_seconds`: once for the whole product
    (billing's sweep), or, given `shard_size`, once per shard of that many host ids that
    holds a host in `host_statuses` (the host sweep), the shard's number in the payload.
    Per shard, not per host: a fleet of thousands costs the queue a few jobs per period."""

    kind: str
    every_seconds: float
    host_statuses: tuple[str, ...] = ("active", "draining", "down")
    max_attempts: int = 1  # the next period is the retry
    shard_size: int | None = None


PERIODIC_RETENTION = timedelta(hours=1)


def ensure_periodic(session: Session, periodic: list[PeriodicJob] | tuple[PeriodicJob, ...]) -> list[int]:
    """Give each shard (with a host in the right status) lacking one a queued job of each
    periodic kind, due now, and forget succeeded ones older than PERIODIC_RETENTION. Workers
    chain the next run themselves (`enqueue_next_run`); this fills the gaps: new hosts, a
    cancelled job, a run that failed for good. Idempotent, and one scheduler at a time. The
    new jobs' ids."""
    if not periodic or not q.try_lock_scheduler(session):
        return []
    added = []
    for p in periodic:
        if p.shard_size is None:
            if not q.has_unfinished(session, p.kind):
                added.append(enqueue(session, kind=p.kind, max_attempts=p.max_attempts))
            continue
        for shard in q.shards_without_job(session, p.kind, p.host_statuses, p.shard_size):
            added.append(enqueue(session, kind=p.kind, payload={"shard": shard}, max_attempts=p.max_attempts))
    q.prune_succeeded(session, [p.kind for p in periodic], utcnow() - PERIODIC_RETENTION)
    return added


def enqueue_next_run(session: Session, job: ClaimedJob, periodic: PeriodicJob,
                     now: datetime | None = None) -> int | None:
    """The next run of a periodic job that just ended, `every_seconds` from now (its id); None
    when its shard no longer holds a host in one of the periodic job's statuses."""
    if periodic.shard_size is not None and not q.shard_has_hosts(
            session, job.payload.get("shard", -1), periodic.shard_size, periodic.host_statuses):
        return None
    run_after = (now or utcnow()) + timedelta(seconds=periodic.every_seconds)
    return enqueue(session, kind=job.kind, host_id=job.host_id, payload=job.payload,
                   max_attempts=periodic.max_attempts, run_after=run_after)


def any_expired(session: Session, now: datetime | None = None) -> bool:
    """Cheap read-only check, so idle workers do not take the write lock just to reap nothing."""
    return q.any_expired_lease(session, now or utcnow())


def attempts(session: Session, job_id: int) -> list[JobAttempt]:
    return q.attempts_of(session, job_id)

