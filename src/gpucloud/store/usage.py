"""Usage intervals: the three lifecycle facts billing is computed from, written in the
caller's transaction (instance created, plan changed, instance deleted), and the reads."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from gpucloud.clock import utcnow
from gpucloud.store.tables import Instance, UsageInterval

_INSERT = insert(UsageInterval)  # built once per process


def opened(s: Session, instance: Instance, now: datetime | None = None) -> None:
    """The instance starts accruing on its plan (a create, or a plan change). One Core INSERT
    on the session's connection (a create writes it; its ORM flush cost more, issue #11)."""
    s.connection().execute(_INSERT, {"account_id": instance.account_id, "instance_id": instance.id,
                                     "label": instance.label, "region_id": instance.region_id,
                                     "type_id": instance.type_id, "started_at": now or utcnow(), "ended_at": None})


def closed(s: Session, instance_id: int, now: datetime | None = None) -> None:
    """The instance stops accruing (a delete); closing twice is a no-op."""
    s.execute(update(UsageInterval).where(UsageInterval.instance_id == instance_id, UsageInterval.ended_at.is_(None))
              .values(ended_at=now or utcnow()))


def plan_changed(s: Session, instance: Instance, now: datetime | None = None) -> None:
    """The instance's plan changed to `instance.type_id` (a resize took effect): the old
    plan's interval ends and the new one starts at the same moment."""
    moment = now or utcnow()
    closed(s, instance.id, moment)
    opened(s, instance, moment)


def of_account(s: Session, account_id: int, since: datetime, until: datetime) -> list[UsageInterval]:
    """Intervals of the account that overlap [since, until)."""
    return list(s.scalars(select(UsageInterval).where(
        UsageInterval.account_id == account_id, UsageInterval.started_at < until,
        or_(UsageInterval.ended_at.is_(None), UsageInterval.ended_at > since)).order_by(UsageInterval.id)))


def accounts_with_usage(s: Session, since: datetime, until: datetime) -> list[int]:
    return list(s.scalars(select(UsageInterval.account_id).distinct().where(
        UsageInterval.started_at < until, or_(UsageInterval.ended_at.is_(None), UsageInterval.ended_at > since))
        .order_by(UsageInterval.account_id)))


def all_overlapping(s: Session, since: datetime, until: datetime) -> list[UsageInterval]:
    return list(s.scalars(select(UsageInterval).where(
        UsageInterval.started_at < until, or_(UsageInterval.ended_at.is_(None), UsageInterval.ended_at > since))
        .order_by(UsageInterval.account_id, UsageInterval.id)))


def started_since(s: Session, since: datetime) -> list[tuple[str, str, datetime]]:
    """(region, plan, started) of every interval opened since `since`: each create and plan change."""
    rows = s.execute(select(UsageInterval.region_id, UsageInterval.type_id, UsageInterval.started_at)
                     .where(UsageInterval.started_at >= since))
    return [(r.region_id, r.type_id, r.started_at) for r in rows]
