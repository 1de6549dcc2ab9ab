"""The capacity sampler: one sample per period whatever the number of processes, and the
chart's history summed per instant."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import func, select

from gpucloud.services import capacity_samples, hosts
from gpucloud.services.capacity import capacity
from gpucloud.store.db import Database
from gpucloud.store.tables import CapacitySample
from tests.factories import two_node_host

T0 = datetime(2026, 3, 2, 10, 0, 0)


def _count(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(CapacitySample))


def _fleet(db, settings):
    hosts.register_host(db, settings, name="gpu-1", region="us-east", topology=two_node_host(), driver="sim",
                        profile="test")
    hosts.register_host(db, settings, name="gpu-2", region="ap-west", topology=two_node_host(), driver="sim",
                        profile="test")


def test_one_sample_per_period(store_db, settings):
    _fleet(store_db, settings)
    rows = capacity(store_db, settings)

    assert capacity_samples.record_sample(store_db, settings, now=T0)
    assert not capacity_samples.record_sample(store_db, settings, now=T0 + timedelta(seconds=299))
    assert _count(store_db) == len(rows) == 2
    assert capacity_samples.record_sample(store_db, settings, now=T0 + timedelta(seconds=300))
    assert _count(store_db) == 4


def test_racing_samplers_record_a_period_once(store_db, settings):
    """Eight samplers with their own connections, as eight processes would be, at one instant."""
    _fleet(store_db, settings)
    handles = [Database(store_db.url) for _ in range(8)]
    barrier = threading.Barrier(len(handles))
    won = []

    def sample(db):
        barrier.wait()
        won.append(capacity_samples.record_sample(db, settings, now=T0))

    threads = [threading.Thread(target=sample, args=(db,)) for db in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for db in handles:
        db.dispose()
    assert sorted(won) == [False] * 7 + [True]
    assert _count(store_db) == 2


def test_history_sums_regions_and_models_per_instant(store_db, settings):
    _fleet(store_db, settings)
    capacity_samples.record_sample(store_db, settings, now=T0)
    hosts.set_host_status(store_db, "gpu-2", "draining", why="test", actor="test")
    capacity_samples.record_sample(store_db, settings, now=T0 + timedelta(minutes=5))

    fleet = capacity_samples.history(store_db, T0 - timedelta(hours=1))
    assert [(p["at"], p["total"], p["free"], p["unavailable"]) for p in fleet] == [
        (T0, 8, 8, 0), (T0 + timedelta(minutes=5), 8, 4, 4)]
    east = capacity_samples.history(store_db, T0 - timedelta(hours=1), region="us-east")
    assert [(p["free"], p["unavailable"]) for p in east] == [(4, 0), (4, 0)]
    assert capacity_samples.history(store_db, T0 + timedelta(minutes=1)) == fleet[1:]


def test_the_sampler_thread_records_at_once_and_stops(sqlite_db, tmp_path):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, sqlite_db.url)
    _fleet(sqlite_db, settings)
    sampler = capacity_samples.Sampler(sqlite_db, settings, every_seconds=300).start()
    try:
        for _ in range(100):
            if _count(sqlite_db):
                break
            threading.Event().wait(0.05)
    finally:
        sampler.stop()
    assert _count(sqlite_db) == 2
    assert not sampler._thread.is_alive()
