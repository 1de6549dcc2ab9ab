"""Admin sessions and login throttles: the rows behind server-side logout and backoff."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gpucloud.store.tables import AdminSession, LoginThrottle


def open_session(session: Session, session_id: str, username: str, now: datetime) -> None:
    session.add(AdminSession(id=session_id, username=username, created_at=now))


def live_session(session: Session, session_id: str, username: str, opened_after: datetime) -> bool:
    found = session.scalar(select(AdminSession.id).where(
        AdminSession.id == session_id, AdminSession.username == username, AdminSession.ended_at.is_(None),
        AdminSession.created_at > opened_after))
    return found is not None


def end_session(session: Session, session_id: str, now: datetime) -> None:
    session.execute(update(AdminSession).where(AdminSession.id == session_id, AdminSession.ended_at.is_(None))
                    .values(ended_at=now))


def forget_sessions(session: Session, opened_before: datetime) -> None:
    session.execute(delete(AdminSession).where(AdminSession.created_at < opened_before))


def locked_until(session: Session, keys: list[str], now: datetime) -> datetime | None:
    """The latest time any of these keys is locked until, if one is locked now."""
    return session.scalar(select(LoginThrottle.locked_until).where(
        LoginThrottle.key.in_(keys), LoginThrottle.locked_until > now).order_by(LoginThrottle.locked_until.desc())
        .limit(1))


def count_failure(session: Session, key: str, now: datetime, forget_before: datetime) -> int:
    """One more failure for `key` (counting from 1 again when the last was before
    `forget_before`); returns the count. One statement, so racing processes add up."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    new = insert(LoginThrottle).values(key=key, failures=1, last_failure_at=now, locked_until=None)
    upsert = new.on_conflict_do_update(index_elements=[LoginThrottle.key], set_={
        "failures": case((LoginThrottle.last_failure_at < forget_before, 1), else_=LoginThrottle.failures + 1),
        "last_failure_at": now,
    })
    return int(session.execute(upsert.returning(LoginThrottle.failures)).scalar_one())


def lock(session: Session, key: str, until: datetime) -> None:
    session.execute(update(LoginThrottle).where(LoginThrottle.key == key).values(locked_until=until))


def clear(session: Session, keys: list[str]) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(keys)))
