"""Queries about an account's tags: those it created (`tags` rows) and those on its instances."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucloud.store.tables import Instance, Tag


def created(session: Session, account_id: int) -> list[Tag]:
    return list(session.scalars(select(Tag).where(Tag.account_id == account_id)))


def created_one(session: Session, account_id: int, label: str) -> Tag | None:
    return session.scalar(select(Tag).where(Tag.account_id == account_id, Tag.label == label))


def on_instances(session: Session, account_id: int) -> set[str]:
    return {t for tags in session.scalars(select(Instance.tags).where(Instance.account_id == account_id))
            for t in tags or ()}


def instances_tagged(session: Session, account_id: int, label: str, *, lock: bool = False) -> list[Instance]:
    """The account's instances carrying `label`, by id (the tags are a JSON list: filtered here)."""
    stmt = select(Instance).where(Instance.account_id == account_id).order_by(Instance.id)
    if lock:
        stmt = stmt.with_for_update()
    return [i for i in session.scalars(stmt) if label in (i.tags or ())]
