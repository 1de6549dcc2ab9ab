"""Who may see and use GPU plans: the feature flags' answer, one cache per process.

Every decision about GPU visibility or use (types list, region capability, create, resize,
boot) goes through here, so the API, the admin interface and the services agree.
"""

from __future__ import annotations

import threading
import weakref

from sqlalchemy.orm import Session

from gpucloud.domain import trials
from gpucloud.domain.catalog import Plan
from gpucloud.errors import GpucloudError, NotFound
from gpucloud.services.flag_cache import AccountLike, FlagCache
from gpucloud.store import trials as trial_q
from gpucloud.store.db import Database
from gpucloud.store.tables import Account

_caches: weakref.WeakKeyDictionary[Database, FlagCache] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def flags_for(db: Database) -> FlagCache:
    """The flag cache of this database handle (one per process in production)."""
    with _lock:
        cache = _caches.get(db)
        if cache is None:
            cache = _caches[db] = FlagCache(db)
        return cache


def require_gpu_access(db: Database, account: AccountLike, region_id: str) -> None:
    """A customer-facing 400 unless GPU plans are open to this account in this region
    (decided in memory: the account is already in hand, no transaction of its own). The
    reason names the real cause: an account whose GPU trial ended is told so, and what to
    do, rather than "not available to this account" (one read, on refusals only)."""
    try:
        flags_for(db).require_gpu(account, region_id)
    except GpucloudError as refused:
        with db.read() as s:
            trial = trial_q.latest(s, account.id)
        if trial is None or trial.status != trials.ENDED or trial.ends_at is None:
            raise
        raise GpucloudError(trials.ended_reason(trial.ends_at, trial.disks_until), field=refused.field) from None


def account_in(s: Session, account_id: int) -> Account:
    """The account, read in the caller's transaction (for `require_gpu_access`)."""
    account = s.get(Account, account_id)
    if account is None:
        raise NotFound()
    return account


def hidden_plan(db: Database, account: AccountLike | None, plan: Plan) -> bool:
    """A GPU plan this account cannot see in /linode/types: the API answers it exactly like a
    plan that does not exist, so probing cannot confirm unreleased plans (decided in memory)."""
    return plan.is_gpu and not flags_for(db).gpu_types_visible(account)
