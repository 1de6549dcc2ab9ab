"""Schema migrations (Alembic), run from code so `gpucloud db upgrade` needs no alembic.ini."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from gpucloud.store.db import Database


def _config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("gpucloud.store") / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migrations have no head revision")
    return head


def current_revision(db: Database) -> str | None:
    with db.write_engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _migrating(db: Database) -> Iterator[Connection]:
    """A connection for Alembic, committed at the end. On SQLite its foreign keys are off while
    it migrates: batch mode rebuilds a table by copying it and dropping the old one, and with
    them on, that drop deletes, through ON DELETE CASCADE, every row that refers to the table
    (a downgrade that dropped a column of `instances` emptied the claims). The pragma only
    works outside a transaction, so it goes to the driver before Alembic begins one, and back
    on before the connection returns to the pool."""
    with db.write_engine.connect() as conn:
        driver = conn.connection.driver_connection if db.is_sqlite else None
        if driver is not None:
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            yield conn
            conn.commit()
        finally:
            if driver is not None:
                if conn.in_transaction():
                    conn.rollback()
                driver.execute("PRAGMA foreign_keys=ON")


def upgrade(db: Database) -> str:
    """Bring the schema to the newest revision; returns it. Safe to run on every start."""
    db.check_reachable()
    with _migrating(db) as conn:
        command.upgrade(_config(conn), "head")
    return head_revision()


def downgrade(db: Database, revision: str) -> None:
    """Take the schema back to `revision` (a developer's tool: no command offers it). Rows of
    the tables both revisions have are kept; what only the newer one has is dropped."""
    with _migrating(db) as conn:
        command.downgrade(_config(conn), revision)


def autogenerate(db: Database, message: str) -> None:
    """Developer helper: write a new revision from the difference between tables.py and the database."""
    with db.write_engine.connect() as conn:
        command.revision(_config(conn), message=message, autogenerate=True)
