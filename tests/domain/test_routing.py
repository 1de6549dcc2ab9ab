"""Plans without GPUs go to CPU-only hosts first and to GPU hosts only as overflow, and never
so that a GPU plan's sellable figure drops while a CPU-only host had room."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from gpucloud.catalog import load_catalog
from gpucloud.domain import numa_fit
from gpucloud.domain.capacity import sellable
from gpucloud.domain.fleet_index import Fleet
from gpucloud.domain.numa_fit import after, candidates, fill_count, keeps_gpu_sales, placeable_free
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


@pytest.mark.parametrize("numa_unknown_policy", ["required", "legacy"])
def test_keeps_gpu_sales_answers_as_filling_the_host_before_and_after_would(numa_unknown_policy):
    """The shortcut (`numa_fit._same_fill`) never changes the answer: on hosts of the shipped
    profiles churned with the catalog's plans, every way a plan without GPUs fits a GPU host
    gets the answer of comparing `fill_count` of every GPU plan before and after it; and the
    best fit, for which `candidates` skips the nodes with free GPUs once a node without them
    keeps every GPU plan as sellable, is the best of every way."""
    catalog = load_catalog()
    states = []
    for name in ("rtx6000-2s4g", "rtx4000ada-2s8g", "h100-nps4-8g", "rtx6000-numa-unknown"):
        topo = load_profile(name)
        models = {g.address: m.id for g in topo.gpus if (m := catalog.model_for_device(g.vendor_id, g.device_id))}
        states.append(build_host_state(0, "r1", topo, models))
    hosts = [replace(states[i % len(states)], id=i + 1) for i in range(12)]
    mix = demand_mix(catalog.plans)
    cfg = PlacementConfig(numa_unknown_policy=numa_unknown_policy, demand_mix=mix)
    reference = PlacementConfig(numa_unknown_policy=numa_unknown_policy, demand_mix=mix)  # a memo of its own
    fleet, rng, live = Fleet(hosts, cfg), random.Random(5), []
    plans = [p for p in catalog.plans if p.gpu_model in (None, "rtx6000", "rtx4000ada", "h100")]
    without_gpus = [PlacementRequest.for_plan(p, "r1").need for p in plans if not p.is_gpu]
    shortcuts = checked = skipped = 0
    for _ in range(120):
        if live and rng.random() < 0.35:
            fleet.release(live.pop(rng.randrange(len(live))))
        else:
            p = fleet.place(PlacementRequest.for_plan(rng.choice(plans), "r1"))
            if isinstance(p, Placement):
                fleet.apply(p)
                live.append(p)
        for h in fleet.hosts():
            shape = h.shape
            free = placeable_free(shape, numa_unknown_policy)
            for need in without_gpus:
                ways = list(candidates(shape, need, cfg, every_span=True))
                score = numa_fit._scorer(shape, need, cfg)
                best = numa_fit.best_fit(shape, need, cfg)
                assert (best.assignment if best else None) == min(
                    ((*head, score(a), numa_fit.tail_of(a), a) for *head, a in ways), default=[None])[-1]
                skipped += len(ways) - len(list(candidates(shape, need, cfg)))
                for *_, a in ways:
                    later = after(shape, a)
                    gpu_needs = [n for model in free for n, _ in reference.mix_for(model, "r1")]
                    expected = all(fill_count(later, n, reference) >= fill_count(shape, n, reference) for n in gpu_needs)
                    assert keeps_gpu_sales(shape, a, cfg) == expected
                    checked += 1
                    shortcuts += any(numa_fit._same_fill(shape, later, a, n, cfg) for n in gpu_needs)
    assert checked > 1000 and 0 < shortcuts < checked  # both ways of answering were asked
    assert skipped > 100


@pytest.mark.parametrize(("case", "numa_unknown_policy", "gpus", "unknown"), [
    ("a GPU left on the node for an instance spanning nodes", "required", (1, 1), 0),
    ("GPUs without a NUMA node, which take any node's cores", "legacy", (0,), 2),
])
def test_taking_the_cores_a_gpu_plan_would_use_costs_its_sale(case, numa_unknown_policy, gpus, unknown):
    """The node the plan without GPUs takes from holds no 2-GPU instance of its own either way,
    yet its cores are what the host's only 2-GPU instance needs."""
    cfg = PlacementConfig(numa_unknown_policy=numa_unknown_policy, demand_mix=((gpu_plan(2), 1.0),))
    shape = host(1, topology(gpus, cores=4, memory_gib=64, unknown_gpus=unknown)).shape
    fits = [a for *_, a in candidates(shape, cpu_request(6, 4, dedicated=True).need, cfg) if a.parts[0].node == 0]
    assert fits, case
    need = PlacementRequest.for_plan(gpu_plan(2), "r1").need
    assert (fill_count(shape, need, cfg), fill_count(after(shape, fits[0]), need, cfg)) == (1, 0)
    assert not keeps_gpu_sales(shape, fits[0], cfg)


@pytest.mark.parametrize(("policy", "node"), [("spread", 1), ("pack", 2)])
def test_gpu_hosts_tied_on_free_cores_rank_by_the_cores_of_their_nodes_without_gpus(policy, node):
    """Both hosts have one free GPU and 10 free cores; host 1's nodes without GPUs have 3 and 3,
    host 2's 4 and 2: spread takes host 2's node of 4, pack its node of 2. The index must not
    leave host 2 unscored behind a floor above its rank (`numa_floors.cores_floor`)."""
    claims = {1: [4, 16, 8, 20], 2: [8, 20, 9, 21]}  # threads of node 1 (cores 4-7) and node 2 (cores 8-11)
    hosts = [host(i, topology((1, 0, 0), cores=4, memory_gib=32), claimed_cpus=claims[i]) for i in (1, 2)]
    assert [[n.cores for n in h.shape.nodes] for h in hosts] == [[4, 3, 3], [4, 4, 2]]
    request = cpu_request(2, 4, dedicated=True)
    expected = placed(place(request, hosts, config(policy)))
    assert (expected.host_id, expected.nodes[0].node) == (2, node)
    assert Fleet(hosts, config(policy)).place(request) == expected
