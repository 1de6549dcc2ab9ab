"""Customers signing up and logging in to the web console, and the access tokens it holds.

The console is a client of the public API: signing up or logging in hands the browser an
OAuth-style access token (`api_tokens.kind = console`), stored hashed like a personal access
token, with the customer's scopes. It is short-lived: it expires `IDLE` after its last use,
and every use that finds less than `IDLE - REFRESH_EVERY` left slides the expiry forward
(at most one write per `REFRESH_EVERY` of activity), never past `MAX_SESSION` after the
login. Logging out is `DELETE /v4/profile/tokens/{id}` of the token itself; changing the password
(`POST /password`, the current one required) ends every console session of the user. Console tokens
are not listed among personal access tokens.

Passwords follow the API's rule for root passwords (`domain.validation.root_pass_problem`:
7-128 characters, zxcvbn score 3 or more) and are kept as argon2 hashes. Sign-ups are
limited per client address (the setting `console_signups_per_hour`); wrong passwords back
off per e-mail address and per client address like operators' logins
(`admin_login.count_failures`).
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpucloud.clock import utcnow
from gpucloud.domain.validation import has_control_characters, root_pass_problem
from gpucloud.errors import GpucloudError, ValidationErrors
from gpucloud.services import accounts
from gpucloud.services.accounts import hash_password, hash_token, verify_password
from gpucloud.services.admin_login import count_failures, decoy_hash
from gpucloud.store import accounts as q
from gpucloud.store import admin_logins, audit
from gpucloud.store.db import Database
from gpucloud.store.tables import ApiToken, User

IDLE = timedelta(minutes=30)
REFRESH_EVERY = timedelta(minutes=5)
MAX_SESSION = timedelta(hours=12)
SCOPES = "*"  # the console offers everything the customer may do with the API
FREE_FAILURES = {"email": 5, "address": 20}
MAX_INPUT = 256
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class TooMany(GpucloudError):
    status = 429

    def __init__(self, reason: str, retry_after: int):
        super().__init__(reason)
        self.retry_after = retry_after


class WrongLogin(GpucloudError):
    status = 401

    def __init__(self) -> None:
        super().__init__("Wrong e-mail address or password")


@dataclass(frozen=True)
class ConsoleSession:
    """What the browser keeps: the access token (shown once) and how to revoke it."""

    token: str
    token_id: int
    expiry: datetime
    username: str
    email: str


def sign_up(db: Database, email: str, password: str, address: str, *, per_hour: int) -> ConsoleSession:
    """A new account (standard plans only: GPU plans follow the flags) with one user whose
    password is set, logged in."""
    email = email.strip() if isinstance(email, str) else ""
    problems: list[tuple[str | None, str]] = []
    if len(email) > 254 or not _EMAIL.match(email) or has_control_characters(email):
        problems.append(("email", "Enter an e-mail address like name@example.com"))
    reason = root_pass_problem(password)
    if reason is not None:
        problems.append(("password", reason))
    if problems:
        raise ValidationErrors(problems)
    now = utcnow()
    key = f"console-signup:{address[:64]}"
    with db.write() as s:
        until = admin_logins.locked_until(s, [key], now)
        if until is not None:
            raise TooMany("Too many sign-ups from this address; try again later", _seconds(until - now))
        if q.account_by_ref(s, email) is not None:
            raise GpucloudError("An account with this e-mail address already exists; log in instead", "email")
        count = admin_logins.count_failure(s, key, now, now - timedelta(hours=1))
        if count >= per_hour:
            admin_logins.lock(s, key, now + timedelta(hours=1))
    info = accounts.create_account(db, email, username=_free_username(db, email))
    with db.write() as s:
        user = q.first_user(s, info.id)
        assert user is not None
        user.password_hash = hash_password(password)
        audit.record(s, actor=f"customer:{info.username}", action="console.signup", target_type="account",
                     target_id=info.id, after={"address": address[:64]})
        return _open(s, user.id, info.username, email, now)


def log_in(db: Database, email: str, password: str, address: str) -> ConsoleSession:
    """A console token for the user with this e-mail address and password; WrongLogin
    whichever was wrong (the same argon2 cost either way), TooMany while backing off."""
    user_id, username, email = _checked(db, email, password, address)
    with db.write() as s:
        return _open(s, user_id, username, email, utcnow())


def change_password(db: Database, email: str, password: str, new_password: str, address: str) -> ConsoleSession:
    """Set a new password after checking the current one (with log-in's backoff); every
    console session of the user ends and a fresh one is handed back. Personal access tokens
    stay: they are revoked one by one in the profile."""
    reason = root_pass_problem(new_password)
    if reason is None and new_password == password:
        reason = "Choose a password different from the current one"
    if reason is not None:
        raise ValidationErrors([("new_password", reason)])
    user_id, username, email = _checked(db, email, password, address)
    now = utcnow()
    with db.write() as s:
        user = s.get(User, user_id)
        assert user is not None
        user.password_hash = hash_password(new_password)
        q.end_console_sessions(s, user_id)
        audit.record(s, actor=f"customer:{username}", action="console.password.changed", target_type="user",
                     target_id=user_id, after={"address": address[:64]})
        return _open(s, user_id, username, email, now)


def _checked(db: Database, email: str, password: str, address: str) -> tuple[int, str, str]:
    """The user (id, username, e-mail) this e-mail address and password belong to."""
    email = email.strip()[:MAX_INPUT] if isinstance(email, str) else ""
    password = password if isinstance(password, str) else ""
    keys = {"email": f"console-email:{email.lower()}", "address": f"console-address:{address[:64]}"}
    now = utcnow()
    with db.read() as s:
        until = admin_logins.locked_until(s, list(keys.values()), now)
        found = q.user_by_email(s, email) if email and len(password) <= MAX_INPUT else None
        stored = (found[0].id, found[0].username, found[0].email, found[0].password_hash,
                  found[1].active) if found else None
    if until is not None:
        raise TooMany("Too many wrong passwords; try again later", _seconds(until - now))
    ok = verify_password(stored[3] or decoy_hash(), password) if stored else verify_password(decoy_hash(), password)
    if not ok or stored is None or not stored[3] or not stored[4]:
        with db.write() as s:  # committed: the failure counts even though the login is refused
            counts, _ = count_failures(s, keys, FREE_FAILURES)
            audit.record(s, actor=f"address:{address[:64]}", action="console.login.failed", target_type="user",
                         target_id=email[:128], after={"failures": counts})
        raise WrongLogin()
    with db.write() as s:
        admin_logins.clear(s, [keys["email"]])
    return stored[0], stored[1], stored[2]


def refreshed_expiry(kind: str, created: datetime, expires: datetime | None, now: datetime) -> datetime | None:
    """The new expiry of a console token used now, or None when it needs no write."""
    if kind != "console" or expires is None or expires - now > IDLE - REFRESH_EVERY:
        return None
    new = min(now + IDLE, created + MAX_SESSION)
    return new if new > expires else None


def _open(s, user_id: int, username: str, email: str, now: datetime) -> ConsoleSession:
    secret = secrets.token_hex(32)
    expiry = now + IDLE
    token = ApiToken(user_id=user_id, label="console", token_hash=hash_token(secret), token_prefix=secret[:16],
                     scopes=SCOPES, expires_at=expiry, kind="console", created_at=now)
    s.add(token)
    s.flush()
    return ConsoleSession(secret, token.id, expiry, username, email)


def _free_username(db: Database, email: str) -> str:
    base = re.sub(r"[^a-zA-Z0-9_-]", "-", email.split("@")[0])[:24].strip("-_") or "user"
    if len(base) < 3:
        base = f"{base}-user"
    with db.read() as s:
        if q.user_by_username(s, base) is None:
            return base
    return f"{base}-{secrets.token_hex(3)}"


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
