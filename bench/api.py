"""Public API benchmark: requests/s and p50/p99 latency over loopback, from this process, against
a gpucloud server running in other processes.

    .venv/bin/python bench/api.py sqlite                 # `gpucloud serve` on SQLite
    .venv/bin/python bench/api.py postgres --workers 2   # `gpucloud api --workers 2` on PostgreSQL
    .venv/bin/python bench/api.py all                    # both, then the markdown rows for docs
    .venv/bin/python bench/api.py floor                  # CPU per create: gpucloud vs the floor (bench/floor.py)

Three workloads, each for `--duration` seconds with `--concurrency` keep-alive connections:
- `GET /v4/profile`: authentication and a small answer, the floor of every request;
- `GET /v4/linode/instances`: a page of 100 instances (the account holds 120 Nanodes);
- `PUT /v4/linode/instances/{id}`: a new label for one of them: a write transaction without
  placement, the API's own cost of a write;
- `POST /v4/linode/instances` then `DELETE` it: one GPU instance (g1-gpu-rtx6000-1, no image,
  not booted) created and deleted, end to end; a "create" counts when the 200 arrives.

Beside the server, one job worker process runs the instance lifecycle handlers, so deletes
finish and give their GPUs back while the benchmark creates more (`--job-workers`).

`floor` compares what a create costs the API process (CPU from /proc, not wall time) with the
floor endpoint of bench/floor.py (the same rows written with SQLAlchemy Core in one
transaction, nothing else), both served by one uvicorn process on the same socket settings, on
SQLite and on PostgreSQL in one run: creates per CPU-second of each, and their ratio. Both
servers run at once and are measured in alternating rounds (`--rounds`), so a change in the
shared machine's load weighs on both; the ratio of each round is shown too (min, median, max).

The client is a small asyncio HTTP/1.1 client (keep-alive, no library in the way), so the
figures measure the server, not the client. Setup (schema, a simulated fleet, an account with
the GPU flag and a token) goes straight to the database and is not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from _store import INSTANT_STEPS

from gpucloud.catalog import load_catalog
from gpucloud.config import load_settings
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, flags, hosts
from gpucloud.services.flag_cache import DEFAULT_POLL_SECONDS
from gpucloud.store import migrate
from gpucloud.store.catalog import sync_catalog
from gpucloud.store.db import Database

GPUCLOUD = str(Path(sys.executable).with_name("gpucloud"))
PG_ADMIN = os.environ.get("GPUCLOUD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PLAN, REGION, PROFILE = "g1-gpu-rtx6000-1", "us-east", "rtx6000-2s4g"
SEED_PLAN = "g6-nanode-1"  # the listed instances take no GPUs from the create workload


# --- a minimal keep-alive HTTP/1.1 client ----------------------------------------------------------


class Connection:
    def __init__(self, host: str, port: int, token: str):
        self.host, self.port = host, port
        self.auth = f"Bearer {token}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: {self.auth}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        self.writer.write(head.encode() + payload)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        data = b""
        while (size := int((await self.reader.readline()).strip(), 16)) > 0:
            data += await self.reader.readexactly(size + 2)
        await self.reader.readline()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Samples:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_examples: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.latencies.setdefault(name, []).append(seconds)

    def fail(self, name: str, status: int, body: bytes) -> None:
        key = f"{name} {status}"
        self.errors[key] = self.errors.get(key, 0) + 1
        self.error_examples.setdefault(key, body[:200])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


async def run_load(host: str, port: int, token: str, concurrency: int, duration: float, step) -> tuple[Samples, float]:
    samples = Samples()
    deadline = time.perf_counter() + duration
    connections = [Connection(host, port, token) for _ in range(concurrency)]

    async def loop(conn: Connection, n: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            await step(conn, samples, f"{n}-{i}")
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(c, n) for n, c in enumerate(connections)))
    elapsed = time.perf_counter() - started
    for c in connections:
        c.close()
    return samples, elapsed


def get_step(name: str, path: str):
    async def step(conn: Connection, samples: Samples, _tag: str) -> None:
        t = time.perf_counter()
        status, body = await conn.request("GET", path)
        if status == 200:
            samples.add(name, time.perf_counter() - t)
        else:
            samples.fail(name, status, body)
    return step


def update_step(instance_ids: list[int]):
    async def step(conn: Connection, samples: Samples, tag: str) -> None:
        instance_id = instance_ids[hash(tag) % len(instance_ids)]
        t = time.perf_counter()
        status, body = await conn.request("PUT", f"/v4/linode/instances/{instance_id}", {"label": f"u{tag}"})
        if status == 200:
            samples.add("update", time.perf_counter() - t)
        else:
            samples.fail("update", status, body)
    return step


def create_step(run_id: str):
    async def step(conn: Connection, samples: Samples, tag: str) -> None:
        t = time.perf_counter()
        status, body = await conn.request("POST", "/v4/linode/instances", {
            "type": PLAN, "region": REGION, "label": f"b{run_id}-{tag}", "booted": False})
        if status != 200:
            samples.fail("create", status, body)
            return
        t2 = time.perf_counter()
        samples.add("create", t2 - t)
        status, body = await conn.request("DELETE", f"/v4/linode/instances/{json.loads(body)['id']}")
        if status == 200:
            samples.add("delete", time.perf_counter() - t2)
            samples.add("create+delete", time.perf_counter() - t)
        else:
            samples.fail("delete", status, body)
    return step


# --- the server under test ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Target:
    name: str
    command: str
    database_url: str
    data_dir: Path
    port: int
    processes: list[subprocess.Popen] = field(default_factory=list)
    cleanup: list = field(default_factory=list)

    def env(self) -> dict:
        return {**os.environ, **INSTANT_STEPS, "GPUCLOUD_DATA_DIR": str(self.data_dir), "GPUCLOUD_DATABASE_URL": self.database_url,
                "GPUCLOUD_RATE_LIMIT_PER_MINUTE": "0"}


def prepare(name: str, hosts_count: int) -> Target:
    data_dir = Path(tempfile.mkdtemp(prefix=f"gpucloud-bench-{name}-"))
    if name == "sqlite":
        url = f"sqlite:///{data_dir / 'gpucloud.sqlite'}"
        target = Target(name, "serve", url, data_dir, free_port())
    else:
        db_name = f"gpucloud_bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db_name}"
        target = Target(name, "api", url, data_dir, free_port())
        target.cleanup.append(lambda: _drop_pg(db_name))
    target.cleanup.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    db = Database(url)
    migrate.upgrade(db)
    with db.write() as s:
        sync_catalog(s, load_catalog())
    settings = load_settings({"data_dir": str(data_dir), "database_url": url}, environ={})
    topology = load_profile(PROFILE)
    for n in range(hosts_count):
        hosts.register_host(db, settings, name=f"bench-{n:05d}", region=REGION, topology=topology, driver="sim",
                            profile=PROFILE, actor="bench")
    db.dispose()
    return target


def _drop_pg(db_name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def customer_token(target: Target) -> str:
    db = Database(target.database_url)
    info = accounts.create_account(db, f"bench-{secrets.token_hex(4)}@example.com", username=f"b{secrets.token_hex(4)}")
    flags.allow(db, "gpu-instances", info.id, why="benchmark", actor="bench")
    token = accounts.create_token(db, info.id, scopes="*", label="bench").secret
    db.dispose()
    return token


def start(target: Target, workers: int, job_workers: int) -> None:
    log = open(target.data_dir / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    cmd = [GPUCLOUD, target.command, "--port", str(target.port)]
    if target.command == "api":
        cmd += ["--workers", str(workers)]
    target.processes.append(subprocess.Popen(cmd, env=target.env(), stdout=log, stderr=subprocess.STDOUT))
    for _ in range(job_workers):
        target.processes.append(subprocess.Popen([sys.executable, __file__, "job-worker"], env=target.env(),
                                                 stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", target.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not start; see {target.data_dir / 'server.log'}")


def stop(target: Target) -> None:
    for p in target.processes:
        p.send_signal(signal.SIGTERM)
    for p in target.processes:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    for fn in target.cleanup:
        fn()


# --- running it -------------------------------------------------------------------------------------------


def bench(name: str, args) -> dict:
    target = prepare(name, args.hosts)
    try:
        start(target, args.workers, args.job_workers)
        token = customer_token(target)
        seed_run = secrets.token_hex(3)

        seeded: list[int] = []

        async def seed() -> None:
            conn = Connection("127.0.0.1", target.port, token)
            for n in range(120):
                status, body = await conn.request("POST", "/v4/linode/instances", {
                    "type": SEED_PLAN, "region": REGION, "label": f"seed{seed_run}-{n}", "booted": False})
                if status != 200:
                    raise RuntimeError(f"seeding failed: {status} {body[:300]!r}")
                seeded.append(json.loads(body)["id"])
            conn.close()

        asyncio.run(seed())
        results = {}
        for workload, path in (("profile", "/v4/profile"), ("list", "/v4/linode/instances")):
            samples, elapsed = asyncio.run(run_load("127.0.0.1", target.port, token, args.concurrency,
                                                    args.duration, get_step(workload, path)))
            results[workload] = summarise(samples, elapsed, workload)
        samples, elapsed = asyncio.run(run_load("127.0.0.1", target.port, token, args.concurrency, args.duration,
                                                update_step(seeded)))
        results["update"] = summarise(samples, elapsed, "update")
        token2 = customer_token(target)  # an account of its own: its list stays small
        time.sleep(DEFAULT_POLL_SECONDS + 0.5)  # the servers' flag caches see its GPU flag
        samples, elapsed = asyncio.run(run_load("127.0.0.1", target.port, token2,
                                                args.create_concurrency or args.concurrency, args.duration,
                                                create_step(secrets.token_hex(3))))
        results["create"] = summarise(samples, elapsed, "create")
        results["delete"] = summarise(samples, elapsed, "delete")
        results["create+delete"] = summarise(samples, elapsed, "create+delete")
        return {"target": name, "command": target.command, "workers": args.workers if target.command == "api" else 1,
                "results": results}
    finally:
        stop(target)


def summarise(samples: Samples, elapsed: float, name: str) -> dict:
    values = samples.latencies.get(name, [])
    errors = {k: v for k, v in samples.errors.items() if k.startswith(name + " ")}
    return {"count": len(values), "per_second": round(len(values) / elapsed, 1),
            "p50_ms": round(percentile(values, 50) * 1000, 1), "p99_ms": round(percentile(values, 99) * 1000, 1),
            "mean_ms": round(statistics.fmean(values) * 1000, 1) if values else None,
            "errors": errors, "error_examples": {k: v.decode(errors="replace") for k, v in
                                                 samples.error_examples.items() if k in errors}}


def markdown(runs: list[dict]) -> str:
    lines = ["| server | workload | per second | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
    for run in runs:
        server = f"`gpucloud {run['command']}`" + (f" x{run['workers']}" if run["command"] == "api" else "") + \
                 f" ({run['target']})"
        for workload, label in (("profile", "GET /profile"), ("list", "GET /linode/instances (100)"),
                                ("update", "PUT /linode/instances/{id}"), ("create", "POST create"),
                                ("delete", "DELETE"), ("create+delete", "create + delete")):
            r = run["results"][workload]
            errs = sum(r["errors"].values())
            lines.append(f"| {server} | {label} | {r['per_second']} | {r['p50_ms']} | {r['p99_ms']} | {errs} |")
    return "\n".join(lines)


# --- a create against its floor -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve(cmd: list[str], env: dict, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[1]} exited; see {log}") from None
            time.sleep(0.2)
    raise RuntimeError(f"{cmd} did not start; see {log}")


async def _creates(port: int, token: str, n: int, concurrency: int, tag: str) -> list[float]:
    """`n` creates (g1-gpu-rtx6000-1, not booted) over `concurrency` connections; latencies."""
    latencies: list[float] = []
    conns = [Connection("127.0.0.1", port, token) for _ in range(concurrency)]
    counter = iter(range(n))

    async def loop(conn: Connection) -> None:
        for i in counter:
            t = time.perf_counter()
            status, body = await conn.request("POST", "/v4/linode/instances", {
                "type": PLAN, "region": REGION, "label": f"bench-{tag}-{i}", "booted": False})
            if status != 200:
                raise RuntimeError(f"create refused: {status} {body[:300]!r}")
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(loop(c) for c in conns))
    for c in conns:
        c.close()
    return latencies


def _summary(creates: int, cpu: float, wall: float, latencies: list[float]) -> dict:
    return {"creates": creates, "cpu_s": round(cpu, 3), "ms_cpu_per_create": round(cpu / creates * 1000, 2),
            "creates_per_cpu_s": round(creates / cpu, 1), "per_s": round(creates / wall, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p99_ms": round(percentile(latencies, 99) * 1000, 1)}


def floor_compare(kind: str, args) -> dict:
    """gpucloud's create and the floor's, on two copies of one prepared store, both servers up
    at once and measured in alternating rounds (gpucloud, floor, gpucloud, ...), so that a
    change in the machine's load meanwhile weighs on both alike."""
    gpus_needed = args.creates + args.warmup
    target = prepare(kind, -(-gpus_needed // 4) + 1)
    floor_dir = Path(tempfile.mkdtemp(prefix=f"gpucloud-floor-{kind}-"))
    token = customer_token(target)
    if kind == "sqlite":
        floor_url = f"sqlite:///{floor_dir / 'gpucloud.sqlite'}"
        shutil.copy(target.database_url.removeprefix("sqlite:///"), floor_url.removeprefix("sqlite:///"))
    else:
        source = target.database_url.rsplit("/", 1)[1]
        floor_db = f"{source}_floor"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{floor_db}" TEMPLATE "{source}"')
        target.cleanup.append(lambda: _drop_pg(floor_db))
        floor_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{floor_db}"
    target.cleanup.append(lambda: shutil.rmtree(floor_dir, ignore_errors=True))
    procs: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        env = target.env()
        procs["gpucloud"] = (_serve([GPUCLOUD, "api", "--workers", "1", "--port", str(target.port)], env,
                                    target.port, target.data_dir / "api.log"), target.port)
        floor_port = free_port()
        procs["floor"] = (_serve([sys.executable, str(Path(__file__).with_name("floor.py")), "--port", str(floor_port)],
                                 {**env, "GPUCLOUD_DATABASE_URL": floor_url}, floor_port, floor_dir / "floor.log"),
                          floor_port)
        time.sleep(DEFAULT_POLL_SECONDS + 0.5)  # the flag cache sees the account's GPU flag
        for name, (_, port) in procs.items():
            asyncio.run(_creates(port, token, args.warmup, args.concurrency, f"{name[0]}w"))
        rounds = max(1, min(args.rounds, args.creates))
        cpu = {name: 0.0 for name in procs}
        wall = {name: 0.0 for name in procs}
        latencies: dict[str, list[float]] = {name: [] for name in procs}
        round_ratios = []
        for r in range(rounds):
            n = args.creates // rounds + (1 if r < args.creates % rounds else 0)
            spent = {}
            for name, (proc, port) in procs.items():
                before, t = cpu_seconds(proc.pid), time.perf_counter()
                latencies[name] += asyncio.run(_creates(port, token, n, args.concurrency, f"{name[0]}{r}"))
                spent[name] = cpu_seconds(proc.pid) - before
                cpu[name] += spent[name]
                wall[name] += time.perf_counter() - t
            if spent["floor"] > 0:
                round_ratios.append(spent["gpucloud"] / spent["floor"])
    finally:
        for p, _ in procs.values():
            p.send_signal(signal.SIGTERM)
            p.wait(30)
        for fn in target.cleanup:
            fn()
    ours, floor = (_summary(args.creates, cpu[n], wall[n], latencies[n]) for n in ("gpucloud", "floor"))
    round_ratios.sort()
    return {"target": kind, "gpucloud": ours, "floor": floor,
            "ratio": round(ours["ms_cpu_per_create"] / floor["ms_cpu_per_create"], 2),
            "round_ratios": [round(round_ratios[0], 2), round(statistics.median(round_ratios), 2),
                             round(round_ratios[-1], 2)] if round_ratios else []}


def floor_markdown(runs: list[dict]) -> str:
    lines = ["| database | endpoint | creates | CPU ms per create | creates per CPU-second | creates/s | p50 ms | "
             "p99 ms | ratio to the floor | per round (min, median, max) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for name in ("gpucloud", "floor"):
            r = run[name]
            ratio = f"**{run['ratio']}x**" if name == "gpucloud" else "1x"
            spread = ", ".join(f"{x}x" for x in run["round_ratios"]) if name == "gpucloud" else ""
            lines.append(f"| {run['target']} | {name} | {r['creates']} | {r['ms_cpu_per_create']} | "
                         f"{r['creates_per_cpu_s']} | {r['per_s']} | {r['p50_ms']} | {r['p99_ms']} | {ratio} | "
                         f"{spread} |")
    return "\n".join(lines)


def job_worker() -> None:
    """The instance lifecycle handlers on a worker, until SIGTERM (what `gpucloud worker` runs
    once the handlers are registered as its defaults)."""
    from gpucloud.jobs import instance_jobs
    from gpucloud.jobs.worker import start_workers

    settings = load_settings()
    db = Database(settings.resolved_database_url)
    worker = start_workers(db, settings, instance_jobs.HANDLERS, periodic=[])
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    while not stopping:
        time.sleep(0.2)
    worker.stop(timeout=10)


def main() -> None:
    if sys.argv[1:2] == ["job-worker"]:
        job_worker()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=["sqlite", "postgres", "all", "floor"])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--create-concurrency", type=int, help="connections for create + delete (default: --concurrency)")
    parser.add_argument("--workers", type=int, default=2, help="API processes for `gpucloud api`")
    parser.add_argument("--job-workers", type=int, default=1, help="job worker processes beside the server")
    parser.add_argument("--hosts", type=int, default=250,
                        help="simulated rtx6000-2s4g hosts (4 GPUs each) in us-east; 250: capacity is never the limit")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--creates", type=int, default=600, help="floor: measured creates per endpoint and database")
    parser.add_argument("--warmup", type=int, default=40, help="floor: creates before measuring")
    parser.add_argument("--rounds", type=int, default=10,
                        help="floor: alternating rounds the measured creates are split into (default 10)")
    args = parser.parse_args()
    if args.target == "floor":
        runs = [floor_compare(kind, args) for kind in ("sqlite", "postgres")]
        print(json.dumps(runs, indent=2) if args.json else floor_markdown(runs))
        return
    runs = [bench(name, args) for name in (["sqlite", "postgres"] if args.target == "all" else [args.target])]
    print(json.dumps(runs, indent=2) if args.json else markdown(runs))
    for run in runs:
        for _workload, r in run["results"].items():
            for key, example in r["error_examples"].items():
                print(f"  {run['target']} {key}: {r['errors'][key]}x, e.g. {example}", file=sys.stderr)


if __name__ == "__main__":
    main()
