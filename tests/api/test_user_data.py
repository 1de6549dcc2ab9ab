"""User data (Linode Metadata): `metadata.user_data` is checked (base64, size, cloud-init's own
schema for a cloud-config), stored, shown as `has_user_data`, and written into the guest's
NoCloud seed beside our own cloud-config, where cloud-init reads both."""

from __future__ import annotations

import base64
import json

from gpucloud.domain.validation import USER_DATA_MAX
from gpucloud.hypervisor.cloudinit import nocloud_iso, read_nocloud_iso
from gpucloud.services.guests import domain_spec

GPU = "g1-gpu-rtx6000-1"
PASSWORD = "aComplex@Password123"
CUDA = "#cloud-config\npackages: [nvidia-driver, nvidia-cuda-toolkit]\nruncmd:\n  - [nvidia-smi]\n"


def _seed_user_data(server, instance_id: int) -> str:
    spec = domain_spec(server.db, instance_id)
    assert spec.cloud_init is not None
    return read_nocloud_iso(nocloud_iso(spec.cloud_init, spec.uuid))["user-data"]


def test_user_data_reaches_the_seed_through_linode_api4(any_api_server):
    alice = any_api_server.customer()
    client = any_api_server.client(alice.token)
    inst = client.linode.instance_create(GPU, "us-east", image="linode/debian12", root_pass=PASSWORD, label="cuda-1",
                                         metadata=client.linode.build_instance_metadata(user_data=CUDA))
    assert inst.has_user_data is True
    assert any_api_server.http(alice.token).get(f"/linode/instances/{inst.id}").json()["has_user_data"] is True
    seed = _seed_user_data(any_api_server, inst.id)
    assert seed.startswith("Content-Type: multipart/mixed")
    assert "Content-Type: text/cloud-config" in seed and '"hostname": "cuda-1"' in seed and CUDA in seed
    plain = client.linode.instance_create(GPU, "us-east", image="linode/debian12", root_pass=PASSWORD, label="plain")
    assert plain.has_user_data is False and _seed_user_data(any_api_server, plain.id).startswith("#cloud-config")


def test_scripts_are_delivered_as_they_are(api_server, customer):
    http = api_server.http(customer.token)
    script = b"#!/bin/bash\nnvidia-smi > /root/gpus.txt\n"
    created = http.post("/linode/instances", json={
        "type": GPU, "region": "us-east", "image": "linode/debian12", "root_pass": PASSWORD,
        "metadata": {"user_data": base64.b64encode(script).decode()}})
    assert created.status_code == 200, created.text
    assert script.decode() in _seed_user_data(api_server, created.json()["id"])


def test_bad_user_data_is_refused_naming_the_field(api_server, customer):
    http = api_server.http(customer.token)
    base = {"type": GPU, "region": "us-east", "image": "linode/debian12", "root_pass": PASSWORD}

    def refused(user_data: str) -> str:
        response = http.post("/linode/instances", json={**base, "metadata": {"user_data": user_data}})
        assert response.status_code == 400, response.text
        [error] = response.json()["errors"]
        assert error["field"] == "metadata.user_data"
        return error["reason"]

    assert refused("not base64!") == "user_data must be base64-encoded"
    assert refused("A" * (USER_DATA_MAX + 4)) == f"user_data must be at most {USER_DATA_MAX} characters of base64"
    reason = refused(base64.b64encode(b"#cloud-config\npackages: 5\n").decode())
    assert reason == "user_data is not valid cloud-config: packages: 5 is not of type 'array'"
    assert "not valid yaml" in refused(base64.b64encode(b"#cloud-config\nruncmd: [oops\n").decode())
    assert http.get("/linode/instances").json()["results"] == 0  # nothing half-written


def test_linode_cli_create_with_user_data(cli):
    encoded = base64.b64encode(CUDA.encode()).decode()
    code, out, err = cli("linodes", "create", "--type", GPU, "--region", "us-east", "--image", "linode/debian12",
                         "--root_pass", PASSWORD, "--metadata.user_data", encoded, "--json")
    assert code == 0, err
    assert json.loads(out)[0]["has_user_data"] is True
    code, out, err = cli("regions", "view", "us-east", "--json")
    assert code == 0 and "Metadata" in json.loads(out)[0]["capabilities"], err
