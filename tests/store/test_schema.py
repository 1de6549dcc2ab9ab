"""The migrations build exactly the schema the code declares, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from gpucloud.hypervisor.profile import builtin_profiles, load_profile
from gpucloud.services import accounts, hosts, instances
from gpucloud.store import migrate
from gpucloud.store.tables import Base, Host
from tests.conftest import make_settings


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


def test_downgrading_0012_keeps_the_hosts_topology_rows_and_upgrading_gives_their_keys_again(store_db, tmp_path):
    # SQLite's batch mode rebuilt `hosts`: dropping the old table deleted, through the foreign
    # keys' cascades, every host's NUMA nodes, CPU threads and GPUs.
    settings = make_settings(tmp_path, store_db.url)
    for n, profile in enumerate(sorted(builtin_profiles())[:3]):
        hosts.register_host(store_db, settings, name=f"h{n}", region="us-east", topology=load_profile(profile),
                            driver="sim")
    counts = "SELECT (SELECT count(*) FROM numa_nodes), (SELECT count(*) FROM cpus), (SELECT count(*) FROM gpus)"
    with store_db.write() as s:
        before = tuple(s.connection().exec_driver_sql(counts).one())
        keys = dict(s.execute(select(Host.id, Host.cpu_layout_key)).all())
    migrate.downgrade(store_db, "0011")
    with store_db.write() as s:
        assert tuple(s.connection().exec_driver_sql(counts).one()) == before
    assert migrate.upgrade(store_db) == migrate.head_revision()
    with store_db.read() as s:
        assert dict(s.execute(select(Host.id, Host.cpu_layout_key)).all()) == keys


def test_downgrades_that_rebuild_tables_keep_the_rows_that_refer_to_them(store_db, tmp_path):
    """Downgrading past 0010 and 0007 rebuilds `instances`, `users` and `api_tokens` on SQLite
    (batch mode); with foreign keys on, dropping the old tables deleted, through their cascades,
    every claim, job and token. Migrations run with them off, and they are on again after."""
    settings = make_settings(tmp_path, store_db.url)
    hosts.register_host(store_db, settings, name="h1", region="us-east", topology=load_profile("rtx6000-2s4g"),
                        driver="sim")
    account = accounts.create_account(store_db, "kept@example.com")
    accounts.create_token(store_db, account.id, scopes="*", label="ci")
    instances.create_instance(store_db, settings, account.id, "admin",
                              instances.NewInstance(type="g1-gpu-rtx6000-2", region="us-east"), bypass_flags=True)
    tables = ("users", "api_tokens", "instances", "gpu_claims", "cpu_claims", "memory_claims", "jobs", "numa_nodes")
    counts = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)
    with store_db.write() as s:
        before = tuple(s.connection().exec_driver_sql(counts).one())
    assert all(before)
    migrate.downgrade(store_db, "0006")
    with store_db.write() as s:
        assert tuple(s.connection().exec_driver_sql(counts).one()) == before
    assert migrate.upgrade(store_db) == migrate.head_revision()
    with store_db.write() as s:
        assert tuple(s.connection().exec_driver_sql(counts).one()) == before
        if store_db.is_sqlite:  # the pooled connections enforce foreign keys again
            assert s.connection().exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
