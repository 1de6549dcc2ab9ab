"""Engines and transactions for SQLite (embedded) and PostgreSQL (scale-out), one code path.

SQLite gets WAL, a busy timeout, and `BEGIN IMMEDIATE` for write transactions, so two
writers queue for the lock instead of failing half-way through. Reads use a second engine
with deferred transactions so they never wait for writers. On PostgreSQL reads run in
autocommit (no BEGIN/COMMIT round trips) on the same pool, and connections are not pinged
before use: a connection that died with the server fails its statement, the pool drops
every connection of before, and the next checkout connects afresh.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gpucloud.errors import ConfigError


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (SQLAlchemy would default to psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def unavailable(exc: BaseException) -> bool:
    """The database could not answer: unreachable, busy past its timeout, or the connection
    dropped mid-transaction (e.g. `pg_terminate_backend`). The server rolls back whatever that
    transaction wrote, so nothing half-written stays; the pool drops the dead connection."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def redact(url: str) -> str:
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """The one handle services use: `read()` for queries, `write()` for units of work."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 5):
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(self.url, immediate=True)
            self.read_engine = _sqlite_engine(self.url, immediate=False)
        else:
            self.write_engine = create_engine(self.url, pool_size=pool_size, max_overflow=max_overflow)
            # Reads in autocommit: at READ COMMITTED every statement sees its own snapshot
            # anyway, so BEGIN and COMMIT would only add two round trips to each read.
            self.read_engine = self.write_engine.execution_options(isolation_level="AUTOCOMMIT")
        self._writer = sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.write_engine.dialect.name

    def check_reachable(self) -> None:
        """Fail with one readable line when the database cannot be reached."""
        try:
            with self.read_engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            cause = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise ConfigError(f"cannot reach database {redact(self.url)}: {cause}") from None

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: commits on success, rolls back on any exception."""
        with self._writer() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session, session.begin():
            yield session

    @classmethod
    def for_settings(cls, settings) -> Database:
        """The database of these settings, its PostgreSQL pool sized by them: every process
        opens at most pool size + overflow connections, which must fit max_connections."""
        return cls(settings.resolved_database_url, pool_size=settings.database_pool_size,
                   max_overflow=settings.database_max_overflow)

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.is_sqlite:
            self.read_engine.dispose()
