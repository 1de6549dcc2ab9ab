"""Accounts, tokens (hashed, scoped, expiring) and admin users."""

from datetime import timedelta

import pytest

from gpucloud.clock import utcnow
from gpucloud.errors import Conflict, GpucloudError, NotFound
from gpucloud.services import accounts
from gpucloud.store import accounts as q


def test_account_gets_a_first_user_and_duplicates_are_refused(store_db):
    info = accounts.create_account(store_db, "Ada@Example.com", staff=True)
    assert (info.email, info.is_staff, info.username) == ("Ada@Example.com", True, "Ada")
    with pytest.raises(Conflict):
        accounts.create_account(store_db, "ada@example.com")  # e-mail match ignores case
    with pytest.raises(GpucloudError, match="not an e-mail"):
        accounts.create_account(store_db, "not-an-email")
    assert accounts.get_account(store_db, info.id).email == "Ada@Example.com"
    with pytest.raises(NotFound):
        accounts.get_account(store_db, "nobody@example.com")


def test_token_secret_is_shown_once_and_only_its_hash_is_stored(store_db):
    accounts.create_account(store_db, "bob@example.com")
    new = accounts.create_token(store_db, "bob@example.com", scopes="linodes:read_write, events:read_only")
    assert new.scopes == "events:read_only linodes:read_write"
    with store_db.read() as s:
        token, user, account = q.token_by_hash(s, accounts.hash_token(new.secret))
        assert new.secret not in (token.token_hash, token.token_prefix + "x")
        assert account.email == "bob@example.com" and user.username == "bob"
        assert q.token_by_hash(s, accounts.hash_token(new.secret + "0")) is None


@pytest.mark.parametrize("scopes", ["linodes", "linodes:admin", "rockets:read_only", ""])
def test_bad_scopes_are_refused(store_db, scopes):
    accounts.create_account(store_db, "carol@example.com")
    with pytest.raises(GpucloudError) as err:
        accounts.create_token(store_db, "carol@example.com", scopes=scopes)
    assert err.value.field == "scopes"


def test_expiry_must_be_in_the_future(store_db):
    accounts.create_account(store_db, "dan@example.com")
    with pytest.raises(GpucloudError, match="future"):
        accounts.create_token(store_db, "dan@example.com", expires_at=utcnow() - timedelta(minutes=1))


def test_admin_passwords_are_argon2_hashed(store_db):
    accounts.create_admin(store_db, "ops", "correct horse battery", "support")
    with store_db.read() as s:
        admin = q.admin_by_username(s, "ops")
    assert admin.password_hash.startswith("$argon2")
    assert accounts.verify_password(admin.password_hash, "correct horse battery")
    assert not accounts.verify_password(admin.password_hash, "wrong")
    with pytest.raises(GpucloudError, match="10 characters"):
        accounts.create_admin(store_db, "ops2", "short")
