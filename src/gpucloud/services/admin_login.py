"""Who may log in to the admin interface, and as what.

A failed login costs the same argon2 verification whether the user exists or not, so the
time it takes does not tell which part was wrong. A session remembers a fingerprint of the
password hash it was opened with: changing the password ends every session opened before.
Sessions live in the database too, so logging out ends one for good (a copied cookie dies
with it).

Guessing is slowed per username and per address: after `FREE_FAILURES` wrong passwords the
key is locked for 1 s, then 2, 4, ... up to `MAX_LOCK`; a try while locked is refused at
once (429 with Retry-After) without checking the password, and costs nothing. Every
failure is in the audit log (`admin.login.failed`, with the count and the lock it set).
Failures are forgotten after a correct login or `FORGET_AFTER` without one.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from gpucloud.clock import utcnow
from gpucloud.domain.validation import has_control_characters
from gpucloud.services.accounts import hash_password, verify_password
from gpucloud.store import admin_logins, audit
from gpucloud.store.accounts import admin_by_username
from gpucloud.store.db import Database

MAX_INPUT = 256
SESSION_HOURS = 12
FREE_FAILURES = {"user": 5, "address": 20}  # an office behind one address has many operators
MAX_LOCK = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=1)


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
def decoy_hash() -> str:
    return hash_password("decoy password never used")


def fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LoginResult:
    operator: Operator | None  # None: refused
    session_id: str = ""  # the new session's secret, for the cookie
    retry_after: int = 0  # > 0: refused unchecked, too many failures; try again in this many seconds


def log_in(db: Database, username: str, password: str, address: str) -> LoginResult:
    """Check a login against the throttles and the password; on success open a session.
    Blocking (argon2): run it off the event loop."""
    keys = _keys(username, address)
    now = utcnow()
    with db.read() as s:
        until = admin_logins.locked_until(s, list(keys.values()), now)
    if until is not None:
        return LoginResult(None, retry_after=max(1, math.ceil((until - now).total_seconds())))
    who = authenticate(db, username, password)
    with db.write() as s:
        if who is None:
            _fail(s, keys, username, address)
            return LoginResult(None)
        admin_logins.clear(s, [keys["user"]])
        admin_logins.forget_sessions(s, now - timedelta(hours=SESSION_HOURS))
        secret = secrets.token_urlsafe(32)
        admin_logins.open_session(s, _session_key(secret), who.username, now)
        audit.record(s, actor=who.actor, action="admin.login", target_type="admin_user", target_id=who.username,
                     after={"address": address})
    return LoginResult(who, session_id=secret)


def log_out(db: Database, session_id: str) -> None:
    with db.write() as s:
        admin_logins.end_session(s, _session_key(session_id), utcnow())


def _keys(username: str, address: str) -> dict[str, str]:
    return {"user": f"user:{username.strip()[:MAX_INPUT].lower()}", "address": f"address:{address[:64]}"}


def _session_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def count_failures(s, keys: dict[str, str], free: dict[str, int]) -> tuple[dict[str, int], dict[str, timedelta]]:
    """One more failure on each key (kind -> throttle key); a key past its `free` failures is
    locked for 1 s, 2, 4, ... up to MAX_LOCK. The same backoff for operators and customers."""
    now = utcnow()
    counts, locks = {}, {}
    for kind, key in keys.items():
        counts[kind] = admin_logins.count_failure(s, key, now, now - FORGET_AFTER)
        over = counts[kind] - free[kind]
        if over > 0:
            locks[kind] = min(MAX_LOCK, timedelta(seconds=2 ** min(over - 1, 20)))
            admin_logins.lock(s, key, now + locks[kind])
    return counts, locks


def _fail(s, keys: dict[str, str], username: str, address: str) -> None:
    counts, locks = count_failures(s, keys, FREE_FAILURES)
    audit.record(s, actor=f"address:{address[:64]}", action="admin.login.failed", target_type="admin_user",
                 target_id=username.strip()[:128], after={
                     "failures": counts, "locked_seconds": {k: int(v.total_seconds()) for k, v in locks.items()}})


def authenticate(db: Database, username: str, password: str) -> Operator | None:
    """The operator when the username and password match, else None (whichever was wrong)."""
    if (not username or not password or len(username) > MAX_INPUT or len(password) > MAX_INPUT
            or has_control_characters(username)):
        verify_password(decoy_hash(), "x")
        return None
    with db.read() as s:
        user = admin_by_username(s, username.strip())
        stored = (user.username, user.role, user.password_hash) if user else None
    if stored is None:
        verify_password(decoy_hash(), password)
        return None
    if not verify_password(stored[2], password):
        return None
    return Operator(stored[0], stored[1], fingerprint(stored[2]))


def operator(db: Database, username: str, session_fingerprint: str, session_id: str) -> Operator | None:
    """The operator a session names, if the session is still open and they still exist with
    the same password."""
    with db.read() as s:
        opened_after = utcnow() - timedelta(hours=SESSION_HOURS)
        if not session_id or not admin_logins.live_session(s, _session_key(session_id), username, opened_after):
            return None
        user = admin_by_username(s, username)
        if user is None or fingerprint(user.password_hash) != session_fingerprint:
            return None
        return Operator(user.username, user.role, session_fingerprint)
