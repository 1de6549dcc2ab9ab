"""Billing: what closing a month costs per account, and what GET /account's money fields
cost, on SQLite and PostgreSQL, each next to a baseline measured in the same run.

    .venv/bin/python bench/billing.py                 # 1,000 accounts, SQLite and PostgreSQL
    .venv/bin/python bench/billing.py --accounts 200 --no-postgres

Each account has a month of usage: a GPU instance resized mid-month, a second GPU instance,
a Nanode all month, and a GPU promotion (4 intervals, 1 credit: 4 invoice lines).
- close: `billing.close_month` (one transaction per account: the accrual read, the invoice,
  its items, the credit spent); baseline: the same invoice rows written straight, one
  transaction per account, without the accrual (what exactly-once and the pricing add).
- figures: `billing.figures` for one account (balance, this month so far, promotions), the
  work `GET /v4/account` adds; baseline: reading the account row (what the route read before).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _store import machine, scratch, table

from gpucloud.domain.billing import Period
from gpucloud.services import billing
from gpucloud.store.db import Database
from gpucloud.store.tables import Account, AccountPromotion, Invoice, InvoiceItem, UsageInterval

OCT = Period(2026, 10)


def seed(db: Database, n: int) -> list[int]:
    ids = []
    with db.write() as s:
        for i in range(n):
            account = Account(email=f"b{i}@example.com")
            s.add(account)
            s.flush()
            ids.append(account.id)
            base = 10 * i
            s.add_all([
                UsageInterval(account_id=account.id, instance_id=base + 1, label="train", region_id="us-east",
                              type_id="g1-gpu-rtx6000-1", started_at=datetime(2026, 10, 2, 9, 15),
                              ended_at=datetime(2026, 10, 9, 12)),
                UsageInterval(account_id=account.id, instance_id=base + 1, label="train", region_id="us-east",
                              type_id="g1-gpu-rtx6000-2", started_at=datetime(2026, 10, 9, 12),
                              ended_at=datetime(2026, 10, 11)),
                UsageInterval(account_id=account.id, instance_id=base + 2, label="infer", region_id="ap-west",
                              type_id="g2-gpu-rtx4000a1-s", started_at=datetime(2026, 10, 20), ended_at=None),
                UsageInterval(account_id=account.id, instance_id=base + 3, label="web", region_id="us-east",
                              type_id="g6-nanode-1", started_at=datetime(2026, 9, 1), ended_at=None),
                AccountPromotion(account_id=account.id, summary="GPU credit", credit_cents=5000, covers=["gpu"],
                                 starts_at=datetime(2026, 10, 1), expires_at=datetime(2026, 12, 1)),
            ])
    return ids


def baseline_close(db: Database, ids: list[int]) -> None:
    for account_id in ids:
        with db.write() as s:
            invoice = Invoice(account_id=account_id, period=str(OCT), label="x", date=OCT.end, subtotal_cents=1,
                              tax_cents=0, total_cents=1)
            s.add(invoice)
            s.flush()
            s.add_all(InvoiceItem(invoice_id=invoice.id, position=p, label="x", type="hourly", amount_cents=1,
                                  quantity=1, unit_price="1", region="us-east", tax_cents=0, total_cents=1)
                      for p in range(4))


def run(kind: str, n: int) -> list[list[str]]:
    rows = []
    with scratch(kind, prefix="gpucloud_bench_billing") as store:
        db = Database(store.url)
        ids = seed(db, n)
        started = time.perf_counter()
        baseline_close(db, ids)
        base = time.perf_counter() - started
        with db.write() as s:
            s.query(InvoiceItem).delete()
            s.query(Invoice).delete()
        started = time.perf_counter()
        report = billing.close_month(db, OCT, now=datetime(2026, 11, 1, 1))
        close = time.perf_counter() - started
        assert len(report.created) == n
        rows.append([kind, "close a month", f"{n / close:,.0f} accounts/s", f"{n / base:,.0f} accounts/s",
                     f"{close / base:.1f}x"])
        now = datetime(2026, 10, 25)
        sample = ids[: min(200, n)]
        fig, plain = [], []
        for account_id in sample:
            t = time.perf_counter()
            billing.figures(db, account_id, now=now)
            fig.append(time.perf_counter() - t)
            t = time.perf_counter()
            with db.read() as s:
                s.get(Account, account_id)
            plain.append(time.perf_counter() - t)
        f_ms, p_ms = statistics.median(fig) * 1000, statistics.median(plain) * 1000
        rows.append([kind, "GET /account money fields", f"{f_ms:.2f} ms", f"{p_ms:.2f} ms", f"{f_ms / p_ms:.1f}x"])
        db.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rows = []
    for kind in ("sqlite",) + (() if args.no_postgres else ("postgres",)):
        rows += run(kind, args.accounts)
    print(machine())
    print(table(["database", "what", "billing", "baseline", "ratio"], rows))


if __name__ == "__main__":
    main()
