"""The per-process flag cache: answers from memory, reloads when the version moves, and a
change made by one process reaches a cache in another within the poll interval."""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from gpucloud.clock import utcnow
from gpucloud.errors import GpucloudError
from gpucloud.services import accounts, flags
from gpucloud.services.flag_cache import FlagCache
from gpucloud.services.flags import UnknownFlag

GPU = "gpu-instances"
ROOT = Path(__file__).resolve().parents[2]


class Ticker:
    """A monotonic clock the test moves by hand, so 'within the poll interval' needs no sleep."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def people(store_db):
    return (accounts.create_account(store_db, "customer@example.com"),
            accounts.create_account(store_db, "staff@example.com", staff=True))


def _change(db, state, percent=None, key=GPU):
    flags.set_state(db, key, state, percent, why="test", actor="test")


def test_answers_come_from_memory_until_the_poll_interval_passes(store_db, people):
    customer, staff = people
    ticker = Ticker()
    cache = FlagCache(store_db, poll_seconds=2.0, monotonic=ticker)
    assert not cache.enabled(GPU, customer) and not cache.enabled(GPU, staff)

    _change(store_db, "staff")
    ticker.t = 1.9
    assert not cache.enabled(GPU, staff)  # still the copy in memory
    ticker.t = 2.0
    assert cache.enabled(GPU, staff) and not cache.enabled(GPU, customer)
    assert cache.version == 1


def test_a_poll_reloads_only_when_the_version_moved(store_db, people):
    cache = FlagCache(store_db)
    assert cache.version == 0
    assert cache.refresh() is False
    _change(store_db, "on")
    assert cache.refresh() is True and cache.version == 1
    assert cache.refresh() is False
    assert cache.enabled(GPU, people[0]) and cache.enabled(GPU, None)


def test_a_trial_ends_at_its_expiry_without_any_change_in_the_database(store_db, people):
    customer, _ = people
    now = [utcnow()]
    cache = FlagCache(store_db, now=lambda: now[0])
    flags.allow(store_db, GPU, customer.id, until=now[0] + timedelta(days=7), why="trial", actor="test")
    cache.refresh()
    assert cache.enabled(GPU, customer)
    now[0] += timedelta(days=7)
    assert not cache.enabled(GPU, customer) and cache.refresh() is False


def test_gpu_gates_follow_the_global_and_region_flags(store_db, people):
    customer, staff = people
    cache = FlagCache(store_db)
    assert not cache.gpu_types_visible(customer) and not cache.gpu_allowed(customer, "ap-south")
    with pytest.raises(GpucloudError, match="not available to this account in region ap-south") as err:
        cache.require_gpu(customer, "ap-south")
    assert err.value.field == "type"

    _change(store_db, "on", key="gpu-region-ap-south")
    cache.refresh()
    assert cache.gpu_types_visible(customer) and cache.gpu_allowed(customer, "ap-south")
    assert not cache.gpu_allowed(customer, "us-east")
    cache.require_gpu(customer, "ap-south")

    _change(store_db, "staff")
    cache.refresh()
    assert cache.gpu_allowed(staff, "us-east") and not cache.gpu_allowed(customer, "us-east")
    assert not cache.gpu_allowed(staff, "us-central")  # a region without GPUs stays closed
    assert cache.gpu_allowed(None, "ap-south") and not cache.gpu_allowed(None, "us-east")  # anonymous


def test_code_asking_for_an_unknown_flag_is_told_at_once(store_db):
    with pytest.raises(UnknownFlag, match="unknown flag 'gpu-instance'"):
        FlagCache(store_db).enabled("gpu-instance", None)


def test_a_failed_poll_keeps_the_last_copy(sqlite_db, caplog):
    ticker = Ticker()
    cache = FlagCache(sqlite_db, poll_seconds=2.0, monotonic=ticker)
    _change(sqlite_db, "on")
    assert cache.enabled(GPU, None)
    with sqlite_db.write() as s:
        s.execute(text("DROP TABLE counters"))  # the poll's one query now fails
    ticker.t = 5.0
    with caplog.at_level(logging.WARNING, logger="gpucloud.services.flag_cache"):
        assert cache.enabled(GPU, None)
    assert "poll failed, keeping version 1" in caplog.text


class Watcher:
    """`tests.flags.watcher` in a subprocess; `next()` waits for its next answer."""

    def __init__(self, url: str, account_id: int, poll_seconds: float):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.flags.watcher", url, GPU, str(account_id), str(poll_seconds)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def next(self, within: float) -> str:
        try:
            return self.lines.get(timeout=within)
        except queue.Empty:
            alive = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
            raise AssertionError(f"the watcher ({alive}) said nothing within {within} s") from None

    def stop(self) -> str:
        self.process.terminate()
        _, err = self.process.communicate(timeout=10)
        return err


def test_a_change_reaches_a_cache_in_another_process_within_the_poll_interval(store_db, people):
    """One process changes the flag; the other, polling every 0.5 s, flips within the interval
    plus a generous allowance for a loaded machine (5 s). Runs on PostgreSQL (separate servers'
    processes) and on SQLite (`gpucloud serve` beside a `gpucloud flags` command)."""
    customer, _ = people
    poll, allowance = 0.5, 5.0
    watcher = Watcher(store_db.url, customer.id, poll)
    try:
        assert watcher.next(within=60) == "off"  # started: imports and the first load
        _change(store_db, "on")
        assert watcher.next(within=poll + allowance) == "on"
        flags.deny(store_db, GPU, customer.id, why="test", actor="test")
        assert watcher.next(within=poll + allowance) == "off"
        flags.clear(store_db, GPU, customer.id, why="test", actor="test")
        assert watcher.next(within=poll + allowance) == "on"
    finally:
        err = watcher.stop()
    assert "Traceback" not in err, err
