"""Who may log in to the admin interface, and as what.

A failed login costs the same argon2 verification whether the user exists or not, so the
time it takes does not tell which part was wrong. A session remembers a fingerprint of the
password hash it was opened with: changing the password ends every session opened before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

from gpucloud.services.accounts import hash_password, verify_password
from gpucloud.store.accounts import admin_by_username
from gpucloud.store.db import Database

MAX_INPUT = 256


@dataclass(frozen=True)
class Operator:
    username: str
    role: str  # admin, or support (read-only)
    fingerprint: str

    @property
    def can_change(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        """How the audit log names this operator."""
        return f"admin:{self.username}"


@cache
def _decoy_hash() -> str:
    return hash_password("decoy password never used")


def fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def authenticate(db: Database, username: str, password: str) -> Operator | None:
    """The operator when the username and password match, else None (whichever was wrong)."""
    if not username or not password or len(username) > MAX_INPUT or len(password) > MAX_INPUT:
        verify_password(_decoy_hash(), "x")
        return None
    with db.read() as s:
        user = admin_by_username(s, username.strip())
        stored = (user.username, user.role, user.password_hash) if user else None
    if stored is None:
        verify_password(_decoy_hash(), password)
        return None
    if not verify_password(stored[2], password):
        return None
    return Operator(stored[0], stored[1], fingerprint(stored[2]))


def operator(db: Database, username: str, session_fingerprint: str) -> Operator | None:
    """The operator a session names, if they still exist with the same password."""
    with db.read() as s:
        user = admin_by_username(s, username)
        if user is None or fingerprint(user.password_hash) != session_fingerprint:
            return None
        return Operator(user.username, user.role, session_fingerprint)
