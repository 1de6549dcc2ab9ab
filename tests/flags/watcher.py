"""A second process holding a FlagCache: prints `on` or `off` each time its answer for one
account changes. Run by tests/flags/test_cache.py as `python -m tests.flags.watcher`."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from gpucloud.services.flag_cache import FlagCache
from gpucloud.store.db import Database


@dataclass(frozen=True)
class _Account:
    id: int
    is_staff: bool = False


def main(url: str, key: str, account_id: str, poll_seconds: str, lifetime_seconds: str = "120") -> None:
    cache = FlagCache(Database(url), poll_seconds=float(poll_seconds))
    account, last = _Account(int(account_id)), None
    deadline = time.monotonic() + float(lifetime_seconds)  # never outlive a test that forgot us
    while time.monotonic() < deadline:
        answer = "on" if cache.enabled(key, account) else "off"
        if answer != last:
            print(answer, flush=True)
            last = answer
        time.sleep(0.01)


if __name__ == "__main__":
    main(*sys.argv[1:])
