"""Queries about one-time root password links (services.password_links)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucloud.store.tables import PasswordLink


def by_token_hash(session: Session, token_hash: str) -> PasswordLink | None:
    """The link with this token hash, locked until the transaction ends (it opens once)."""
    return session.scalar(select(PasswordLink).where(PasswordLink.token_hash == token_hash).with_for_update())
