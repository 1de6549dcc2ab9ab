"""Accounts, their users and API tokens; admin (operator) users."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy.exc import IntegrityError

from gpucloud.clock import utcnow
from gpucloud.domain.scopes import ScopeError, normalise_scopes
from gpucloud.errors import Conflict, GpucloudError, NotFound
from gpucloud.store import accounts as q
from gpucloud.store.db import Database
from gpucloud.store.tables import Account, AdminUser, ApiToken, User

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USERNAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,31}$")
_hasher = PasswordHasher()


def hash_token(secret: str) -> str:
    """Tokens are 256-bit random strings, so one SHA-256 is enough (no stretching needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class AccountInfo:
    id: int
    email: str
    is_staff: bool
    username: str


@dataclass(frozen=True)
class NewToken:
    id: int
    secret: str  # shown once, never stored
    scopes: str
    expires_at: datetime | None


def create_account(db: Database, email: str, *, staff: bool = False, username: str | None = None,
                   company: str = "") -> AccountInfo:
    """An account and its first (unrestricted) user."""
    email = email.strip()
    if not _EMAIL.match(email):
        raise GpucloudError(f"not an e-mail address: {email!r}", field="email")
    username = username or re.sub(r"[^a-zA-Z0-9_-]", "-", email.split("@")[0])[:32]
    if len(username) < 3:
        username = (username + "-user")[:32]
    if not _USERNAME.match(username):
        raise GpucloudError(f"username must be 3-32 letters, digits, - or _: {username!r}", field="username")
    try:
        with db.write() as s:
            if q.account_by_ref(s, email):
                raise Conflict(f"an account with e-mail {email} already exists")
            if q.user_by_username(s, username):
                raise Conflict(f"username {username} is taken")
            account = Account(email=email, is_staff=staff, company=company)
            s.add(account)
            s.flush()
            s.add(User(account_id=account.id, username=username, email=email))
            return AccountInfo(account.id, email, staff, username)
    except IntegrityError:
        raise Conflict(f"an account with e-mail {email} or username {username} already exists") from None


def get_account(db: Database, ref: str | int) -> AccountInfo:
    with db.read() as s:
        account = q.account_by_ref(s, ref)
        if not account:
            raise NotFound(f"no account {ref}")
        user = q.first_user(s, account.id)
        return AccountInfo(account.id, account.email, account.is_staff, user.username if user else "")


def create_token(db: Database, account_ref: str | int, *, scopes: str = "*", label: str = "",
                 expires_at: datetime | None = None) -> NewToken:
    """A personal access token for the account's first user. The secret is returned once."""
    try:
        scopes = normalise_scopes(scopes)
    except ScopeError as exc:
        raise GpucloudError(str(exc), field="scopes") from None
    if expires_at is not None and expires_at <= utcnow():
        raise GpucloudError("expiry must be in the future", field="expiry")
    if len(label) > 100:
        raise GpucloudError("label must be at most 100 characters", field="label")
    secret = secrets.token_hex(32)
    with db.write() as s:
        account = q.account_by_ref(s, account_ref)
        if not account:
            raise NotFound(f"no account {account_ref}")
        user = q.first_user(s, account.id)
        if not user:
            raise NotFound(f"account {account_ref} has no user")
        token = ApiToken(user_id=user.id, label=label, token_hash=hash_token(secret), token_prefix=secret[:16],
                         scopes=scopes, expires_at=expires_at)
        s.add(token)
        s.flush()
        return NewToken(token.id, secret, scopes, expires_at)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def create_admin(db: Database, username: str, password: str, role: str = "admin") -> None:
    if role not in ("admin", "support"):
        raise GpucloudError("role must be admin or support", field="role")
    if len(password) < 10:
        raise GpucloudError("admin passwords need at least 10 characters", field="password")
    with db.write() as s:
        if q.admin_by_username(s, username):
            raise Conflict(f"admin user {username} already exists")
        s.add(AdminUser(username=username, password_hash=hash_password(password), role=role))


def database_is_new(db: Database) -> bool:
    """Whether the database holds no host and no account yet (a fresh data dir, or the wrong one)."""
    with db.read() as s:
        return q.holds_nothing(s)
