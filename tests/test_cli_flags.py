"""`gpucloud flags ...` as operators run it: real subprocesses on a data dir, one-line errors."""

from __future__ import annotations

import getpass
import json

from gpucloud.domain.flags import bucket
from gpucloud.services.flag_cache import DEFAULT_POLL_SECONDS
from gpucloud.store.db import Database
from gpucloud.store.tables import FeatureFlag
from tests.live import run_cli

SEEN = (f" (every API and worker process sees it within {DEFAULT_POLL_SECONDS:g} s: each polls the flags "
        "version that often)\n")


def _flags(data_dir) -> dict:
    return {f["key"]: f for f in json.loads(run_cli(data_dir, "flags", "list", "--json").stdout)}


def _history(data_dir, *key) -> list[dict]:
    return json.loads(run_cli(data_dir, "flags", "history", *key, "--json").stdout)


def test_a_rollout_from_the_command_line(tmp_path):
    run_cli(tmp_path, "account", "create", "customer@example.com")
    listed = run_cli(tmp_path, "flags", "list")
    assert "gpu-instances" in listed.stdout and "gpu-region-ap-south" in listed.stdout and listed.stderr == ""
    assert _flags(tmp_path)["gpu-instances"]["state"] == "off"

    out = run_cli(tmp_path, "flags", "set", "gpu-instances", "staff", "--why", "staff dogfood").stdout
    assert out == "gpu-instances: off -> staff" + SEEN
    out = run_cli(tmp_path, "flags", "set", "gpu-instances", "percent", "--percent", "10", "--why", "canary").stdout
    assert out == "gpu-instances: staff -> percent 10" + SEEN
    who = json.loads(run_cli(tmp_path, "flags", "who", "gpu-instances", "--all", "--json").stdout)
    [customer] = [a for a in who if a["email"] == "customer@example.com"]
    place = bucket("gpu-instances", customer["id"])
    assert customer["on"] == (place < 10) and f"place {place}" in customer["why"]
    assert "accounts" in run_cli(tmp_path, "flags", "who", "gpu-instances").stdout
    assert run_cli(tmp_path, "flags", "set", "gpu-instances", "percent", "--percent", "10",
                   "--why", "again").stdout == "gpu-instances: nothing to change\n"

    out = run_cli(tmp_path, "flags", "allow", "gpu-region-ap-south", "customer@example.com", "--until", "2099-01-01",
                  "--why", "one-week trial").stdout
    assert out == "gpu-region-ap-south: allowed for account customer@example.com until 2099-01-01" + SEEN
    run_cli(tmp_path, "flags", "deny", "gpu-instances", "1", "--why", "asked to wait")
    flags = _flags(tmp_path)
    assert (flags["gpu-instances"]["state"], flags["gpu-instances"]["percent"]) == ("percent", 10)
    assert [(o["account_email"], o["allow"], o["expires_at"]) for o in flags["gpu-region-ap-south"]["overrides"]] == [
        ("customer@example.com", True, "2099-01-01 00:00:00")]
    assert "+customer@example.com until 2099-01-01T00:00:00" in run_cli(tmp_path, "flags", "list").stdout

    out = run_cli(tmp_path, "flags", "clear", "gpu-instances", "customer@example.com", "--why", "ready now").stdout
    assert out == "gpu-instances: override of account customer@example.com removed" + SEEN
    assert _flags(tmp_path)["gpu-instances"]["overrides"] == []

    trail = _history(tmp_path)
    assert [(e["action"], e["key"], e["why"]) for e in trail] == [
        ("flag.clear", "gpu-instances", "ready now"),
        ("flag.deny", "gpu-instances", "asked to wait"),
        ("flag.allow", "gpu-region-ap-south", "one-week trial"),
        ("flag.set", "gpu-instances", "canary"),
        ("flag.set", "gpu-instances", "staff dogfood"),
    ]
    assert {e["actor"] for e in trail} == {f"cli:{getpass.getuser()}"}
    assert trail[3]["before"] == {"state": "staff", "percent": 0}
    assert trail[3]["after"] == {"state": "percent", "percent": 10}
    assert [e["why"] for e in _history(tmp_path, "gpu-region-ap-south")] == ["one-week trial"]
    table = run_cli(tmp_path, "flags", "history", "gpu-instances").stdout
    assert "staff -> percent 10" in table and "canary" in table


def test_errors_are_one_line_and_change_nothing(tmp_path):
    run_cli(tmp_path, "account", "create", "customer@example.com")
    run_cli(tmp_path, "flags", "set", "gpu-instances", "staff", "--why", "start")
    before = (_flags(tmp_path), _history(tmp_path))
    cases = [
        (["set", "gpu-everything", "on", "--why", "x"],
         "error: unknown flag 'gpu-everything'; known flags: gpu-instances, gpu-region-"),
        (["set", "gpu-instances", "percent", "--percent", "101", "--why", "x"],
         "error: percentage must be a whole number from 0 to 100, not 101"),
        (["set", "gpu-instances", "on"], "error: a reason is required: --why TEXT"),
        (["allow", "gpu-instances", "nobody@example.com", "--why", "x"], "error: no account nobody@example.com"),
        (["allow", "gpu-instances", "1", "--until", "next tuesday", "--why", "x"], "error: --until: not a date"),
        (["clear", "gpu-instances", "1", "--why", "x"], "error: account 1 has no override on gpu-instances"),
        (["retire", "gpu-instances", "--why", "x"], "error: gpu-instances is still known to the code"),
    ]
    for args, message in cases:
        proc = run_cli(tmp_path, "flags", *args, check=False)
        assert proc.returncode == 1, args
        assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, (args, proc.stderr)
        assert proc.stdout == "", args
    bad_state = run_cli(tmp_path, "flags", "set", "gpu-instances", "maybe", "--why", "x", check=False)
    assert bad_state.returncode == 2 and "'maybe' is not one of" in bad_state.stderr
    assert (_flags(tmp_path), _history(tmp_path)) == before


def test_list_warns_about_flags_to_retire_and_retire_removes_them(tmp_path):
    run_cli(tmp_path, "flags", "list")  # creates and migrates the embedded database
    db = Database(f"sqlite:///{tmp_path / 'gpucloud.sqlite'}")
    with db.write() as s:  # left behind by an older release
        s.add(FeatureFlag(key="legacy-beta", description="the 2025 beta", state="on"))
    db.dispose()

    listed = run_cli(tmp_path, "flags", "list")
    assert "legacy-beta" in listed.stdout and "(unknown to the code)" in listed.stdout
    assert listed.stderr.startswith("note: database sqlite:///")  # no host, no account: it says which one
    assert listed.stderr.endswith("warning: the database holds flags the code does not know: legacy-beta "
                                  "(retire them: gpucloud flags retire KEY --why TEXT)\n")
    assert _flags(tmp_path)["legacy-beta"]["known"] is False

    assert run_cli(tmp_path, "flags", "retire", "legacy-beta", "--why", "beta ended").stdout.startswith(
        "legacy-beta: retired (every API and worker process sees it within")
    listed = run_cli(tmp_path, "flags", "list")
    assert "legacy-beta" not in listed.stdout and "warning" not in listed.stderr
    (entry,) = _history(tmp_path, "legacy-beta")
    assert entry["action"] == "flag.retire" and entry["before"]["state"] == "on" and entry["after"] is None
