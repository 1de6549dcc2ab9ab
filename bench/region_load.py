"""CPU to load a region's host states into a process (issue #17: the first create of a process).

    .venv/bin/python bench/region_load.py                        # 10,000 hosts on PostgreSQL, 3 rounds
    .venv/bin/python bench/region_load.py --hosts 1000 --database sqlite
    .venv/bin/python bench/region_load.py --url postgresql+psycopg://...   # a store already registered

A fresh store with `--hosts` simulated hosts of claims.py's fleet mix in one region, registered
as `gpucloud host add` registers them (or `--url`: a store that has them). Each round opens the
database anew (the process's host caches are per connection pool, so it starts cold, as a
restarted API process does) and takes the thread CPU (`time.thread_time`) of reading every host
state of the region (`host_states.build_states`), then of the view a first create builds
(`host_states.all_states`: the same read, the index over the hosts and its ranking for every
plan of the catalog), and of one host read again (what the generation-based refresh does for a
host changed by another process). With the view loaded, it also times a full garbage collection
(`gc.collect()`) as the process has it, then again once what is alive is frozen (`gc.freeze()`,
what `services.preload` does after loading the views at start). Last, per round, the thread CPU
of a process's first create (`create_instance`, one account of its own): cold, and after
`preload.load_views` (timed apart). That writes two instances a round into the store.
"""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _store import machine, register_fleet, scratch, table
from claims import FLEET_MIX, PLAN_MIX, REGION
from sqlalchemy import select

from gpucloud.config import Settings
from gpucloud.services import accounts, instances, preload
from gpucloud.services.placement_config import placement_config
from gpucloud.store import host_states
from gpucloud.store.db import Database
from gpucloud.store.tables import Host


def rounds(url: str, settings: Settings, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"read": [], "view": [], "one host": [], "collection": [], "frozen": []}
    for _ in range(n):
        for part in ("read", "view"):
            db = Database(url)  # a new pool: nothing of the region cached yet
            with db.read() as s:
                ids = list(s.scalars(select(Host.id).where(Host.region_id == REGION)))
                started = time.thread_time()
                if part == "read":
                    host_states.build_states(s, ids)
                else:
                    host_states.all_states(s, placement_config(settings), REGION)
                out[part].append(time.thread_time() - started)
                if part == "read":
                    started = time.thread_time()
                    host_states.build_states(s, ids[len(ids) // 2:len(ids) // 2 + 1])
                    out["one host"].append(time.thread_time() - started)
            if part == "view":  # the view is alive (kept per pool) until the dispose
                gc.collect()  # what the load left behind
                for frozen in (False, True):
                    if frozen:
                        gc.freeze()
                    started = time.thread_time()
                    gc.collect()
                    out["frozen" if frozen else "collection"].append(time.thread_time() - started)
                gc.unfreeze()
            db.dispose()
    return out


def first_creates(url: str, settings: Settings, n: int) -> dict[str, list[float]]:
    """Thread CPU of a process's first create: cold (it loads the region, holding the region's
    placement lock), and after `services.preload` loaded the views as a process does at start
    (that load's own CPU apart). Creates two instances a round."""
    out: dict[str, list[float]] = {"cold": [], "start-up load": [], "after it": []}
    db = Database(url)
    account = accounts.create_account(db, f"region-load-{secrets.token_hex(4)}@example.com")
    db.dispose()
    new = instances.NewInstance(type=next(iter(PLAN_MIX)), region=REGION)
    for _ in range(n):
        for preloaded in (False, True):
            db = Database(url)  # a new pool: a process starting
            if preloaded:
                started = time.thread_time()
                preload.load_views(db, settings)
                out["start-up load"].append(time.thread_time() - started)
            started = time.thread_time()
            instances.create_instance(db, settings, account.id, "region-load", new, bypass_flags=True)
            out["after it" if preloaded else "cold"].append(time.thread_time() - started)
            gc.unfreeze()
            db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--url", help="a store that already has the hosts (nothing is registered)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"# loading a region's host states ({machine()})\n")
    with scratch(args.database) as store:
        url = args.url or store.url
        if not args.url:
            db = Database(url)
            register_fleet(db, store.settings(), {(REGION, p): round(args.hosts * s) for p, s in FLEET_MIX.items()})
            db.dispose()
        db = Database(url)
        with db.read() as s:
            hosts = len(list(s.scalars(select(Host.id).where(Host.region_id == REGION))))
        db.dispose()
        before = os.getloadavg()[0]
        cpu = rounds(url, store.settings(database_url=url), args.rounds)
        creates = first_creates(url, store.settings(database_url=url), args.rounds)
        after = os.getloadavg()[0]
    print(table(["hosts", "rounds", "read all (s CPU, median / each)", "view of a first create (s)",
                 "one host again (ms)", "full collection (ms, median / each)", "frozen (ms)", "load average"],
                [[f"{hosts:,}", args.rounds,
                  f"{statistics.median(cpu['read']):.2f} / {', '.join(f'{x:.2f}' for x in cpu['read'])}",
                  f"{statistics.median(cpu['view']):.2f} / {', '.join(f'{x:.2f}' for x in cpu['view'])}",
                  f"{1000 * statistics.median(cpu['one host']):.1f}",
                  f"{1000 * statistics.median(cpu['collection']):.0f} / "
                  f"{', '.join(f'{1000 * x:.0f}' for x in cpu['collection'])}",
                  f"{1000 * statistics.median(cpu['frozen']):.2f} / "
                  f"{', '.join(f'{1000 * x:.2f}' for x in cpu['frozen'])}",
                  f"{before:.1f} -> {after:.1f}"]]))
    print()
    print(table(["hosts", "a process's first create, cold (ms CPU, median / each)", "start-up load (preload)",
                 "first create after it"],
                [[f"{hosts:,}", *(f"{1000 * statistics.median(creates[k]):,.0f} / "
                        f"{', '.join(f'{1000 * x:,.1f}' for x in creates[k])}"
                        for k in ("cold", "start-up load", "after it"))]]))


if __name__ == "__main__":
    main()
