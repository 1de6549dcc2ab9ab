"""The operator's questions from the CLI: regions by city, accounts, instances, one-click
boot, drains that need a reason, and which database an empty answer came from."""

from __future__ import annotations

import json

import pytest

from gpucloud.cli import main


@pytest.fixture
def gc(tmp_path, capsys):
    def run(*args: str, code: int = 0):
        try:
            main(["--data-dir", str(tmp_path), *args])
            rc = 0
        except SystemExit as exc:
            rc = exc.code or 0
        out = capsys.readouterr()
        assert rc == code, (rc, out.out, out.err)
        return out

    return run


def test_an_empty_database_says_which_it_is_and_how_to_point_at_a_server(gc, tmp_path):
    out = gc("capacity")
    assert out.out.strip() == "(none)"
    assert f"note: database sqlite:///{tmp_path}/gpucloud.sqlite is new and empty" in out.err
    assert "--data-dir" in out.err and "GPUCLOUD_DATABASE_URL" in out.err
    gc("host", "add", "--profile", "cpu-2s", "--region", "us-east")
    assert gc("host", "list").err == ""


def test_regions_by_city_and_unknown_ones_refused(gc):
    gc("host", "add", "--profile", "rtx6000-2s4g", "--region", "Mumbai")
    [row] = json.loads(gc("capacity", "--region", "mumbai", "--json").out)
    assert (row["region"], row["total"], row["free"]) == ("ap-west", 4, 4)
    assert [h["region"] for h in json.loads(gc("host", "list", "--region", "Mumbai, IN", "--json").out)] == ["ap-west"]
    err = gc("capacity", "--region", "atlantis", code=1).err
    assert err.startswith("error: unknown region 'atlantis'; known: us-east (Newark, NJ)") and err.count("\n") == 1


def test_drain_needs_a_reason_and_draining_twice_says_so(gc):
    gc("host", "add", "--profile", "cpu-2s", "--region", "us-east", "--name", "c1")
    assert gc("host", "drain", "c1", code=1).err == (
        "error: say why the host is taken out of service (--why) before making it draining\n")
    assert gc("host", "drain", "c1", "--why", "PSU swap").out == "host c1 is now draining\n"
    assert gc("host", "drain", "c1", "--why", "again").out == "host c1 is already draining; nothing changed\n"
    assert gc("host", "activate", "c1").out == "host c1 is now active\n"


def test_accounts_and_instances_and_one_click_boot(gc):
    gc("host", "add", "--profile", "rtx6000-2s4g", "--region", "ap-west", "--name", "mum-1")
    gc("account", "create", "ops@example.com", "--staff")
    gc("account", "create", "erin@example.com")
    listed = json.loads(gc("account", "list", "--json").out)
    assert [(a["email"], a["is_staff"]) for a in listed] == [("erin@example.com", False), ("ops@example.com", True)] \
        or sorted((a["email"], a["is_staff"]) for a in listed) == [("erin@example.com", False), ("ops@example.com", True)]
    assert "erin@example.com" in gc("account", "list", "erin").out

    booted = json.loads(gc("instance", "boot", "--account", "erin@example.com", "--plan", "g1-gpu-rtx6000-2",
                           "--region", "Mumbai", "--label", "train-1", "--no-wait", "--json").out)
    assert booted["label"] == "train-1" and booted["status"] == "provisioning" and booted["flags_bypassed"]
    assert len(booted["root_password"]) >= 16

    refused = gc("instance", "boot", "--account", "erin@example.com", "--plan", "g3-gpu-h100-1", "--region",
                 "mumbai", "--no-wait", code=1).err
    assert refused == "error: No capacity: No host in region ap-west (Mumbai, IN) has H100 PCIe 80GB GPUs.\n"

    rows = json.loads(gc("instance", "list", "--region", "mumbai", "--model", "rtx6000", "--account",
                         "erin@example.com", "--json").out)
    assert [(r["id"], r["gpu_model"], r["gpu_count"], r["host"]) for r in rows] == [(booted["id"], "rtx6000", 2,
                                                                                      "mum-1")]
    assert json.loads(gc("instance", "list", "--model", "h100", "--json").out) == []
    assert json.loads(gc("instance", "list", "--status", "running", "--json").out) == []
    table = gc("instance", "list").out
    assert "train-1" in table and "2× rtx6000" in table

    shown = gc("instance", "show", str(booted["id"])).out
    assert shown.startswith(f"instance {booted['id']} train-1 · provisioning · g1-gpu-rtx6000-2 · ap-west · host mum-1")
    assert shown.count("  GPU 0000:") == 2
    account = gc("account", "show", "erin@example.com").out
    assert "instances: 1" in account and "2× rtx6000" in account and "gpu-instances off" in account
    assert json.loads(gc("account", "show", "erin@example.com", "--json").out)["instances"][0]["id"] == booted["id"]


def test_capacity_shows_packs_demand_mix_and_an_operator_can_set_it(gc, monkeypatch):
    gc("host", "add", "--profile", "rtx6000-2s4g", "--region", "us-east")
    out = gc("capacity").out
    assert "pack keeps room for this demand mix (per region: learnt from its creates; elsewhere: every GPU plan" in out
    assert "rtx6000: g1-gpu-rtx6000-1 25%, g1-gpu-rtx6000-2 25%" in out
    monkeypatch.setenv("GPUCLOUD_PLACEMENT_DEMAND_MIX", "g1-gpu-rtx6000-1=18,g1-gpu-rtx6000-2=2")
    out = gc("capacity").out
    # the 3- and 4-GPU plans the operator left out keep the floor: 5 % of the model's weight each
    assert "elsewhere: placement_demand_mix)" in out
    assert "rtx6000: g1-gpu-rtx6000-1 82%, g1-gpu-rtx6000-2 9%, g1-gpu-rtx6000-3 5%, g1-gpu-rtx6000-4 5%" in out
    monkeypatch.setenv("GPUCLOUD_PLACEMENT_DEMAND_MIX", "g1-gpu-h200-1=1")
    assert "placement_demand_mix: 'g1-gpu-h200-1' is not a GPU plan of the catalog" in gc("capacity", code=1).err
