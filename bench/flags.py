"""Feature-flag benchmark: what the per-process cache costs a request, and what keeping it
fresh costs the database.

    .venv/bin/python bench/flags.py                 # SQLite, and PostgreSQL on 127.0.0.1:5432
    .venv/bin/python bench/flags.py --no-postgres   # SQLite only

Measures, on a fresh database of each kind:
- `FlagCache.enabled()` per call, served from memory (percent state, an account with and
  without an override), and `gpu_allowed()` (two flag look-ups), next to the pure `evaluate()`;
- one poll that finds nothing new (the `flags` counter read every `poll_seconds` per process);
- one poll that finds a change and reloads every flag and N overrides (N = 0, 1,000, 10,000).
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.domain.flags import GPU_INSTANCES, Flag, evaluate
from gpucloud.services import flags
from gpucloud.services.flag_cache import FlagCache
from gpucloud.store import flags as q
from gpucloud.store import migrate
from gpucloud.store.catalog import sync_catalog
from gpucloud.store.db import Database
from gpucloud.store.tables import Account, FlagOverride

PG_ADMIN_URL = os.environ.get("GPUCLOUD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class _Account:
    id: int
    is_staff: bool = False


def per_call_ns(fn, calls: int) -> float:
    """Best of 5 runs of `calls` calls, in nanoseconds per call."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def median_ms(fn, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def prepare(db: Database) -> None:
    migrate.upgrade(db)
    with db.write() as s:
        sync_catalog(s, load_catalog())
        s.add_all(Account(id=i, email=f"a{i}@example.com") for i in range(1, 10_001))
    flags.set_state(db, GPU_INSTANCES, "percent", 10, why="bench", actor="bench")


def add_overrides(db: Database, count: int) -> None:
    """Bring the number of `gpu-instances` overrides to `count` (trials expiring next week)."""
    with db.write() as s:
        have = len(q.overrides(s, GPU_INSTANCES))
        until = utcnow() + timedelta(days=7)
        s.add_all(FlagOverride(flag_key=GPU_INSTANCES, account_id=i, allow=True, expires_at=until)
                  for i in range(have + 1, count + 1))
        q.bump_version(s)


def bench_database(name: str, db: Database) -> list[tuple[str, str]]:
    prepare(db)
    cache = FlagCache(db)
    cache.refresh()
    rows = []
    plain, trial = _Account(5_000), _Account(1)
    add_overrides(db, 1)
    cache.refresh()
    if name == "SQLite":  # memory answers do not depend on the database; measure them once
        flag, now = Flag(GPU_INSTANCES, "percent", 10), utcnow()
        for what, fn in [
            ("`evaluate()` (pure, percent state)", lambda: evaluate(flag, 5_000, False, (), now)),
            ("`enabled()` from memory, no override", lambda: cache.enabled(GPU_INSTANCES, plain)),
            ("`enabled()` from memory, with an override", lambda: cache.enabled(GPU_INSTANCES, trial)),
            ("`gpu_allowed()` from memory (2 flags)", lambda: cache.gpu_allowed(plain, "ap-south")),
        ]:
            rows.append((what, f"{per_call_ns(fn, 200_000) / 1000:.2f} µs"))
    rows.append((f"{name}: one poll, nothing changed", f"{median_ms(cache.refresh, 2_000):.3f} ms"))
    for count in (0, 1_000, 10_000):
        if count:
            add_overrides(db, count)
        else:
            with db.write() as s:
                s.query(FlagOverride).delete()
                q.bump_version(s)

        def poll_and_reload():
            with db.write() as s:
                q.bump_version(s)
            start = time.perf_counter()
            assert cache.refresh()
            return time.perf_counter() - start

        samples = sorted(poll_and_reload() * 1000 for _ in range(21))
        rows.append((f"{name}: one poll that reloads, {count:,} overrides", f"{samples[10]:.2f} ms"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(f"# {platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {platform.platform(terse=True)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.sqlite")
        rows += bench_database("SQLite", db)
        db.dispose()
    if not args.no_postgres:
        name = f"gpucloud_bench_{secrets.token_hex(3)}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            db = Database(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
            rows += bench_database("PostgreSQL", db)
            db.dispose()
        finally:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    width = max(len(r[0]) for r in rows)
    print(f"| {'what'.ljust(width)} | cost |\n|{'-' * (width + 2)}|------|")
    for what, cost in rows:
        print(f"| {what.ljust(width)} | {cost} |")


if __name__ == "__main__":
    sys.exit(main())
