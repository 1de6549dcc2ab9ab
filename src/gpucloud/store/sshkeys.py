"""Queries about the SSH keys users keep in their profiles."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucloud.store.tables import SshKey, User


def keys_of_user(session: Session, user_id: int) -> list[SshKey]:
    return list(session.scalars(select(SshKey).where(SshKey.user_id == user_id).order_by(SshKey.id)))


def key_of_user(session: Session, user_id: int, key_id: int) -> SshKey | None:
    """A key, only if it belongs to this user (anything else reads as absent)."""
    return session.scalar(select(SshKey).where(SshKey.id == key_id, SshKey.user_id == user_id))


def keys_by_username(session: Session, account_id: int) -> dict[str, list[SshKey]]:
    """Every user of the account by username, with their keys (oldest first; [] for none)."""
    out: dict[str, list[SshKey]] = defaultdict(list)
    for username in session.scalars(select(User.username).where(User.account_id == account_id)):
        out[username] = []
    rows = session.execute(select(User.username, SshKey).join(SshKey, SshKey.user_id == User.id)
                           .where(User.account_id == account_id).order_by(SshKey.id))
    for username, key in rows:
        out[username].append(key)
    return dict(out)
