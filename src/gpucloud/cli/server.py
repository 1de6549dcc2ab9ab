"""`gpucloud serve`, `gpucloud db upgrade`: running the control plane."""

from __future__ import annotations

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.store import migrate
from gpucloud.store.db import Database, redact


@click.command("serve")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8080).")
@click.option("--demo", is_flag=True, help="Seed a simulated fleet, an admin login and two accounts with tokens.")
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None, demo: bool) -> None:
    """Run everything in one process: public API, admin interface and workers."""
    import uvicorn

    from gpucloud.api.app import create_app
    from gpucloud.api.serving import uvicorn_config

    ctx.override(host=host, port=port)
    settings, db = ctx.settings, ctx.db
    if demo:
        from gpucloud.services.demo import demo_file, seed_demo

        info = seed_demo(db, settings)
        click.echo(f"""
gpucloud demo is up at {settings.resolved_public_url}
  public API     {info.api_url}
  admin          {settings.resolved_public_url}/admin   user {info.admin_user}   password {info.admin_password}
  staff token    {info.staff_token}
  customer token {info.customer_token}
  promo code     {info.promo_code}   (linode-cli account promo-add --promo_code {info.promo_code})
  (all of this is in {demo_file(settings)})

  GPU plans start dark (flag gpu-instances in state `staff`): the staff token sees them, the
  customer token does not until `gpucloud flags set gpu-instances on --why "launch"`.

  export LINODE_CLI_TOKEN={info.staff_token} LINODE_CLI_API_HOST={settings.host}:{settings.port} \\
         LINODE_CLI_API_SCHEME=http
  linode-cli linodes types --class gpu
""")
    from gpucloud.jobs.worker import default_handlers, start_workers
    from gpucloud.services import preload

    app = create_app(settings, db)
    workers = start_workers(db, settings, default_handlers())
    preload.start(db, settings)  # placement's views, beside the server: the first create does not load its region
    try:
        uvicorn.Server(uvicorn_config(app, settings, host=settings.host, port=settings.port, log_level="info")).run()
    finally:
        workers.stop(timeout=10)


@click.group("db")
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade")
@pass_ctx
def upgrade(ctx: Context) -> None:
    """Migrate the database to the newest schema (safe to run again)."""
    db = Database.for_settings(ctx.settings)
    revision = migrate.upgrade(db)
    from gpucloud.catalog import load_catalog
    from gpucloud.store.catalog import sync_catalog

    with db.write() as s:
        sync_catalog(s, load_catalog())
    click.echo(f"database {redact(db.url)} is at schema {revision}")


COMMANDS = [serve, db_group]
