"""The SQL of the job queue. `gpucloud.jobs.queue` composes these into claims and outcomes;
`enqueue` is here, a store write any service makes in its own transaction, and so are the
operator's cancel and retry.

A running job belongs to whoever holds its lease: every write on a running job is a
compare-and-set on (state 'running', lease_owner, attempts), so a worker that lost its
lease changes nothing. On PostgreSQL, claims lock rows with FOR UPDATE SKIP LOCKED and
take a transaction-scoped advisory lock per instance; on SQLite the write transaction
(BEGIN IMMEDIATE) already serialises every claimer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import and_, bindparam, case, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.selectable import Exists

from gpucloud.clock import utcnow
from gpucloud.errors import Conflict, GpucloudError, NotFound
from gpucloud.store import audit, events
from gpucloud.store.fleet import in_shard, shard_of
from gpucloud.store.tables import Host, Job, JobAttempt

DEFAULT_MAX_ATTEMPTS = 5
KIND_MAX_LENGTH = 32
UNFINISHED = ("queued", "running")
# Namespaces (first key) of PostgreSQL's two-key advisory locks, so ours never meet anyone else's.
_LOCK_INSTANCE = 0x67707531  # 'gpu1': one lock per instance id
_LOCK_SCHEDULER = 0x67707532  # 'gpu2': the periodic-job scheduler, one at a time


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


_INSERT = insert(Job).returning(Job.id)  # built once per process


def enqueue(session: Session, *, kind: str, instance_id: int | None = None, host_id: int | None = None,
            event_id: int | None = None, payload: dict | None = None,
            max_attempts: int = DEFAULT_MAX_ATTEMPTS, run_after: datetime | None = None) -> int:
    """Add a queued job in the caller's transaction; its id. One Core INSERT on the session's
    connection (an ORM flush only to learn the id cost several times as much, issue #11)."""
    if not isinstance(kind, str) or not kind.strip() or len(kind) > KIND_MAX_LENGTH:
        raise GpucloudError(f"job kind must be a non-empty string of at most {KIND_MAX_LENGTH} characters, "
                            f"not {kind!r}", field="kind")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise GpucloudError(f"max_attempts must be a whole number >= 1, not {max_attempts!r}", field="max_attempts")
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        raise GpucloudError("a job payload must be a JSON object", field="payload")
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as exc:
        raise GpucloudError(f"a job payload must be plain JSON: {exc}", field="payload") from None
    now = utcnow()
    return int(session.connection().execute(_INSERT, {
        "kind": kind, "instance_id": instance_id, "host_id": host_id, "event_id": event_id, "payload": payload,
        "state": "queued", "attempts": 0, "max_attempts": max_attempts, "run_after": run_after or now,
        "progress": 0, "last_error": "", "created_at": now, "updated_at": now}).scalar_one())


def get(session: Session, job_id: int, *, lock: bool = False) -> Job | None:
    stmt = select(Job).where(Job.id == job_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def attempts_of(session: Session, job_id: int) -> list[JobAttempt]:
    return list(session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.id)))


_OTHER = aliased(Job)


def _instance_busy(job_id: Any, instance_id: Any) -> Exists:
    """Another job of the same instance runs, or an earlier one is still queued."""
    other = _OTHER
    return exists().where(
        other.instance_id == instance_id,
        other.id != job_id,
        or_(other.state == "running", and_(other.state == "queued", other.id < job_id)),
    )


_CLAIMABLE = (
    select(Job.id, Job.kind, Job.instance_id, Job.host_id, Job.event_id, Job.payload, Job.attempts,
           Job.max_attempts, Job.progress)
    .where(Job.state == "queued", Job.run_after <= bindparam("now"), Job.kind.in_(bindparam("kinds", expanding=True)),
           or_(Job.instance_id.is_(None), ~_instance_busy(Job.id, Job.instance_id)))
    .order_by(Job.run_after, Job.id)
    .limit(1)
)
_CLAIMABLE_LOCKED = _CLAIMABLE.with_for_update(skip_locked=True, of=Job)


def next_claimable(session: Session, *, kinds: Iterable[str], now: datetime) -> Row | None:
    """The oldest due queued job of these kinds whose instance is free (id, kind, instance_id,
    host_id, event_id, payload, attempts, max_attempts, progress), row-locked on PostgreSQL."""
    stmt = _CLAIMABLE_LOCKED if is_postgres(session) else _CLAIMABLE
    return session.connection().execute(stmt, {"now": now, "kinds": list(kinds)}).first()


# The instance re-check rides on the UPDATE: a statement started after `lock_instance`, so its
# snapshot sees any claim of the instance that committed before the lock was granted.
_START = (update(Job).where(Job.id == bindparam("job_id"), Job.state == "queued",
                            ~_instance_busy(Job.id, Job.instance_id))
          .values(state="running", attempts=bindparam("n"), lease_owner=bindparam("owner"),
                  lease_expires_at=bindparam("until"), progress=bindparam("pct")))
_ADD_ATTEMPT = insert(JobAttempt).values(outcome="running").returning(JobAttempt.id)


def start(session: Session, job_id: int, *, attempt: int, worker: str, lease_expires_at: datetime,
          progress: int, now: datetime) -> int | None:
    """A claimed job runs, unless another job of its instance runs or is queued ahead after
    all (then None, nothing written): its lease, attempt count and progress, and a new
    `job_attempts` row, whose id is returned. Two Core statements on the session's connection."""
    conn = session.connection()
    started = conn.execute(_START, {"job_id": job_id, "n": attempt, "owner": worker, "until": lease_expires_at,
                                    "pct": progress})
    if started.rowcount != 1:
        return None
    return conn.execute(_ADD_ATTEMPT, {"job_id": job_id, "worker": worker, "started_at": now}).scalar_one()


@dataclass(frozen=True)
class QueueMoments:
    """What an idle dispatcher needs to know to sleep as long as it may."""

    due_now: int  # queued jobs of its kinds due already
    next_due: datetime | None  # the soonest run_after still ahead among them (a retry's backoff, a periodic run)
    next_expiry: datetime | None  # the soonest lease expiry of a running job, any worker's


_QUEUED_OURS = and_(Job.state == "queued", Job.kind.in_(bindparam("kinds", expanding=True)))
_MOMENTS = (select(func.count().filter(_QUEUED_OURS, Job.run_after <= bindparam("now")),
                   func.min(Job.run_after).filter(_QUEUED_OURS, Job.run_after > bindparam("now")),
                   func.min(Job.lease_expires_at).filter(Job.state == "running"))
            .where(Job.state.in_(UNFINISHED)))


def moments(session: Session, kinds: Iterable[str], now: datetime) -> QueueMoments:
    """One indexed statement: how many jobs of these kinds are due, when the next one will
    be, and when the next lease runs out."""
    row = session.execute(_MOMENTS, {"kinds": list(kinds), "now": now}).one()
    return QueueMoments(row[0] or 0, row[1], row[2])


def lock_instance(session: Session, instance_id: int) -> bool:
    """PostgreSQL: try to take the instance's claim lock until commit. False when another
    claimer holds it. SQLite: always True, the write transaction is already exclusive."""
    if not is_postgres(session):
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
                               {"ns": _LOCK_INSTANCE, "key": instance_id}))


_CLOSE_ATTEMPT = (update(JobAttempt).where(JobAttempt.id == bindparam("attempt_id"), JobAttempt.outcome == "running")
                  .values(outcome=bindparam("result"), error=bindparam("why"), ended_at=bindparam("now")))


def close_attempt(session: Session, attempt_id: int, outcome: str, error: str, now: datetime) -> None:
    session.connection().execute(_CLOSE_ATTEMPT, {"attempt_id": attempt_id, "result": outcome, "why": error,
                                                  "now": now})


def _held_update(**values: Any) -> Update:
    """An UPDATE of a running job that (worker, attempt) holds: the compare-and-set on its
    lease. Built once per process; parameters job_id, worker, attempt and the values' own."""
    return (update(Job).where(Job.id == bindparam("job_id"), Job.state == "running",
                              Job.lease_owner == bindparam("worker"), Job.attempts == bindparam("attempt"))
            .values(**values))


HEARTBEAT = _held_update(lease_expires_at=bindparam("until"))
PROGRESS = _held_update(progress=case((Job.progress < bindparam("pct"), bindparam("pct")), else_=Job.progress))
SUCCEED = _held_update(state="succeeded", progress=100, lease_owner=None, lease_expires_at=None,
                       finished_at=bindparam("now"))
RETRY = _held_update(state="queued", lease_owner=None, lease_expires_at=None, last_error=bindparam("error"),
                     run_after=bindparam("after"))
FAIL = _held_update(state="failed", lease_owner=None, lease_expires_at=None, last_error=bindparam("error"),
                    finished_at=bindparam("now"))


def update_held(session: Session, stmt: Update, job_id: int, worker: str, attempt: int, **params: Any) -> bool:
    """Run one of the held-job updates above; False when the lease is no longer ours."""
    result = session.connection().execute(stmt, {"job_id": job_id, "worker": worker, "attempt": attempt, **params})
    return result.rowcount == 1


def expired_leases(session: Session, now: datetime, limit: int = 100) -> list[Job]:
    """Running jobs whose lease ran out, locked (skipping ones another reaper holds)."""
    stmt = (select(Job).where(Job.state == "running", Job.lease_expires_at < now)
            .order_by(Job.id).limit(limit))
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def any_expired_lease(session: Session, now: datetime) -> bool:
    return bool(session.scalar(select(exists().where(Job.state == "running", Job.lease_expires_at < now))))


def running_attempt(session: Session, job_id: int) -> JobAttempt | None:
    return session.scalar(select(JobAttempt).where(JobAttempt.job_id == job_id, JobAttempt.outcome == "running")
                          .order_by(JobAttempt.id.desc()).limit(1))


# --- operator actions --------------------------------------------------------------------


def cancel(session: Session, job_id: int, *, actor: str, why: str = "") -> Job:
    """Cancel a queued job (a running one cannot be stopped halfway); its event fails."""
    job = _job_or_404(session, job_id)
    if job.state != "queued":
        raise Conflict(f"job {job_id} is {job.state}; only a queued job can be cancelled")
    now = utcnow()
    job.state, job.finished_at, job.last_error = "cancelled", now, f"cancelled by {actor}" + (f": {why}" if why else "")
    if job.event_id is not None:
        events.mark_failed(session, job.event_id, "The operation was cancelled by an administrator.", now)
    audit.record(session, actor=actor, action="job.cancel", target_type="job", target_id=job_id,
                 before={"state": "queued"}, after={"state": "cancelled"}, why=why)
    return job


def retry(session: Session, job_id: int, *, actor: str, why: str = "") -> Job:
    """Queue a failed or cancelled job again with a fresh count of attempts; its event reopens."""
    job = _job_or_404(session, job_id)
    if job.state not in ("failed", "cancelled"):
        raise Conflict(f"job {job_id} is {job.state}; only a failed or cancelled job can be retried")
    before = job.state
    job.state, job.attempts, job.progress, job.run_after = "queued", 0, 0, utcnow()
    job.finished_at, job.lease_owner, job.lease_expires_at, job.last_error = None, None, None, ""
    if job.event_id is not None:
        events.reopen(session, job.event_id)
    audit.record(session, actor=actor, action="job.retry", target_type="job", target_id=job_id,
                 before={"state": before}, after={"state": "queued"}, why=why)
    return job


def _job_or_404(session: Session, job_id: int) -> Job:
    job = get(session, job_id, lock=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


# --- periodic jobs -----------------------------------------------------------------------


def try_lock_scheduler(session: Session) -> bool:
    """One scheduler at a time on PostgreSQL (until commit); SQLite writers are serial anyway."""
    if not is_postgres(session):
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:ns, 0)"), {"ns": _LOCK_SCHEDULER}))


def shards_without_job(session: Session, kind: str, host_statuses: Iterable[str], shard_size: int) -> list[int]:
    """Shards of `shard_size` host ids that hold a host in these statuses and have no queued
    or running job of this kind (its shard number in the payload)."""
    wanted = {shard_of(host_id, shard_size)
              for host_id in session.scalars(select(Host.id).where(Host.status.in_(list(host_statuses))))}
    taken = {payload.get("shard") for payload in session.scalars(
        select(Job.payload).where(Job.kind == kind, Job.state.in_(UNFINISHED)))}
    return sorted(wanted - taken)


def hosts_without_job(session: Session, kind: str, host_ids: list[int], finished_since: datetime) -> list[int]:
    """Those of these hosts with no job of this kind queued, running, or finished since then."""
    if not host_ids:
        return []
    taken = set(session.scalars(select(Job.host_id).where(
        Job.kind == kind, Job.host_id.in_(host_ids),
        or_(Job.state.in_(UNFINISHED), Job.finished_at >= finished_since))))
    return [h for h in host_ids if h not in taken]


def shard_has_hosts(session: Session, shard: int, shard_size: int, host_statuses: Iterable[str]) -> bool:
    return session.scalar(select(Host.id).where(in_shard(shard, shard_size), Host.status.in_(list(host_statuses)))
                          .limit(1)) is not None


def has_unfinished(session: Session, kind: str) -> bool:
    """Whether a job of this kind is queued or running (a product-wide periodic job)."""
    return session.scalar(select(Job.id).where(Job.kind == kind, Job.state.in_(UNFINISHED)).limit(1)) is not None


def prune_succeeded(session: Session, kinds: Iterable[str], finished_before: datetime) -> int:
    """Delete succeeded jobs of these kinds (their attempts go with them)."""
    kinds = list(kinds)
    if not kinds:
        return 0
    old = select(Job.id).where(Job.kind.in_(kinds), Job.state == "succeeded", Job.finished_at < finished_before)
    session.execute(delete(JobAttempt).where(JobAttempt.job_id.in_(old)).execution_options(synchronize_session=False))
    result = session.execute(delete(Job).where(Job.id.in_(old)).execution_options(synchronize_session=False))
    return cast(CursorResult, result).rowcount


# --- figures for metrics -----------------------------------------------------------------


def count_by_kind_and_state(session: Session) -> list[tuple[str, str, int]]:
    rows = session.execute(select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state))
    return [(kind, state, n) for kind, state, n in rows]


def due_by_kind(session: Session, now: datetime) -> list[tuple[str, int]]:
    """Queued jobs whose time has come, by kind: the queue depth."""
    rows = session.execute(select(Job.kind, func.count()).where(Job.state == "queued", Job.run_after <= now)
                           .group_by(Job.kind))
    return [(kind, n) for kind, n in rows]
