"""`gpucloud ip` (address pools) and `gpucloud instance seed` as operators run them."""

from __future__ import annotations

import json

from gpucloud.services import accounts, instances
from gpucloud.store.db import Database
from gpucloud.store.tables import Instance
from tests.conftest import make_settings
from tests.live import run_cli


def test_pools_are_listed_added_and_counted(tmp_path):
    pools = json.loads(run_cli(tmp_path, "ip", "list", "--region", "ap-west", "--json").stdout)
    assert [(p["family"], p["network"], p["gateway"]) for p in pools] == [
        ("ipv4", "100.65.0.0/16", "100.65.0.1"), ("ipv6", "2400:8904::/64", "2400:8904::1")]  # from regions.toml
    added = json.loads(run_cli(tmp_path, "ip", "add", "ap-west", "198.51.100.0/24", "--first", "198.51.100.10",
                               "--last", "198.51.100.12", "--json").stdout)
    assert (added["gateway"], added["prefix"], added["size"], added["assigned"]) == ("198.51.100.1", 24, 3, 0)
    table = run_cli(tmp_path, "ip", "list").stdout
    assert "198.51.100.10" in table and "100.64.0.0/16" in table
    usage = json.loads(run_cli(tmp_path, "ip", "usage", "--region", "ap-west", "--json").stdout)
    assert usage == [{"region": "ap-west", "pools": 2, "size": 65534 - 1 + 3, "assigned": 0, "free": 65536}]

    bad = run_cli(tmp_path, "ip", "add", "ap-west", "198.51.100.128/25", check=False)  # the /24 another way
    assert bad.returncode == 1 and "overlaps pool" in bad.stderr and bad.stderr.count("\n") == 1
    again = run_cli(tmp_path, "ip", "add", "us-east", "198.51.100.0/24", check=False)  # one network, one pool
    assert again.returncode == 1 and "overlaps pool" in again.stderr


def test_instance_seed_prints_what_the_guest_is_given(tmp_path):
    run_cli(tmp_path, "host", "add", "--profile", "cpu-2s", "--region", "us-east", "--name", "c1")
    db = Database(f"sqlite:///{tmp_path / 'gpucloud.sqlite'}")
    settings = make_settings(tmp_path, db.url)
    account = accounts.create_account(db, "seed@example.com")
    made = instances.create_instance(db, settings, account.id, account.username, instances.NewInstance(
        type="g6-nanode-1", region="us-east", image="linode/debian12", root_pass="a-Long-passw0rd-4-seeds"))
    with db.read() as s:
        inst = s.get(Instance, made.id)
    db.dispose()
    files = json.loads(run_cli(tmp_path, "instance", "seed", str(inst.id), "--json").stdout)
    assert sorted(files) == ["meta-data", "network-config", "user-data"]
    network = json.loads(files["network-config"])["ethernets"]["eth0"]
    assert network["match"]["macaddress"] == inst.mac and network["addresses"][0] == f"{inst.ipv4}/16"
    assert network["gateway4"] == "100.64.0.1" and files["user-data"].startswith("#cloud-config\n")
    text = run_cli(tmp_path, "instance", "seed", str(inst.id)).stdout
    assert "--- network-config" in text and inst.mac in text
    missing = run_cli(tmp_path, "instance", "seed", "999", check=False)
    assert missing.returncode == 1 and "no instance 999" in missing.stderr
