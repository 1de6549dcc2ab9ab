"""Queries about GPU trials."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucloud.store.tables import GpuTrial


def latest(s: Session, account_id: int, *, lock: bool = False) -> GpuTrial | None:
    stmt = select(GpuTrial).where(GpuTrial.account_id == account_id).order_by(GpuTrial.id.desc()).limit(1)
    if lock:
        stmt = stmt.with_for_update()
    return s.scalar(stmt)


def by_id(s: Session, trial_id: int, *, lock: bool = False) -> GpuTrial | None:
    stmt = select(GpuTrial).where(GpuTrial.id == trial_id)
    return s.scalar(stmt.with_for_update() if lock else stmt)


def listed(s: Session, status: str | None = None, limit: int = 500) -> list[GpuTrial]:
    stmt = select(GpuTrial).order_by(GpuTrial.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(GpuTrial.status == status)
    return list(s.scalars(stmt))


def due_to_end(s: Session, now: datetime) -> list[GpuTrial]:
    return list(s.scalars(select(GpuTrial).where(GpuTrial.status == "active", GpuTrial.ends_at <= now)
                          .order_by(GpuTrial.id)))


def ended(s: Session) -> list[GpuTrial]:
    return list(s.scalars(select(GpuTrial).where(GpuTrial.status == "ended").order_by(GpuTrial.id)))
