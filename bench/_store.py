"""Shared by the benchmarks: throw-away databases (a SQLite file or a PostgreSQL database of its
own), a simulated fleet registered straight into them, a `gpucloud worker` process on them, and
the small statistics they print. Nothing here is measured."""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from gpucloud.catalog import load_catalog
from gpucloud.config import Settings, load_settings
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import hosts
from gpucloud.store import migrate
from gpucloud.store.catalog import sync_catalog
from gpucloud.store.db import Database

PG_ADMIN = os.environ.get("GPUCLOUD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# The sim's steps other than the boot take no time in benchmarks (figures stay comparable across runs;
# the demo's defaults take seconds so that people see each status).
INSTANT_STEPS = {"GPUCLOUD_SIM_PROVISION_SECONDS": "0", "GPUCLOUD_SIM_SHUTDOWN_SECONDS": "0",
                 "GPUCLOUD_SIM_RESIZE_SECONDS": "0", "GPUCLOUD_SIM_REBUILD_SECONDS": "0"}


@dataclass
class Scratch:
    """A database and a data dir that exist only for one run."""

    kind: str  # "sqlite" or "postgres"
    url: str
    data_dir: Path
    pg_name: str | None = None

    def settings(self, **overrides) -> Settings:
        instant = {k.removeprefix("GPUCLOUD_").lower(): v for k, v in INSTANT_STEPS.items()}
        return load_settings({"data_dir": str(self.data_dir), "database_url": self.url, **instant, **overrides},
                             environ={})

    def env(self, **extra: str) -> dict[str, str]:
        """This process's environment without stray GPUCLOUD_* settings, pointed at this store."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
        return {**env, **INSTANT_STEPS, "GPUCLOUD_DATA_DIR": str(self.data_dir), "GPUCLOUD_DATABASE_URL": self.url,
                **extra}


def pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def scratch(kind: str, *, template: str | None = None, prefix: str = "gpucloud_bench") -> Iterator[Scratch]:
    """A fresh store, migrated and with the catalog, dropped on the way out. `template`: a
    PostgreSQL database to copy instead (CREATE DATABASE ... TEMPLATE: a file copy, fast)."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-{kind}-"))
    name = None
    try:
        if kind == "sqlite":
            url = f"sqlite:///{data_dir / 'gpucloud.sqlite'}"
        else:
            name = f"{prefix}_{secrets.token_hex(4)}"
            pg_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
            url = pg_url(name)
        store = Scratch(kind, url, data_dir, name)
        if template is None:
            db = Database(url)
            migrate.upgrade(db)
            with db.write() as s:
                sync_catalog(s, load_catalog())
            db.dispose()
        yield store
    finally:
        if name is not None:
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)


def register_fleet(db: Database, settings: Settings, fleet: dict[tuple[str, str], int]) -> int:
    """{(region, profile): count} simulated hosts, written with `register_host` as
    `gpucloud host add` writes them. Returns how many."""
    n = 0
    for (region, profile), count in fleet.items():
        topology = load_profile(profile)
        for _ in range(count):
            hosts.register_host(db, settings, name=f"sim-{region}-{profile}-{n:05d}", region=region,
                                topology=topology, driver="sim", profile=profile, actor="bench")
            n += 1
    return n


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(min(rank, len(ordered))) - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    load = os.getloadavg()
    return (f"CPython {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {load[0]:.1f} at start")


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def which_python_tool(name: str) -> str:
    """The `gpucloud` (or other) entry point installed beside this interpreter."""
    here = Path(sys.executable).with_name(name)
    return str(here) if here.exists() else shutil.which(name) or name


@contextmanager
def worker_process(store: Scratch, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A `gpucloud worker --concurrency 32` on `store`, yielded once it has imported and
    connected (its log says how many jobs it runs at a time); stopped on the way out."""
    log_path = store.data_dir / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen([which_python_tool("gpucloud"), "worker", "--concurrency", "32", "--grace", "3"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            started = time.monotonic()
            while "jobs at a time" not in log_path.read_text():
                if worker.poll() is not None or time.monotonic() - started > 300:
                    raise RuntimeError(f"the worker did not start; see {log_path}")
                time.sleep(0.5)
            yield worker
        finally:
            worker.terminate()
            worker.wait(30)
