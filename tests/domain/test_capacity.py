"""Inventory per region and GPU model, and the sellable promise."""

from __future__ import annotations

import pytest

from gpucloud.catalog import load_catalog
from gpucloud.domain.capacity import capacity_rows, fill_count, sellable
from gpucloud.domain.placement import (
    Placement,
    PlacementConfig,
    PlacementRequest,
    apply,
    build_host_state,
    demand_mix,
    place,
)
from gpucloud.hypervisor.profile import load_profile
from tests.domain.test_placement import gpu_address, gpu_plan, gpu_request, host, placed, topology

ROW_KEYS = {"region", "gpu_model", "total", "claimed", "claimed_staff", "claimed_customer", "free",
            "unavailable", "unavailable_reasons", "stranded", "sellable"}


def only_row(hosts, plans=(), config=None, region=None) -> dict:
    rows = capacity_rows(hosts, plans, config or PlacementConfig(), region)
    assert len(rows) == 1
    return rows[0]


def test_counts_add_up_and_claims_are_split_between_staff_and_customers():
    busy = host(1, claimed_gpus=[gpu_address(0, 0), gpu_address(0, 1)], staff_gpus=[gpu_address(0, 1)],
                gpu_statuses={gpu_address(1, 0): "faulty"})
    draining = host(2, status="draining", claimed_gpus=[gpu_address(0, 0)])
    odd = host(3, topology((2, 2), unknown_gpus=1, blocked=[gpu_address(1, 1)]), gpu_statuses={gpu_address(1, 0): "reserved"})
    row = only_row([busy, draining, odd])
    assert set(row) == ROW_KEYS
    assert (row["total"], row["claimed"], row["claimed_staff"], row["claimed_customer"]) == (13, 3, 1, 2)
    assert row["unavailable_reasons"] == {"faulty": 1, "host-draining": 3, "reserved": 1, "iommu-blocker": 1, "numa-unknown": 1}
    assert (row["free"], row["unavailable"]) == (3, 7)
    assert row["free"] + row["claimed"] + row["unavailable"] == row["total"]


def test_unknown_numa_gpus_are_free_when_the_policy_places_them():
    h = host(1, topology((0, 0), unknown_gpus=2))
    assert only_row([h], config=PlacementConfig(numa_unknown_policy="preferred"))["free"] == 2
    assert only_row([h])["unavailable_reasons"] == {"numa-unknown": 2}


def test_stranded_gpus_have_no_cores_or_memory_left_beside_them():
    node_1_threads = {4, 5, 6, 7, 12, 13, 14, 15}  # every thread of node 1 (cores 4-7, SMT2)
    no_cores = host(1, topology((2, 2), cores=4), claimed_cpus=node_1_threads)
    plans = [gpu_plan(1, vcpus=4, memory_gib=16), gpu_plan(2, vcpus=8, memory_gib=32)]
    row = only_row([no_cores], plans)
    assert (row["free"], row["stranded"]) == (4, 2)
    assert row["sellable"] == {"test-rtx6000-1": 2, "test-rtx6000-2": 1}

    no_memory = host(2, topology((2, 2), memory_gib=64), claimed_memory_mib={0: 60 * 1024})
    assert only_row([no_memory], plans)["stranded"] == 2


def test_sellable_counts_what_fragmentation_leaves():
    plans = [gpu_plan(g) for g in (1, 2, 3, 4)]
    assert only_row([host(1)], plans)["sellable"] == {"test-rtx6000-1": 4, "test-rtx6000-2": 2, "test-rtx6000-3": 1, "test-rtx6000-4": 1}
    one_taken = host(1, claimed_gpus=[gpu_address(0, 0)])
    assert only_row([one_taken], plans)["sellable"] == {"test-rtx6000-1": 3, "test-rtx6000-2": 1, "test-rtx6000-3": 1, "test-rtx6000-4": 0}


def test_rows_can_be_limited_to_a_region():
    hosts = [host(1, region="r1"), host(2, region="r2", model="h100")]
    assert [(r["region"], r["gpu_model"]) for r in capacity_rows(hosts, (), PlacementConfig())] == [("r1", "rtx6000"), ("r2", "h100")]
    assert only_row(hosts, region="r2")["gpu_model"] == "h100"


def test_fill_count_is_per_host_and_per_region():
    h = host(1)
    assert fill_count(h, gpu_request(1), PlacementConfig()) == 4
    assert fill_count(h, gpu_request(1, region="elsewhere"), PlacementConfig()) == 0


def _shipped_fleet() -> list:
    catalog = load_catalog()
    hosts = []
    for i, name in enumerate(["rtx6000-2s4g", "rtx6000-blocked-group", "rtx6000-numa-unknown", "rtx4000ada-2s8g",
                              "h100-nps4-8g", "cpu-2s"], start=1):
        topo = load_profile(name)
        models = {g.address: m.id for g in topo.gpus if (m := catalog.model_for_device(g.vendor_id, g.device_id))}
        hosts.append(build_host_state(i, "us-east", topo, models))
    return hosts


@pytest.mark.parametrize("policy", ["pack", "spread", "first-fit", "random"])
def test_sellable_is_a_promise_for_every_plan_on_the_shipped_profiles(policy):
    catalog = load_catalog()
    config = PlacementConfig(policy=policy, demand_mix=demand_mix(catalog.plans))
    start = _shipped_fleet()
    # Start from a used fleet, so the fill meets fragmentation and shared vCPUs.
    for plan_id in ("g1-gpu-rtx6000-1", "g2-gpu-rtx4000a1-l", "g3-gpu-h100-1", "g6-standard-4", "g6-dedicated-8"):
        p = placed(place(PlacementRequest.for_plan(catalog.plan(plan_id), "us-east"), start, config))
        start = [apply(h, p) if h.id == p.host_id else h for h in start]
    for plan in catalog.plans:
        request = PlacementRequest.for_plan(plan, "us-east")
        promised = sellable(request, start, config)
        hosts = start
        for _ in range(promised):
            p = place(request, hosts, config)
            assert isinstance(p, Placement), (plan.id, promised, p)
            hosts = [apply(h, p) if h.id == p.host_id else h for h in hosts]
        assert not place(request, hosts, config), (plan.id, promised)
