"""Shared fixtures: real databases (SQLite in a temp dir, PostgreSQL on 127.0.0.1:5432).

Each test session creates its own PostgreSQL database and drops it at the end; each test
starts from empty tables. `store_db` runs a test once per database.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from gpucloud.catalog import load_catalog
from gpucloud.config import Settings, load_settings
from gpucloud.store import migrate
from gpucloud.store.catalog import sync_catalog
from gpucloud.store.db import Database
from gpucloud.store.tables import Base

PG_ADMIN_URL = os.environ.get("GPUCLOUD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (one per xdist worker), migrated."""
    name = f"gpucloud_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for the store tests and is not reachable at {PG_ADMIN_URL}: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    migrate.upgrade(db)
    with db.write() as s:
        sync_catalog(s, load_catalog())
    db.dispose()
    yield url
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file that each test copies, so migrations run once per session."""
    path = tmp_path_factory.mktemp("template") / "gpucloud.sqlite"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    with db.write() as s:
        sync_catalog(s, load_catalog())
    db.dispose()
    return path


_KEEP_ON_RESET = {"regions", "gpu_models", "instance_types", "alembic_version"}


def _reset_postgres(db: Database) -> None:
    tables = [t.name for t in Base.metadata.sorted_tables if t.name not in _KEEP_ON_RESET]
    with db.write() as s:
        s.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        sync_catalog(s, load_catalog())  # the regions' address pools, as a fresh database has them


# The simulated fleet's steps take seconds by default (so the demo shows each status); tests
# that do not ask for a step's time get it at once, and the boot time the suite was written for.
FAST_SIM = {"sim_provision_seconds": 0, "sim_boot_seconds": 2.0, "sim_shutdown_seconds": 0, "sim_resize_seconds": 0,
            "sim_rebuild_seconds": 0}


def make_settings(data_dir: Path, database_url: str, **overrides) -> Settings:
    return load_settings({"data_dir": str(data_dir), "database_url": database_url, **FAST_SIM, **overrides},
                         environ={})


@pytest.fixture
def sqlite_db(tmp_path, sqlite_template) -> Iterator[Database]:
    path = tmp_path / "gpucloud.sqlite"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


@pytest.fixture
def postgres_db(pg_url) -> Iterator[Database]:
    db = Database(pg_url)
    _reset_postgres(db)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_db(request) -> Iterator[Database]:
    """Runs the test on both databases: one code path, two engines."""
    yield request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "postgres_db")


@pytest.fixture
def settings(tmp_path, store_db) -> Settings:
    return make_settings(tmp_path, store_db.url)
