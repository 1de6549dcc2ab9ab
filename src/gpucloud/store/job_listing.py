"""Queries that list jobs for operators: by state, of one instance, with their attempts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gpucloud.store.tables import Host, Job, JobAttempt


def jobs_in_state(session: Session, state: str, *, limit: int = 50, newest_first: bool = True,
                  except_kinds: tuple[str, ...] = ()) -> list[Job]:
    order = (Job.updated_at.desc(), Job.id.desc()) if newest_first else (Job.run_after, Job.id)
    stmt = select(Job).where(Job.state == state)
    if except_kinds:
        stmt = stmt.where(Job.kind.not_in(except_kinds))
    return list(session.scalars(stmt.order_by(*order).limit(limit)))


def queued_by_kind(session: Session, kinds: tuple[str, ...]) -> list[tuple[str, int, datetime]]:
    """(kind, queued jobs, earliest due time) for these kinds."""
    rows = session.execute(select(Job.kind, func.count(), func.min(Job.run_after))
                           .where(Job.state == "queued", Job.kind.in_(kinds)).group_by(Job.kind).order_by(Job.kind))
    return [(kind, n, due) for kind, n, due in rows]


def count_by_state(session: Session) -> dict[str, int]:
    return {state: n for state, n in session.execute(select(Job.state, func.count()).group_by(Job.state))}


def jobs_of_instance(session: Session, instance_id: int) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.instance_id == instance_id).order_by(Job.id)))


def attempts_of_jobs(session: Session, job_ids: list[int]) -> dict[int, list[JobAttempt]]:
    found: dict[int, list[JobAttempt]] = {job_id: [] for job_id in job_ids}
    if job_ids:
        stmt = select(JobAttempt).where(JobAttempt.job_id.in_(job_ids)).order_by(JobAttempt.id)
        for attempt in session.scalars(stmt):
            found[attempt.job_id].append(attempt)
    return found


def host_names(session: Session, host_ids: set[int]) -> dict[int, str]:
    if not host_ids:
        return {}
    return dict(session.execute(select(Host.id, Host.name).where(Host.id.in_(host_ids))).all())


def newest_job_of_kind(session: Session, instance_id: int, kind: str) -> Job | None:
    return session.scalar(select(Job).where(Job.instance_id == instance_id, Job.kind == kind)
                          .order_by(Job.id.desc()).limit(1))
