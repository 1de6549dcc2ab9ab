"""API create, admin boot and resize share one refusal, and it names the real cause."""

from __future__ import annotations

import pytest

from gpucloud.errors import GpucloudError
from gpucloud.services import accounts, flags, hosts, instance_admin, instances
from gpucloud.services.gating import flags_for
from tests.factories import two_node_host


@pytest.fixture
def fleet(store_db, settings):
    hosts.register_host(store_db, settings, name="gpu-1", region="ap-west", topology=two_node_host(),
                        driver="sim", profile="test")
    hosts.register_host(store_db, settings, name="gpu-2", region="ap-west", topology=two_node_host(),
                        driver="sim", profile="test")
    flags.set_state(store_db, "gpu-instances", "on", why="tests", actor="tests")
    flags_for(store_db).refresh()
    return accounts.create_account(store_db, "dana@example.com", username="dana")


def create(db, settings, account, plan, region="ap-west"):
    return instances.create_instance(db, settings, account.id, account.username,
                                     instances.NewInstance(type=plan, region=region), bypass_flags=True)


def refusal(call) -> GpucloudError:
    with pytest.raises(GpucloudError) as err:
        call()
    return err.value


def test_create_and_admin_boot_name_the_missing_model(store_db, settings, fleet):
    expected = "No capacity: No host in region ap-west (Mumbai, IN) has H100 PCIe 80GB GPUs."
    assert refusal(lambda: create(store_db, settings, fleet, "g3-gpu-h100-1")).reason == expected
    booted = refusal(lambda: instance_admin.boot_for_account(store_db, settings, fleet.id, plan="g3-gpu-h100-1",
                                                            region="ap-west", image=None, label=None, actor="t"))
    assert booted.reason == expected and booted.field == "type"


def test_all_claimed_then_the_rest_out_of_service(store_db, settings, fleet):
    for _ in range(2):
        create(store_db, settings, fleet, "g1-gpu-rtx6000-4")
    assert refusal(lambda: create(store_db, settings, fleet, "g1-gpu-rtx6000-1")).reason == (
        "No capacity: All 8 Quadro RTX 6000 GPUs in ap-west (Mumbai, IN) are claimed.")


def test_draining_host_is_named(store_db, settings, fleet):
    create(store_db, settings, fleet, "g1-gpu-rtx6000-4")
    hosts.set_host_status(store_db, "gpu-2", "draining", why="PSU swap")
    assert refusal(lambda: create(store_db, settings, fleet, "g1-gpu-rtx6000-1")).reason == (
        "No capacity: 4 of the 8 Quadro RTX 6000 GPUs in ap-west (Mumbai, IN) are claimed; "
        "the rest are out of service (host draining 4).")


def test_resize_refusal_is_the_same_words(store_db, settings, fleet):
    small = create(store_db, settings, fleet, "g6-standard-2")
    err = refusal(lambda: instances.resize_instance(store_db, settings, fleet.id, small.id, "g3-gpu-h100-1",
                                                    fleet.username))
    assert err.reason == "No capacity: No host in region ap-west (Mumbai, IN) has H100 PCIe 80GB GPUs."


def test_a_region_without_gpus_says_so_not_this_account(store_db, settings, fleet):
    err = refusal(lambda: create(store_db, settings, fleet, "g1-gpu-rtx6000-1", region="us-central"))
    assert (err.reason, err.field) == ("Region us-central (Dallas, TX) offers no GPU plans.", "region")
