"""A worker process running the test handlers (with `--host-sweep`, the host sweep too):
`start_workers` as `gpucloud serve` and `gpucloud worker` call it, stopped by SIGTERM. Used
by the racing and crash tests."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from gpucloud.config import load_settings
from gpucloud.jobs import host_jobs
from gpucloud.jobs.worker import default_periodic, start_workers
from gpucloud.store.db import Database
from tests.jobs.handlers import HANDLERS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--settings", required=True, help="settings as a JSON object")
    parser.add_argument("--host-sweep", action="store_true", help="also sweep hosts, scheduled as in production")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s: %(message)s")
    settings = load_settings(json.loads(args.settings), environ={})
    db = Database(settings.resolved_database_url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    handlers, periodic = (({**HANDLERS, **host_jobs.HANDLERS}, default_periodic(settings)) if args.host_sweep
                          else (HANDLERS, []))
    handle = start_workers(db, settings, handlers, concurrency=args.concurrency, name=args.name, periodic=periodic)
    while not stop.wait(0.1):
        pass
    handle.stop(timeout=10)


if __name__ == "__main__":
    main()
