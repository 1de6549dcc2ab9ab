"""Soak with faults: the product as operators run it, on PostgreSQL, while things break.

    .venv/bin/python bench/soak.py                 # 10 minutes (the issue's minimum)
    .venv/bin/python bench/soak.py --minutes 3     # a shorter try

Runs 2 `gpucloud api` processes and 2 `gpucloud worker` processes on a fresh PostgreSQL
database with a simulated fleet. Several clients create GPU and standard instances, shut
them down, boot, reboot and delete them, through either API process (the other one when a
connection is refused, as a load balancer would). Meanwhile:

- every 30 s a worker is SIGKILLed (and started again): its jobs are taken over when their
  leases expire;
- every 60 s every PostgreSQL connection of the database is cut (`pg_terminate_backend`);
- every 120 s an API process is stopped and started again;
- once, a third of the way in, a simulated host becomes unreachable for 45 s, then returns.

Then the clients stop, the workers finish what is queued, and `gpucloud check` verifies every
invariant (claims vs instances vs domains, jobs vs attempts, generations). The table says:
requests, 5xx (a 503 is allowed only within 10 s after a cut), connection refusals (only
while an API process restarts), instances not in a final state, leaked or doubled claims,
jobs stuck or run twice. Exit status 1 when any of the must-be-zero rows is not 0.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from _store import INSTANT_STEPS

from gpucloud.catalog import load_catalog
from gpucloud.config import load_settings
from gpucloud.hypervisor import sim
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, flags, hosts
from gpucloud.store import migrate
from gpucloud.store.catalog import sync_catalog
from gpucloud.store.db import Database

GPUCLOUD = str(Path(sys.executable).with_name("gpucloud"))
PG_ADMIN = os.environ.get("GPUCLOUD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REGION, PROFILE, HOSTS = "us-east", "rtx6000-2s4g", 6
PLANS = ("g1-gpu-rtx6000-1", "g1-gpu-rtx6000-1", "g6-nanode-1")
PASSWORD = "soak-Test-passw0rd!"
CLAIM_RULES = ("claim-off-host", "claims-not-plan", "node-overcommitted", "reserved-cpu-claimed", "generation")
JOB_RULES = ("attempt-running", "job-attempts", "job-ran-twice", "instance-jobs", "job-stuck")
FINAL = ("running", "offline", "failed")
CUT_GRACE = 10.0  # a 503 within this many seconds after a cut is the cut's


def pg(sql: str, *, dsn: str = PG_ADMIN) -> list:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Timeline:
    """When faults happened, for attributing 503s and refusals."""

    cuts: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, text: str) -> None:
        line = f"{time.monotonic() - self.started:7.1f}s  {text}"
        self.notes.append(line)
        print(line, flush=True)


class Processes:
    """The 2 API and 2 worker processes, each in its own process group."""

    def __init__(self, env: dict, log: Path):
        self.env, self.log = env, log.open("a")
        self.ports = [free_port(), free_port()]
        self.api: list[subprocess.Popen | None] = [None, None]
        self.workers: list[subprocess.Popen | None] = [None, None]

    def _spawn(self, args: list[str]) -> subprocess.Popen:
        return subprocess.Popen([GPUCLOUD, *args], env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start_api(self, n: int) -> None:
        self.api[n] = self._spawn(["api", "--port", str(self.ports[n])])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.ports[n]}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"API {n} did not come up; see {self.log.name}")

    def start_worker(self, n: int) -> None:
        self.workers[n] = self._spawn(["worker", "--concurrency", "4", "--grace", "5", "--name", f"soak-w{n}-"
                                       f"{secrets.token_hex(2)}"])

    def kill_worker(self, n: int) -> None:
        proc = self.workers[n]
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_api(self, n: int) -> None:
        _terminate(self.api[n])

    def stop_all(self) -> None:
        for proc in (*self.api, *self.workers):
            _terminate(proc)
        self.log.close()


def _terminate(proc: subprocess.Popen | None) -> None:
    """SIGTERM to the process group, SIGKILL if it is still there after 30 s."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@dataclass
class Tally:
    statuses: collections.Counter = field(default_factory=collections.Counter)
    refused: int = 0
    server_errors: list[tuple[float, str, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client(threading.Thread):
    """Creates, acts on and deletes its own instances until told to stop."""

    def __init__(self, n: int, procs: Processes, token: str, tally: Tally, stop: threading.Event):
        super().__init__(name=f"client-{n}", daemon=True)
        self.procs, self.tally, self.stop_event = procs, tally, stop
        self.random = random.Random(n)
        self.mine: list[int] = []
        self.http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        first = self.random.randrange(2)
        for port in (self.procs.ports[first], self.procs.ports[1 - first]):
            try:
                response = self.http.request(method, f"http://127.0.0.1:{port}/v4{path}", json=body)
            except httpx.TransportError:
                with self.tally.lock:
                    self.tally.refused += 1
                continue
            with self.tally.lock:
                self.tally.statuses[response.status_code] += 1
                if response.status_code >= 500:
                    self.tally.server_errors.append((time.monotonic(), f"{method} {path}", response.status_code,
                                                     response.text[:200]))
            try:
                return response.status_code, response.json()
            except ValueError:
                return response.status_code, {}
        return 0, {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            if len(self.mine) < 3:
                status, made = self.call("POST", "/linode/instances", {
                    "type": self.random.choice(PLANS), "region": REGION, "image": "linode/debian12",
                    "root_pass": PASSWORD, "booted": True})
                if status == 200:
                    self.mine.append(made["id"])
            else:
                instance_id = self.random.choice(self.mine)
                status, seen = self.call("GET", f"/linode/instances/{instance_id}")
                if status == 404:
                    self.mine.remove(instance_id)
                elif status == 200:
                    choices = {"running": ("shutdown", "reboot", "delete"), "offline": ("boot", "delete"),
                               "failed": ("delete",)}.get(seen.get("status"), ())
                    if choices:
                        action = self.random.choice(choices)
                        if action == "delete":
                            self.call("DELETE", f"/linode/instances/{instance_id}")
                        else:
                            self.call("POST", f"/linode/instances/{instance_id}/{action}", {})
            self.stop_event.wait(self.random.uniform(0.1, 0.4))


def prepare(data_dir: Path) -> tuple[str, str]:
    """A fresh database (schema, catalog, fleet, an account with GPU access); (url, token)."""
    name = f"gpucloud_soak_{os.getpid()}_{secrets.token_hex(3)}"
    pg(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    try:
        migrate.upgrade(db)
        with db.write() as s:
            sync_catalog(s, load_catalog())
        settings = load_settings({"database_url": url, "data_dir": str(data_dir)}, environ={})
        for n in range(HOSTS):
            hosts.register_host(db, settings, name=f"soak-{n:02d}", region=REGION, topology=load_profile(PROFILE),
                                driver="sim", profile=PROFILE, actor="soak")
        account = accounts.create_account(db, "soak@example.com", username="soak")
        flags.allow(db, "gpu-instances", account.id, why="soak", actor="soak")
        token = accounts.create_token(db, account.id, scopes="*", label="soak").secret
    finally:
        db.dispose()
    return url, token


def chaos(procs: Processes, url: str, data_dir: Path, duration: float, timeline: Timeline,
          stop: threading.Event) -> None:
    dbname = url.rsplit("/", 1)[1]
    start = time.monotonic()
    next_kill, next_cut, next_api, host_down_at, host_up_at = 30.0, 60.0, 120.0, duration / 3, duration / 3 + 45
    kills = api_restarts = 0
    down = None
    while not stop.is_set():
        now = time.monotonic() - start
        if now >= next_kill:
            n = kills % 2
            procs.kill_worker(n)
            procs.start_worker(n)
            kills += 1
            next_kill += 30
            timeline.note(f"SIGKILL worker {n}, started again")
        if now >= next_cut:
            cut = pg(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{dbname}' "
                     "AND pid <> pg_backend_pid()")[0][0]
            timeline.cuts.append(time.monotonic())
            next_cut += 60
            timeline.note(f"cut {cut} PostgreSQL connections")
        if now >= next_api:
            n = api_restarts % 2
            procs.stop_api(n)
            timeline.note(f"API {n} stopped")
            procs.start_api(n)
            api_restarts += 1
            next_api += 120
            timeline.note(f"API {n} started again")
        if down is None and now >= host_down_at:
            down = f"soak-{HOSTS - 1:02d}"
            sim.inject_fault(data_dir, down, "*", "unreachable")
            timeline.note(f"host {down} unreachable")
        if down is not None and host_up_at is not None and now >= host_up_at:
            sim.clear_faults(data_dir, down)
            host_up_at = None
            timeline.note(f"host {down} reachable again")
        stop.wait(0.5)
    if down is not None and host_up_at is not None:
        sim.clear_faults(data_dir, down)


def quiesce(url: str, timeout: float) -> list[tuple[int, str]]:
    """Wait until no instance job is queued or running; the instances still not final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = pg("SELECT count(*) FROM jobs WHERE instance_id IS NOT NULL AND state IN ('queued', 'running')",
                  dsn=url)[0][0]
        if busy == 0:
            break
        time.sleep(1)
    return pg(f"SELECT id, status FROM instances WHERE status NOT IN {FINAL!r} ORDER BY id", dsn=url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="Keep the database and data dir afterwards.")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="gpucloud-soak-"))
    url, token = prepare(data_dir)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")},
           "GPUCLOUD_DATABASE_URL": url, "GPUCLOUD_DATA_DIR": str(data_dir), **INSTANT_STEPS, "GPUCLOUD_SIM_BOOT_SECONDS": "0.5",
           "GPUCLOUD_RATE_LIMIT_PER_MINUTE": "0", "GPUCLOUD_JOB_LEASE_SECONDS": "6",
           "GPUCLOUD_HOST_CHECK_SECONDS": "3", "GPUCLOUD_HOST_DOWN_AFTER_MISSED": "2",
           "GPUCLOUD_DATABASE_POOL_SIZE": "5"}
    procs = Processes(env, data_dir / "processes.log")
    timeline, tally, stop = Timeline(), Tally(), threading.Event()
    duration = args.minutes * 60
    print(f"soak: {args.minutes:g} min, database {url.rsplit('/', 1)[1]}, logs {data_dir / 'processes.log'}",
          flush=True)
    try:
        for n in range(2):
            procs.start_api(n)
            procs.start_worker(n)
        timeline.started = time.monotonic()
        clients = [Client(n, procs, token, tally, stop) for n in range(args.clients)]
        breaker = threading.Thread(target=chaos, args=(procs, url, data_dir, duration, timeline, stop), daemon=True)
        for thread in (*clients, breaker):
            thread.start()
        stop.wait(duration)
        stop.set()
        for thread in (*clients, breaker):
            thread.join(120)
        timeline.note("clients stopped; letting the workers finish")
        for n in range(2):  # both workers alive for the end
            if procs.workers[n] is None or procs.workers[n].poll() is not None:
                procs.start_worker(n)
        unsettled = quiesce(url, timeout=300)
        check = subprocess.run([GPUCLOUD, "check", "--stuck-after", "60"], env=env, capture_output=True, text=True,
                               timeout=300)
    finally:
        procs.stop_all()
    violations = [line for line in check.stdout.splitlines() if not line.startswith("ok: ")]
    by_rule = collections.Counter(line.split(":", 1)[0] for line in violations)
    in_cut = sum(1 for t, _, status, _ in tally.server_errors
                 if status == 503 and any(0 <= t - c <= CUT_GRACE for c in timeline.cuts))
    outside = len(tally.server_errors) - in_cut
    rows = [
        ("requests", sum(tally.statuses.values()), None),
        ("2xx / 4xx", f"{sum(v for k, v in tally.statuses.items() if k < 300)} / "
                      f"{sum(v for k, v in tally.statuses.items() if 400 <= k < 500)}", None),
        ("503 within 10 s of a database cut", in_cut, None),
        ("5xx otherwise", outside, 0),
        ("connections refused (an API process restarting), retried on the other", tally.refused, None),
        ("instances not in a final state", len(unsettled), 0),
        ("leaked or doubled GPU/core claims", sum(by_rule[r] for r in CLAIM_RULES), 0),
        ("jobs stuck or run twice", sum(by_rule[r] for r in JOB_RULES), 0),
        ("gpucloud check violations (all rules)", len(violations), 0),
    ]
    print("\n| what | count | allowed |\n|---|---:|---:|")
    for what, value, allowed in rows:
        print(f"| {what} | {value} | {'' if allowed is None else allowed} |")
    print(f"\nfaults: {sum('SIGKILL' in n for n in timeline.notes)} worker kills, {len(timeline.cuts)} database cuts, "
          f"{sum(n.endswith('started again') and 'API' in n for n in timeline.notes)} API restarts, 1 host down and up")
    print(f"gpucloud check exit status {check.returncode}: {check.stdout.strip().splitlines()[-1:] or check.stderr}")
    for line in violations[:20]:
        print("  " + line)
    for t, what, status, body in tally.server_errors:
        if not (status == 503 and any(0 <= t - c <= CUT_GRACE for c in timeline.cuts)):
            print(f"  {status} {what}: {body}")
    for instance_id, status in unsettled[:20]:
        print(f"  instance {instance_id} left {status}")
    if not args.keep:
        pg(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    failed = any(allowed is not None and value != allowed for _, value, allowed in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
