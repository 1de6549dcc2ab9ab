"""Schema migrations (Alembic), run from code so `gpucloud db upgrade` needs no alembic.ini."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

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


def upgrade(db: Database) -> str:
    """Bring the schema to the newest revision; returns it. Safe to run on every start."""
    db.check_reachable()
    with db.write_engine.connect() as conn:
        command.upgrade(_config(conn), "head")
        conn.commit()
    return head_revision()


def autogenerate(db: Database, message: str) -> None:
    """Developer helper: write a new revision from the difference between tables.py and the database."""
    with db.write_engine.connect() as conn:
        command.revision(_config(conn), message=message, autogenerate=True)
