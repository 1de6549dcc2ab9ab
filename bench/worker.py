"""What a `gpucloud worker` process costs: CPU per create job from queued to `running` (sim
driver), and CPU while it has nothing to do. CPU from /proc, not wall time.

    .venv/bin/python bench/worker.py                    # PostgreSQL and SQLite (~2 min)
    .venv/bin/python bench/worker.py --jobs 400 --idle 60
    .venv/bin/python bench/worker.py --in-process --jobs 160 --hosts 60

Per database: a fresh store with `--hosts` simulated rtx6000-2s4g hosts in us-east, their
periodic host sweeps (health checks, reconciliation) parked a day ahead so they stay out of the figures,
and one `gpucloud worker --concurrency 32` process with the simulated boot at 0 s.
- idle: the worker's CPU over `--idle` seconds with no job due, as a share of one core;
- per job: `--jobs` GPU instances created through `create_instance` in this process (each
  commits its create job, which wakes the worker on PostgreSQL), then the worker's CPU from
  just before the first create until every instance is `running`, divided by the jobs. The
  worker does everything a create job does: claim (lease, attempt, event), read the claims,
  define and start the simulated domain, progress, statuses, the outcome.

`--in-process`: the job path alone. The create jobs are queued first, then run one at a time on
this thread (a `Worker`'s claim, handler and outcome; no dispatcher, listener or heartbeat), with
this thread's CPU per job and its statements; jobs split by whether they were the first on their
host in this process (its driver, CPU layout and the sim's profile are read once per host).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _store import cpu_seconds, machine, register_fleet, scratch, table, worker_process
from sqlalchemy import event, func, select

from gpucloud.clock import utcnow
from gpucloud.config import Settings
from gpucloud.jobs import queue
from gpucloud.jobs.context import JobContext
from gpucloud.jobs.host_jobs import SWEPT
from gpucloud.jobs.worker import Worker, default_handlers
from gpucloud.services import accounts
from gpucloud.services.instances import NewInstance, create_instance
from gpucloud.store.db import Database
from gpucloud.store.jobs import enqueue, shards_without_job
from gpucloud.store.tables import Instance

PLAN, REGION, PROFILE = "g1-gpu-rtx6000-1", "us-east", "rtx6000-2s4g"


def park_periodic_jobs(db: Database, settings: Settings) -> None:
    """Each shard's host sweep, due tomorrow: the worker's scheduler then adds none."""
    with db.write() as s:
        for shard in shards_without_job(s, "host_sweep", SWEPT, settings.host_sweep_shard_size):
            enqueue(s, kind="host_sweep", payload={"shard": shard}, max_attempts=1,
                    run_after=utcnow() + timedelta(days=1))


def running(db: Database) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Instance).where(Instance.status == "running")) or 0


def measure(kind: str, args) -> dict:
    with scratch(kind, prefix="gpucloud_bench_worker") as store:
        settings = store.settings()
        db = Database(store.url)
        register_fleet(db, settings, {(REGION, PROFILE): args.hosts})
        park_periodic_jobs(db, settings)
        account = accounts.create_account(db, "worker-bench@example.com", username="workerbench")
        try:
            with worker_process(store, store.env(GPUCLOUD_SIM_BOOT_SECONDS="0")) as worker:
                time.sleep(5)  # the first scheduling and reaping rounds
                before, t = cpu_seconds(worker.pid), time.monotonic()
                time.sleep(args.idle)
                idle = (cpu_seconds(worker.pid) - before) / (time.monotonic() - t)
                before, t = cpu_seconds(worker.pid), time.monotonic()
                for n in range(args.jobs):
                    create_instance(db, settings, account.id, account.username,
                                    NewInstance(type=PLAN, region=REGION, label=f"job-{n}"), bypass_flags=True)
                deadline = time.monotonic() + 600
                while running(db) < args.jobs:
                    if time.monotonic() > deadline or worker.poll() is not None:
                        raise RuntimeError(f"{running(db)}/{args.jobs} running; see {store.data_dir / 'worker.log'}")
                    time.sleep(0.2)
                used, wall = cpu_seconds(worker.pid) - before, time.monotonic() - t
        finally:
            db.dispose()
    return {"db": kind, "idle_share": idle, "jobs": args.jobs, "ms_per_job": used / args.jobs * 1000,
            "jobs_per_s": args.jobs / wall}


def measure_in_process(kind: str, args) -> dict:
    with scratch(kind, prefix="gpucloud_bench_worker") as store:
        settings = store.settings(sim_boot_seconds="0")
        db = Database(store.url)
        register_fleet(db, settings, {(REGION, PROFILE): args.hosts})
        park_periodic_jobs(db, settings)
        account = accounts.create_account(db, "worker-bench@example.com", username="workerbench")
        for n in range(args.jobs + 1):
            create_instance(db, settings, account.id, account.username,
                            NewInstance(type=PLAN, region=REGION, label=f"job-{n}"), bypass_flags=True)
        worker = Worker(db, settings, default_handlers(), concurrency=1, periodic=[])
        statements = [0]
        for engine in {db.write_engine, db.read_engine} if db.is_sqlite else {db.write_engine}:  # reads: an option engine of it
            event.listen(engine, "before_cursor_execute", lambda *_: statements.__setitem__(0, statements[0] + 1))
        cpu: dict[str, list[float]] = {"first on its host": [], "host seen before": []}

        def run_one() -> bool:
            started, hosts_seen = time.thread_time(), len(worker._drivers)
            with db.write() as s:
                job = queue.claim(s, worker=worker.name, kinds=list(worker.handlers),
                                  lease_seconds=worker.lease_seconds, first_steps=worker.first_steps)
            if job is None:
                return False
            worker._run(JobContext(job, db, settings, lambda: False, worker._drivers))  # as its job thread does
            first = len(worker._drivers) > hosts_seen
            cpu["first on its host" if first else "host seen before"].append(time.thread_time() - started)
            return True

        run_one()  # the first job of the process (imports, compiled statements) is left out
        cpu = {k: [] for k in cpu}
        statements[0] = 0
        while run_one():
            pass
        done = sum(len(v) for v in cpu.values())
        if running(db) != args.jobs + 1:
            raise RuntimeError(f"{running(db)}/{args.jobs + 1} running")
        db.dispose()
    return {"db": kind, "jobs": done, "ms_per_job": sum(map(sum, cpu.values())) / done * 1000,
            "statements": statements[0] / done,
            **{k: (len(v), statistics.median(v) * 1000 if v else float("nan")) for k, v in cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=60, help="rtx6000-2s4g hosts (4 GPUs each)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle measured")
    parser.add_argument("--in-process", action="store_true", help="the job path alone, on this thread")
    args = parser.parse_args()
    print(f"# worker: {machine()}", flush=True)
    rows = []
    if args.in_process:
        for kind in ("postgres", "sqlite"):
            r = measure_in_process(kind, args)
            (first, first_ms), (seen, seen_ms) = r["first on its host"], r["host seen before"]
            rows.append([r["db"], r["jobs"], f"{r['ms_per_job']:.2f}", f"{r['statements']:.1f}",
                         f"{first_ms:.2f} ({first})", f"{seen_ms:.2f} ({seen})"])
            print(f"  {rows[-1]}", flush=True)
        print(table(["database", "create jobs", "thread CPU ms per job", "statements per job",
                     "median ms, first job on its host (jobs)", "median ms, host seen before (jobs)"], rows))
        return
    for kind in ("postgres", "sqlite"):
        r = measure(kind, args)
        rows.append([r["db"], f"{r['idle_share'] * 100:.2f} %", r["jobs"], f"{r['ms_per_job']:.1f}",
                     f"{r['jobs_per_s']:.0f}"])
        print(f"  {rows[-1]}", flush=True)
    print(table(["database", "idle worker CPU (share of one core)", "create jobs", "worker CPU ms per job",
                 "jobs/s (creates from one thread included)"], rows))


if __name__ == "__main__":
    main()
