"""The `gpucloud` command. Entry points stay thin: parse, call a service, print."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import click
from sqlalchemy.exc import DBAPIError

from gpucloud.cli.output import fail
from gpucloud.config import Settings, load_settings
from gpucloud.errors import ConfigError, GpucloudError
from gpucloud.services.accounts import database_is_new
from gpucloud.store import migrate
from gpucloud.store.db import Database, redact


@dataclass
class Context:
    flags: dict
    _settings: Settings | None = None
    _db: Database | None = field(default=None, repr=False)
    _told: bool = False

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.flags)
        return self._settings

    def override(self, **flags) -> None:
        """Command-level flags (e.g. serve --port) join the global ones before first use."""
        self.flags.update({k: v for k, v in flags.items() if v is not None})
        self._settings = None

    @property
    def db(self) -> Database:
        """The database, at the newest schema. The embedded SQLite upgrades itself; a shared
        PostgreSQL is only upgraded by `gpucloud db upgrade`, so a deploy stays deliberate."""
        if self._db is None:
            db = Database.for_settings(self.settings)
            if db.is_sqlite:
                migrate.upgrade(db)
            else:
                db.check_reachable()
                current, head = migrate.current_revision(db), migrate.head_revision()
                if current != head:
                    raise ConfigError(f"database {redact(db.url)} is at schema {current or 'none'}, "
                                      f"this gpucloud needs {head}: run `gpucloud db upgrade`")
            from gpucloud.catalog import load_catalog
            from gpucloud.store.catalog import sync_catalog

            with db.write() as s:
                sync_catalog(s, load_catalog())
            self._db = db
        return self._db


    @property
    def state(self) -> Database:
        """The database, for a command that reads state: when it holds nothing yet, say on
        stderr which database this is and how to point at a running server's data, so an empty
        answer is never mistaken for an empty fleet."""
        db = self.db
        if not self._told and database_is_new(db):
            click.echo(f"note: database {redact(db.url)} is new and empty (no hosts, no accounts). To read a "
                       "running server's data, give its --data-dir (or GPUCLOUD_DATA_DIR) or its "
                       "--database-url (or GPUCLOUD_DATABASE_URL).", err=True)
        self._told = True
        return db


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data-dir", envvar="GPUCLOUD_DATA_DIR", help="Where the embedded database and demo files live.")
@click.option("--database-url", envvar="GPUCLOUD_DATABASE_URL",
              help="sqlite:///PATH or postgresql://user@host/db (default: SQLite in the data dir).")
@click.option("--config", "config_file", envvar="GPUCLOUD_CONFIG", type=click.Path(dir_okay=False),
              help="A TOML settings file (default: DATA_DIR/gpucloud.toml when present).")
@click.version_option(package_name="gpucloud")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None, database_url: str | None, config_file: str | None) -> None:
    """gpucloud: the control plane of a GPU cloud (Linode API v4 compatible)."""
    ctx.obj = Context({"data_dir": data_dir, "database_url": database_url, "config": config_file})


def _register_commands() -> None:
    from gpucloud.cli import accounts, api, billing, capacity, check, flags, hosts, instances, ips, server, worker

    for module in (server, api, hosts, instances, ips, capacity, accounts, flags, worker, check, billing):
        for command in module.COMMANDS:
            cli.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; errors meant for people become one line on stderr and exit status 1."""
    try:
        cli.main(args=argv, prog_name="gpucloud", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GpucloudError as exc:
        fail(exc.reason)
    except DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        fail(f"database error: {first}")
    except KeyboardInterrupt:
        fail("interrupted", 130)
