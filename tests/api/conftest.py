"""A live public API for the tests: `create_app` under uvicorn on a free loopback port, in a
thread, over a real database, with a simulated GPU fleet registered and a job worker running
in the same process (as `gpucloud serve` does), so instances really provision, boot and stop.

`api_server` (SQLite) and `pg_api_server` (a PostgreSQL database of its own) live for the
whole session; tests isolate themselves the way tenants do, by creating their own account
(`api_server.customer()`), never by resetting the database. Reuse them from other test
packages by importing `tests.api.conftest.LiveServer`, or through these fixtures:

    def test_something(api_server):
        alice = api_server.customer()                  # account + full-access token, GPU flag on
        client = api_server.client(alice.token)       # linode_api4.LinodeClient at /v4
        http = api_server.http(alice.token)           # httpx.Client at /v4
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from linode_api4 import LinodeClient

from gpucloud.api.app import create_app
from gpucloud.api.serving import uvicorn_config
from gpucloud.catalog import load_catalog
from gpucloud.config import Settings
from gpucloud.hypervisor.profile import load_profile
from gpucloud.jobs import instance_jobs
from gpucloud.jobs.worker import default_handlers, start_workers
from gpucloud.services import accounts, flags, hosts
from gpucloud.store import migrate
from gpucloud.store.catalog import sync_catalog
from gpucloud.store.db import Database
from tests.conftest import make_settings

PG_ADMIN_URL = os.environ.get("GPUCLOUD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
FLEET = {"us-east": ("rtx6000-2s4g", 12), "ap-west": ("rtx6000-2s4g", 2)}
FAST = {"sim_boot_seconds": 0.5, "worker_poll_seconds": 0.05,  # tests poll with fresh GETs, not 15 s caches
        "console_signups_per_hour": 10_000}  # every browser test signs up from 127.0.0.1


@dataclass(frozen=True)
class Customer:
    account_id: int
    email: str
    username: str
    token: str


class LiveServer:
    """The app on 127.0.0.1:<free port>, started and stopped in-process; `worker` also runs
    the product's job handlers on threads of this process."""

    def __init__(self, settings: Settings, db: Database, *, worker: bool = True):
        self.settings, self.db = settings, db
        self._worker = None
        self._with_worker = worker
        # IPPROTO_TCP spelled out: asyncio only sets TCP_NODELAY on sockets that say so, and without
        # it small responses wait ~40 ms for delayed ACKs (Nagle)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, db)
        self._server = uvicorn.Server(uvicorn_config(self.app, settings, log_level="warning", lifespan="off",
                                                     access_log=False))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"api-{self.port}", daemon=True)

    def start(self) -> LiveServer:
        if self._with_worker:
            handlers = {**default_handlers(), **instance_jobs.HANDLERS}  # the instance lifecycle, at least
            self._worker = start_workers(self.db, self.settings, handlers)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        if self._worker is not None:
            self._worker.stop(timeout=10)

    # --- what tests use -----------------------------------------------------------------

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def base(self, version: str = "v4") -> str:
        return f"{self.url}/{version}"

    def customer(self, *, gpu: bool = True, staff: bool = False, scopes: str = "*") -> Customer:
        """A new account with one user and a token; `gpu` opens the gpu-instances flag to it."""
        name = f"t{secrets.token_hex(5)}"
        info = accounts.create_account(self.db, f"{name}@example.com", staff=staff, username=name)
        if gpu:
            flags.allow(self.db, "gpu-instances", info.id, why="API tests", actor="tests")
            self.app.state.flags.refresh()
        return Customer(info.id, info.email, info.username, self.token(info.id, scopes=scopes))

    def token(self, account: int | Customer, *, scopes: str = "*", expires_at: datetime | None = None,
              label: str = "test") -> str:
        account_id = account.account_id if isinstance(account, Customer) else account
        return accounts.create_token(self.db, account_id, scopes=scopes, label=label, expires_at=expires_at).secret

    def client(self, token: str, version: str = "v4") -> LinodeClient:
        return LinodeClient(token, base_url=self.base(version), retry=False)

    def http(self, token: str | None = None, version: str = "v4") -> httpx.Client:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.base(version), headers=headers, timeout=30)


def register_fleet(db: Database, settings: Settings) -> None:
    for region, (profile, count) in FLEET.items():
        topology = load_profile(profile)
        for n in range(count):
            hosts.register_host(db, settings, name=f"{region}-{profile}-{n:02d}", region=region, topology=topology,
                                driver="sim", profile=profile, actor="tests")


def _start(settings: Settings, db: Database) -> LiveServer:
    register_fleet(db, settings)
    return LiveServer(settings, db).start()


def _migrated(url: str) -> Database:
    db = Database(url)
    migrate.upgrade(db)
    with db.write() as s:
        sync_catalog(s, load_catalog())
    return db


@pytest.fixture(scope="session")
def api_server(tmp_path_factory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("api-sqlite")
    settings = make_settings(data_dir, f"sqlite:///{data_dir / 'gpucloud.sqlite'}", **FAST)
    db = _migrated(settings.resolved_database_url)
    server = _start(settings, db)
    yield server
    server.stop()
    db.dispose()


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_api_server(tmp_path_factory) -> Iterator[LiveServer]:
    """On a PostgreSQL database of its own: other tests truncate the shared test database."""
    name = f"gpucloud_api_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required and is not reachable at {PG_ADMIN_URL}: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    settings = make_settings(tmp_path_factory.mktemp("api-pg"), url, **FAST)
    db = _migrated(url)
    server = _start(settings, db)
    yield server
    server.stop()
    db.dispose()
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def any_api_server(request) -> LiveServer:
    """Runs a test against both servers."""
    return request.getfixturevalue("api_server" if request.param == "sqlite" else "pg_api_server")


@pytest.fixture
def customer(api_server) -> Customer:
    return api_server.customer()


LINODE_CLI = str(Path(sys.executable).with_name("linode-cli"))


@pytest.fixture
def cli(api_server, tmp_path):
    """Runs `linode-cli ARGS` as a customer; returns (exit code, stdout, stderr)."""
    def run(*args: str, token: str | None = None) -> tuple[int, str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "LINODE_CLI_TOKEN": token or run.token,
            "LINODE_CLI_API_HOST": api_server.host_port,
            "LINODE_CLI_API_SCHEME": "http",
            "LINODE_CLI_CONFIG": str(tmp_path / "linode-cli.ini"),
            "LINODE_CLI_SUPPRESS_VERSION_WARNING": "1",
        }
        done = subprocess.run([LINODE_CLI, *args], env=env, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout, done.stderr

    run.token = api_server.customer().token
    return run
