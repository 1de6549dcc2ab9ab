"""Plans without GPUs go to CPU-only hosts first and to GPU hosts only as overflow, and never
so that a GPU plan's sellable figure drops while a CPU-only host had room."""

from __future__ import annotations

import pytest

from gpucloud.domain.capacity import sellable
from gpucloud.domain.fleet_index import Fleet
from gpucloud.domain.placement import PlacementConfig, PlacementRequest, apply, place
from tests.domain.test_placement import POLICIES, cpu_request, gpu_address, gpu_plan, host, placed, topology

PLANS = [gpu_plan(1), gpu_plan(2), gpu_plan(4)]


def config(policy: str) -> PlacementConfig:
    return PlacementConfig(policy=policy, demand_mix=tuple((p, 1.0) for p in PLANS))


def gpu_sellable(hosts, cfg) -> dict[int, int]:
    return {p.gpus: sellable(PlacementRequest.for_plan(p, "r1"), hosts, cfg) for p in PLANS}


@pytest.mark.parametrize("policy", POLICIES)
def test_standard_plans_fill_cpu_hosts_before_gpu_hosts_and_sellable_holds(policy):
    cfg = config(policy)
    gpu, cpu = host(1, topology((2, 2), cores=8, memory_gib=64)), host(2, topology((0, 0), cores=4, memory_gib=32))
    hosts = {1: gpu, 2: cpu}
    before = gpu_sellable(hosts.values(), cfg)
    on_cpu = 0
    fleet = Fleet(hosts.values(), cfg)
    while True:
        request = cpu_request(2, 4)
        p = placed(place(request, hosts.values(), cfg))
        assert fleet.place(request) == p  # the index answers the same
        if p.host_id == 1:
            break
        on_cpu += 1
        hosts[2] = apply(hosts[2], p)
        fleet.update(hosts[2])
        assert gpu_sellable(hosts.values(), cfg) == before  # a CPU host had room: GPU sales untouched
    assert on_cpu >= 8  # the CPU-only host was filled first (shared vCPUs overcommitted)


def test_a_gpu_host_with_every_gpu_claimed_is_not_preferred_over_an_empty_cpu_host():
    cfg = config("pack")
    full_gpu = host(1, topology((2, 2), cores=8, memory_gib=64),
                    claimed_gpus=[gpu_address(n, i) for n in (0, 1) for i in (0, 1)],
                    claimed_cpus=[0, 1, 2, 3, 16, 17, 18, 19])
    empty_cpu = host(2, topology((0, 0), cores=16, memory_gib=256))
    assert placed(place(cpu_request(2, 4, dedicated=True), [full_gpu, empty_cpu], cfg)).host_id == 2


def test_overflow_picks_the_gpu_host_where_it_costs_no_sale():
    cfg = config("pack")
    tight = host(1, topology((2, 0), cores=2, memory_gib=48))  # node 0: 2 GPUs, barely the cores for them
    roomy = host(2, topology((2, 0), cores=16, memory_gib=256))
    hosts = [tight, roomy]
    before = gpu_sellable(hosts, cfg)
    p = placed(place(cpu_request(2, 4, dedicated=True), hosts, cfg))
    after = [apply(h, p) if h.id == p.host_id else h for h in hosts]
    assert gpu_sellable(after, cfg) == before
