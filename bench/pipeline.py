"""Provisioning pipeline: GPU instances taken from `POST /v4/linode/instances` to `running`
per second, and the control plane's own share of the time to running, for 1 and for 4
`gpucloud worker` processes on PostgreSQL.

    .venv/bin/python bench/pipeline.py            # 5, 20, 50, 100 creates/s offered, 5 s each (~4-8 min)
    .venv/bin/python bench/pipeline.py --quick    # 5 and 100 creates/s, 2 s each (~1.5 min)

Per configuration (worker processes x offered rate) a fresh copy of one prepared database
(schema, catalog, a simulated fleet, an account with the `gpu-instances` flag and a token)
is served by `gpucloud api --workers 2` and worked by N `gpucloud worker --concurrency C`
processes, exactly as an operator runs them (rate limit off: one token sends everything).
Once the periodic host jobs that workers schedule at start have run, this process offers
creates open-loop at the given rate for the given duration over keep-alive connections
(a minimal HTTP/1.1 client, so the client costs little of the 2 shared cores), then waits
until every created instance is `running`.

Plans: the 1-GPU plan of each model (g1-gpu-rtx6000-1, g2-gpu-rtx4000a1-s, g3-gpu-h100-1, in
proportion 1:2:2 to their GPUs per host), spread evenly over the 4 regions that sell GPUs, on
at least `--hosts` hosts (default 1,000: 84 per region and model) or as many as the largest run
needs with 15 % to spare, so the fleet never fills. Every run gets the same fleet. A few
creates warm the API processes up first and are not counted.

Also measured: CPU seconds used by the API processes, the workers and this database's
PostgreSQL backends, per instance that ran; rolled-back transactions (a create attempt that
lost its race rolls back); create-job attempts that failed, with their errors.

Times come from the database, written by the processes themselves (one clock, one machine):
- POST: from the moment the create was due (the open-loop schedule) to the 200;
- queue wait: `jobs.created_at` to the first `job_attempts.started_at` (the claim);
- handler: the claim to `running` (`instances.updated_at`, last written by that transition),
  minus the simulated boot (`GPUCLOUD_SIM_BOOT_SECONDS`, default 0.5 s: the sim sleeps exactly
  that long inside `start`);
- overhead: due time to `running`, minus the boot: what the control plane adds.
Throughput: (n - 1) / (last - first) over the moments instances reached `running` (and, for
POST 200/s, the moments the 200s arrived).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _store import (
    machine,
    percentile,
    pg_admin,
    pg_url,
    register_fleet,
    scratch,
    table,
    which_python_tool,
)
from sqlalchemy import text

from gpucloud.catalog import load_catalog
from gpucloud.config import load_settings
from gpucloud.services import accounts, flags
from gpucloud.store import migrate
from gpucloud.store.catalog import sync_catalog
from gpucloud.store.db import Database

GPUCLOUD = which_python_tool("gpucloud")
POOLS = {"rtx6000-2s4g": "g1-gpu-rtx6000-1", "rtx4000ada-2s8g": "g2-gpu-rtx4000a1-s", "h100-nps4-8g": "g3-gpu-h100-1"}
POOL_WEIGHT = {"rtx6000-2s4g": 1, "rtx4000ada-2s8g": 2, "h100-nps4-8g": 2}  # by GPUs per host
GPUS_PER_TRIPLE = 4 + 8 + 8  # one host of each profile
WARMUP = 8  # creates before measuring: the first request of an API process imports and loads a lot


# --- a minimal keep-alive HTTP/1.1 client -------------------------------------------------------------


class Conn:
    def __init__(self, port: int, token: str):
        self.port, self.auth = port, f"Bearer {token}"
        self.reader = self.writer = None

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {self.auth}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                          + payload)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def gpu_regions() -> list[str]:
    return [r.id for r in load_catalog().regions if "GPU Linodes" in r.capabilities]


def arrivals() -> list[tuple[str, str]]:
    """(region, plan) in the order creates cycle through them: each region in turn, each
    model in proportion to the GPUs its hosts have, so every pool fills at the same pace."""
    return [(region, POOLS[p]) for p in POOLS for _ in range(POOL_WEIGHT[p]) for region in gpu_regions()]


async def warm_up(port: int, token: str) -> list[int]:
    """WARMUP creates, two at a time on fresh connections, so each API process serves some."""
    ids, cycle = [], arrivals()
    for k in range(0, WARMUP, 2):
        conns = [Conn(port, token) for _ in range(2)]
        got = await asyncio.gather(*(c.post("/v4/linode/instances", {
            "type": cycle[-1 - k - n][1], "region": cycle[-1 - k - n][0], "label": f"warm{k + n}", "booted": True})
            for n, c in enumerate(conns)))
        for c in conns:
            c.close()
        for status, body in got:
            if status != 200:
                raise RuntimeError(f"warm-up create refused: {status} {body[:300]!r}")
            ids.append(json.loads(body)["id"])
    return ids


async def offer(port: int, token: str, rate: float, duration: float, connections: int) -> list[dict]:
    """Creates due every 1/rate s for `duration` s; each waits for a free connection if all
    are busy (its time counts from when it was due, so a slow server is not hidden)."""
    cycle = arrivals()
    free: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(connections):
        free.put_nowait(Conn(port, token))
    records: list[dict] = []

    async def one(k: int, due: float) -> None:
        region, plan = cycle[k % len(cycle)]
        conn = await free.get()
        sent = time.time()
        try:
            status, body = await conn.post("/v4/linode/instances", {"type": plan, "region": region,
                                                                    "label": f"p{k:06d}", "booted": True})
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            status, body = 0, repr(exc).encode()
            conn.close()
            conn = Conn(port, token)
        done = time.time()
        free.put_nowait(conn)
        record = {"k": k, "due": due, "sent": sent, "answered": done, "status": status}
        if status == 200:
            record["id"] = json.loads(body)["id"]
        else:
            record["error"] = body[:200].decode(errors="replace")
        records.append(record)

    start = time.time() + 0.2
    tasks = []
    for k in range(int(rate * duration)):
        due = start + k / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k, due)))
    await asyncio.gather(*tasks)
    while not free.empty():
        free.get_nowait().close()
    return records


# --- the system under test -------------------------------------------------------------------------------


def prepare_template(name: str, hosts_per_pool: int) -> str:
    """The database every run copies: schema, catalog, fleet, account, flag; returns a token."""
    pg_admin(f'CREATE DATABASE "{name}"')
    db = Database(pg_url(name))
    try:
        migrate.upgrade(db)
        with db.write() as s:
            sync_catalog(s, load_catalog())
        settings = load_settings({"database_url": pg_url(name), "data_dir": "/nonexistent"}, environ={})
        register_fleet(db, settings, {(r, p): hosts_per_pool for r in gpu_regions() for p in POOLS})
        account = accounts.create_account(db, "pipeline@example.com", username="pipeline")
        flags.allow(db, "gpu-instances", account.id, why="bench", actor="bench")
        token = accounts.create_token(db, account.id, scopes="*", label="bench").secret
    finally:
        db.dispose()
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class System:
    """`gpucloud api --workers 2` and N `gpucloud worker` processes on one store; each in its
    own process group, so stopping it stops uvicorn's children too."""

    def __init__(self, store, workers: int, concurrency: int, boot: float, api_workers: int):
        self.store, self.port = store, free_port()
        self.env = store.env(GPUCLOUD_SIM_BOOT_SECONDS=str(boot), GPUCLOUD_RATE_LIMIT_PER_MINUTE="0",
                             GPUCLOUD_WORKER_CONCURRENCY=str(concurrency))
        self.commands = [[GPUCLOUD, "api", "--port", str(self.port), "--workers", str(api_workers)]]
        self.commands += [[GPUCLOUD, "worker", "--concurrency", str(concurrency), "--grace", "3",
                           "--name", f"bench-w{n}"] for n in range(workers)]
        self.procs: list[subprocess.Popen] = []
        self.log = open(store.data_dir / "processes.log", "w")  # noqa: SIM115 - closed in stop()

    def start(self) -> None:
        for cmd in self.commands:
            self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"a process exited early; see {self.log.name}:\n{self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the API did not listen within 60 s:\n{self.tail()}")

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        self.log.close()


# --- where the CPU goes ----------------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _proc_stats() -> dict[int, tuple[int, float]]:
    """pid -> (process group, CPU seconds used so far) for every process we may read."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2:].split()
        out[int(entry)] = (int(rest[2]), (int(rest[11]) + int(rest[12])) / TICK)
    return out


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / TICK, sum(fields) / TICK


class CpuMeter:
    """CPU seconds used between `start()` and `stop()` by the API processes, the worker
    processes, and the PostgreSQL backends serving this database (those alive at the end;
    a backend that came and went meanwhile is missed), how busy the whole machine was, and
    how many transactions of this database rolled back (a create attempt that lost its race
    or found no room rolls back; psycopg sends no ROLLBACK outside a transaction)."""

    def __init__(self, system: System, db: Database):
        self.system, self.db = system, db

    def _backends(self) -> list[int]:
        with self.db.read() as s:
            return list(s.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                       "AND pid <> pg_backend_pid()")).scalars())

    def _rollbacks(self) -> int:
        with self.db.read() as s:
            s.execute(text("SELECT pg_stat_clear_snapshot()"))
            return s.execute(text("SELECT xact_rollback FROM pg_stat_database "
                                  "WHERE datname = current_database()")).scalar()

    def _sample(self) -> tuple[dict, list[int], tuple[float, float]]:
        return _proc_stats(), self._backends(), _machine_busy()

    def start(self) -> None:
        self.before = self._sample()
        self.rollbacks = self._rollbacks()

    def stop(self) -> dict[str, float]:
        (p0, _, m0), (p1, pg1, m1) = self.before, self._sample()
        groups = {"api": {self.system.procs[0].pid}, "workers": {p.pid for p in self.system.procs[1:]}}
        used = {"api": 0.0, "workers": 0.0, "postgres": 0.0}
        for pid, (group, cpu) in p1.items():
            earlier = p0.get(pid, (group, 0.0))[1]
            for name, pgids in groups.items():
                if group in pgids:
                    used[name] += cpu - earlier
            if pid in pg1:
                used["postgres"] += cpu - earlier
        used["machine_busy"] = (m1[0] - m0[0]) / max(m1[1] - m0[1], 1e-9)
        time.sleep(1.1)  # backends report their counters at most once a second
        used["rollbacks"] = self._rollbacks() - self.rollbacks
        return used


def wait_quiet(db: Database, timeout: float) -> None:
    """Until no job is due or running: the host checks and reconciles workers schedule at start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read() as s:
            busy = s.execute(text("SELECT count(*) FROM jobs WHERE state = 'running' OR "
                                  "(state = 'queued' AND run_after <= now() AT TIME ZONE 'utc')")).scalar()
        if busy == 0:
            return
        time.sleep(0.3)


def wait_running(db: Database, ids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read() as s:
            left = s.execute(text("SELECT count(*) FROM instances WHERE id = ANY(:ids) AND status NOT IN "
                                  "('running', 'failed')"), {"ids": ids}).scalar()
        if left == 0:
            return
        time.sleep(0.3)


def epoch(value: datetime | None) -> float | None:
    return value.replace(tzinfo=UTC).timestamp() if value is not None else None


def server_times(db: Database, ids: list[int]) -> dict[int, dict]:
    sql = text("""
        SELECT i.id, i.status, i.created_at, i.updated_at, j.created_at AS queued, j.attempts,
               (SELECT min(a.started_at) FROM job_attempts a WHERE a.job_id = j.id) AS claimed,
               e.finished_at
        FROM instances i JOIN jobs j ON j.instance_id = i.id AND j.kind = 'create'
        LEFT JOIN events e ON e.id = j.event_id WHERE i.id = ANY(:ids)""")
    with db.read() as s:
        return {r.id: {"status": r.status, "created": epoch(r.created_at), "running": epoch(r.updated_at),
                       "queued": epoch(r.queued), "claimed": epoch(r.claimed), "finished": epoch(r.finished_at),
                       "attempts": r.attempts}
                for r in s.execute(sql, {"ids": ids})}


def failed_attempts(db: Database, ids: list[int]) -> dict[str, int]:
    """Create-job attempts that did not succeed, by outcome and error."""
    sql = text("""
        SELECT a.outcome, left(a.error, 400) AS error, count(*) AS n FROM job_attempts a
        JOIN jobs j ON j.id = a.job_id WHERE j.kind = 'create' AND j.instance_id = ANY(:ids)
        AND a.outcome <> 'succeeded' GROUP BY 1, 2""")
    with db.read() as s:
        return {f"{r.outcome}: {r.error}": r.n for r in s.execute(sql, {"ids": ids})}


def periodic_jobs_between(db: Database, t0: float, t1: float) -> int:
    with db.read() as s:
        return s.execute(text("SELECT count(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id "
                              "WHERE j.kind IN ('host_sweep', 'reconcile') AND a.started_at BETWEEN :a AND :b"),
                         {"a": datetime.fromtimestamp(t0, UTC).replace(tzinfo=None),
                          "b": datetime.fromtimestamp(t1, UTC).replace(tzinfo=None)}).scalar()


# --- one configuration -------------------------------------------------------------------------------------


def run(template: str, token: str, workers: int, rate: float, args) -> dict:
    with scratch("postgres", template=template) as store:
        system = System(store, workers, args.concurrency, args.boot, args.api_workers)
        db = Database(store.url, pool_size=2)
        try:
            system.start()
            wait_quiet(db, 60)
            wait_running(db, asyncio.run(warm_up(system.port, token)), 60)
            meter = CpuMeter(system, db)
            meter.start()
            records = asyncio.run(offer(system.port, token, rate, args.duration, args.connections))
            ids = [r["id"] for r in records if "id" in r]
            wait_running(db, ids, args.drain)
            cpu = meter.stop()
            times = server_times(db, ids)
            failed = failed_attempts(db, ids)
            first_due = min(r["due"] for r in records)
            running = [t["running"] for t in times.values() if t["status"] == "running"]
            periodic = periodic_jobs_between(db, first_due, max(running, default=first_due))
        finally:
            system.stop()
            db.dispose()
    overhead, posts, queue_wait, handler, finish = [], [], [], [], []
    for r in records:
        if "id" not in r:
            continue
        t = times.get(r["id"])
        posts.append(r["answered"] - r["due"])
        if t is None or t["status"] != "running":
            continue
        overhead.append(t["running"] - r["due"] - args.boot)
        queue_wait.append(t["claimed"] - t["queued"])
        handler.append(t["running"] - t["claimed"] - args.boot)
        if t["finished"] is not None:
            finish.append(t["finished"] - t["running"])
    errors: dict[str, int] = {}
    for r in records:
        if "id" not in r:
            if "lost" in r["error"] and "races" in r["error"]:
                key = "No capacity: placement lost its races"
            elif "No capacity" in r["error"]:
                key = "No capacity: full"
            else:
                key = f"{r['status']} {r['error'][:80]}"
            errors[key] = errors.get(key, 0) + 1
    not_running = {t["status"] for t in times.values() if t["status"] != "running"}
    return {
        "workers": workers, "rate": rate, "offered": len(records), "created": len(ids), "running": len(running),
        "not_running": len(ids) - len(running), "not_running_states": sorted(not_running),
        "post_per_s": rate_of([r["answered"] for r in records if "id" in r]),
        "running_per_s": rate_of(running),
        "post": posts, "overhead": overhead, "queue_wait": queue_wait, "handler": handler, "finish": finish,
        "retried_jobs": sum(1 for t in times.values() if (t["attempts"] or 0) > 1), "failed_attempts": failed,
        "periodic_jobs": periodic,
        "errors": errors, "cpu": cpu, "load": os.getloadavg()[0],
    }


def rate_of(moments: list[float]) -> float:
    """Completions per second: (n - 1) over the time from the first to the last."""
    return (len(moments) - 1) / (max(moments) - min(moments)) if len(moments) > 1 else 0.0


def svg(points: dict[int, list[tuple[float, float, float, float]]], title: str) -> str:
    """Two small panels, by offered rate: instances running/s, and overhead p50 (dashed) and
    p99 (solid) on a log scale with the 1 s target. `points`: workers -> [(rate, running/s,
    p50 s, p99 s)]."""
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    rates = sorted({p[0] for pts in points.values() for p in pts})
    w, h, pad = 300, 200, 45
    x = lambda rate, left: left + pad + rates.index(rate) * (w - pad - 15) / max(len(rates) - 1, 1)  # noqa: E731
    top = max(max(p[1] for pts in points.values() for p in pts), 1.0) * 1.15
    y1 = lambda v: 30 + (h - 30 - pad) * (1 - v / top)  # noqa: E731
    lo, hi = 0.01, max(10.0, max(p[3] for pts in points.values() for p in pts) * 1.5)
    y2 = lambda v: 30 + (h - 30 - pad) * (1 - (math.log10(max(v, lo)) - math.log10(lo)) /  # noqa: E731
                                           (math.log10(hi) - math.log10(lo)))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w + 20}" height="{h + 30}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="10" y="14" font-size="12" font-weight="bold">{title}</text>']
    for left, label in ((0, "instances running / s"), (w + 20, "overhead, s (log): p50 dashed, p99 solid")):
        out.append(f'<text x="{left + pad}" y="28">{label}</text>')
        out.append(f'<line x1="{left + pad}" y1="{h - pad}" x2="{left + w - 10}" y2="{h - pad}" stroke="#999"/>')
        out.append(f'<line x1="{left + pad}" y1="30" x2="{left + pad}" y2="{h - pad}" stroke="#999"/>')
        for rate in rates:
            out.append(f'<text x="{x(rate, left):.0f}" y="{h - pad + 14}" text-anchor="middle">{rate:g}</text>')
        out.append(f'<text x="{left + w / 2 + 10}" y="{h - pad + 28}" text-anchor="middle">creates/s offered</text>')
    for v in (0, top / 2, top / 1.15):
        out.append(f'<text x="{pad - 4}" y="{y1(v) + 4:.0f}" text-anchor="end">{v:.0f}</text>')
    for v in (0.01, 0.1, 1, 10, 100):
        if v <= hi:
            out.append(f'<text x="{w + 20 + pad - 4}" y="{y2(v) + 4:.0f}" text-anchor="end">{v:g}</text>')
    out.append(f'<line x1="{w + 20 + pad}" y1="{y2(1):.0f}" x2="{2 * w + 10}" y2="{y2(1):.0f}" stroke="#2ca02c" '
               f'stroke-dasharray="2,3"/><text x="{2 * w + 8}" y="{y2(1) - 3:.0f}" text-anchor="end" '
               f'fill="#2ca02c">target p99 1 s</text>')
    for n, (workers, pts) in enumerate(sorted(points.items())):
        c = colours[n % len(colours)]
        pts = sorted(pts)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
                   + " ".join(f"{x(p[0], 0):.0f},{y1(p[1]):.0f}" for p in pts) + '"/>')
        for k, dash in ((2, ' stroke-dasharray="5,3"'), (3, "")):
            out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2"{dash} points="'
                       + " ".join(f"{x(p[0], w + 20):.0f},{y2(p[k]):.0f}" for p in pts) + '"/>')
        out.append(f'<text x="{pad + 150 * n}" y="{h + 22}" fill="{c}">&#8212; {workers} worker process'
                   f'{"es" if workers > 1 else ""}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p) * 1000:.0f}" if values else "-"


def summarise(results: list[dict], worker_counts: list[int], rates: list[float]) -> tuple[list, list, dict]:
    """Table rows (medians over repeated runs, percentiles over all their instances), CPU
    rows, and the points of the chart."""
    rows, cpu_rows, points = [], [], {}
    for workers in worker_counts:
        for rate in rates:
            runs = [r for r in results if r["workers"] == workers and r["rate"] == rate]
            pool = {k: [x for r in runs for x in r[k]] for k in ("post", "queue_wait", "handler", "overhead")}

            def med(value) -> float:
                return statistics.median(value(r) for r in runs)

            def per_instance(*keys: str) -> float:  # CPU ms (or a count) per instance that ran
                return med(lambda r: sum(r["cpu"][k] for k in keys) / max(r["running"], 1))

            points.setdefault(workers, []).append((rate, med(lambda r: r["running_per_s"]),
                                                   percentile(pool["overhead"], 50), percentile(pool["overhead"], 99)))
            lost = sum(r["errors"].get("No capacity: placement lost its races", 0) for r in runs)
            other = sum(sum(r["errors"].values()) for r in runs) - lost
            rows.append([workers, f"{rate:g}", f"{med(lambda r: r['post_per_s']):.1f}",
                         f"{med(lambda r: r['running_per_s']):.1f}",
                         *(f"{ms(pool[k], 50)} / {ms(pool[k], 99)}" for k in ("post", "queue_wait", "handler",
                                                                              "overhead")),
                         f"{sum(r['running'] for r in runs)}/{sum(r['offered'] for r in runs)}", lost, other])
            cpu_rows.append([workers, f"{rate:g}", *(f"{per_instance(k) * 1000:.0f}" for k in ("api", "workers",
                                                                                                 "postgres")),
                             f"{per_instance('api', 'workers', 'postgres') * 1000:.0f}",
                             f"{per_instance('rollbacks'):.2f}",
                             f"{med(lambda r: r['cpu']['machine_busy']) * 100:.0f}%"])
    return rows, cpu_rows, points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 and 100 creates/s for 2 s each")
    parser.add_argument("--rates", help="comma-separated creates/s offered (default 5,20,50,100; --quick 5,100)")
    parser.add_argument("--duration", type=float, help="seconds of offered load per run (default 5, --quick 2)")
    parser.add_argument("--workers", default="1,4", help="worker process counts to compare (default 1,4)")
    parser.add_argument("--concurrency", type=int, default=32,
                        help="jobs each worker runs at once (the product's default is 4); default 32")
    parser.add_argument("--boot", type=float, default=0.5, help="simulated guest boot seconds, subtracted; 0.5")
    parser.add_argument("--api-workers", type=int, default=2, help="`gpucloud api --workers`; default 2")
    parser.add_argument("--connections", type=int, default=64, help="client keep-alive connections; default 64")
    parser.add_argument("--drain", type=float, default=120, help="seconds to wait for instances to run; 120")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every configuration; default 1")
    parser.add_argument("--hosts", type=int, default=1000,
                        help="simulated hosts at least (spread over every region and model); default 1000")
    parser.add_argument("--svg", type=Path, help="also draw throughput and overhead by offered rate here")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    rates = [float(x) for x in (args.rates or ("5,100" if args.quick else "5,20,50,100")).split(",")]
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    worker_counts = [int(x) for x in args.workers.split(",")]
    most = int(max(rates) * args.duration) + WARMUP
    pools = len(gpu_regions()) * len(POOLS)
    hosts_per_pool = max(-(-args.hosts // pools), -(-int(most * 1.15) // (len(gpu_regions()) * GPUS_PER_TRIPLE)))
    print(f"# provisioning pipeline: {machine()}")
    print(f"# gpucloud api --workers {args.api_workers}, gpucloud worker --concurrency {args.concurrency} x "
          f"{'/'.join(map(str, worker_counts))}, PostgreSQL; {len(POOLS) * hosts_per_pool * len(gpu_regions())} "
          f"sim hosts ({hosts_per_pool} candidates per create), "
          f"plans {', '.join(POOLS.values())}; sim boot {args.boot:g} s (subtracted); {args.duration:g} s per rate",
          flush=True)
    template = f"gpucloud_bench_tpl_{secrets.token_hex(4)}"
    results = []
    try:
        token = prepare_template(template, hosts_per_pool)
        for rep in range(args.repeat):
            for workers in worker_counts:
                for rate in rates:
                    r = run(template, token, workers, rate, args)
                    results.append(r)
                    print(f"  [{rep + 1}/{args.repeat}] {workers} worker(s), {rate:g}/s offered: {r['created']}/"
                          f"{r['offered']} created, {r['running']} running, {r['running_per_s']:.1f} running/s, "
                          f"overhead p50 {ms(r['overhead'], 50)} ms p99 {ms(r['overhead'], 99)} ms; "
                          f"{r['cpu']['rollbacks']} rollbacks, {r['periodic_jobs']} periodic jobs meanwhile; "
                          f"load average {r['load']:.1f}"
                          + (f"; refused {r['errors']}" if r["errors"] else "")
                          + (f"; create attempts that failed: {r['failed_attempts']}" if r["failed_attempts"] else "")
                          + (f"; not running: {r['not_running']} {r['not_running_states']}"
                             if r["not_running"] else ""), flush=True)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    rows, cpu_rows, points = summarise(results, worker_counts, rates)
    n = f" (median of {args.repeat} runs; percentiles over all)" if args.repeat > 1 else ""
    print()
    print(table(["worker processes", "offered/s", f"POST 200/s{n}", "running/s", "POST p50 / p99 ms",
                 "queue wait p50 / p99 ms", "handler - boot p50 / p99 ms", "overhead p50 / p99 ms",
                 "running / offered", "refused: lost races", "refused: other"], rows))
    print()
    print(table(["worker processes", "offered/s", "API CPU ms per instance", "workers CPU ms",
                 "PostgreSQL CPU ms", "total CPU ms", "rolled-back transactions per instance",
                 "machine CPU busy"], cpu_rows))
    if args.svg:
        args.svg.parent.mkdir(parents=True, exist_ok=True)
        args.svg.write_text(svg(points, f"POST to running, PostgreSQL, gpucloud api x{args.api_workers}, "
                                        f"{os.cpu_count()} shared cores"))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
