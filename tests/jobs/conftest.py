"""Fixtures for the queue and worker tests: hosts to hang jobs on, fast settings, and
worker subprocesses started exactly as an operator would start a second worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpucloud.store.tables import Host
from tests.conftest import make_settings
from tests.live import clean_env

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_host() -> Callable[..., int]:
    """A bare sim host row (no topology: the queue only needs its id and status)."""
    counter = iter(range(1, 1000))

    def make(db, status: str = "active", name: str | None = None, profile: str = "rtx6000-2s4g") -> int:
        with db.write() as s:
            host = Host(name=name or f"sim-{next(counter):03d}", region_id="us-east", driver="sim",
                        profile=profile, status=status)
            s.add(host)
            s.flush()
            return host.id

    return make


@pytest.fixture
def fast_settings(tmp_path) -> Callable[..., object]:
    """Settings for a database with leases, polls and backoffs short enough for tests."""

    def make(db, **overrides):
        values = dict(job_lease_seconds=1.5, worker_poll_seconds=0.05, job_backoff_seconds=0.05,
                      job_backoff_max_seconds=0.2, sim_boot_seconds=0.1, driver_timeout_seconds=0.3)
        values.update(overrides)
        return make_settings(tmp_path, db.url, **values)

    return make


class WorkerProcess:
    """`python -m tests.jobs.worker_proc`: a real worker process running the test handlers."""

    def __init__(self, proc: subprocess.Popen, log: Path):
        self.proc, self.log = proc, log

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and "started" in self.log.read_text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early ({self.proc.returncode}):\n{self.log.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"worker not ready within {timeout} s:\n{self.log.read_text()}")

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture
def spawn_worker(tmp_path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def spawn(db_url: str, *, name: str, concurrency: int = 2, lease: float = 1.5, host_sweep: bool = False,
              **settings) -> WorkerProcess:
        log = tmp_path / f"{name}.log"
        config = {"data_dir": str(tmp_path), "database_url": db_url, "job_lease_seconds": lease,
                  "worker_poll_seconds": 0.05, "job_backoff_seconds": 0.05, "job_backoff_max_seconds": 0.2,
                  **settings}
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.jobs.worker_proc", "--name", name, "--concurrency", str(concurrency),
             "--settings", json.dumps(config), *(["--host-sweep"] if host_sweep else [])],
            cwd=REPO, env=clean_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT,
        )
        worker = WorkerProcess(proc, log)
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)
