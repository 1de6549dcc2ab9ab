"""What a customer reads about their own account and its users (GET /account, /account/users)."""

from __future__ import annotations

from gpucloud.errors import NotFound
from gpucloud.store import accounts as q
from gpucloud.store.db import Database
from gpucloud.store.tables import Account, User


def account_record(db: Database, account_id: int) -> Account:
    with db.read() as s:
        account = q.account_by_ref(s, account_id)
        if account is None:
            raise NotFound()
        return account


def account_users(db: Database, account_id: int) -> list[User]:
    with db.read() as s:
        return q.users_of_account(s, account_id)
