"""`gpucloud worker`: a process that claims jobs and drives hypervisors; run as many as needed."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click

from gpucloud.cli import Context, pass_ctx


@click.command("worker")
@click.option("--concurrency", type=click.IntRange(1, 512), help="Jobs run at once (default: worker_concurrency, 4).")
@click.option("--name", help="How this worker signs its leases and attempts (default: host:pid:random).")
@click.option("--metrics-port", type=click.IntRange(1, 65535),
              help="Serve this process's metrics (job durations, lease expiries) on 127.0.0.1:PORT/metrics.")
@click.option("--grace", type=click.FloatRange(0), default=30.0, show_default=True,
              help="On SIGTERM or Ctrl-C, seconds to let running jobs finish; a second signal exits at once.")
@pass_ctx
def worker(ctx: Context, concurrency: int | None, name: str | None, metrics_port: int | None, grace: float) -> None:
    """Claim and run jobs until stopped. Jobs left running at exit are taken over by
    another worker once their lease expires."""
    from gpucloud.jobs.worker import default_handlers, start_workers
    from gpucloud.services import preload

    ctx.override(worker_concurrency=concurrency)
    settings, db = ctx.settings, ctx.db
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    stop = threading.Event()

    def on_signal(signum, _frame):
        if stop.is_set():
            os._exit(128 + signum)  # asked twice: leave now, leases will expire
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    handle = start_workers(db, settings, default_handlers(), name=name)
    preload.start(db, settings)  # placement's views (resizes place): the first one does not load its region
    click.echo(f"worker {handle.name} running {handle.concurrency} jobs at a time", err=True)
    while not stop.wait(0.5):
        pass
    click.echo(f"worker {handle.name} stopping (up to {grace:g} s for running jobs)", err=True)
    handle.stop(timeout=grace)
    db.dispose()


COMMANDS = [worker]
