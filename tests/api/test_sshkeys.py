"""SSH keys in the profile (`/profile/sshkeys`) through linode_api4, linode-cli and plain HTTP,
and what they give a guest: `authorized_users` puts a user's keys, `authorized_keys` and the
root password into the cloud-init seed; a guest from an image with no way in is refused."""

from __future__ import annotations

import json

import pytest
from linode_api4 import ApiError
from linode_api4.objects import SSHKey

from gpucloud.hypervisor.cloudinit import user_data
from gpucloud.services.guests import domain_spec
from tests.factories import ssh_public_key

GPU = "g1-gpu-rtx6000-1"
PASSWORD = "aComplex@Password123"


def test_upload_list_rename_and_delete_keys_with_linode_api4(any_api_server):
    alice = any_api_server.customer()
    client = any_api_server.client(alice.token)
    assert list(client.profile.ssh_keys()) == []
    laptop = client.profile.ssh_key_upload(ssh_public_key("alice@laptop"), "laptop")
    desk = client.profile.ssh_key_upload(ssh_public_key("alice@desk", fill=1), "desk")
    assert (laptop.label, laptop.ssh_key) == ("laptop", ssh_public_key("alice@laptop")) and laptop.created
    assert [k.label for k in client.profile.ssh_keys()] == ["laptop", "desk"]
    assert [k.id for k in client.profile.ssh_keys(SSHKey.label == "desk")] == [desk.id]

    laptop.label = "old-laptop"
    laptop.save()
    assert SSHKey(any_api_server.client(alice.token), laptop.id).label == "old-laptop"
    desk.delete()
    assert [k.label for k in client.profile.ssh_keys()] == ["old-laptop"]
    users = any_api_server.http(alice.token).get("/account/users").json()["data"]
    assert users[0]["ssh_keys"] == ["old-laptop"]

    bob = any_api_server.customer()  # another account's key is not there at all
    with pytest.raises(ApiError) as err:
        SSHKey(any_api_server.client(bob.token), laptop.id)._api_get()
    assert err.value.status == 404


def test_bad_keys_and_scopes(api_server):
    alice = api_server.customer()
    http = api_server.http(alice.token)
    bad = http.post("/profile/sshkeys", json={"ssh_key": "ssh-ed25519 not-base64!", "label": "x"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "ssh_key"
    missing = http.post("/profile/sshkeys", json={"label": "x"})
    assert missing.json() == {"errors": [{"reason": "ssh_key is required", "field": "ssh_key"}]}
    long_label = http.post("/profile/sshkeys", json={"ssh_key": ssh_public_key(), "label": "x" * 65})
    assert long_label.status_code == 400 and long_label.json()["errors"][0]["field"] == "label"
    reader = api_server.http(api_server.token(alice, scopes="account:read_only"))
    assert reader.get("/profile/sshkeys").status_code == 200
    refused = reader.post("/profile/sshkeys", json={"ssh_key": ssh_public_key()})
    assert refused.status_code == 403 and refused.headers["X-Accepted-OAuth-Scopes"] == "account:read_write"
    assert api_server.http(api_server.token(alice, scopes="linodes:read_only")).get("/profile/sshkeys").status_code == 403


def test_sshkeys_with_linode_cli(cli):
    code, out, err = cli("sshkeys", "create", "--label", "cli-key", "--ssh_key", ssh_public_key("me@cli"), "--json")
    assert code == 0, err
    created = json.loads(out)[0]
    assert created["label"] == "cli-key"
    code, out, err = cli("sshkeys", "list", "--json")
    assert code == 0, err
    assert [k["id"] for k in json.loads(out)] == [created["id"]]
    code, out, err = cli("sshkeys", "update", str(created["id"]), "--label", "renamed", "--json")
    assert code == 0 and json.loads(out)[0]["label"] == "renamed", err
    code, out, err = cli("sshkeys", "delete", str(created["id"]))
    assert code == 0, err
    code, out, err = cli("sshkeys", "view", str(created["id"]))
    assert code == 2 and "Not found" in err


def test_authorized_users_keys_and_password_reach_the_seed(any_api_server):
    alice = any_api_server.customer()
    client = any_api_server.client(alice.token)
    client.profile.ssh_key_upload(ssh_public_key("alice@laptop"), "laptop")
    client.profile.ssh_key_upload(ssh_public_key("alice@desk", fill=1), "desk")
    extra = ssh_public_key("ci@runner", fill=2)
    inst = client.linode.instance_create(GPU, "us-east", image="linode/debian12", root_pass=PASSWORD,
                                         authorized_users=[alice.username], authorized_keys=[extra], label="keys-1")
    seed = json.loads(user_data(domain_spec(any_api_server.db, inst.id).cloud_init).split("\n", 1)[1])
    root = seed["users"][0]
    assert root["ssh_authorized_keys"] == [extra, ssh_public_key("alice@laptop"), ssh_public_key("alice@desk", fill=1)]
    assert root["hashed_passwd"].startswith("$6$") and seed["ssh_pwauth"] is True


def test_keys_only_guest_has_no_password(api_server):
    alice = api_server.customer()
    client = api_server.client(alice.token)
    client.profile.ssh_key_upload(ssh_public_key("alice@laptop"), "laptop")
    http = api_server.http(alice.token)
    created = http.post("/linode/instances", json={"type": GPU, "region": "us-east", "image": "linode/debian12",
                                                   "authorized_users": [alice.username]})
    assert created.status_code == 200, created.text
    seed = json.loads(user_data(domain_spec(api_server.db, created.json()["id"]).cloud_init).split("\n", 1)[1])
    assert seed["users"][0]["ssh_authorized_keys"] == [ssh_public_key("alice@laptop")]
    assert "hashed_passwd" not in seed["users"][0] and seed["ssh_pwauth"] is False


def test_a_guest_with_no_way_in_is_refused(api_server):
    alice = api_server.customer()
    http = api_server.http(alice.token)
    base = {"type": GPU, "region": "us-east", "image": "linode/debian12"}
    bare = http.post("/linode/instances", json=base)
    assert bare.status_code == 400
    [error] = bare.json()["errors"]
    assert error["field"] == "root_pass"
    assert all(name in error["reason"] for name in ("root_pass", "authorized_keys", "authorized_users"))
    keyless = http.post("/linode/instances", json={**base, "authorized_users": [alice.username]})
    assert keyless.status_code == 400
    assert keyless.json()["errors"] == [{"field": "authorized_users", "reason": (
        f"User {alice.username} has no SSH keys in their profile (add one with POST /profile/sshkeys)")}]
    stranger = http.post("/linode/instances", json={**base, "authorized_users": ["nobody-here"]})
    assert {"field": "authorized_users", "reason": "Username nobody-here is not a user on this account"} in (
        stranger.json()["errors"])
    assert http.get("/linode/instances").json()["results"] == 0  # nothing half-written
    empty = http.post("/linode/instances", json={"type": GPU, "region": "us-east", "booted": False})
    assert empty.status_code == 200  # no image, no system to log in to: nothing to refuse
