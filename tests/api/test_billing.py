"""Billing through the official clients: the account's money fields, invoices, items,
payments, promotions and notifications (linode_api4 here; linode-cli in test_linode_cli)."""

from __future__ import annotations

from datetime import timedelta

from gpucloud.clock import utcnow
from gpucloud.store.tables import UsageInterval


def add_usage(server, account_id: int, hours: float, type_id: str = "g1-gpu-rtx6000-1", instance_id: int = 900001,
              ended: bool = False):
    now = utcnow()
    start = max(now - timedelta(hours=hours), now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    with server.db.write() as s:
        s.add(UsageInterval(account_id=account_id, instance_id=instance_id, label="old-box", region_id="us-east",
                            type_id=type_id, started_at=start, ended_at=now if ended else None))
    return start


def test_account_shows_balance_and_this_months_accrual(any_api_server):
    alice = any_api_server.customer()
    client = any_api_server.client(alice.token)
    account = client.account()
    assert (account.balance, account.balance_uninvoiced, account.active_promotions) == (0, 0, [])
    add_usage(any_api_server, alice.account_id, 0.5)
    account = client.account()
    assert account.balance == 0 and account.balance_uninvoiced == 1.5  # one started hour at 1.50
