"""Billing through the official clients: the account's money fields, invoices, items,
payments, promotions and notifications (linode_api4 here; linode-cli in test_linode_cli)."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta

import pytest

from gpucloud import clock
from gpucloud.clock import utcnow
from gpucloud.domain.billing import Period
from gpucloud.services import billing, promotions, trials
from gpucloud.store.tables import Invoice, UsageInterval


def add_usage(server, account_id: int, hours: float, type_id: str = "g1-gpu-rtx6000-1", instance_id: int = 900001,
              ended: bool = False):
    now = utcnow()
    start = max(now - timedelta(hours=hours), now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    with server.db.write() as s:
        s.add(UsageInterval(account_id=account_id, instance_id=instance_id, label="old-box", region_id="us-east",
                            type_id=type_id, started_at=start, ended_at=now if ended else None))
    return start


def at_least_into_the_month(monkeypatch: pytest.MonkeyPatch, hours: float) -> None:
    """In the first `hours` of a month no usage of that length can have begun in it yet: move
    this process's clock (the in-process server's too) just far enough forward."""
    now = utcnow()
    short = timedelta(hours=hours) - (now - now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    if short > timedelta(0):
        class Later(datetime):
            @classmethod
            def now(cls, tz=None):  # type: ignore[override]
                return datetime.now(tz) + short + timedelta(minutes=1)

        monkeypatch.setattr(clock, "datetime", Later)


def test_account_shows_balance_and_this_months_accrual(any_api_server):
    alice = any_api_server.customer()
    client = any_api_server.client(alice.token)
    account = client.account()
    assert (account.balance, account.balance_uninvoiced, account.active_promotions) == (0, 0, [])
    add_usage(any_api_server, alice.account_id, 0.5)
    account = client.account()
    assert account.balance == 0 and account.balance_uninvoiced == 1.5  # one started hour at 1.50
    pool = client.account.transfer()  # the plan of the instance used this month gives the pool
    assert (pool.used, pool.quota, pool.billable) == (0, 16000, 0)


def closed_month(server, account_id: int) -> Invoice:
    """Usage across last month (a resize in it), then last month closed."""
    last = Period.of(utcnow()).previous()
    with server.db.write() as s:
        s.add_all([UsageInterval(account_id=account_id, instance_id=900002, label="trainer", region_id="us-east",
                                 type_id="g1-gpu-rtx6000-1", started_at=last.start + timedelta(days=2),
                                 ended_at=last.start + timedelta(days=2, hours=5, minutes=10)),
                   UsageInterval(account_id=account_id, instance_id=900002, label="trainer", region_id="us-east",
                                 type_id="g1-gpu-rtx6000-2", started_at=last.start + timedelta(days=2, hours=5,
                                                                                               minutes=10),
                                 ended_at=last.start + timedelta(days=2, hours=7))])
    invoice = billing.close_account(server.db, account_id, last)
    assert invoice is not None
    return invoice


def test_invoices_items_and_payments_through_linode_api4(any_api_server):
    alice, bob = any_api_server.customer(), any_api_server.customer()
    made = closed_month(any_api_server, alice.account_id)
    billing.record_payment(any_api_server.db, alice.account_id, "10.50", actor="test", note="wire")
    client = any_api_server.client(alice.token)
    (invoice,) = client.account.invoices()
    assert (invoice.id, invoice.label, invoice.total, invoice.subtotal, invoice.tax) == (
        made.id, f"Invoice {made.period}", 15.0, 15.0, 0)  # 6 h x 1.50 + 2 h x 3.00 (both begin hour 5)
    assert [(i.label, i.type, i.quantity, i.unit_price, i.amount, i._raw_json["region"]) for i in invoice.items] == [
        ("Dedicated 32GB + RTX6000 GPU x1 - trainer (900002)", "hourly", 6, "1.5", 9.0, "us-east"),
        ("Dedicated 64GB + RTX6000 GPU x2 - trainer (900002)", "hourly", 2, "3", 6.0, "us-east"),
    ]
    assert sum(i._raw_json["total"] for i in invoice.items) == invoice.total
    (payment,) = client.account.payments()
    assert payment.usd == 10.5
    account = client.account()
    assert account.balance == 4.5
    # another account's invoice is not found, exactly like one that does not exist
    other = any_api_server.http(bob.token)
    assert other.get(f"/account/invoices/{made.id}").status_code == 404
    assert other.get(f"/account/invoices/{made.id}/items").status_code == 404
    assert other.get("/account/invoices").json()["data"] == []


def test_linode_cli_reads_invoices(api_server, cli):
    alice = api_server.customer()
    made = closed_month(api_server, alice.account_id)
    billing.record_payment(api_server.db, alice.account_id, "20", actor="test")

    def read(*args):
        code, out, err = cli(*args, "--json", token=alice.token)
        assert code == 0, err
        return json.loads(out)

    (listed,) = read("account", "invoices-list")
    assert (listed["id"], listed["total"]) == (made.id, 15.0)
    assert read("account", "invoice-view", str(made.id))[0]["label"] == f"Invoice {made.period}"
    items = read("account", "invoice-items", str(made.id))
    assert [i["type"] for i in items] == ["hourly", "hourly"] and sum(i["total"] for i in items) == 15.0
    assert [p["usd"] for p in read("account", "payments-list")] == [20]


def test_promo_codes_through_linode_api4(any_api_server, monkeypatch):
    at_least_into_the_month(monkeypatch, 1.5)
    alice = any_api_server.customer()
    code = f"TRY{secrets.token_hex(3)}"
    promotions.create_code(any_api_server.db, code, credit="25", days=30, covers=["gpu"], redemptions=1,
                           actor="tests", description="$25 of GPU time")
    client = any_api_server.client(alice.token)
    client.account.add_promo_code(code.lower())
    (promo,) = client.account().active_promotions
    assert (promo.summary, promo.credit_remaining, promo.this_month_credit_remaining) == (
        "$25 of GPU time", "25.00", "25.00")
    assert promo.expire_dt and promo.service_type == "linode"
    add_usage(any_api_server, alice.account_id, 1.5)  # two GPU hours begun, one of them since the redemption
    account = client.account()
    assert account.balance_uninvoiced == 1.5 and account.active_promotions[0].credit_remaining == "23.50"
    http = any_api_server.http(alice.token)
    again = http.post("/account/promo-codes", json={"promo_code": code})
    assert again.status_code == 400 and again.json()["errors"][0]["field"] == "promo_code"
    unknown = http.post("/account/promo-codes", json={"promo_code": "NOPE-NOPE"})
    assert unknown.status_code == 400 and "not found" in unknown.json()["errors"][0]["reason"]
    extra = http.post("/account/promo-codes", json={"promo_code": code, "bonus": 1})
    assert extra.status_code == 400 and "bonus" in extra.text


def test_linode_cli_adds_a_promo_code(api_server, cli):
    alice = api_server.customer()
    code = f"CLI{secrets.token_hex(3)}"
    promotions.create_code(api_server.db, code, credit="10", days=7, covers=["all"], redemptions=1, actor="tests")
    status, out, err = cli("account", "promo-add", "--promo_code", code, "--json", token=alice.token)
    assert status == 0, err
    assert json.loads(out)[0]["credit_remaining"] == "10.00"


def test_gpu_trial_request_and_notifications(any_api_server):
    alice = any_api_server.customer(gpu=False)
    http = any_api_server.http(alice.token)
    assert http.get("/account/gpu-trial").json() == {"status": "none", "requested": None, "starts": None,
                                                     "ends": None, "reason": None}
    missing = http.post("/account/gpu-trial", json={})
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "reason"
    asked = http.post("/account/gpu-trial", json={"reason": "fine-tune a model"})
    assert asked.status_code == 200
    assert (asked.json()["status"], asked.json()["reason"], asked.json()["starts"]) == (
        "pending", "fine-tune a model", None)
    again = http.post("/account/gpu-trial", json={"reason": "please"})
    assert again.status_code == 400 and "already has a GPU trial (pending)" in again.text
    client = any_api_server.client(alice.token)
    (notice,) = client.account.notifications()
    assert notice.label == "GPU trial requested" and notice.type == "notice"
    (row,) = [r for r in trials.listing(any_api_server.db, "pending") if r.trial.account_id == alice.account_id]
    trials.approve(any_api_server.db, any_api_server.settings, row.trial.id, actor="tests", why="ok")
    any_api_server.app.state.flags.refresh()
    trial = http.get("/account/gpu-trial").json()
    assert trial["status"] == "active" and trial["starts"] and trial["ends"]
    (notice,) = client.account.notifications()
    assert (notice.type, notice.label, notice.until) == ("promotion", "GPU trial started", trial["ends"])
    assert "GPU Linodes" in client.account().capabilities
    (promo,) = client.account().active_promotions
    assert promo.summary == "GPU trial (7 days)" and promo.expire_dt == trial["ends"]


def test_linode_cli_lists_notifications(api_server, cli):
    alice = api_server.customer(gpu=False)
    trials.request(api_server.db, api_server.settings, alice.account_id, "try it")
    code, out, err = cli("account", "notifications-list", "--json", token=alice.token)
    assert code == 0, err
    assert [n["label"] for n in json.loads(out)] == ["GPU trial requested"]
