"""Who may see and use GPU plans: the feature flags' answer, one cache per process.

Every decision about GPU visibility or use (types list, region capability, create, resize,
boot) goes through here, so the API, the admin interface and the services agree.
"""

from __future__ import annotations

import threading
import weakref

from gpucloud.domain.catalog import Plan
from gpucloud.errors import NotFound
from gpucloud.services.flag_cache import FlagCache
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


def require_gpu_access(db: Database, account_id: int, region_id: str) -> None:
    """A customer-facing 400 unless GPU plans are open to this account in this region."""
    with db.read() as s:
        account = s.get(Account, account_id)
        if account is None:
            raise NotFound()
        flags_for(db).require_gpu(account, region_id)


def hidden_plan(db: Database, account_id: int, plan: Plan) -> bool:
    """A GPU plan this account cannot see in /linode/types: the API answers it exactly like a
    plan that does not exist, so probing cannot confirm unreleased plans."""
    if not plan.is_gpu:
        return False
    with db.read() as s:
        return not flags_for(db).gpu_types_visible(s.get(Account, account_id))
