"""The audit log: who changed what, when, from what to what, and why."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucloud.store.tables import AuditEntry


def record(session: Session, *, actor: str, action: str, target_type: str, target_id: str | int,
           before: dict | None = None, after: dict | None = None, why: str = "") -> AuditEntry:
    entry = AuditEntry(actor=actor, action=action, target_type=target_type, target_id=str(target_id),
                       before=before, after=after, why=why)
    session.add(entry)
    return entry


def recent(session: Session, *, target_type: str | None = None, target_id: str | None = None,
           limit: int = 100) -> list[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target_type:
        stmt = stmt.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        stmt = stmt.where(AuditEntry.target_id == str(target_id))
    return list(session.scalars(stmt))
