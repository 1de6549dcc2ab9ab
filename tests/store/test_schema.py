"""The migrations build exactly the schema the code declares, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gpucloud.store import migrate
from gpucloud.store.tables import Base


def test_migrations_match_the_declared_tables(store_db):
    with store_db.write_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_reports_head(store_db):
    assert migrate.upgrade(store_db) == migrate.head_revision()
    assert migrate.upgrade(store_db) == migrate.head_revision()
    assert migrate.current_revision(store_db) == migrate.head_revision()


def test_sqlite_runs_in_wal_mode(sqlite_db):
    with sqlite_db.read() as s:
        assert s.connection().exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert s.connection().exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
