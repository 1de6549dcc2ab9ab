"""Registering hosts, refusing duplicates, statuses, rediscovery, and the host page data."""

from __future__ import annotations

import dataclasses

import pytest

from gpucloud.errors import Conflict, GpucloudError, NotFound
from gpucloud.services import hosts
from gpucloud.store import audit
from tests.factories import two_node_host


def _register(db, settings, name="gpu-1", **kw):
    args = dict(name=name, region="us-east", topology=two_node_host(), driver="sim", profile="test")
    args.update(kw)
    return hosts.register_host(db, settings, **args)


def test_register_writes_nodes_cpus_gpus_and_reserves_host_cores(store_db, settings):
    ref = _register(store_db, settings)
    detail = hosts.host_detail(store_db, ref.id)

    assert [n["index"] for n in detail["nodes"]] == [0, 1]
    node0 = detail["nodes"][0]
    assert len(node0["cpus"]) == 16
    reserved = [c["id"] for c in node0["cpus"] if c["reserved"]]
    # two cores per node by default, each with its SMT sibling
    assert sorted(reserved) == [0, 1, 16, 17]
    assert [g["address"] for g in node0["gpus"]] == ["0000:3b:00.0", "0000:4b:00.0"]
    assert node0["gpus"][0]["model"] == "rtx6000"
    assert node0["gpus"][0]["functions"] == ["0000:3b:00.0", "0000:3b:00.1"]
    assert node0["reserved_memory_mib"] == settings.reserved_memory_mib_per_node


def test_a_host_cannot_be_registered_twice(store_db, settings):
    _register(store_db, settings, name="gpu-1")
    with pytest.raises(Conflict, match="already registered"):
        _register(store_db, settings, name="gpu-1")
    hosts.register_host(store_db, settings, name="kvm-a", region="us-east", topology=two_node_host(),
                        driver="libvirt", uri="qemu+tls://kvm-a/system")
    with pytest.raises(Conflict, match="URI"):
        hosts.register_host(store_db, settings, name="kvm-a-again", region="us-east", topology=two_node_host(),
                            driver="libvirt", uri="qemu+tls://kvm-a/system")
    assert [h["name"] for h in hosts.list_hosts(store_db)] == ["gpu-1", "kvm-a"]


def test_unknown_region_is_refused_and_nothing_is_written(store_db, settings):
    with pytest.raises(GpucloudError, match="unknown region 'mars-1'"):
        _register(store_db, settings, region="mars-1")
    assert hosts.list_hosts(store_db) == []


def test_drain_and_return_are_audited(store_db, settings):
    ref = _register(store_db, settings)
    hosts.set_host_status(store_db, ref.id, "draining", why="PSU swap", actor="alice")
    assert hosts.host_detail(store_db, "gpu-1")["status"] == "draining"
    hosts.set_host_status(store_db, "gpu-1", "active", actor="alice")
    with store_db.read() as s:
        entries = audit.recent(s, target_type="host", target_id=str(ref.id))
    assert [(e.actor, e.before["status"], e.after["status"]) for e in entries[:2]] == [
        ("alice", "draining", "active"), ("alice", "active", "draining")]
    assert entries[1].why == "PSU swap"
    with pytest.raises(GpucloudError):
        hosts.set_host_status(store_db, ref.id, "on-fire")
    with pytest.raises(NotFound):
        hosts.set_host_status(store_db, "nope", "active")


def test_gpu_out_of_service_needs_a_reason(store_db, settings):
    _register(store_db, settings)
    with pytest.raises(GpucloudError, match="say why"):
        hosts.set_gpu_status(store_db, "gpu-1", "0000:3b:00.0", "faulty")
    hosts.set_gpu_status(store_db, "gpu-1", "0000:3b:00.0", "faulty", why="Xid 79: fell off the bus")
    gpu = hosts.host_detail(store_db, "gpu-1")["nodes"][0]["gpus"][0]
    assert (gpu["status"], gpu["status_reason"]) == ("faulty", "Xid 79: fell off the bus")


def test_rediscovery_marks_vanished_gpus_faulty_and_adds_new_ones(store_db, settings):
    _register(store_db, settings)
    topo = two_node_host()
    gone, *kept = topo.gpus
    extra = dataclasses.replace(kept[0], address="0000:9f:00.0", iommu_group=99, companions=())
    changes = hosts.refresh_topology(store_db, "gpu-1", dataclasses.replace(topo, gpus=tuple(kept) + (extra,)))

    assert changes["vanished"] == [gone.address]
    assert changes["added"] == ["0000:9f:00.0"]
    all_gpus = {g["address"]: g for n in hosts.host_detail(store_db, "gpu-1")["nodes"] for g in n["gpus"]}
    assert all_gpus[gone.address]["status"] == "faulty"
    assert "vanished" in all_gpus[gone.address]["status_reason"]
    assert all_gpus["0000:9f:00.0"]["status"] == "available"

    # it comes back: available again
    hosts.refresh_topology(store_db, "gpu-1", topo)
    all_gpus = {g["address"]: g for n in hosts.host_detail(store_db, "gpu-1")["nodes"] for g in n["gpus"]}
    assert all_gpus[gone.address]["status"] == "available"


def test_rediscovery_refuses_a_different_cpu_layout(store_db, settings):
    _register(store_db, settings)
    with pytest.raises(Conflict, match="CPU layout changed"):
        hosts.refresh_topology(store_db, "gpu-1", two_node_host(cores_per_node=4))


def test_display_devices_outside_the_catalog_are_recorded_but_reserved(store_db, settings):
    topo = two_node_host()
    bmc = dataclasses.replace(topo.gpus[0], address="0000:03:00.0", vendor_id=0x1A03, device_id=0x2000,
                              iommu_group=3, companions=(), product="ASPEED Graphics Family")
    _register(store_db, settings, topology=dataclasses.replace(topo, gpus=topo.gpus + (bmc,)))
    gpus = {g["address"]: g for n in hosts.host_detail(store_db, "gpu-1")["nodes"] for g in n["gpus"]}
    assert gpus["0000:03:00.0"]["model"] is None
    assert gpus["0000:03:00.0"]["status"] == "reserved"
    assert "1a03:2000 is not a GPU model in the catalog" in gpus["0000:03:00.0"]["status_reason"]
