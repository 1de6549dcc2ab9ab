"""Run as a subprocess by test_invoices: close a month slowly (a pause inside each
account's transaction), so the test can SIGKILL it mid-close."""

from __future__ import annotations

import sys
import time

from gpucloud.domain.billing import Period
from gpucloud.services import billing
from gpucloud.store.db import Database

real = billing.accrue_in


def slow(*args, **kwargs):
    result = real(*args, **kwargs)
    time.sleep(0.05)  # inside the open transaction: a kill here must leave nothing of this account
    return result


billing.accrue_in = slow  # type: ignore[assignment]

if __name__ == "__main__":
    db = Database(sys.argv[1])
    print("closing", flush=True)
    billing.close_month(db, Period.parse(sys.argv[2]))
    print("done", flush=True)
