"""GPU instances through linode_api4: create and read back, list and filter, update, the power
actions and delete, the errors it raises, and isolation between accounts."""

from __future__ import annotations

import time

import pytest
from linode_api4 import ApiError, Instance
from linode_api4.objects.filtering import order_by

PASSWORD = "aComplex@Password123"
GPU = "g1-gpu-rtx6000-1"


def wait_for_status(http, instance_id: int, wanted: str, timeout: float = 60.0) -> list[str]:
    """Poll with fresh GETs until `wanted`; returns every status seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = http.get(f"/linode/instances/{instance_id}").json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == wanted:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"instance {instance_id} never reached {wanted}; saw {seen}")


def test_create_a_gpu_instance_and_read_it_back(any_api_server):
    alice = any_api_server.customer()
    client = any_api_server.client(alice.token)
    created = client.linode.instance_create(GPU, "us-east", image="linode/debian12", root_pass=PASSWORD,
                                            label="gpu-1", tags=["training"], booted=True)
    assert (created.label, created.status, created.tags, created.group) == ("gpu-1", "provisioning", ["training"], "")
    assert (created.specs.gpus, created.specs.vcpus, created.specs.memory, created.specs.disk) == (1, 8, 32768, 655360)
    assert created.hypervisor == "kvm" and created.ipv4 and created.ipv6.endswith("/128")

    again = Instance(any_api_server.client(alice.token), created.id)  # a fresh, lazy object
    assert (again.label, again.type.id, again.region.id, again.image.id) == ("gpu-1", GPU, "us-east",
                                                                             "linode/debian12")
    assert again.ipv4 == created.ipv4 and again.created == created.created
    assert again.type.gpus == 1 and again.image.vendor == "Debian"  # slug relationships load too
    assert again.ips.ipv4.public[0].address == created.ipv4[0]
    assert [c.id for c in again.configs] == [created.id] and again.disks[0].size == 655360

    create_event = [e for e in client.account.events() if e.entity and e.entity.id == created.id]
    assert [e.action for e in create_event] == ["linode_create"]
    assert create_event[0].entity.url == f"/v4/linode/instances/{created.id}"


def test_list_filter_order_and_update(any_api_server):
    alice = any_api_server.customer()
    client = any_api_server.client(alice.token)
    for label, group in (("train-a", "prod"), ("train-b", "prod"), ("notebook", "dev")):
        client.linode.instance_create(GPU, "us-east", label=label, group=group, booted=False)
    assert sorted(i.label for i in client.linode.instances()) == ["notebook", "train-a", "train-b"]
    assert [i.label for i in client.linode.instances(Instance.group == "prod")] == ["train-a", "train-b"]
    assert [i.label for i in client.linode.instances(Instance.label.contains("train"),
                                                     order_by(Instance.label, desc=True))] == ["train-b", "train-a"]
    assert len(client.linode.instances(Instance.region == "ap-west")) == 0

    notebook = client.linode.instances(Instance.label == "notebook")[0]
    notebook.label = "notebook-2"
    notebook.tags = ["jupyter"]
    notebook.watchdog_enabled = False
    assert notebook.save()  # PUTs every mutable field, backups and maintenance_policy included
    fresh = Instance(any_api_server.client(alice.token), notebook.id)
    assert (fresh.label, fresh.tags, fresh.watchdog_enabled) == ("notebook-2", ["jupyter"], False)
    with pytest.raises(ApiError) as err:
        fresh.label = "train-a"
        fresh.save()
    assert err.value.status == 400 and "unique" in str(err.value)


def test_the_whole_lifecycle_through_linode_api4(any_api_server):
    alice = any_api_server.customer()
    client, http = any_api_server.client(alice.token), any_api_server.http(alice.token)
    inst = client.linode.instance_create(GPU, "us-east", image="linode/ubuntu24.04", root_pass=PASSWORD)
    assert wait_for_status(http, inst.id, "running")[0] == "provisioning"
    assert inst.shutdown() is True
    assert wait_for_status(http, inst.id, "offline")[0] in ("shutting_down", "offline")
    assert inst.boot() is True
    wait_for_status(http, inst.id, "running")
    assert inst.reboot() is True
    wait_for_status(http, inst.id, "running")
    assert inst.resize("g1-gpu-rtx6000-2") is True
    assert "resizing" in wait_for_status(http, inst.id, "running")
    resized = http.get(f"/linode/instances/{inst.id}").json()
    assert (resized["type"], resized["specs"]["gpus"], resized["specs"]["vcpus"]) == ("g1-gpu-rtx6000-2", 2, 16)
    assert inst.delete() is True
    deadline = time.monotonic() + 60
    while http.get(f"/linode/instances/{inst.id}").status_code != 404:
        assert time.monotonic() < deadline, "the instance was never deleted"
        time.sleep(0.1)
    actions = [e.action for e in client.account.events() if e.entity and e.entity.id == inst.id]
    assert actions == ["linode_delete", "linode_resize", "linode_reboot", "linode_boot", "linode_shutdown",
                       "linode_create"]


def test_busy_unknown_and_gated_creates_are_400_with_the_reason(api_server):
    alice = api_server.customer()
    client, http = api_server.client(alice.token), api_server.http(alice.token)
    with pytest.raises(ApiError) as err:
        client.linode.instance_create("g9-nothing-1", "mars")
    assert str(err.value) == ("POST /v4/linode/instances: [400] type: A valid plan type by that ID was not found; "
                              "region: region is not valid")
    with pytest.raises(ValueError):  # linode_api4's own check: an image needs a password or keys
        client.linode.instance_create(GPU, "us-east", image="linode/debian12")
    inst = client.linode.instance_create(GPU, "us-east", image="linode/debian12", root_pass=PASSWORD)
    busy = http.post(f"/linode/instances/{inst.id}/boot")  # still provisioning: its create job runs
    assert (busy.status_code, busy.json()) == (400, {"errors": [{"reason": "Linode busy."}]})
    bob = api_server.customer(gpu=False)
    refused = api_server.http(bob.token).post("/linode/instances", json={"type": GPU, "region": "us-east"})
    assert refused.status_code == 400  # a plan bob cannot see is answered like one that does not exist
    assert refused.json() == {"errors": [{"reason": "A valid plan type by that ID was not found", "field": "type"}]}
    nanode = api_server.http(bob.token).post("/linode/instances", json={"type": "g6-nanode-1", "region": "us-east",
                                                                        "booted": False})
    assert nanode.status_code == 200  # plans without GPUs are not gated


def test_no_capacity_is_an_immediate_400(api_server):
    alice = api_server.customer()
    http = api_server.http(alice.token)
    answers = [http.post("/linode/instances", json={"type": "g1-gpu-rtx6000-4", "region": "ap-west",
                                                    "booted": False}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 400]  # ap-west has two 4-GPU hosts
    error = answers[2].json()["errors"][0]
    assert error["field"] == "type" and error["reason"].startswith("No capacity")


def test_resize_is_accepted_or_refused_with_a_reason(api_server):
    alice = api_server.customer()
    client, http = api_server.client(alice.token), api_server.http(alice.token)
    inst = client.linode.instance_create(GPU, "us-east", booted=False)
    same = http.post(f"/linode/instances/{inst.id}/resize", json={"type": GPU})
    assert same.status_code == 400 and same.json()["errors"][0]["field"] == "type"
    unknown = http.post(f"/linode/instances/{inst.id}/resize", json={"type": "g9-nothing-1"})
    assert unknown.json() == {"errors": [{"reason": "A valid plan type by that ID was not found", "field": "type"}]}


def test_another_accounts_instance_is_404_everywhere(any_api_server):
    alice, mallory = any_api_server.customer(), any_api_server.customer()
    inst = any_api_server.client(alice.token).linode.instance_create(GPU, "us-east", booted=False)
    http = any_api_server.http(mallory.token)
    base = f"/linode/instances/{inst.id}"
    for method, path, body in (("GET", base, None), ("PUT", base, {"label": "mine-now"}), ("DELETE", base, None),
                               ("POST", f"{base}/boot", None), ("POST", f"{base}/shutdown", None),
                               ("POST", f"{base}/reboot", None), ("POST", f"{base}/resize", {"type": GPU}),
                               ("GET", f"{base}/ips", None), ("GET", f"{base}/configs", None),
                               ("GET", f"{base}/configs/{inst.id}", None), ("GET", f"{base}/disks", None),
                               ("GET", f"{base}/disks/{inst.id}", None)):
        response = http.request(method, path, json=body)
        assert (response.status_code, response.json()) == (404, {"errors": [{"reason": "Not found"}]}), (method,
                                                                                                         path)
    assert http.get("/linode/instances").json()["results"] == 0
    assert any_api_server.http(alice.token).get(base).json()["label"] == inst.label  # untouched


def test_read_only_tokens_cannot_write(any_api_server):
    alice = any_api_server.customer()
    inst = any_api_server.client(alice.token).linode.instance_create(GPU, "us-east", booted=False)
    reader = any_api_server.http(any_api_server.token(alice, scopes="linodes:read_only"))
    base = f"/linode/instances/{inst.id}"
    assert reader.get(base).status_code == 200 and reader.get("/linode/instances").json()["results"] == 1
    for method, path, body in (("POST", "/linode/instances", {"type": GPU, "region": "us-east"}),
                               ("PUT", base, {"label": "x-y-z"}), ("DELETE", base, None),
                               ("POST", f"{base}/boot", None), ("POST", f"{base}/resize", {"type": GPU})):
        response = reader.request(method, path, json=body)
        assert (response.status_code, response.json()) == (403, {"errors": [{"reason": "Unauthorized"}]})
        assert response.headers["X-Accepted-OAuth-Scopes"] == "linodes:read_write"
    assert any_api_server.http(alice.token).get(base).json()["label"] == inst.label
