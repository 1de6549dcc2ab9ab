"""Accounts as operators see them (instances, flags and overrides, staff status), and the
operator's audited change of staff status."""

from __future__ import annotations

from gpucloud.errors import GpucloudError, NotFound
from gpucloud.services import flags as flag_service
from gpucloud.services import instance_admin
from gpucloud.services.gating import flags_for
from gpucloud.store import accounts as q
from gpucloud.store import audit
from gpucloud.store.claims import bump_hosts, hosts_of_account
from gpucloud.store.db import Database


def search(db: Database, query: str = "", limit: int = 100) -> list[dict]:
    """Accounts whose e-mail or company contains `query`, or whose id it is."""
    with db.read() as s:
        return [_summary(a) for a in q.search_accounts(s, query, limit)]


def overview(db: Database, ref: str | int) -> dict:
    """The account page: who it is, its users, its instances (host, GPUs, NUMA nodes), and for
    every flag the code knows its state, this account's override and the answer for it."""
    with db.read() as s:
        account = q.account_by_ref(s, ref)
        if account is None:
            raise NotFound(f"no account {ref}")
        users = [{"id": u.id, "username": u.username, "email": u.email} for u in q.users_of_account(s, account.id)]
        summary = _summary(account)
    cache = flags_for(db)
    flags = []
    for view in flag_service.list_flags(db):
        if not view.known:
            continue
        override = next((o for o in view.overrides if o.account_id == account.id), None)
        flags.append({"key": view.key, "state": view.state, "percent": view.percent,
                      "override": override, "enabled": cache.enabled(view.key, account)})
    return {**summary, "users": users, "instances": instance_admin.of_account(db, account.id), "flags": flags}


def set_staff(db: Database, ref: str | int, staff: bool, *, why: str, actor: str) -> bool:
    """Make an account staff (it sees flags in the `staff` state) or a customer again.
    Audited with the reason; True when it changed anything."""
    if not why.strip():
        raise GpucloudError("say why the staff status changes (it is kept in the audit log)", field="why")
    with db.write() as s:
        account = q.account_by_ref(s, ref)
        if account is None:
            raise NotFound(f"no account {ref}")
        if account.is_staff == staff:
            return False
        before = {"is_staff": account.is_staff}
        account.is_staff = staff
        bump_hosts(s, hosts_of_account(s, account.id))  # their GPUs now count as staff's or customers'
        audit.record(s, actor=actor, action="account.staff", target_type="account", target_id=account.id,
                     before=before, after={"is_staff": staff}, why=why.strip())
        return True


def _summary(account) -> dict:
    return {"id": account.id, "email": account.email, "company": account.company, "is_staff": account.is_staff,
            "active": account.active, "created": account.created_at}
