"""What keeping a fleet checked costs a `gpucloud worker`: its CPU per minute spent on host
health checks and reconciliation, with nothing else to do. CPU from /proc, not wall time.

    .venv/bin/python bench/host_checks.py                    # 1,000 hosts, 120 s measured (~5 min)
    .venv/bin/python bench/host_checks.py --hosts 2000 --seconds 60

A fresh PostgreSQL store with `--hosts` simulated rtx6000-2s4g hosts in us-east (no instances),
one `gpucloud worker` process with the default handlers and periodic jobs (host checks every
`host_check_seconds`, 15 s by default). After `--warmup` seconds (the first round of every host
at once), the worker's CPU over `--seconds`, and how many times it asked a host for its
domains meanwhile (health checks and reconciliations alike), counted where the calls land: the
simulated hosts' own count of `list_domains` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _store import cpu_seconds, machine, register_fleet, scratch, table, worker_process
from sqlalchemy import func, select

from gpucloud.store.db import Database
from gpucloud.store.tables import JobAttempt

REGION, PROFILE = "us-east", "rtx6000-2s4g"


def listings(data_dir: Path) -> int:
    """`list_domains` calls the simulated hosts have answered so far."""
    total = 0
    for path in (data_dir / "sim").glob("*.json"):
        try:
            total += json.loads(path.read_text()).get("calls", {}).get("list_domains", 0)
        except (OSError, ValueError):  # a state file being replaced this instant: counted next time
            continue
    return total


def attempts(db: Database) -> int:
    """Job attempts so far: the only jobs here are the worker's own periodic ones."""
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(JobAttempt)) or 0


def measure(args) -> dict:
    with scratch("postgres", prefix="gpucloud_bench_checks") as store:
        settings = store.settings()
        db = Database(store.url)
        t = time.monotonic()
        register_fleet(db, settings, {(REGION, PROFILE): args.hosts})
        print(f"  {args.hosts} hosts registered in {time.monotonic() - t:.0f} s", flush=True)
        try:
            with worker_process(store, store.env()) as worker:
                time.sleep(args.warmup)
                before, checks, jobs, t = (cpu_seconds(worker.pid), listings(store.data_dir), attempts(db),
                                           time.monotonic())
                time.sleep(args.seconds)
                used, wall = cpu_seconds(worker.pid) - before, time.monotonic() - t
                checks, jobs = listings(store.data_dir) - checks, attempts(db) - jobs
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker stopped; see {store.data_dir / 'worker.log'}")
        finally:
            db.dispose()
    return {"jobs_per_min": jobs / wall * 60, "cpu_s_per_min": used / wall * 60, "checks_per_min": checks / wall * 60,
            "ms_per_check": used / checks * 1000 if checks else float("nan"),
            "wanted_per_min": args.hosts * 60 / settings.host_check_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=120.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds after the worker started")
    args = parser.parse_args()
    print(f"# host checks: {machine()}", flush=True)
    r = measure(args)
    print(table(["hosts", "worker CPU s per minute (share of one core)",
                 "hosts asked for their domains per minute (checks wanted)", "worker CPU ms per host asked",
                 "queue jobs per minute"],
                [[args.hosts, f"{r['cpu_s_per_min']:.1f} ({r['cpu_s_per_min'] / 60 * 100:.0f} %)",
                  f"{r['checks_per_min']:.0f} ({r['wanted_per_min']:.0f})", f"{r['ms_per_check']:.2f}",
                  f"{r['jobs_per_min']:.0f}"]]))
    print(f"# load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
