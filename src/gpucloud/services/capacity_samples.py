"""Recording the fleet's capacity every few minutes, for the admin dashboard's chart.

Every serving process runs a `Sampler` thread; the sample periods are slots shared through
the database (`store.capacity_samples.claim_slot`), so however many processes run, each
period is recorded once. The numbers are `services.capacity.capacity`'s, the same the
dashboard table and `gpucloud capacity` show.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import datetime, timedelta

from gpucloud.clock import utcnow
from gpucloud.config import Settings
from gpucloud.services.capacity import capacity
from gpucloud.store import capacity_samples as q
from gpucloud.store.db import Database

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 300
RETENTION = timedelta(days=30)
_EPOCH = datetime(1970, 1, 1)
_JITTER = random.Random()  # not the global generator: seeded code may share this process


def slot_of(at: datetime, every_seconds: int = SAMPLE_SECONDS) -> int:
    return int((at - _EPOCH).total_seconds() // every_seconds)


def record_sample(db: Database, settings: Settings, *, now: datetime | None = None,
                  every_seconds: int = SAMPLE_SECONDS) -> bool:
    """Record the current capacity unless this period already has a sample (from this or
    another process). True when this call recorded it."""
    now = now or utcnow()
    rows = capacity(db, settings)
    with db.write() as s:
        if not q.claim_slot(s, slot_of(now, every_seconds)):
            return False
        q.add_samples(s, now, rows)
        q.prune_before(s, now - RETENTION)
        return True


def history(db: Database, since: datetime, *, region: str | None = None,
            gpu_model: str | None = None) -> list[dict]:
    """Samples since `since`, summed per instant over the regions and models selected:
    [{at, total, claimed, free, unavailable}], oldest first."""
    with db.read() as s:
        rows = q.samples_since(s, since, region=region, gpu_model=gpu_model)
    points: dict[datetime, dict] = {}
    for r in rows:
        p = points.setdefault(r.at, {"at": r.at, "total": 0, "claimed": 0, "free": 0, "unavailable": 0})
        for name in ("total", "claimed", "free", "unavailable"):
            p[name] += getattr(r, name)
    return list(points.values())


class Sampler:
    """A daemon thread recording a sample at the start of every period (with a few seconds
    of jitter so processes started together do not all try at once)."""

    def __init__(self, db: Database, settings: Settings, every_seconds: int = SAMPLE_SECONDS):
        self.db, self.settings, self.every_seconds = db, settings, every_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Sampler:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="capacity-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if record_sample(self.db, self.settings, every_seconds=self.every_seconds):
                    log.info("capacity sample recorded")
            except Exception:  # the database may be away; the next period tries again
                log.exception("capacity sample failed")
            into_period = (utcnow() - _EPOCH).total_seconds() % self.every_seconds
            self._stop.wait(self.every_seconds - into_period + _JITTER.uniform(0.5, 5.0))
