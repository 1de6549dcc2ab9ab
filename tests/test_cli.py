"""The `gpucloud` command as operators run it: real subprocesses, real files, one-line errors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import httpx

from gpucloud.clock import utcnow
from gpucloud.config import load_settings
from gpucloud.services import trials
from gpucloud.store.db import Database
from gpucloud.store.tables import UsageInterval
from tests.live import run_cli, start_server


def test_host_add_list_show_from_a_profile(tmp_path):
    out = run_cli(tmp_path, "host", "add", "--profile", "rtx6000-2s4g", "--region", "us-east").stdout
    assert "registered host us-east-rtx6000-2s4g-01" in out and "4 GPUs" in out
    run_cli(tmp_path, "host", "add", "--profile", "h100-nps4-8g", "--region", "ap-south", "--name", "sg-h100-1")

    hosts = json.loads(run_cli(tmp_path, "host", "list", "--json").stdout)
    assert [(h["name"], h["gpus"], h["gpu_models"]) for h in hosts] == [
        ("sg-h100-1", 8, ["h100"]), ("us-east-rtx6000-2s4g-01", 4, ["rtx6000"])]

    detail = json.loads(run_cli(tmp_path, "host", "show", "sg-h100-1", "--json").stdout)
    assert [len(n["gpus"]) for n in detail["nodes"]] == [2, 2, 2, 2]
    text = run_cli(tmp_path, "host", "show", "sg-h100-1").stdout
    assert "NUMA node 3" in text and "GPU 0000:e1:00.0 h100" in text


def test_one_line_errors_and_nothing_written(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("[host\n")
    proc = run_cli(tmp_path, "host", "add", "--profile", str(bad), "--region", "us-east", check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and str(bad) in proc.stderr and "Traceback" not in proc.stderr

    run_cli(tmp_path, "host", "add", "--profile", "cpu-2s", "--region", "us-east", "--name", "c1")
    again = run_cli(tmp_path, "host", "add", "--profile", "cpu-2s", "--region", "us-east", "--name", "c1",
                    check=False)
    assert again.returncode == 1 and again.stderr == "error: host c1 is already registered\n"

    unknown = run_cli(tmp_path, "host", "add", "--profile", "cpu-2s", "--region", "atlantis", check=False)
    assert unknown.returncode == 1 and "unknown region 'atlantis'" in unknown.stderr
    assert [h["name"] for h in json.loads(run_cli(tmp_path, "host", "list", "--json").stdout)] == ["c1"]


def test_unreachable_database_is_one_line(tmp_path):
    proc = run_cli(tmp_path, "--database-url", "postgresql://nobody@127.0.0.1:1/gpucloud", "host", "list",
                   check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot reach database") and proc.stderr.count("\n") == 1


def test_accounts_and_tokens(tmp_path):
    created = json.loads(run_cli(tmp_path, "account", "create", "ops@example.com", "--staff", "--json").stdout)
    assert created["is_staff"] is True
    token = json.loads(run_cli(tmp_path, "token", "create", "--account", "ops@example.com", "--scopes",
                               "linodes:read_only", "--json").stdout)
    assert len(token["token"]) == 64 and token["scopes"] == "linodes:read_only"
    bad = run_cli(tmp_path, "token", "create", "--account", "ops@example.com", "--scopes", "linodes:all",
                  check=False)
    assert bad.returncode == 1 and "read_only or :read_write" in bad.stderr


def test_serve_demo_lists_gpu_types_and_reuses_its_seed(tmp_path):
    server = start_server(tmp_path, "--demo")
    try:
        demo = server.demo()
        assert set(demo) == {"api_url", "admin_user", "admin_password", "staff_token", "customer_token", "promo_code"}
        assert demo["api_url"] == server.api
        types = httpx.get(server.api + "/linode/types",
                          headers={"Authorization": f"Bearer {demo['staff_token']}"}).json()["data"]
        gpu = {t["id"]: t["gpus"] for t in types if t["gpus"]}
        assert gpu["g1-gpu-rtx6000-1"] == 1 and gpu["g1-gpu-rtx6000-4"] == 4
        hosts = json.loads(run_cli(tmp_path, "host", "list", "--json").stdout)  # beside the live server
        assert {h["region"] for h in hosts} >= {"us-east", "ap-west", "ap-south"}
    finally:
        server.stop()

    again = start_server(tmp_path, "--demo")
    try:
        assert again.demo()["customer_token"] == demo["customer_token"]
        assert len(json.loads(run_cli(tmp_path, "host", "list", "--json").stdout)) == len(hosts)
    finally:
        again.stop()


def test_host_inspect_reports_and_sets_the_exit_status():
    fixtures = Path(__file__).parent / "fixtures" / "sysfs"
    good = run_cli(Path("/nonexistent-data-dir"), "host", "inspect", "--root", str(fixtures / "good-2s-4gpu"))
    assert "READY for GPU passthrough" in good.stdout
    bad = run_cli(Path("/nonexistent-data-dir"), "host", "inspect", "--root", str(fixtures / "iommu-off"),
                  check=False)
    assert bad.returncode == 1 and "FAIL  IOMMU" in bad.stdout
    checks = json.loads(run_cli(Path("/nonexistent-data-dir"), "host", "inspect", "--json", "--root",
                                str(fixtures / "gpu-numa-unknown"), check=False).stdout)
    assert any(c["status"] == "fail" and "NUMA" in c["name"] for c in checks)


def test_instance_xml_is_the_claims_as_valid_libvirt_xml(tmp_path):
    from lxml import etree

    from gpucloud.services import accounts, instances
    from gpucloud.store.db import Database
    from gpucloud.store.instances import claims_of
    from tests.conftest import make_settings

    run_cli(tmp_path, "host", "add", "--profile", "rtx6000-2s4g", "--region", "us-east", "--name", "g1")
    db = Database(f"sqlite:///{tmp_path / 'gpucloud.sqlite'}")
    account = accounts.create_account(db, "xml@example.com")
    new = instances.NewInstance(type="g1-gpu-rtx6000-2", region="us-east")
    inst = instances.create_instance(db, make_settings(tmp_path, db.url), account.id, "xml", new, bypass_flags=True)
    with db.read() as s:
        held = claims_of(s, inst.id)

    xml = run_cli(tmp_path, "instance", "xml", str(inst.id)).stdout
    doc = etree.fromstring(xml.encode())
    assert etree.RelaxNG(file="/usr/share/libvirt/schemas/domain.rng").validate(doc)
    pins = {int(p.get("vcpu")): int(p.get("cpuset")) for p in doc.iter("vcpupin")}
    assert pins == {c["guest_vcpu"]: c["cpu"] for c in held["cpus"]}
    sources = {"0000:{bus}:{slot}.{function}".format(**{k: a.get(k)[2:].zfill(2 if k != "function" else 1)
               for k in ("bus", "slot", "function")}) for a in doc.findall("devices/hostdev/source/address")}
    assert {g.pci_address for g in held["gpus"]} <= sources
    assert run_cli(tmp_path, "instance", "xml", "999", check=False).stderr.startswith("error: no instance 999")


def test_rediscovery_of_a_libvirt_host(tmp_path):
    uri = "test:///default"  # libvirt's built-in test host: fixed NUMA cells, no GPUs
    assert "registered host" in run_cli(tmp_path, "host", "add", "--uri", uri, "--region", "us-east",
                                        "--name", "tst").stdout
    assert run_cli(tmp_path, "host", "rediscover", "tst").stdout == "host tst: nothing changed\n"
    assert json.loads(run_cli(tmp_path, "host", "rediscover", "tst", "--json").stdout) == {
        "added": [], "vanished": [], "updated": []}
    missing = run_cli(tmp_path, "host", "rediscover", "nope", check=False)
    assert missing.returncode == 1 and missing.stderr == "error: no host nope\n"


def test_billing_usage_per_instance(tmp_path):
    account = json.loads(run_cli(tmp_path, "account", "create", "ann@example.com", "--json").stdout)
    empty = json.loads(run_cli(tmp_path, "billing", "usage", "--account", "ann@example.com", "--json").stdout)
    assert (empty["account"], empty["items"], empty["total"]) == (account["id"], [], "0.00")
    db = Database(f"sqlite:///{tmp_path / 'gpucloud.sqlite'}")
    month = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with db.write() as s:
        s.add(UsageInterval(account_id=account["id"], instance_id=7, label="train-1", region_id="us-east",
                            type_id="g6-nanode-1", started_at=month, ended_at=month.replace(minute=10)))
    db.dispose()
    usage = json.loads(run_cli(tmp_path, "billing", "usage", "--account", str(account["id"]), "--json").stdout)
    (item,) = usage["items"]
    # ten minutes at the start of this month, so that the figures hold at any time of it: one hour begun
    assert (item["label"], item["hours"], item["unit_price"], item["amount"]) == (
        "Nanode 1GB - train-1 (7)", 1, "0.0075", "0.01")
    assert usage["total"] == "0.01" and usage["period"] == f"{month:%Y-%m}"
    assert datetime.fromisoformat(usage["until"]) >= month
    text = run_cli(tmp_path, "billing", "usage", "--account", str(account["id"])).stdout
    assert "train-1" in text and "total 0.01 USD" in text
    missing = run_cli(tmp_path, "billing", "usage", "--account", "nobody@example.com", check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("error: ")


def test_billing_close_and_payment(tmp_path):
    account = json.loads(run_cli(tmp_path, "account", "create", "bo@example.com", "--json").stdout)
    db = Database(f"sqlite:///{tmp_path / 'gpucloud.sqlite'}")
    with db.write() as s:
        s.add(UsageInterval(account_id=account["id"], instance_id=8, label="box", region_id="us-east",
                            type_id="g6-standard-1", started_at=datetime(2026, 8, 30), ended_at=None))
    db.dispose()
    first = json.loads(run_cli(tmp_path, "billing", "close", "--period", "2026-09", "--json").stdout)
    assert len(first["created"]) == 1 and first["already"] == 0
    assert "0 invoice(s) written, 1 already closed" in run_cli(tmp_path, "billing", "close", "--period", "2026-09").stdout
    (invoice,) = json.loads(run_cli(tmp_path, "billing", "invoices", "--account", "bo@example.com", "--json").stdout)
    assert (invoice["period"], invoice["total"]) == ("2026-09", "12.00")
    paid = json.loads(run_cli(tmp_path, "billing", "payment", "--account", str(account["id"]), "--amount", "12",
                              "--note", "cheque 7", "--json").stdout)
    assert paid["usd"] == "12.00"
    bad = run_cli(tmp_path, "billing", "close", "--period", "2026-9", check=False)
    assert bad.returncode != 0 and "YYYY-MM" in bad.stderr
    future = run_cli(tmp_path, "billing", "close", "--period", "2999-01", check=False)
    assert future.returncode == 1 and "not over yet" in future.stderr


def test_billing_promo_codes(tmp_path):
    made = run_cli(tmp_path, "billing", "promo", "create", "welcome-gpu", "--credit", "100", "--days", "30",
                   "--covers", "gpu,g6-nanode-1", "--redemptions", "5", "--description", "Welcome").stdout
    assert "promo code WELCOME-GPU: 100.00 USD for 30 days on g6-nanode-1, gpu, 5 redemption(s)" in made
    (listed,) = json.loads(run_cli(tmp_path, "billing", "promo", "list", "--json").stdout)
    assert (listed["code"], listed["redeemed"], listed["redemptions"]) == ("WELCOME-GPU", 0, 5)
    bad = run_cli(tmp_path, "billing", "promo", "create", "X2", "--credit", "1.001", "--days", "1", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: code:")


def test_billing_trials(tmp_path):
    a = json.loads(run_cli(tmp_path, "account", "create", "t1@example.com", "--json").stdout)
    b = json.loads(run_cli(tmp_path, "account", "create", "t2@example.com", "--json").stdout)
    db = Database(f"sqlite:///{tmp_path / 'gpucloud.sqlite'}")
    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    first = trials.request(db, settings, a["id"], "training")
    second = trials.request(db, settings, b["id"], "crypto mining")
    db.dispose()
    pending = json.loads(run_cli(tmp_path, "billing", "trial", "list", "--status", "pending", "--json").stdout)
    assert [(t["id"], t["email"], t["reason"]) for t in pending] == [
        (second.id, "t2@example.com", "crypto mining"), (first.id, "t1@example.com", "training")]
    no_why = run_cli(tmp_path, "billing", "trial", "approve", str(first.id), check=False)
    assert no_why.returncode == 1 and "--why" in no_why.stderr
    assert "approved: account" in run_cli(tmp_path, "billing", "trial", "approve", str(first.id), "--why", "ok").stdout
    run_cli(tmp_path, "billing", "trial", "decline", str(second.id), "--why", "not allowed")
    listed = json.loads(run_cli(tmp_path, "billing", "trial", "list", "--json").stdout)
    assert {t["id"]: (t["status"], t["decision"]) for t in listed} == {
        first.id: ("active", "ok"), second.id: ("declined", "not allowed")}
    twice = run_cli(tmp_path, "billing", "trial", "decline", str(second.id), "--why", "x", check=False)
    assert twice.returncode == 1 and "not pending" in twice.stderr
