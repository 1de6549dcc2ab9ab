"""What choosing a new instance's IPv4 address costs as its region fills (issue #11).

    .venv/bin/python bench/addresses.py                         # 1,000, 10,000 and 60,000 taken, both databases
    .venv/bin/python bench/addresses.py --taken 60000 --databases postgres

A fresh store per size; us-east's catalog pool (100.64.0.0/16) holds `taken` instances, written
straight into the database in address order, as a region that filled its pool from the start
holds them. Then a new instance is given its address and written (`services.addresses.write_new`,
what a create runs in its transaction; before issue #11's change `assign` and an ORM flush)
`--calls` times, each in a write transaction of its own that is rolled back, and the CPU of this
process (SQLite works in it; PostgreSQL's share is in the server, so wall time is shown too) per
call is printed. Then the pool "came round": the newest instance is moved to the pool's first
address, as when a region's pool filled and creates start again from its start, with only one
free address, the last (no hole in reach of the indexed lookups: the slow case, every taken
address read once), then with 1 in 100 addresses after it free (a region that churned).
"""

from __future__ import annotations

import argparse
import socket
import time

from _store import scratch
from sqlalchemy import func, insert, select, update

from gpucloud.services import accounts, addresses
from gpucloud.store.db import Database
from gpucloud.store.tables import Instance

REGION, PLAN = "us-east", "g6-nanode-1"
FIRST = int.from_bytes(socket.inet_aton("100.64.0.2"), "big")  # us-east's pool: 100.64.0.0/16, gateway .0.1


def fill(db: Database, account_id: int, taken: int) -> None:
    """`taken` instances on the pool's first addresses, in order (MACs under 52:54:01, outside the
    52:54:00 a create draws from, so the measured creates never meet one)."""
    rows = [{"account_id": account_id, "label": f"a-{n}", "region_id": REGION, "type_id": PLAN,
             "ipv4": socket.inet_ntoa((FIRST + n).to_bytes(4, "big")), "mac": f"52:54:01:{n >> 16 & 255:02x}:"
             f"{n >> 8 & 255:02x}:{n & 255:02x}"} for n in range(taken)]
    with db.write() as s:
        for start in range(0, len(rows), 5000):
            s.connection().execute(insert(Instance), rows[start:start + 5000])


def came_round(db: Database) -> None:
    """The pool came round to its start: the newest instance moves to the first address (whose
    instance gives it up), so only the newest's old address, the last, is free."""
    with db.write() as s:
        newest = s.scalar(select(func.max(Instance.id)))
        s.execute(update(Instance).where(Instance.ipv4 == "100.64.0.2").values(ipv4=None))
        s.execute(update(Instance).where(Instance.id == newest).values(ipv4="100.64.0.2"))


def churned(db: Database, taken: int, every: int) -> None:
    """Every `every`-th address after the first is given up (instances deleted since)."""
    holes = [socket.inet_ntoa((FIRST + n).to_bytes(4, "big")) for n in range(every, taken, every)]
    with db.write() as s:
        s.execute(update(Instance).where(Instance.ipv4.in_(holes)).values(ipv4=None))


class _Undo(Exception):
    """Raised to roll a measured create back: every call sees the same region."""


def measure(db: Database, account_id: int, calls: int) -> tuple[float, float, str]:
    """CPU ms and wall ms per address chosen and row written, and the address chosen."""
    chosen = ""
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(calls):
        try:
            with db.write() as s:
                instance = Instance(account_id=account_id, label=f"m-{n}", region_id=REGION, type_id=PLAN,
                                    status="provisioning", tags=[], alerts={}, authorized_keys=[])
                if hasattr(addresses, "write_new"):
                    addresses.write_new(s, instance)
                else:  # the code before issue #11's change (run with PYTHONPATH at a copy of it)
                    addresses.assign(s, instance)
                    s.add(instance)
                    s.flush()
                chosen = instance.ipv4 or ""
                raise _Undo
        except _Undo:
            pass
    return ((time.process_time() - cpu) / calls * 1000, (time.perf_counter() - wall) / calls * 1000, chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--taken", default="1000,10000,60000", help="comma-separated instance counts")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    print("| database | taken | case | CPU ms per address and row | wall ms | address chosen |")
    print("|---|---|---|---|---|---|")
    for kind in args.databases.split(","):
        for taken in (int(t) for t in args.taken.split(",")):
            with scratch(kind) as store:
                db = Database(store.url)
                try:
                    account = accounts.create_account(db, "addresses@example.com", username="addresses")
                    fill(db, account.id, taken)
                    measure(db, account.id, 3)  # warm: statements compiled, pools parsed
                    cpu, wall, chosen = measure(db, account.id, args.calls)
                    print(f"| {kind} | {taken:,} | filled in order | {cpu:.2f} | {wall:.2f} | {chosen} |", flush=True)
                    came_round(db)
                    cpu, wall, chosen = measure(db, account.id, args.calls)
                    print(f"| {kind} | {taken:,} | came round, one free | {cpu:.2f} | {wall:.2f} | {chosen} |",
                          flush=True)
                    churned(db, taken, 100)
                    cpu, wall, chosen = measure(db, account.id, args.calls)
                    print(f"| {kind} | {taken:,} | came round, 1 in 100 free | {cpu:.2f} | {wall:.2f} | {chosen} |",
                          flush=True)
                finally:
                    db.dispose()


if __name__ == "__main__":
    main()
