"""`gpucloud api`: the public API (and /metrics) alone, in N worker processes. It keeps no state
of its own, so run as many as you like behind a load balancer, all on one PostgreSQL.

The listening socket is bound here, declared as TCP: asyncio sets TCP_NODELAY only on sockets
that say IPPROTO_TCP, and uvicorn's own multi-worker bind does not, which costs every small
response a ~40 ms delayed-ACK stall (Nagle). The processes share that one socket.
"""

from __future__ import annotations

import os
import socket

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.config import ENV_PREFIX


@click.command("api")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8080).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes serving requests (each with its own database pool).")
@pass_ctx
def api(ctx: Context, host: str | None, port: int | None, workers: int) -> None:
    """Serve the Linode-compatible API without running jobs (pair it with `gpucloud worker`)."""
    import uvicorn

    from gpucloud.api.serving import uvicorn_config

    ctx.override(host=host, port=port)
    settings = ctx.settings
    ctx.db.dispose()  # checks the schema (and upgrades the embedded SQLite) once, here
    # the worker processes rebuild the same settings from the environment
    os.environ[ENV_PREFIX + "DATA_DIR"] = str(settings.data_dir)
    os.environ[ENV_PREFIX + "DATABASE_URL"] = settings.resolved_database_url
    if ctx.flags.get("config"):
        os.environ[ENV_PREFIX + "CONFIG"] = str(ctx.flags["config"])
    config = uvicorn_config("gpucloud.api.app:app_from_environment", settings, factory=True, workers=workers,
                            log_level="warning", access_log=False)
    sock = _listen(settings.host, settings.port)
    click.echo(f"gpucloud api on {settings.resolved_public_url}/v4 with {workers} worker process(es)", err=True)
    if workers == 1:
        uvicorn.Server(config).run(sockets=[sock])
    else:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


COMMANDS = [api]
