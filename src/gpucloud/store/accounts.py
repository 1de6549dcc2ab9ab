"""Queries about accounts, users, API tokens and admin users."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from gpucloud.store.tables import Account, AdminUser, ApiToken, Host, User


def account_by_ref(session: Session, ref: str | int) -> Account | None:
    """An account by id or by e-mail, the two ways operators name one."""
    text = str(ref).strip()
    if text.isdigit():
        return session.get(Account, int(text))
    return session.scalar(select(Account).where(func.lower(Account.email) == text.lower()))


def search_accounts(session: Session, query: str = "", limit: int = 100) -> list[Account]:
    stmt = select(Account).order_by(Account.id).limit(limit)
    q = query.strip()
    if q:
        conditions: list[ColumnElement[bool]] = [Account.email.ilike(f"%{q}%"), Account.company.ilike(f"%{q}%")]
        if q.isdigit():
            conditions.append(Account.id == int(q))
        stmt = stmt.where(or_(*conditions))
    return list(session.scalars(stmt))


def first_user(session: Session, account_id: int) -> User | None:
    return session.scalar(select(User).where(User.account_id == account_id).order_by(User.id).limit(1))


def user_by_username(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def token_by_hash(session: Session, token_hash: str) -> tuple[ApiToken, User, Account] | None:
    row = session.execute(
        select(ApiToken, User, Account)
        .join(User, ApiToken.user_id == User.id)
        .join(Account, User.account_id == Account.id)
        .where(ApiToken.token_hash == token_hash)
    ).first()
    return (row[0], row[1], row[2]) if row else None


class TokenHolder(NamedTuple):
    """What authenticating a request needs of a token, its user and its account (plain columns:
    loading the three rows as ORM objects cost more than the query on every request)."""
    token_id: int
    kind: str
    scopes: str
    created_at: datetime
    expires_at: datetime | None
    user_id: int
    username: str
    user_email: str
    account_id: int
    is_staff: bool
    active: bool
    account_email: str


_HOLDER = (select(ApiToken.id, ApiToken.kind, ApiToken.scopes, ApiToken.created_at, ApiToken.expires_at, User.id,
                  User.username, User.email, Account.id, Account.is_staff, Account.active, Account.email)
           .join(User, ApiToken.user_id == User.id).join(Account, User.account_id == Account.id)
           .where(ApiToken.token_hash == bindparam("token_hash")))


def token_holder(session: Session, token_hash: str) -> TokenHolder | None:
    """The token with this hash and who holds it (one statement, built once)."""
    row = session.connection().execute(_HOLDER, {"token_hash": token_hash}).first()
    return TokenHolder._make(row) if row else None


def tokens_of_user(session: Session, user_id: int) -> list[ApiToken]:
    """The user's personal access tokens (console sessions' tokens are not listed)."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.kind == "personal")
                                .order_by(ApiToken.id)))


def end_console_sessions(session: Session, user_id: int) -> None:
    """Revoke every console access token of the user (a password change ends them all)."""
    session.execute(delete(ApiToken).where(ApiToken.user_id == user_id, ApiToken.kind == "console"))


def user_by_email(session: Session, email: str) -> tuple[User, Account] | None:
    """The first user with this e-mail address (any case) and their account."""
    row = session.execute(select(User, Account).join(Account, User.account_id == Account.id)
                          .where(func.lower(User.email) == email.lower()).order_by(User.id).limit(1)).first()
    return (row[0], row[1]) if row else None


def slide_expiry(session: Session, token_id: int, expires_at: datetime) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(expires_at=expires_at))


def admin_by_username(session: Session, username: str) -> AdminUser | None:
    return session.scalar(select(AdminUser).where(AdminUser.username == username))


def token_of_user(session: Session, user_id: int, token_id: int) -> ApiToken | None:
    """A token, only if it belongs to this user (anything else reads as absent)."""
    return session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))


def users_of_account(session: Session, account_id: int) -> list[User]:
    return list(session.scalars(select(User).where(User.account_id == account_id).order_by(User.id)))


def holds_nothing(session: Session) -> bool:
    """No host and no account: a database nobody has used yet."""
    from_hosts = session.scalar(select(Host.id).limit(1))
    return from_hosts is None and session.scalar(select(Account.id).limit(1)) is None
