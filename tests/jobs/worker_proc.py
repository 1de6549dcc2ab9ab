"""A worker process running the test handlers: `start_workers` as `gpucloud serve` and
`gpucloud worker` call it, stopped by SIGTERM. Used by the racing and crash tests."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from gpucloud.config import load_settings
from gpucloud.jobs.worker import start_workers
from gpucloud.store.db import Database
from tests.jobs.handlers import HANDLERS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--settings", required=True, help="settings as a JSON object")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s: %(message)s")
    settings = load_settings(json.loads(args.settings), environ={})
    db = Database(settings.resolved_database_url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    handle = start_workers(db, settings, HANDLERS, concurrency=args.concurrency, name=args.name, periodic=[])
    while not stop.wait(0.1):
        pass
    handle.stop(timeout=10)


if __name__ == "__main__":
    main()
