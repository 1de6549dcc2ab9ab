"""Personal access tokens as the public API sees them: who a bearer token is, and the
tokens a user manages for themselves.

A token can only ever hand out or revoke power it holds itself: new tokens are narrowed to
the acting token's scopes, and a token cannot revoke one with scopes it lacks (so a leaked
read-only token cannot lock its owner out by deleting their full-access token).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gpucloud.clock import utcnow
from gpucloud.domain.scopes import ScopeError, narrow, parse_scopes
from gpucloud.errors import GpucloudError, NotFound
from gpucloud.services import accounts
from gpucloud.services.console_login import refreshed_expiry
from gpucloud.store import accounts as q
from gpucloud.store.db import Database
from gpucloud.store.tables import ApiToken

MAX_SECRET_LENGTH = 256  # ours are 64; anything far longer is not worth hashing


class NotPermitted(GpucloudError):
    status = 403

    def __init__(self, reason: str = "Unauthorized", field: str | None = None):
        super().__init__(reason, field)


@dataclass(frozen=True)
class AccountRef:
    """What feature flags need of an account."""

    id: int
    is_staff: bool


@dataclass(frozen=True)
class Identity:
    """Who is calling: the token, its user and their account."""

    token_id: int
    user_id: int
    username: str
    user_email: str
    account: AccountRef
    account_email: str
    scopes: str  # canonical text: '*' or sorted 'resource:level' items

    @property
    def account_id(self) -> int:
        return self.account.id


@dataclass(frozen=True)
class TokenView:
    id: int
    label: str
    scopes: str
    created: datetime
    expiry: datetime | None
    prefix: str


def authenticate(db: Database, secret: str) -> Identity | None:
    """The identity behind a bearer token; None when it is unknown, expired or its account is
    closed (the API answers all three alike, so nothing is learnt by probing)."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    with db.read() as s:
        found = q.token_holder(s, accounts.hash_token(secret))
    if found is None:
        return None
    now = utcnow()
    if (found.expires_at is not None and found.expires_at <= now) or not found.active:
        return None
    slid = refreshed_expiry(found.kind, found.created_at, found.expires_at, now)
    if slid is not None:  # a console token in use: at most one write per few minutes of activity
        with db.write() as s:
            q.slide_expiry(s, found.token_id, slid)
    return Identity(found.token_id, found.user_id, found.username, found.user_email,
                    AccountRef(found.account_id, found.is_staff), found.account_email, found.scopes)


def list_tokens(db: Database, who: Identity) -> list[TokenView]:
    with db.read() as s:
        return [_view(t) for t in q.tokens_of_user(s, who.user_id)]


def get_token(db: Database, who: Identity, token_id: int) -> TokenView:
    with db.read() as s:
        token = q.token_of_user(s, who.user_id, token_id)
        if token is None:
            raise NotFound()
        return _view(token)


def create_token(db: Database, who: Identity, *, label: str = "", scopes: str = "*",
                 expiry: datetime | None = None) -> tuple[TokenView, str]:
    """A new token for the caller's account, never with more scopes than the acting token;
    returns it and its secret (shown once, only the hash is kept)."""
    try:
        granted = narrow(scopes or "*", who.scopes)
    except ScopeError as exc:
        raise GpucloudError(str(exc), field="scopes") from None
    new = accounts.create_token(db, who.account_id, scopes=granted, label=label, expires_at=expiry)
    return get_token(db, who, new.id), new.secret


def parse_expiry(text: str | None) -> datetime | None:
    """A token's expiry as sent (`2030-01-31T00:00:00`, an offset allowed) in naive UTC; None
    for never. Times that exist in no calendar once moved to UTC (year 0 or 10000) are refused
    like any other bad time."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    except (ValueError, OverflowError):
        raise GpucloudError("expiry must be a time like 2030-01-31T00:00:00", field="expiry") from None


def rename_token(db: Database, who: Identity, token_id: int, label: str) -> TokenView:
    if len(label) > 100:
        raise GpucloudError("label must be at most 100 characters", field="label")
    with db.write() as s:
        token = q.token_of_user(s, who.user_id, token_id)
        if token is None:
            raise NotFound()
        token.label = label
        return _view(token)


def revoke_token(db: Database, who: Identity, token_id: int) -> None:
    with db.write() as s:
        token = q.token_of_user(s, who.user_id, token_id)
        if token is None:
            raise NotFound()
        if token.id != who.token_id and not _covers(who.scopes, token.scopes):
            raise NotPermitted()
        s.delete(token)


def _covers(acting: str, other: str) -> bool:
    try:
        have, want = parse_scopes(acting), parse_scopes(other)
    except ScopeError:
        return False
    return all(have.get(resource, 0) >= level for resource, level in want.items())


def _view(t: ApiToken) -> TokenView:
    return TokenView(t.id, t.label, t.scopes, t.created_at, t.expires_at, t.token_prefix)
