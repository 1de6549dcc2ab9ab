"""linode-cli 5.69, unchanged, in a subprocess pointed at the live server by its environment."""

from __future__ import annotations

import json


def test_types_and_regions(cli):
    code, out, err = cli("linodes", "types", "--json")
    assert code == 0, err
    types = {t["id"]: t for t in json.loads(out)}
    assert types["g1-gpu-rtx6000-1"]["gpus"] == 1 and "g6-nanode-1" in types
    code, out, err = cli("linodes", "types", "--class", "gpu", "--json")  # sends X-Filter {"class": "gpu"}
    assert code == 0, err
    assert {t["class"] for t in json.loads(out)} == {"gpu"}
    code, out, err = cli("linodes", "types", "--text", "--no-headers", "--format", "id,class,price.hourly")
    assert code == 0, err
    assert "g1-gpu-rtx6000-1\tgpu\t1.5" in out.splitlines()
    code, out, err = cli("regions", "list", "--json")
    assert code == 0, err
    us_east = next(r for r in json.loads(out) if r["id"] == "us-east")
    assert "GPU Linodes" in us_east["capabilities"]


def test_profile_account_and_events(cli, api_server):
    code, out, err = cli("profile", "view", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["username"]
    code, out, err = cli("account", "view", "--json")
    assert code == 0 and "@example.com" in json.loads(out)[0]["email"], err
    code, out, err = cli("events", "list", "--json")
    assert code == 0 and json.loads(out) == [], err


def test_errors_exit_2_with_the_reason(cli):
    code, out, err = cli("linodes", "type-view", "g9-none-1")
    assert code == 2 and "Request failed: 404" in err and "Not found" in err
    code, out, err = cli("profile", "view", token="not-a-token")
    assert code == 2 and "Invalid Token" in err


def test_create_list_view_and_delete_a_gpu_instance(cli):
    code, out, err = cli("linodes", "create", "--type", "g1-gpu-rtx6000-1", "--region", "us-east",
                         "--image", "linode/debian12", "--root_pass", "aComplex@Password123", "--label", "cli-gpu-1",
                         "--json")
    assert code == 0, err
    created = json.loads(out)[0]
    assert (created["label"], created["type"], created["status"]) == ("cli-gpu-1", "g1-gpu-rtx6000-1", "provisioning")
    code, out, err = cli("linodes", "list", "--json")
    assert code == 0, err
    assert [i["id"] for i in json.loads(out)] == [created["id"]]
    code, out, err = cli("linodes", "list", "--label", "cli-gpu-1", "--text", "--no-headers", "--format", "id,label")
    assert code == 0 and out.split() == [str(created["id"]), "cli-gpu-1"], err
    code, out, err = cli("linodes", "view", str(created["id"]), "--json")
    assert code == 0 and json.loads(out)[0]["ipv4"] == created["ipv4"], err
    code, out, err = cli("linodes", "delete", str(created["id"]))
    assert code == 0, err
    code, out, err = cli("events", "list", "--json")
    assert code == 0, err
    assert {e["action"] for e in json.loads(out)} >= {"linode_create", "linode_delete"}


def test_create_without_type_gets_the_servers_field_errors(cli):
    code, out, err = cli("linodes", "create", "--label", "nothing-else")  # the CLI enforces no required args
    assert code == 2 and "Request failed: 400" in err
    assert "A valid plan type by that ID was not found" in err and "region is not valid" in err
