"""Honest answers: regions list only what is served, fields for features we lack are refused
with a 400 naming them, and routes we do not serve say what is not offered (never a bare
`Not found`, which reads as "your Linode does not exist")."""

from __future__ import annotations

import pytest
from linode_api4 import Region

from gpucloud.api import unoffered

GPU = "g1-gpu-rtx6000-1"
CREATE = {"type": GPU, "region": "us-east", "booted": False}


def test_regions_list_only_what_is_served(api_server, customer):
    client = api_server.client(customer.token)
    for region in client.regions():
        assert set(region.capabilities) <= {"Linodes", "GPU Linodes", "Metadata"}, region.id
    assert set(Region(client, "us-east").capabilities) >= {"Linodes", "GPU Linodes"}


@pytest.mark.parametrize(("field", "value", "what"), [
    ("stackscript_id", 10079, "StackScripts are"),
    ("stackscript_data", {"a": "b"}, "StackScripts are"),
    ("firewall_id", 1, "Cloud Firewalls are"),
    ("backups_enabled", True, "Backups are"),
    ("backup_id", 5, "Backups are"),
    ("private_ip", True, "Private IPv4 addresses are"),
    ("interfaces", [{"purpose": "public"}], "Linode Interfaces"),
    ("placement_group", {"id": 3}, "Placement Groups are"),
    ("disk_encryption", "enabled", "Disk encryption is"),
    ("swap_size", 512, "Swap disks"),
    ("maintenance_policy", "linode/migrate", "Live migration"),
    ("ipv4", ["192.0.2.1"], "Reserved IPv4 addresses are"),
])
def test_create_fields_for_unoffered_features_are_refused(api_server, customer, field, value, what):
    http = api_server.http(customer.token)
    response = http.post("/linode/instances", json={**CREATE, field: value})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == field
    assert error["reason"].startswith(what) and error["reason"].endswith("not offered by this cloud")
    assert http.get("/linode/instances").json()["results"] == 0  # nothing half-written


def test_fields_that_ask_for_nothing_are_fine(api_server, customer):
    http = api_server.http(customer.token)
    created = http.post("/linode/instances", json={
        **CREATE, "backups_enabled": False, "private_ip": False, "interfaces": [], "disk_encryption": "disabled",
        "maintenance_policy": "linode/power_off_on", "interface_generation": "legacy_config"})
    assert created.status_code == 200, created.text
    several = http.post("/linode/instances", json={**CREATE, "stackscript_id": 1, "firewall_id": 2})
    assert {e["field"] for e in several.json()["errors"]} == {"stackscript_id", "firewall_id"}
    instance = created.json()["id"]
    update = http.put(f"/linode/instances/{instance}", json={"backups": {"enabled": True}})
    assert update.json()["errors"] == [{"field": "backups", "reason": "Backups are not offered by this cloud"}]
    resize = http.post(f"/linode/instances/{instance}/resize", json={"type": "g1-gpu-rtx6000-2",
                                                                     "migration_type": "warm"})
    assert resize.status_code == 400 and resize.json()["errors"][0]["field"] == "migration_type"


@pytest.mark.parametrize(("method", "path", "status", "reason"), [
    ("GET", "/volumes", 404, "Block Storage volumes are not offered by this cloud"),
    ("POST", "/volumes", 404, "Block Storage volumes are not offered by this cloud"),
    ("GET", "/networking/firewalls/12", 404, "Cloud Firewalls are not offered by this cloud"),
    ("GET", "/lke/clusters", 404, "Kubernetes (LKE) clusters are not offered by this cloud"),
    ("GET", "/linode/stackscripts", 404, "StackScripts are not offered by this cloud"),
    ("GET", "/linode/instances/1/backups", 404, "Backups are not offered by this cloud"),
    ("POST", "/linode/instances/1/backups/enable", 404, "Backups are not offered by this cloud"),
    ("POST", "/linode/instances/1/disks", 405, unoffered.DISKS + " not offered by this cloud"),
    ("PUT", "/account", 405, "Editing account contact details through the API is not offered by this cloud"),
    ("POST", "/images", 405, unoffered.CUSTOM_IMAGES + " not offered by this cloud"),
])
def test_unoffered_routes_name_what_is_not_offered(api_server, customer, method, path, status, reason):
    for version in ("v4", "v4beta"):
        response = api_server.http(customer.token, version).request(method, path, json={})
        assert (response.status_code, response.json()) == (status, {"errors": [{"reason": reason}]})
        if status == 405:
            assert response.headers["Allow"]


def test_what_names_nothing_stays_not_found(api_server, customer):
    http = api_server.http(customer.token)
    for path in ("/nothing", "/linode/instances/99999", "/v5/volumes", "/regions/nowhere"):
        assert http.get(path).json() == {"errors": [{"reason": "Not found"}]}
    for path in ("/profile/sshkeys/99999", "/profile/tokens/99999"):
        assert http.put(path, json={"label": "x-y-z"}).json() == {"errors": [{"reason": "Not found"}]}, path


def test_linode_cli_prints_the_reason(cli):
    code, _out, err = cli("volumes", "list")
    assert code == 2 and "Block Storage volumes are not offered by this cloud" in err
    code, _out, err = cli("linodes", "create", "--type", GPU, "--region", "us-east", "--stackscript_id", "5")
    assert code == 2 and "stackscript_id" in err and "StackScripts are not offered by this cloud" in err


def test_every_unoffered_route_answers_its_reason(api_server, customer):
    """Each entry of api/unoffered.py speaks: an entry whose route some stream has since built
    would be dead, and is named here so that it is deleted."""
    http = api_server.http(customer.token)
    wrong = []
    for entry in unoffered.ROUTES:
        path = "/" + "/".join("1" if s == unoffered.ANY else s for s in entry.path)
        for method in sorted(entry.methods or {"GET", "POST", "PUT", "DELETE"}):
            answer = http.request(method, path, json={} if method in ("POST", "PUT") else None)
            if answer.json() != {"errors": [{"reason": entry.reason}]}:
                wrong.append(f"{method} {path}: {answer.status_code} {answer.text}")
    assert wrong == []
