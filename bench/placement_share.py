"""Placement's share of a create's CPU through the store (issue #17: under 10 % at 10,000 hosts).

    .venv/bin/python bench/placement_share.py                    # 10,000 hosts on PostgreSQL, 400 creates
    .venv/bin/python bench/placement_share.py --hosts 1000 --creates 200 --database sqlite
    .venv/bin/python bench/placement_share.py --template share_10k   # registers once, keeps a copy
    .venv/bin/python bench/placement_share.py --template share_10k   # later runs copy it: no registering

A fresh store (PostgreSQL at GPUCLOUD_TEST_PG, default postgres@127.0.0.1:5432, or SQLite) with
`--hosts` simulated hosts of three GPU profiles in one region, registered as `gpucloud host
add` registers them (commits without waiting for the disk while registering, as nothing of
that is measured). Then one thread calls `create_instance` directly (no HTTP, no workers: the
create job stays queued) with claims.py's weighted mix of 1-, 2- and 4-GPU plans.

The CPU time of the calling thread (`time.thread_time`) is split by thin wrappers that count
and return what they wrap: the decision (`Fleet.place`), the index's upkeep (`Fleet.update`,
`Fleet.apply`), the rest of `store.host_states.place` (asking which hosts changed and reading
them), and everything else of the create (validation, flags, the instance row, the claims, the
event, the job, the commit). The first create of the process is reported apart: it loads the
region's hosts into the index and ranks them for every plan of the catalog.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _store import PG_ADMIN, machine, percentile, pg_admin, register_fleet, scratch, table
from claims import FLEET_MIX, PLAN_MIX, REGION
from sqlalchemy import text

from gpucloud.domain.fleet_index import Fleet
from gpucloud.services import accounts
from gpucloud.services.instances import NewInstance, create_instance
from gpucloud.store import host_states
from gpucloud.store.db import Database

PARTS = ("decide", "upkeep", "store reads", "create")


class Split:
    """Thread CPU per part of a create; a part's time excludes the parts it calls."""

    def __init__(self) -> None:
        self.cpu = dict.fromkeys(PARTS, 0.0)
        self.stack: list[str] = []
        self.mark = 0.0

    def enter(self, part: str) -> None:
        now = time.thread_time()
        if self.stack:
            self.cpu[self.stack[-1]] += now - self.mark
        self.stack.append(part)
        self.mark = now

    def leave(self) -> None:
        now = time.thread_time()
        self.cpu[self.stack.pop()] += now - self.mark
        self.mark = now

    def wrap(self, owner: Any, name: str, part: str) -> Callable[[], None]:
        original = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.enter(part)
            try:
                return original(*args, **kwargs)
            finally:
                self.leave()

        setattr(owner, name, counted)
        return lambda: setattr(owner, name, original)


def pg_exists(name: str) -> bool:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def run(kind: str, n_hosts: int, creates: int, seed: int, template: str | None = None) -> dict:
    """`template` (PostgreSQL): a database of registered hosts to copy, made from this run's
    registered store (before any create) when it does not exist yet."""
    fleet = {(REGION, profile): round(n_hosts * share) for profile, share in FLEET_MIX.items()}
    copy = template is not None and pg_exists(template)
    with scratch(kind, template=template if copy else None) as store:
        settings = store.settings()
        if copy:
            registered, register_s = -1, 0.0
        else:
            if store.pg_name:
                pg_admin(f'ALTER DATABASE "{store.pg_name}" SET synchronous_commit = off')
            db = Database(store.url)
            started = time.perf_counter()
            registered = register_fleet(db, settings, fleet)
            register_s = time.perf_counter() - started
            db.dispose()
            if store.pg_name:
                pg_admin(f'ALTER DATABASE "{store.pg_name}" RESET synchronous_commit')
                if template is not None:
                    pg_admin(f'CREATE DATABASE "{template}" TEMPLATE "{store.pg_name}"')
        db = Database(store.url)  # new connections: commits wait for the disk again
        if copy:
            with db.read() as s:
                registered = s.execute(text("SELECT count(*) FROM hosts")).scalar_one()
        account = accounts.create_account(db, "share@example.com", username="share")
        rng = random.Random(seed)
        plans, weights = list(PLAN_MIX), list(PLAN_MIX.values())
        split = Split()
        undo = [split.wrap(Fleet, "place", "decide"), split.wrap(Fleet, "update", "upkeep"),
                split.wrap(Fleet, "apply", "upkeep"), split.wrap(Fleet, "warm", "upkeep"),
                split.wrap(host_states, "place", "store reads"), split.wrap(host_states, "claimed", "store reads")]
        rows = []
        try:
            for _ in range(creates + 1):
                split.cpu = dict.fromkeys(PARTS, 0.0)
                split.enter("create")
                create_instance(db, settings, account.id, "share",
                                NewInstance(type=rng.choices(plans, weights)[0], region=REGION), bypass_flags=True)
                split.leave()
                rows.append(dict(split.cpu))
        finally:
            for restore in undo:
                restore()
            db.dispose()
    first, rest = rows[0], rows[1:]
    total = {p: sum(r[p] for r in rest) for p in PARTS}
    whole = [sum(r.values()) for r in rest]
    engine = [r["decide"] + r["upkeep"] for r in rest]
    return {"kind": kind, "hosts": registered, "register_s": register_s, "creates": len(rest),
            "first_ms": 1000 * sum(first.values()), "first_engine_ms": 1000 * (first["decide"] + first["upkeep"]),
            "create_p50_ms": 1000 * statistics.median(whole), "create_p99_ms": 1000 * percentile(whole, 99),
            "engine_p50_ms": 1000 * statistics.median(engine), "engine_p99_ms": 1000 * percentile(engine, 99),
            "share": {p: total[p] / sum(total.values()) for p in PARTS},
            "mean_ms": {p: 1000 * total[p] / len(rest) for p in PARTS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--creates", type=int, default=400)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--template", help="PostgreSQL: copy this database of registered hosts instead of "
                        "registering (CREATE DATABASE ... TEMPLATE); made from this run's when missing")
    args = parser.parse_args()
    if args.template and args.database != "postgres":
        parser.error("--template needs --database postgres")
    print(f"# placement's share of a create ({machine()})\n")
    r = run(args.database, args.hosts, args.creates, args.seed, args.template)
    s, ms = r["share"], r["mean_ms"]
    print(table(
        ["database", "hosts", "creates", "create CPU p50 / p99 ms", "decide", "index upkeep",
         "placement (decide + upkeep)", "host reads", "rest of the create", "decide / upkeep ms per create",
         "engine p50 / p99 ms", "first create ms (engine)", "registering s"],
        [[r["kind"], f"{r['hosts']:,}", r["creates"], f"{r['create_p50_ms']:.1f} / {r['create_p99_ms']:.1f}",
          f"{s['decide']:.1%}", f"{s['upkeep']:.1%}", f"{s['decide'] + s['upkeep']:.1%}", f"{s['store reads']:.1%}",
          f"{s['create']:.1%}", f"{ms['decide']:.3f} / {ms['upkeep']:.3f}",
          f"{r['engine_p50_ms']:.2f} / {r['engine_p99_ms']:.2f}",
          f"{r['first_ms']:,.0f} ({r['first_engine_ms']:,.0f})", f"{r['register_s']:.0f}"]]))


if __name__ == "__main__":
    main()
