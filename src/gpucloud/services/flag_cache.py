"""A per-process copy of every flag, answering `enabled()` from memory.

Why polling: every flag change bumps the `flags` counter in its own transaction, so a process
only has to read one row (a primary-key lookup) every `poll_seconds` to know whether its copy
is stale, and reloads flags and overrides only when the number moved. That works the same on
SQLite and PostgreSQL, needs no listener thread or long-lived connection, and bounds staleness
to `poll_seconds` plus one query. The poll happens lazily on the first call after the interval,
on the caller's thread; other threads keep answering from the old copy meanwhile.

If the database cannot be reached at poll time, the last copy keeps answering (a warning is
logged) and the poll is retried after the next interval.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.domain import flags as rules
from gpucloud.domain.catalog import Catalog
from gpucloud.errors import GpucloudError
from gpucloud.services.flags import UnknownFlag
from gpucloud.store import flags as q
from gpucloud.store.db import Database

log = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 2.0


class AccountLike(Protocol):
    """What the cache needs of an account: a `store.tables.Account`, an `AccountRef`..."""

    @property
    def id(self) -> int: ...

    @property
    def is_staff(self) -> bool: ...


@dataclass(frozen=True)
class _Snapshot:
    version: int
    flags: dict[str, rules.Flag]  # every known key; unstored ones are off
    overrides: dict[str, dict[int, rules.Override]]  # key -> account id -> override


class FlagCache:
    """One per process. `enabled`, `gpu_allowed`, `gpu_types_visible` and `require_gpu` are the
    questions the API asks; `refresh` forces a poll (e.g. right after a change in this process)."""

    def __init__(self, db: Database, *, poll_seconds: float = DEFAULT_POLL_SECONDS,
                 catalog: Catalog | None = None, now: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic):
        catalog = catalog or load_catalog()
        self.db = db
        self.poll_seconds = poll_seconds
        self._known = rules.known_flags(catalog)
        self._gpu_regions = rules.gpu_region_ids(catalog)
        self._now = now
        self._monotonic = monotonic
        self._snapshot: _Snapshot | None = None
        self._checked_at = -math.inf
        self._lock = threading.Lock()

    # --- the questions ----------------------------------------------------------------------

    def enabled(self, key: str, account: AccountLike | None) -> bool:
        """Whether flag `key` is on for `account` (None: an anonymous caller). Unknown keys raise
        `UnknownFlag`: code must name flags from `gpucloud.domain.flags`."""
        if key not in self._known:
            raise UnknownFlag(key)
        snapshot = self._current()
        account_id = account.id if account is not None else None
        override = snapshot.overrides.get(key, {}).get(account_id) if account_id is not None else None
        return rules.evaluate(snapshot.flags[key], account_id, bool(account is not None and account.is_staff),
                              (override,) if override else (), self._now())

    def gpu_allowed(self, account: AccountLike | None, region_id: str) -> bool:
        """GPU plans in `region_id` for this account: the 'GPU Linodes' capability of the region,
        and create, resize into and boot of GPU plans there."""
        return rules.gpu_allowed_in_region(lambda key: self.enabled(key, account), region_id, self._gpu_regions)

    def gpu_types_visible(self, account: AccountLike | None) -> bool:
        """Whether GPU types are listed in /v4/linode/types for this account (open in some region)."""
        return rules.gpu_types_visible(lambda key: self.enabled(key, account), self._gpu_regions)

    def require_gpu(self, account: AccountLike | None, region_id: str) -> None:
        """Raise a customer-facing error unless GPU plans are open to the account in the region."""
        if not self.gpu_allowed(account, region_id):
            raise GpucloudError(f"GPU plans are not available to this account in region {region_id}",
                                field="type")

    @property
    def version(self) -> int:
        """The flags version of the copy in memory (loads it on first use)."""
        return self._current().version

    # --- keeping the copy fresh -------------------------------------------------------------

    def refresh(self) -> bool:
        """Poll the version counter now and reload when it moved; True when it reloaded."""
        with self._lock:
            return self._poll()

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._monotonic() - self._checked_at < self.poll_seconds:
            return snapshot
        if snapshot is None:
            self.refresh()  # the first load must succeed: there is nothing to fall back on
        elif self._lock.acquire(blocking=False):  # one thread polls; the others use the old copy
            try:
                self._poll()
            except SQLAlchemyError as exc:
                self._checked_at = self._monotonic()
                log.warning("feature flags: poll failed, keeping version %s: %s", snapshot.version, exc)
            finally:
                self._lock.release()
        loaded = self._snapshot
        if loaded is None:
            raise RuntimeError("feature flags: no copy in memory after loading them")
        return loaded

    def _poll(self) -> bool:
        with self.db.read() as s:
            version = q.version(s)
            reload = self._snapshot is None or version != self._snapshot.version
            if reload:  # version read first: a change landing meanwhile shows up at the next poll
                self._snapshot = self._load(s, version)
        self._checked_at = self._monotonic()
        return reload

    def _load(self, s, version: int) -> _Snapshot:
        flags = {key: rules.Flag(key) for key in self._known}
        for row in q.all_flags(s):
            if row.key in self._known:
                flags[row.key] = rules.Flag(row.key, row.state, row.percent)
        overrides: dict[str, dict[int, rules.Override]] = {}
        for key, account_id, allow, expires_at in q.override_tuples(s):
            overrides.setdefault(key, {})[account_id] = rules.Override(account_id, allow, expires_at)
        return _Snapshot(version, flags, overrides)
