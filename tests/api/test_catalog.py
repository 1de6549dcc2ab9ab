"""Types, regions and images through linode_api4 and plain HTTP, with GPU plans gated by flag."""

import httpx
import pytest
from linode_api4 import ApiError, Image, Region, Type


def test_types_through_linode_api4(any_api_server):
    alice = any_api_server.customer()
    client = any_api_server.client(alice.token)
    types = client.linode.types()
    by_id = {t.id: t for t in types}
    rtx = by_id["g1-gpu-rtx6000-1"]
    assert (rtx.type_class, rtx.gpus, rtx.vcpus, rtx.memory, rtx.disk, rtx.transfer) == (
        "gpu", 1, 8, 32768, 655360, 16000)
    assert rtx.price.hourly == 1.5 and rtx.accelerated_devices == 0
    assert "g6-nanode-1" in by_id and all(t.accelerated_devices == 0 for t in types)
    gpu_only = client.linode.types(Type.type_class == "gpu")
    assert gpu_only and {t.type_class for t in gpu_only} == {"gpu"}
    assert len(gpu_only) == sum(1 for t in types if t.type_class == "gpu")
    assert Type(client, "g1-gpu-rtx6000-2").vcpus == 16  # lazy single-object GET


def test_gpu_types_and_capability_are_hidden_from_accounts_without_the_flag(api_server):
    bob = api_server.customer(gpu=False)
    client = api_server.client(bob.token)
    assert [t.id for t in client.linode.types() if t.type_class == "gpu"] == []
    with pytest.raises(ApiError) as err:
        Type(client, "g1-gpu-rtx6000-1").label  # noqa: B018 - loading is the point
    assert err.value.status == 404
    us_east = Region(client, "us-east")
    assert "Linodes" in us_east.capabilities and "GPU Linodes" not in us_east.capabilities
    alice = api_server.customer()
    assert "GPU Linodes" in Region(api_server.client(alice.token), "us-east").capabilities


def test_types_and_regions_need_no_token_but_refuse_a_bad_one(api_server):
    anonymous = httpx.get(f"{api_server.base()}/linode/types")
    assert anonymous.status_code == 200
    assert all(t["class"] != "gpu" for t in anonymous.json()["data"])  # the flag starts closed
    assert httpx.get(f"{api_server.base()}/regions").json()["results"] > 0
    bad = httpx.get(f"{api_server.base()}/regions", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and bad.json() == {"errors": [{"reason": "Invalid Token"}]}


def test_regions_with_filters(api_server):
    client = api_server.client(api_server.customer().token)
    regions = client.regions()
    us_east = next(r for r in regions if r.id == "us-east")
    assert (us_east.country, us_east.site_type, us_east.status) == ("us", "core", "ok")
    assert "GPU Linodes" in us_east.capabilities
    assert us_east.resolvers.ipv4
    assert {r.country for r in client.regions(Region.country == "us")} == {"us"}


def test_images_and_slash_ids(api_server):
    client = api_server.client(api_server.customer().token)
    images = client.images()
    assert "linode/debian12" in {i.id for i in images}
    debian = Image(client, "linode/debian12")
    assert (debian.label, debian.vendor, debian.is_public, debian.status) == ("Debian 12", "Debian", True,
                                                                              "available")
    with pytest.raises(ApiError) as err:
        Image(client, "linode/plan9").label  # noqa: B018
    assert err.value.status == 404
    with pytest.raises(ApiError) as err:
        debian.delete()
    assert err.value.status == 403 and "Unauthorized" in str(err.value)


def test_v4beta_serves_the_same(api_server):
    client = api_server.client(api_server.customer().token, version="v4beta")
    assert {t.id for t in client.linode.types()} >= {"g1-gpu-rtx6000-1", "g6-nanode-1"}
    response = httpx.get(f"{api_server.base('v4beta')}/invalid/endpoint")
    assert response.status_code == 404 and response.json() == {"errors": [{"reason": "Not found"}]}
