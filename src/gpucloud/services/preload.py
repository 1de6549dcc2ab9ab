"""Loading placement's view of every region when a process starts (API and worker processes).

A process loads a region's host states once (seconds of CPU at 10,000 hosts on PostgreSQL:
docs/benchmarks.md). Loaded by the process's first placement in the region, the load runs
inside a create holding the region's placement lock, and every create of the region waits
behind it. Loaded here, in a thread beside the server, the process answers at once; a
placement that arrives before its region is loaded waits for that load (the view's lock), as
it would have waited anyway. The views are kept per placement config, so this asks for the
config the placements will use (`learn_demand`), or the load would be for nothing.

The states then live as long as the process, and a full collection of the garbage collector
walked every object of them (~0.2 s at 10,000 hosts): once loaded, what is alive is moved out
of its scans (`gc.freeze`; a view dropped later is still freed, by reference counting). A
failed load is logged; each region then loads at its first placement (and is not frozen).
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from gpucloud.config import Settings
from gpucloud.services.placement_config import learn_demand
from gpucloud.store import host_states
from gpucloud.store.db import Database

log = logging.getLogger(__name__)


def load_views(db: Database, settings: Settings) -> dict[str, int]:
    """Load this process's view of every region with hosts (one transaction per region);
    returns the hosts of each region. Through write sessions, as placements run: the views
    are kept per connection pool, and SQLite's reads have a pool of their own."""
    with db.write() as s:
        config = learn_demand(s, settings)
        regions = host_states.regions(s)
    loaded = {}
    for region in regions:
        with db.write() as s:
            loaded[region] = len(host_states.region_states(s, region, config))
    gc.collect()  # what the load left behind: frozen, it would stay for good
    gc.freeze()
    return loaded


def start(db: Database, settings: Settings) -> threading.Thread:
    """`load_views` in a daemon thread, logged; returns the thread."""
    thread = threading.Thread(target=_load_logged, args=(db, settings), name="placement-preload", daemon=True)
    thread.start()
    return thread


def _load_logged(db: Database, settings: Settings) -> None:
    started = time.monotonic()
    try:
        loaded = load_views(db, settings)
    except Exception:
        log.exception("loading placement's views at start failed; each region loads at its first placement")
        return
    log.info("placement's views loaded in %.1f s: %s", time.monotonic() - started,
             ", ".join(f"{region} {hosts} hosts" for region, hosts in loaded.items()) or "no hosts")
