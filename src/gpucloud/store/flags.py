"""Queries about feature flags, their per-account overrides, and the `flags` version counter.

The counter is what every process polls to know whether its cached flags are stale: one
primary-key read, bumped in the same transaction as each flag change.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gpucloud.store.tables import Account, Counter, FeatureFlag, FlagOverride

VERSION_COUNTER = "flags"


def _insert(session: Session):
    """INSERT with ON CONFLICT, in the dialect of the session's database."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def flag(session: Session, key: str, *, lock: bool = False) -> FeatureFlag | None:
    """`lock` takes the row for the rest of the transaction (PostgreSQL; SQLite writers are
    serialised anyway), so concurrent changes to one flag audit true before-values."""
    return session.get(FeatureFlag, key, with_for_update=lock, populate_existing=lock)


def insert_flag_if_missing(session: Session, key: str, description: str, state: str = "off",
                           percent: int = 0) -> bool:
    """Create the flag unless it exists; True when this call created it. Safe under races."""
    stmt = _insert(session)(FeatureFlag).values(key=key, description=description, state=state, percent=percent)
    stmt = stmt.on_conflict_do_nothing(index_elements=[FeatureFlag.key]).returning(FeatureFlag.key)
    return session.execute(stmt).first() is not None


def all_flags(session: Session) -> list[FeatureFlag]:
    return list(session.scalars(select(FeatureFlag).order_by(FeatureFlag.key)))


def override(session: Session, key: str, account_id: int) -> FlagOverride | None:
    return session.get(FlagOverride, (key, account_id))


def overrides(session: Session, key: str | None = None) -> list[FlagOverride]:
    stmt = select(FlagOverride).order_by(FlagOverride.flag_key, FlagOverride.account_id)
    if key is not None:
        stmt = stmt.where(FlagOverride.flag_key == key)
    return list(session.scalars(stmt))


def override_tuples(session: Session) -> list[tuple[str, int, bool, datetime | None]]:
    """(flag_key, account_id, allow, expires_at) of every override: plain rows, no ORM objects,
    because a cache reload reads all of them (10,000 in ~10x less time than as objects)."""
    stmt = select(FlagOverride.flag_key, FlagOverride.account_id, FlagOverride.allow, FlagOverride.expires_at)
    return cast(list[tuple[str, int, bool, datetime | None]], [tuple(row) for row in session.execute(stmt)])


def overrides_with_emails(session: Session) -> list[tuple[FlagOverride, str]]:
    rows = session.execute(
        select(FlagOverride, Account.email)
        .join(Account, FlagOverride.account_id == Account.id)
        .order_by(FlagOverride.flag_key, FlagOverride.account_id)
    )
    return [(o, email) for o, email in rows]


def delete_flag(session: Session, key: str) -> None:
    """The flag and its overrides (explicitly, not trusting every engine to cascade)."""
    session.execute(delete(FlagOverride).where(FlagOverride.flag_key == key))
    session.execute(delete(FeatureFlag).where(FeatureFlag.key == key))


def version(session: Session) -> int:
    """The current flags version; 0 before the first change."""
    return session.scalar(select(Counter.value).where(Counter.name == VERSION_COUNTER)) or 0


def bump_version(session: Session) -> int:
    """Increment the flags version in the caller's transaction (an upsert, so two first changes
    racing on PostgreSQL do not collide on the counter's insert)."""
    stmt = _insert(session)(Counter).values(name=VERSION_COUNTER, value=1)
    stmt = stmt.on_conflict_do_update(index_elements=[Counter.name], set_={"value": Counter.value + 1})
    return session.execute(stmt.returning(Counter.value)).scalar_one()
