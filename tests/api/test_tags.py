"""Tags (`/tags`) through linode_api4, linode-cli and HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from linode_api4 import ApiError, Instance, Tag

GPU = "g1-gpu-rtx6000-1"


def test_tags_list_create_tagged_objects_and_delete(any_api_server):
    alice = any_api_server.customer()
    client = any_api_server.client(alice.token)
    a = client.linode.instance_create(GPU, "us-east", label="train-a", tags=["training"], booted=False)
    b = client.linode.instance_create(GPU, "us-east", label="train-b", booted=False)
    assert [t.label for t in client.tags()] == ["training"]  # tags on instances are the account's

    prod = client.tag_create("prod", instances=[a, b.id])
    client.tag_create("empty-one")
    assert [t.label for t in client.tags()] == ["empty-one", "prod", "training"]
    assert [o.id for o in Tag(client, "prod").objects] == [a.id, b.id]
    assert isinstance(Tag(client, "prod").objects[0], Instance)
    assert Instance(any_api_server.client(alice.token), a.id).tags == ["training", "prod"]
    assert list(Tag(client, "empty-one").objects) == []

    prod.delete()
    assert [t.label for t in client.tags()] == ["empty-one", "training"]
    assert Instance(any_api_server.client(alice.token), b.id).tags == []
    with pytest.raises(ApiError) as err:
        list(Tag(client, "prod").objects)
    assert err.value.status == 404

    bob = any_api_server.customer()  # tags and instances are per account
    assert list(any_api_server.client(bob.token).tags()) == []
    refused = any_api_server.http(bob.token).post("/tags", json={"label": "steal", "linodes": [a.id]})
    assert refused.json() == {"errors": [{"field": "linodes", "reason": f"Linode {a.id} was not found"}]}
    assert any_api_server.http(bob.token).get("/tags").json()["results"] == 0  # nothing half-written


def test_tags_refuse_what_is_not_offered(api_server, customer):
    http = api_server.http(customer.token)
    refused = http.post("/tags", json={"label": "dns", "domains": [1], "volumes": [2]})
    assert refused.json() == {"errors": [{"field": "domains", "reason": "DNS domains are not offered by this cloud"},
                                         {"field": "volumes",
                                          "reason": "Block Storage volumes are not offered by this cloud"}]}
    assert http.post("/tags", json={"label": "x"}).json()["errors"][0]["field"] == "label"
    assert http.post("/tags", json={"label": "fine", "domains": None, "linodes": None}).json() == {"label": "fine"}
    reader = api_server.http(api_server.token(customer, scopes="account:read_only"))
    assert reader.get("/tags").status_code == 200 and reader.delete("/tags/fine").status_code == 403


def test_tags_with_linode_cli(cli):
    code, out, err = cli("tags", "create", "--label", "cli-tag", "--json")
    assert code == 0 and json.loads(out)[0]["label"] == "cli-tag", err
    code, out, err = cli("tags", "list", "--json")
    assert code == 0 and [t["label"] for t in json.loads(out)] == ["cli-tag"], err
    code, out, err = cli("tags", "get-tagged-objects", "cli-tag", "--json")
    assert code == 0, err
    code, out, err = cli("tags", "delete", "cli-tag")
    assert code == 0, err
    code, out, err = cli("tags", "list", "--json")
    assert code == 0 and json.loads(out) == [], err
