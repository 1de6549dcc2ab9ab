"""Properties over random sequences of creates and deletes on a few mixed hosts.

After every step: no GPU, thread or GiB is held twice; every claim is NUMA-consistent;
free + claimed + unavailable = total; the state rebuilt from the claims (as the store does)
equals the state `apply`/`release` produced, and so does the compact shape placement scores;
the indexed fleet answers exactly as `place`.
And the sellable figure is a promise: N creates succeed, the N+1th is refused.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from unittest.mock import patch

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gpucloud.domain import fleet_index
from gpucloud.domain.capacity import capacity_rows, sellable
from gpucloud.domain.fleet_index import Fleet
from gpucloud.domain.numa_fit import (
    GPU_HOST_NODE_WITHOUT_GPUS,
    HostShape,
    Need,
    NodeShape,
    _fragmentation_after,
    _fragments,
    _scorer,
    after,
    best_fit,
    candidates,
    choose,
    fragmentation,
    may_fit,
)
from gpucloud.domain.numa_floors import cell_rooms, cores_rank, rank_floor, rules_rank
from gpucloud.domain.placement import HostState, Placement, PlacementConfig, PlacementRequest, apply, place, tried
from gpucloud.domain.topology import HostTopology
from tests.domain.test_placement import (
    POLICIES,
    cpu_request,
    gpu_address,
    gpu_plan,
    gpu_request,
    host,
    placed,
    topology,
)

NPS4 = [[10, 12, 12, 12], [12, 10, 12, 12], [12, 12, 10, 12], [12, 12, 12, 10]]
TOPOLOGIES: dict[int, tuple[HostTopology, str, dict]] = {
    1: (topology((2, 2), cores=6, memory_gib=64, hugepages=48), "rtx6000", {}),
    2: (topology((1, 1, 1, 1), cores=4, memory_gib=48, distances=NPS4), "h100", {}),
    3: (topology((0, 0), cores=4, memory_gib=32), "rtx6000", {}),
    4: (topology((2, 1), cores=5, unknown_gpus=2, blocked=[gpu_address(1, 0)]), "rtx6000",
        {"reserved_cores_per_node": 1, "reserved_memory_mib": 4096, "gpu_statuses": {gpu_address(0, 1): "reserved"}}),
    5: (topology((2, 2), cores=6, threads_per_core=1), "h100", {}),
}
REQUESTS = [
    gpu_request(1, vcpus=4), gpu_request(2, vcpus=6, memory_gib=24), gpu_request(3, vcpus=6), gpu_request(4, vcpus=8),
    gpu_request(1, vcpus=2, model="h100"), gpu_request(2, vcpus=4, model="h100"), gpu_request(4, vcpus=8, model="h100"),
    gpu_request(1, vcpus=3, memory_gib=2.5),  # odd vCPUs, memory not whole GiB
    cpu_request(2, 4), cpu_request(6, 8), cpu_request(4, 8, dedicated=True),
]
PLANS = [gpu_plan(1, 4), gpu_plan(2, 6, 24), gpu_plan(4, 8), gpu_plan(1, 2, model="h100"), gpu_plan(2, 4, model="h100")]


def fresh_hosts(statuses: dict[int, str], cpu_only_host: bool = True) -> list[HostState]:
    return [host(i, topo, model=model, status=statuses.get(i, "active"), **extra)
            for i, (topo, model, extra) in TOPOLOGIES.items() if cpu_only_host or topo.gpus]


configs = st.builds(
    lambda policy, numa, seed, warm: PlacementConfig(policy=policy, numa_unknown_policy=numa, seed=seed,
                                                     demand_mix=tuple((p, 1.0) for p in PLANS),
                                                     plans=tuple(PLANS) if warm else ()),
    st.sampled_from(["pack", "spread", "first-fit", "random"]),
    st.sampled_from(["required", "preferred", "legacy"]),
    st.integers(0, 3),
    st.booleans(),  # the index ranks the plans' requests from the start (as the product's does)
)
operations = st.lists(st.one_of(
    st.tuples(st.just("create"), st.integers(0, len(REQUESTS) - 1)),
    st.tuples(st.just("delete"), st.integers(0, 1000)),
    # an operator drains a host or brings it back: its shape leaves every ranking, then returns
    st.tuples(st.just("status"), st.tuples(st.sampled_from(list(TOPOLOGIES)), st.sampled_from(["active", "draining"]))),
), min_size=1, max_size=40)
statuses = st.dictionaries(st.sampled_from(list(TOPOLOGIES)), st.sampled_from(["draining", "down"]), max_size=1)


def check_claims(hosts: list[HostState], live: list[Placement], config: PlacementConfig) -> None:
    for h in hosts:
        topo, model, extra = TOPOLOGIES[h.id]
        mine = [p for p in live if p.host_id == h.id]
        gpus = [a for p in mine for a in p.gpu_addresses]
        threads = [t for p in mine for n in p.nodes for core in n.cores for t in core]
        assert len(gpus) == len(set(gpus)) and len(threads) == len(set(threads)), "claimed twice"
        for p in mine:
            for claim, cell in zip(p.nodes, p.cells):
                node = topo.node(claim.node)
                assert cell.host_node == claim.node
                assert all(set(core) in ({*c.siblings} for c in node.cpus) for core in claim.cores), "whole cores"
                assert all(g.address in [x.address for x in topo.gpus if x.numa_node == claim.node] for g in claim.gpus)
                assert set(claim.cpus) <= {t for core in claim.cores for t in core}
                assert not set(claim.cpus) & set(h.node(claim.node).reserved_cpus)
            assert all(topo_gpu.numa_node == -1 for g in p.numa_unknown_gpus for topo_gpu in topo.gpus if topo_gpu.address == g.address)
        for node in topo.nodes:
            claims = [n for p in mine for n in p.nodes if n.node == node.index]
            assert sum(n.hugepages for n in claims) <= node.hugepages_1g
            reserve = extra.get("reserved_memory_mib", 0)
            assert sum(n.memory_mib for n in claims if not n.hugepages) <= node.memory_mib - node.hugepages_1g * 1024 - reserve
            free_threads = h.node(node.index).free_threads
            shared = sum(n.shared_vcpus for n in claims)
            assert shared <= free_threads * config.for_host(h).shared_cpu_overcommit

        # The store rebuilds this state from the claims alone: it must be the same state.
        rebuilt = host(h.id, topo, model=model, status=h.status, generation=h.generation,
                       claimed_cpus=[t for p in mine for n in p.nodes for t in n.cpus], claimed_gpus=gpus,
                       claimed_memory_mib=_sum_by_node(mine, lambda n: 0 if n.hugepages else n.memory_mib),
                       claimed_hugepages=_sum_by_node(mine, lambda n: n.hugepages),
                       shared_vcpus=_sum_by_node(mine, lambda n: n.shared_vcpus), **extra)
        assert rebuilt == h

    for row in capacity_rows(hosts, PLANS, config):
        installed = sum(1 for h in hosts for g in TOPOLOGIES[h.id][0].gpus if TOPOLOGIES[h.id][1] == row["gpu_model"])
        assert row["free"] + row["claimed"] + row["unavailable"] == row["total"] == installed
        assert 0 <= row["stranded"] <= row["free"]


def answers_as_place(fleet: Fleet, ops: list, request_of) -> None:
    """Replay `ops` (("delete", i) releases a live placement, any other op asks for
    `request_of(op, arg)` and applies what it got) on the index, which must answer each request as
    a brute-force `place()` over its hosts, with a copy of its config, does."""
    twin = replace(fleet.config)
    live: list[Placement] = []
    for op, arg in ops:
        if op == "delete":
            if live:
                fleet.release(live.pop(arg % len(live)))
            continue
        request = request_of(op, arg)
        got = fleet.place(request)
        assert got == place(request, fleet.hosts(), twin)
        if isinstance(got, Placement):
            fleet.apply(got)
            live.append(got)


def _sum_by_node(placements: list[Placement], value) -> dict[int, int]:
    out: Counter = Counter()
    for p in placements:
        for n in p.nodes:
            out[n.node] += value(n)
    return dict(out)


@settings(max_examples=80, deadline=None)
@given(config=configs, ops=operations, statuses=statuses, cpu_only_host=st.booleans())
def test_creates_and_deletes_keep_every_claim_exclusive_numa_consistent_and_counted(config, ops, statuses,
                                                                                    cpu_only_host):
    # Without the CPU-only host, plans without GPUs rank GPU hosts, most of them waiting unscored
    # on their floors (`numa_floors.cores_floor`) while a node without free GPUs ranks better.
    fleet = Fleet(fresh_hosts(statuses, cpu_only_host), config)
    fleet.warm("r1")
    twin = replace(config)  # `random` draws from the config's generator: the scan gets its own, same seed
    live: list[Placement] = []
    for op, arg in ops:
        if op == "delete":
            if live:
                fleet.release(live.pop(arg % len(live)))
        elif op == "status":
            host_id, status = arg
            if cpu_only_host or TOPOLOGIES[host_id][0].gpus:
                fleet.update(replace(fleet.host(host_id), status=status))
        else:
            request = REQUESTS[arg]
            got = fleet.place(request)
            assert got == place(request, fleet.hosts(), twin)
            if isinstance(got, Placement):
                before = fleet.host(got.host_id)
                fit = best_fit(before.shape, request.need, config.for_host(before))
                # the compact model that scores and counts agrees with the state `apply` makes
                assert fleet.apply(got).shape == after(before.shape, fit.assignment)
                live.append(got)
        check_claims(fleet.hosts(), live, config)


@settings(max_examples=60, deadline=None)
@given(config=configs, ops=operations, statuses=statuses, cpu_only_host=st.booleans())
def test_random_tries_every_host_on_the_best_rank(config, ops, statuses, cpu_only_host):
    """`draw` is uniform over the tied hosts only if its pool (`tried`) holds every one of them,
    for GPU plans and for plans without GPUs, with and without a CPU-only host to rank best."""
    hosts = fresh_hosts(statuses, cpu_only_host)
    for op, arg in ops:
        if op != "create":
            continue
        need = REQUESTS[arg].need
        fits = {h.id: best_fit(h.shape, need, config.for_host(h)) for h in hosts}
        ranks = [fit.rank for fit in fits.values() if fit is not None]
        if ranks:
            assert all(tried(need, min(ranks), h.shape) for h in hosts
                       if (fit := fits[h.id]) is not None and fit.rank == min(ranks))
        got = place(REQUESTS[arg], hosts, config)
        if isinstance(got, Placement):
            hosts = [apply(h, got) if h.id == got.host_id else h for h in hosts]


@settings(max_examples=40, deadline=None)
@given(config=configs, ops=operations, which=st.integers(0, len(REQUESTS) - 1))
def test_sellable_is_a_promise(config, ops, which):
    hosts = fresh_hosts({})
    for op, arg in ops:
        if op == "create":
            got = place(REQUESTS[arg], hosts, config)
            if isinstance(got, Placement):
                hosts = [apply(h, got) if h.id == got.host_id else h for h in hosts]
    request = REQUESTS[which]
    promised = sellable(request, hosts, config)
    for _ in range(promised):
        got = place(request, hosts, config)
        assert isinstance(got, Placement), (promised, got)
        hosts = [apply(h, got) if h.id == got.host_id else h for h in hosts]
    assert not place(request, hosts, config)


# GPU-less hosts of several sizes, alike in cores but not in memory at both ends (so shapes tie
# on the cores that pack and spread rank by first), one with hugepages, beside a GPU host:
# requests without GPUs, most of them of a shape asked for the first time, so each first
# ranking reads the GPU-less shapes in the policy's order of free cores and stops early.
CPU_HOSTS = [host(i, topology((0, 0), cores=cores, memory_gib=gib, hugepages=pages))
             for i, (cores, gib, pages) in enumerate([(8, 24, 0), (3, 32, 0), (5, 32, 0), (8, 12, 0), (3, 64, 40),
                                                       (3, 16, 0), (5, 32, 0), (8, 32, 0)], start=1)]
CPU_HOSTS.append(host(len(CPU_HOSTS) + 1, topology((1, 1), cores=6)))
cpu_ops = st.lists(st.one_of(
    st.tuples(st.just("create"), st.tuples(st.integers(1, 6), st.sampled_from([1, 2, 3, 6, 10, 20]), st.booleans())),
    st.tuples(st.just("delete"), st.integers(0, 1000)),
), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(policy=st.sampled_from(["pack", "spread", "first-fit", "random"]), ops=cpu_ops, seed=st.integers(0, 3),
       chunk=st.sampled_from([1, fleet_index.PENDING_CHUNK]))
def test_first_rankings_of_new_requests_without_gpus_answer_as_place(policy, ops, seed, chunk):
    # random ranks one CPU-only host on a first call, the others `chunk` a call later on
    config = PlacementConfig(policy=policy, seed=seed, demand_mix=tuple((p, 1.0) for p in PLANS))
    with patch.object(fleet_index, "PENDING_CHUNK", chunk):
        answers_as_place(Fleet(CPU_HOSTS, config), ops, lambda op, arg: cpu_request(arg[0], arg[1], dedicated=arg[2]))


# Hosts of 2-4 nodes of 4 cores and 32 GiB: per node its GPUs, cores and GiB claimed; threads per
# core; the distances between nodes (`slit`), of three values, so that hosts tie on them.
split_hosts = st.lists(st.tuples(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 24)), min_size=2, max_size=4),
    st.sampled_from([1, 2]), st.lists(st.sampled_from([12, 21, 32]), min_size=6, max_size=6)), min_size=2, max_size=6)
split_ops = st.lists(st.one_of(
    st.tuples(st.just("gpu"), st.tuples(st.integers(2, 4), st.integers(2, 12), st.integers(4, 40))),
    st.tuples(st.just("delete"), st.integers(0, 1000)),
), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(policy=st.sampled_from(POLICIES), hosts=split_hosts, ops=split_ops, seed=st.integers(0, 3),
       chunk=st.sampled_from([1, fleet_index.PENDING_CHUNK]))
def test_first_calls_of_gpu_plans_split_over_two_nodes_answer_as_place(policy, hosts, ops, seed, chunk):
    """New GPU shapes no node takes whole: first-fit and random rank hosts on two nodes by the
    rules (`rules_rank`), without `choose`, and every policy's floors read them (`rank_floor`):
    hosts where the closest pair lacks cores or memory, uneven GPUs, with and without SMT.
    random ranks one host on the least distance of any two nodes holding the GPUs, when the
    rules rank one there, and leaves the others pending (`chunk` a call later on)."""
    states = []
    for i, (nodes, tpc, far) in enumerate(hosts, start=1):
        n, cores = len(nodes), 4
        topo = topology(tuple(g for g, _, _ in nodes), cores=cores, memory_gib=32, threads_per_core=tpc,
                        distances=slit(n, far))
        claimed = [node * cores + core + t * n * cores for node, (_, used, _) in enumerate(nodes)
                   for core in range(used) for t in range(tpc)]
        states.append(host(i, topo, claimed_cpus=claimed,
                           claimed_memory_mib={node: gib * 1024 for node, (_, _, gib) in enumerate(nodes)}))
    config = PlacementConfig(policy=policy, seed=seed, demand_mix=tuple((p, 1.0) for p in PLANS))
    with patch.object(fleet_index, "PENDING_CHUNK", chunk):
        answers_as_place(Fleet(states, config), ops,
                         lambda op, arg: gpu_request(arg[0], vcpus=arg[1], memory_gib=arg[2]))


def test_random_ranks_one_host_on_the_closest_split_and_tells_the_pending_ones_tied():
    """Four 1-GPU nodes in two sockets, so a 2-GPU plan splits on every host: hosts 1-3 only
    across sockets (the close pairs lack memory: the first entry, on the least distance of
    nodes holding the GPUs but not ranked there), 4-6 within one (ranked first), 7-9 too
    on another pair (pending, tied): random's draws must tell 7-9 tied from their shapes
    and 1-3 not, as `place` does (seeds 0-19)."""
    sockets = [[10, 12, 32, 32], [12, 10, 32, 32], [32, 32, 10, 12], [32, 32, 12, 10]]
    topo = topology((1, 1, 1, 1), cores=8, memory_gib=64, distances=sockets)
    claims = {1: {1: 60 * 1024, 3: 60 * 1024}, 4: {}, 7: {1: 60 * 1024}}
    hosts = [host(i, topo, claimed_memory_mib=claims[1 + (i - 1) // 3 * 3]) for i in range(1, 10)]
    request = gpu_request(2, vcpus=8, memory_gib=24)
    for seed in range(20):
        config = PlacementConfig(policy="random", seed=seed)
        fleet, twin = Fleet(hosts, config), replace(config)
        for _ in range(3):  # the first call, then those ranking the pending ones
            got = fleet.place(request)
            assert got == place(request, fleet.hosts(), twin)
            fleet.apply(got)


@pytest.mark.parametrize("policy", ["pack", "spread", "first-fit", "random"])
def test_a_long_churn_on_few_hosts_compacts_the_log_of_new_shapes_and_answers_as_place(policy):
    """Each new bucket is logged for the requests to read; past 1,024 entries beyond twice the
    live shapes the log drops what every request read or what is gone (`_compact`), and each
    request's place in it must move with it: 2,400 churn steps on three hosts log a new bucket
    every step or two, so it is compacted twice or more while four requests read it."""
    rng = random.Random(1)
    requests = [cpu_request(v, g, dedicated=d) for v, g, d in [(1, 1, False), (2, 2, True), (3, 1, True), (4, 4, False)]]
    ops = [("delete", rng.randrange(1000)) if rng.random() < 0.45 else ("create", rng.randrange(len(requests)))
           for _ in range(2400)]
    fleet = Fleet([host(i, topology((0, 0), cores=16, memory_gib=64)) for i in range(1, 4)],
                  PlacementConfig(policy=policy, seed=1))
    answers_as_place(fleet, ops, lambda op, arg: requests[arg])
    assert len(fleet._log["r1"]) < 1024  # it was compacted (the churn made more new buckets than that)


def test_pack_reads_cpu_only_hosts_in_the_order_of_their_floors_whatever_their_threads_per_core():
    """Pack's floor on a CPU-only host is its free cores less the cores the plan takes, which
    depend on the host's threads per core: host 3 (4 cores without SMT, 2 taken) ranks best
    although host 2 (4 cores with SMT, 1 taken, floor 3) comes after host 1 (3 cores, rank 2, 2)
    in free cores. Read in order of free cores alone, the first ranking stopped at host 2's
    floor and placed on host 1."""
    hosts = [host(1, topology((0,), cores=3)), host(2, topology((0,), cores=4)),
             host(3, topology((0, 0), cores=2, threads_per_core=1))]
    config = PlacementConfig(policy="pack")
    request = cpu_request(2, 4, dedicated=True)
    assert Fleet(hosts, config).place(request) == place(request, hosts, config)
    assert place(request, hosts, config).host_id == 3


def test_pack_reads_a_models_gpu_hosts_in_the_order_of_their_floors_and_reads_those_on_the_best_rank():
    """Pack's floor on a GPU host for a GPU plan is its fragmentation negated, rounded as the
    rank's rise (`gpu_floor`): fragmentation is never below 0, and a claim of the host's last
    free GPU reaches 0, so the floor of hosts 1 and 2 (one free GPU each, on node 0 and on node
    1) is their rank. With thirds in the mix (fragmentation 2/3) the unrounded floor lies above
    that rank: host 2, read first, ranks exactly as host 1, and a first ranking that skipped
    host 1 (its floor read as above the best) placed on host 2.
    Host 3 (four free GPUs on node 0: fragmentation 0, floor 0) is not scored at all."""
    plans = (gpu_plan(1, 2, 1), gpu_plan(2, 4, 2), gpu_plan(4, 8, 4))
    config = PlacementConfig(policy="pack", demand_mix=tuple((p, 1.0) for p in plans))
    hosts = [host(2, topology((0, 1))), host(1, topology((1, 0))), host(3, topology((4, 0)))]
    request = gpu_request(1, vcpus=2, memory_gib=1)
    assert -fragmentation(hosts[0].shape, config) > round(-fragmentation(hosts[0].shape, config), 9)
    fleet = Fleet(hosts, config)
    with patch.object(fleet_index, "choose", wraps=choose) as scored:
        assert fleet.place(request) == place(request, hosts, config)
    assert place(request, hosts, config).host_id == 1
    assert hosts[2].shape not in {call.args[0] for call in scored.call_args_list}


# GPU hosts only, few GPUs per node, so GPU claims empty nodes and plans without GPUs must
# choose between hosts with and without a node free of GPUs: most GPU hosts wait unscored on
# their floors (`numa_floors.cores_floor`: preference, free GPUs, free cores) and are scored only
# once the best rank reaches them, for requests seen before (`warm`) or asked the first time.
GPU_HOSTS = [host(i, topology(gpus, cores=cores, memory_gib=gib), model=model)
             for i, (gpus, cores, gib, model) in enumerate([
                 ((1, 1), 4, 32, "rtx6000"), ((2, 1), 4, 32, "rtx6000"), ((1, 1), 6, 32, "rtx6000"),
                 ((1, 0), 4, 24, "rtx6000"), ((1, 1), 4, 32, "h100"), ((2, 2), 6, 64, "rtx6000"),
                 ((1, 1), 4, 48, "rtx6000")], start=1)]
# GPU hosts of 3 and 4 nodes, two or three of each kind, several nodes without GPUs, whose free
# cores part as dedicated plans take them: a GPU host's floor goes on to the cores of its nodes
# without free GPUs that have room (spread: the most, pack: the fewest), so hosts tied on their
# free GPUs and cores (alike hosts claimed alike) rank apart by them.
MANY_NODE_GPU_HOSTS = [host(i, topology(gpus, cores=cores, memory_gib=gib, distances=NPS4 if len(gpus) == 4 else None),
                            model=model)
                       for i, (gpus, cores, gib, model) in enumerate(3 * [((1, 0, 0), 4, 32, "rtx6000")]
                                                                     + 2 * [((1, 1, 0, 0), 3, 24, "rtx6000")]
                                                                     + 2 * [((1, 0, 1, 0), 4, 32, "h100")], start=1)]
# The GPU hosts beside one small CPU-only host of the highest id: full for most plans without
# GPUs at their first call (so GPU hosts are ranked and left pending), freed by deletes later.
WITH_A_SMALL_CPU_HOST = [*MANY_NODE_GPU_HOSTS, host(len(MANY_NODE_GPU_HOSTS) + 1, topology((0,), cores=2, memory_gib=8))]
gpu_host_ops = st.lists(st.one_of(
    st.tuples(st.just("gpu"), st.tuples(st.integers(1, 2), st.sampled_from(["rtx6000", "h100"]))),
    st.tuples(st.just("cpu"), st.tuples(st.integers(1, 4), st.sampled_from([1, 2, 4, 8]), st.booleans())),
    st.tuples(st.just("delete"), st.integers(0, 1000)),
), min_size=1, max_size=60)


@pytest.mark.parametrize("hosts", [GPU_HOSTS, MANY_NODE_GPU_HOSTS, WITH_A_SMALL_CPU_HOST],
                         ids=["two-node", "many-node", "small-cpu-host"])
@pytest.mark.parametrize("policy", ["pack", "spread", "first-fit", "random"])
@settings(max_examples=150, deadline=None)
@given(ops=gpu_host_ops, seed=st.integers(0, 3), warm=st.booleans(), chunk=st.sampled_from([1, fleet_index.PENDING_CHUNK]),
       tries=st.sampled_from([1, fleet_index.LOWEST_TRIES]))
def test_plans_without_gpus_on_gpu_hosts_answer_as_place(policy, hosts, ops, seed, warm, chunk, tries):
    requests = [cpu_request(v, g, dedicated=d) for v in (1, 2, 4) for g in (1, 2, 8) for d in (False, True)]
    plans = [replace(PLANS[0], id=f"cpu-{k}", type_class="dedicated" if r.dedicated else "standard", vcpus=r.vcpus,
                     memory_mib=r.memory_mib, gpus=0, gpu_model=None) for k, r in enumerate(requests)]
    config = PlacementConfig(policy=policy, seed=seed, demand_mix=tuple((p, 1.0) for p in PLANS),
                             plans=tuple(plans) if warm else ())
    fleet = Fleet(hosts, config)
    fleet.warm("r1")
    # random: a GPU plan's first call leaves hosts pending; random and first-fit: a plan without
    # GPUs' first call where no CPU-only host takes it; first-fit tries `tries` hosts for a lower id
    with patch.object(fleet_index, "PENDING_CHUNK", chunk), patch.object(fleet_index, "LOWEST_TRIES", tries):
        answers_as_place(fleet, ops, lambda op, arg: gpu_request(arg[0], vcpus=2, memory_gib=4, model=arg[1])
                         if op == "gpu" else cpu_request(arg[0], arg[1], dedicated=arg[2]))


@pytest.mark.parametrize("policy", ["pack", "spread", "first-fit", "random"])
def test_gpu_hosts_deferred_for_a_warmed_plan_come_before_gpu_hosts_waiting_on_higher_floors(policy):
    """A warmed plan without GPUs defers the GPU hosts (GPU_HOSTS_FLOOR); two GPU claims then make
    new shapes, queued for it on their own floors (preference 1 and beyond): the deferred hosts,
    host 7 among them (16 free cores, spread's best), must be looked at before those floors are
    compared with the best rank (spread placed on host 6, 15 free cores, when they were not)."""
    request = cpu_request(2, 2)
    plan = replace(PLANS[0], id="cpu", type_class="standard", vcpus=request.vcpus, memory_mib=request.memory_mib,
                   gpus=0, gpu_model=None)
    fleet = Fleet(MANY_NODE_GPU_HOSTS, PlacementConfig(policy=policy, demand_mix=tuple((p, 1.0) for p in PLANS),
                                                       plans=(plan,)))
    fleet.warm("r1")
    ops = [("gpu", (1, "h100")), ("gpu", (1, "rtx6000")), ("cpu", (request.vcpus, 2, False))]
    answers_as_place(fleet, ops, lambda op, arg: gpu_request(arg[0], vcpus=2, memory_gib=4, model=arg[1]) if op == "gpu"
                     else cpu_request(arg[0], arg[1], dedicated=arg[2]))


def test_a_first_ranking_on_gpu_hosts_only_reads_them_in_the_order_of_their_floors():
    """With no CPU-only host, a new plan without GPUs' first call reads the GPU hosts with a
    node without free GPUs in `cores_order` (pack: free GPUs, then free cores) and stops once
    the best rank beats the next floor. Pack's best is host 3 (its GPU reserved: 0 free, 16
    cores) although hosts 1 (1 free GPU, 8 cores) and 2 (2 free GPUs, 12 cores) have fewer
    cores: read in free cores alone, the first ranking scored host 1, stopped at host 2's floor
    (2 free GPUs, above host 1's rank) and placed on host 1."""
    hosts = [host(1, topology((1, 0), cores=4)), host(2, topology((2, 0), cores=6)),
             host(3, topology((1, 0), cores=8), gpu_statuses={gpu_address(0, 0): "reserved"})]
    config = PlacementConfig(policy="pack", demand_mix=tuple((p, 1.0) for p in PLANS))
    request = cpu_request(2, 4, dedicated=True)
    assert Fleet(hosts, config).place(request) == place(request, hosts, config)
    assert place(request, hosts, config).host_id == 3


def test_first_fit_on_gpu_hosts_only_finds_a_lower_id_among_the_hosts_its_first_call_left_pending():
    """With no CPU-only host, first-fit's first call of a plan without GPUs ranks the first GPU
    host (in cell memory order: host 3, 32 GiB) on the lowest rank a GPU host can have and
    leaves the others pending; host 1 (64 GiB) is on that rank too and has the lower id, told
    from its shape (`_lowest`). Reading the ranked hosts' lowest id alone placed on host 3."""
    hosts = [host(1, topology((1, 0), memory_gib=64)), host(2, topology((1, 1))), host(3, topology((1, 0), memory_gib=32))]
    config = PlacementConfig(policy="first-fit", demand_mix=tuple((p, 1.0) for p in PLANS))
    request = cpu_request(2, 4)
    assert Fleet(hosts, config).place(request) == place(request, hosts, config)
    assert place(request, hosts, config).host_id == 1


def test_first_fit_on_cpu_only_hosts_finds_the_lowest_id_its_first_call_left_pending():
    """First-fit's first call of a plan without GPUs ranks one CPU-only shape, that of the lowest
    id a node of which takes the plan, and leaves the others pending (one ranked a later call
    here); a decision reads the pending shapes' lowest ids. Host 1 (its cores all dedicated)
    has memory room but no node that takes the plan: placed on it, the index raised; the
    first call's answer is host 2 (64 GiB), last in memory order (the first entry, host 4's,
    ranked and the ranked ids alone read placed on host 4); host 1, released, joins host 3's
    pending shape: reading the ranked ids alone placed on host 2 again."""
    hosts = [host(i, topology((0,), memory_gib=gib)) for i, gib in ((1, 32), (2, 64), (3, 32), (4, 16))]
    config = PlacementConfig(policy="first-fit", demand_mix=tuple((p, 1.0) for p in PLANS))
    fleet, twin = Fleet(hosts, config), replace(config)
    every_core, plan = cpu_request(16, 8, dedicated=True), cpu_request(2, 8)

    def placed_on(request: PlacementRequest) -> Placement:
        got = fleet.place(request)
        assert got == place(request, fleet.hosts(), twin)
        fleet.apply(placed(got))
        return placed(got)

    with patch.object(fleet_index, "PENDING_CHUNK", 1):
        first = placed_on(every_core)
        assert first.host_id == 1
        assert placed_on(plan).host_id == 2
        fleet.release(first)
        assert placed_on(plan).host_id == 1


def test_first_fit_places_on_a_cpu_only_host_freed_while_gpu_hosts_are_pending():
    """No CPU-only host takes the plan at its first call (host 4 holds the filler), so first-fit
    ranks one GPU host on the lowest rank a GPU host can have and leaves the others pending
    (one ranked a later call here). Host 4, released, ranks CPU_HOST, better than any GPU host:
    the answer is host 4, whatever ids the pending GPU hosts have. Reading the pending GPU
    entries' lowest ids as if they were CPU-only ones (where a node takes the plan) placed on
    host 3."""
    hosts = [host(i, topology((1, 0), memory_gib=gib)) for i, gib in ((1, 32), (2, 48), (3, 64))]
    hosts.append(host(4, topology((0,), cores=4, memory_gib=16)))
    config = PlacementConfig(policy="first-fit", demand_mix=tuple((p, 1.0) for p in PLANS))
    filler, plan = cpu_request(8, 12), cpu_request(2, 6)
    ops = [("cpu", filler), ("cpu", plan), ("delete", 0), ("cpu", plan), ("cpu", plan)]
    with patch.object(fleet_index, "PENDING_CHUNK", 1):
        answers_as_place(Fleet(hosts, config), ops, lambda op, arg: arg)


# One node's free shape: GPUs of one model, free cores, memory or 1 GiB pages, shared vCPUs.
node_shapes = st.tuples(st.integers(0, 4), st.integers(0, 12), st.integers(0, 40), st.booleans(), st.integers(0, 60))


def slit(nodes: int, far: list[int]) -> list[list[int]]:
    """A distance matrix: 10 on the diagonal, the pairs above it from `far` in order."""
    pairs = iter(far)
    matrix = [[10] * nodes for _ in range(nodes)]
    for i in range(nodes):
        for j in range(i + 1, nodes):
            matrix[i][j] = matrix[j][i] = next(pairs)
    return matrix


@settings(max_examples=600, deadline=None)
@given(nodes=st.lists(node_shapes, min_size=1, max_size=4), tpc=st.sampled_from([1, 2]),
       ratio=st.sampled_from([1.0, 1.5, 3.3, 4.0]), policy=st.sampled_from(["first-fit", "random"]),
       gpus=st.integers(0, 4), vcpus=st.integers(1, 30), memory_mib=st.integers(1, 40 * 1024),
       dedicated=st.booleans(), numa=st.sampled_from(["required", "preferred", "legacy"]), unknown=st.integers(0, 2),
       far=st.lists(st.integers(11, 40), min_size=6, max_size=6), gpu_host=st.booleans())
def test_rules_rank_is_the_rank_choose_finds_on_one_or_two_nodes(nodes, tpc, ratio, policy, gpus, vcpus, memory_mib,
                                                                 dedicated, numa, unknown, far, gpu_host):
    """`rules_rank` (first-fit and random rank hosts without `choose` with it) says what `choose`
    answers: the lowest rank when one node takes the request whole (with GPUs without a NUMA
    node under `legacy`, a node's cores and memory beside them; a plan without GPUs on a GPU
    host, a node without free GPUs that keeps every GPU plan as sellable), else a GPU plan's
    rank on two nodes at the least distance of a pair it splits over (GPUs, cores and memory
    shared out unevenly, nodes at unequal distances, with and without SMT), None when neither
    (then a plan without GPUs does not fit a CPU-only host at all, a GPU host only on a worse
    preference, a GPU plan only on 3 nodes or more, or on GPUs without a NUMA node, if
    anywhere); with `spans=1`, only the one-node rank."""
    gpu_host = gpu_host or bool(gpus)
    matrix = slit(len(nodes), far)
    shape = HostShape("r1", "active", tpc, tuple(
        NodeShape(i, (("rtx6000", g),) if g else (), cores, 0 if pages else gib * 1024, gib if pages else 0,
                  40 if pages else 0, shared, tuple(matrix[i]))
        for i, (g, cores, gib, pages, shared) in enumerate(nodes)), (("rtx6000", unknown),) if unknown and gpu_host else (),
        (("rtx6000", 8),) if gpu_host else (), ())
    config = PlacementConfig(policy=policy, shared_cpu_overcommit=ratio, numa_unknown_policy=numa)
    need = Need(gpus, "rtx6000" if gpus else None, vcpus, memory_mib, dedicated or bool(gpus))
    rooms = cell_rooms(shape, config)
    rank = rules_rank(shape, rooms, need, config)
    fit = choose(shape, need, config)
    if rank is not None:
        assert fit is not None and fit.rank == rank
    elif not gpu_host:
        assert fit is None
    else:
        assert fit is None or (fit.rank[:2] > (0, 2) if gpus else fit.rank > (GPU_HOST_NODE_WITHOUT_GPUS, 1, 0, ()))
    assert rules_rank(shape, rooms, need, config, spans=1) == (rank if rank is not None and rank[1] == 1 else None)


@settings(max_examples=500, deadline=None)
@given(nodes=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 24), st.booleans()), min_size=2,
                      max_size=4),
       tpc=st.sampled_from([1, 2]), far=st.lists(st.integers(11, 40), min_size=6, max_size=6),
       gpus=st.integers(2, 4), vcpus=st.integers(2, 24), memory_gib=st.integers(2, 32), odd_mib=st.integers(0, 1023))
def test_rules_rank_splits_a_gpu_plan_over_the_closest_two_nodes_that_take_it(nodes, tpc, far, gpus, vcpus, memory_gib,
                                                                              odd_mib):
    """Where two nodes take a GPU plan between them (each its share of the GPUs, cores and memory,
    split unevenly with uneven GPUs), `rules_rank` gives `choose`'s rank: the least distance of
    such a pair, not of any pair holding the GPUs; hugepages or not, with and without SMT."""
    matrix = slit(len(nodes), far)
    shape = HostShape("r1", "active", tpc, tuple(
        NodeShape(i, (("h100", g),), cores, 0 if pages else gib * 1024, gib if pages else 0, 40 if pages else 0, 0,
                  tuple(matrix[i]))
        for i, (g, cores, gib, pages) in enumerate(nodes)), (), (("h100", 12),), ())
    config = PlacementConfig(policy="random")
    need = Need(gpus, "h100", vcpus, memory_gib * 1024 - odd_mib, True)
    rank = rules_rank(shape, cell_rooms(shape, config), need, config)
    fit = choose(shape, need, config)
    assert rank == (fit.rank if fit is not None and fit.rank[1] <= 2 else None)


@settings(max_examples=400, deadline=None)
@given(nodes=st.lists(node_shapes, min_size=1, max_size=4), tpc=st.sampled_from([1, 2]),
       ratio=st.sampled_from([1.0, 1.5, 3.3, 4.0]), policy=st.sampled_from(["pack", "spread"]),
       vcpus=st.integers(1, 30), memory_mib=st.integers(1, 40 * 1024), dedicated=st.booleans())
def test_cores_rank_is_the_rank_choose_finds_on_a_cpu_only_host(nodes, tpc, ratio, policy, vcpus, memory_mib,
                                                                 dedicated):
    """`cores_rank` (pack and spread rank CPU-only hosts for a plan without GPUs with it, without
    scoring) is the rank `choose` gives: nodes of unequal free cores, some without room, shared
    vCPUs overcommitted or dedicated ones, hugepages, with and without SMT; None where none fits."""
    shape = HostShape("r1", "active", tpc, tuple(
        NodeShape(i, (), cores, 0 if pages else gib * 1024, gib if pages else 0, 40 if pages else 0, shared,
                  (10,) * len(nodes))
        for i, (_, cores, gib, pages, shared) in enumerate(nodes)), (), (), ())
    config = PlacementConfig(policy=policy, shared_cpu_overcommit=ratio)
    need = Need(0, None, vcpus, memory_mib, dedicated)
    fit = choose(shape, need, config)
    assert cores_rank(shape, cell_rooms(shape, config), need, config) == (fit.rank if fit is not None else None)


@settings(max_examples=400, deadline=None)
@given(nodes=st.lists(node_shapes, min_size=1, max_size=4), tpc=st.sampled_from([1, 2]),
       far=st.lists(st.integers(11, 40), min_size=6, max_size=6), policy=st.sampled_from(POLICIES),
       numa=st.sampled_from(["required", "preferred", "legacy"]), unknown=st.integers(0, 2),
       gpus=st.integers(1, 4), vcpus=st.integers(1, 30), memory_mib=st.integers(1, 40 * 1024),
       other=st.integers(0, 2))
@example(nodes=[(2, 2, 8, False, 0), (2, 2, 8, False, 0), (1, 2, 8, False, 0)], tpc=1, far=[20] * 6, policy="pack",
         numa="required", unknown=0, gpus=3, vcpus=5, memory_mib=1024, other=0)  # 3 nodes, not the 2 holding enough GPUs
def test_rank_floor_is_below_the_rank_choose_finds(nodes, tpc, far, policy, numa, unknown, gpus, vcpus, memory_mib,
                                                   other):
    """The floor an index leaves a host waiting on (`rank_floor`, with its `cell_rooms` or from
    its GPU counts alone) never exceeds the rank `choose` gives it, and a host `may_fit` skips
    has no fit: nodes at unequal distances, GPUs without a NUMA node, GPUs of another model on
    node 0 (pack's floor counts them apart, and the claim's cores and memory change their
    fragmentation too)."""
    matrix = slit(len(nodes), far)
    shape = HostShape("r1", "active", tpc, tuple(
        NodeShape(i, ((("h100", other),) if other and not i else ()) + ((("rtx6000", g),) if g else ()), cores,
                  0 if pages else gib * 1024, gib if pages else 0, 40 if pages else 0, shared, tuple(matrix[i]))
        for i, (g, cores, gib, pages, shared) in enumerate(nodes)),
        (("rtx6000", unknown),) if unknown else (), (("h100", 2), ("rtx6000", 12)), ())
    config = PlacementConfig(policy=policy, numa_unknown_policy=numa)
    need = Need(gpus, "rtx6000", vcpus, memory_mib, True)
    fit = choose(shape, need, config)
    floor = rank_floor(shape, need, config, cell_rooms(shape, config))
    assert fit is None or floor <= fit.rank[: len(floor)]
    counted = rank_floor(shape, need, config)
    assert fit is None or counted <= fit.rank[: len(counted)]
    assert fit is None or may_fit(shape, need)


@settings(max_examples=300, deadline=None)
@given(nodes=st.lists(node_shapes, min_size=1, max_size=4), tpc=st.sampled_from([1, 2]),
       numa=st.sampled_from(["required", "preferred", "legacy"]), unknown=st.integers(0, 2), other=st.integers(0, 2),
       gpus=st.integers(0, 4), vcpus=st.integers(1, 30), memory_mib=st.integers(1, 40 * 1024), dedicated=st.booleans())
def test_a_claims_fragmentation_recomputed_on_its_nodes_is_the_claimed_shapes(nodes, tpc, numa, unknown, other, gpus,
                                                                           vcpus, memory_mib, dedicated):
    """Pack's cost of a claim (`_fragmentation_after`: each plan's fill recomputed only on the
    claimed nodes, summed with the other nodes' parts of the shape) is the very float
    `fragmentation` gives the claimed shape, for every candidate: GPUs of a second model on node
    0, GPUs without a NUMA node (taken under legacy and preferred), hugepages, shared vCPUs."""
    shape = HostShape("r1", "active", tpc, tuple(
        NodeShape(i, ((("h100", other),) if other and not i else ()) + ((("rtx6000", g),) if g else ()), cores,
                  0 if pages else gib * 1024, gib if pages else 0, 40 if pages else 0, shared, (10,) * len(nodes))
        for i, (g, cores, gib, pages, shared) in enumerate(nodes)),
        (("rtx6000", unknown),) if unknown else (), (("h100", 2), ("rtx6000", 12)), ())
    plans = (gpu_plan(1, 2, 8), gpu_plan(2, 6, 24), gpu_plan(4, 8, 64), gpu_plan(1, 4, 16, model="h100"))
    config = PlacementConfig(policy="pack", numa_unknown_policy=numa, demand_mix=tuple((p, 1.0) for p in plans))
    need = Need(gpus, "rtx6000" if gpus else None, vcpus, memory_mib, dedicated or bool(gpus))
    total, models = _fragments(shape, config)
    assert fragmentation(shape, replace(config)) == total  # the index's total alone, without the parts
    score = _scorer(shape, need, config)  # pack's: keeps each claimed shape's total (`frag_total`)
    for *_, a in candidates(shape, need, config, every_span=True):
        fresh = replace(config)  # its own memo: the claimed shape's fragmentation computed whole
        whole = fragmentation(after(shape, a), fresh)
        assert _fragmentation_after(shape, after(shape, a), models, a, config) == whole
        score(a)
        assert config.memo.frag_total.get(after(shape, a), whole) == whole


def test_a_claim_that_leaves_gpus_beside_another_nodes_leftover_gpus_counts_them_spanning():
    """Node 0 has a GPU and no cores, node 1 two GPUs and cores: a 2-GPU plan fits node 1 alone,
    and node 0's GPU idles (fragmentation 1). A 1-GPU claim on node 1 leaves a GPU there beside
    its spare cores, and with node 0's GPU a 2-GPU instance spanning both would fit: half idle
    each (fragmentation 1 again, 0.0 rise). Recomputing the claimed node alone, without node
    0's leftover GPU in the spanning pool, gives 2."""
    shape = HostShape("r1", "active", 2, (
        NodeShape(0, (("rtx6000", 1),), 0, 32 * 1024, 0, 0, 0, (10, 20)),
        NodeShape(1, (("rtx6000", 2),), 8, 32 * 1024, 0, 0, 0, (20, 10))), (), (("rtx6000", 3),), ())
    config = PlacementConfig(policy="pack", demand_mix=((gpu_plan(2, 4, 8), 1.0),))
    claim = next(a for *_, a in candidates(shape, Need(1, "rtx6000", 2, 1024, True), config))
    assert [p.node for p in claim.parts] == [1]
    before, models = _fragments(shape, config)
    assert before == 1.0
    later = after(shape, claim)
    assert _fragmentation_after(shape, later, models, claim, config) == fragmentation(later, config) == 1.0


def test_packs_fragmentation_memo_stays_bounded_in_a_long_churn_of_gpu_plans():
    """Pack's index computes the fragmentation of every new shape (`gpu_floor`: the total alone)
    and scores GPU plans with `choose` (the total's parts), never through `best_fit` (which trims
    the memo): a churn of GPU claims on one host makes a new shape each step, and the memo must
    start over past FRAG_MEMO_LIMIT (parts: entries ~20 times the others') or MEMO_LIMIT (totals)
    rather than keep every shape ever seen."""
    rng = random.Random(3)
    ops = [("delete", rng.randrange(1000)) if rng.random() < 0.45 else ("gpu", rng.randrange(1, 3)) for _ in range(300)]
    config = PlacementConfig(policy="pack", demand_mix=tuple((p, 1.0) for p in PLANS))
    fleet = Fleet([host(1, topology((4, 4), cores=16))], config)
    with patch("gpucloud.domain.numa_fit.FRAG_MEMO_LIMIT", 20), patch("gpucloud.domain.numa_fit.MEMO_LIMIT", 20):
        answers_as_place(fleet, ops, lambda op, arg: gpu_request(arg, vcpus=2, memory_gib=2))
    assert len(config.memo.frag) <= 21
    assert len(config.memo.frag_total) <= 21
