"""Placement benchmark: speed of the engine under churn, and packing quality of the policies.

    .venv/bin/python bench/placement.py            # the full run (a few minutes on 2 cores)
    .venv/bin/python bench/placement.py --quick    # a short run
    .venv/bin/python bench/placement.py --no-speed --quality-hosts 300   # the quality table alone
    .venv/bin/python bench/placement.py --gpu-only --hosts 10000   # GPU hosts only, plans without GPUs asked

Speed: fleets of 1,000 and 10,000 hosts of the shipped GPU profiles (4 and 8 GPUs, 2 and 4
NUMA nodes) plus CPU-only hosts, filled to about 80 % of their GPUs, then churned (a delete,
then a create) through `fleet_index.Fleet`. Reports placements/s and the latency of each
decision (`Fleet.place`), and how long `capacity_rows` takes over the whole fleet.

`--gpu-only`: the same speed run on a fleet of GPU hosts only (bench/claims.py's mix), the
product's config, and arrivals of claims.py's GPU plan mix with 30 % plans without GPUs, which
there can only go to GPU hosts (`GpuOnlyDraw`).

Quality: a seeded synthetic workload (plan mix, Poisson arrivals, exponential lifetimes) offered
at 1.25x capacity, the same arrivals for every policy. Reports the GPU allocation rate at the
first refused GPU request and, from 2 mean lifetimes on (steady state): mean GPU allocation,
GPU requests refused (weighted by GPUs, then 1-GPU and multi-GPU apart), multi-GPU requests
refused while enough GPUs of their model were free in the region, multi-GPU instances split over
NUMA nodes although their plan fits one node of that host, and GPUs / cores / GiB
stranded (free, but idle whichever single plan of the mix a host is filled with); medians over
seeds, and the multi-GPU refusals as a ratio to first-fit.

Through the store (claims/s with competing threads on SQLite and PostgreSQL): `bench/claims.py`.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims import FLEET_MIX as GPU_ONLY_FLEET_MIX
from claims import PLAN_MIX as GPU_ONLY_PLAN_MIX

from gpucloud.catalog import load_catalog
from gpucloud.domain.capacity import capacity_rows
from gpucloud.domain.fleet_index import Fleet
from gpucloud.domain.numa_fit import Need, best_fit, choose, cores_for, fill_count, may_fit, shared_threads
from gpucloud.domain.placement import (
    HostState,
    Placement,
    PlacementConfig,
    PlacementRequest,
    build_host_state,
    demand_mix,
)
from gpucloud.hypervisor.profile import load_profile

REGION = "bench"
POLICIES = ("pack", "spread", "first-fit", "random")
# Fleet mix (share of hosts per shipped profile) and demand mix (relative arrival weights).
FLEET_MIX = {"rtx6000-2s4g": 0.30, "rtx4000ada-2s8g": 0.25, "h100-nps4-8g": 0.30, "cpu-2s": 0.15}
QUALITY_LOAD = 1.25  # demand offered, as a multiple of capacity
STEADY_AFTER = 2.0  # mean lifetimes: at 1.25x the fleet is full after ln(5) = 1.6; counted from here
# --gpu-only: bench/claims.py's fleet (GPU_ONLY_FLEET_MIX) and GPU plan mix (GPU_ONLY_PLAN_MIX), with
# this share of the arrivals drawn uniformly from the plans without GPUs of PLAN_WEIGHTS.
GPU_ONLY_WITHOUT_GPUS = 0.3
PLAN_WEIGHTS = {
    "g1-gpu-rtx6000-1": 4, "g1-gpu-rtx6000-2": 2, "g1-gpu-rtx6000-3": 0.5, "g1-gpu-rtx6000-4": 1,
    "g2-gpu-rtx4000a1-s": 3, "g2-gpu-rtx4000a1-m": 3, "g2-gpu-rtx4000a1-l": 1, "g2-gpu-rtx4000a2-s": 1.5,
    "g2-gpu-rtx4000a2-m": 1, "g2-gpu-rtx4000a4-s": 0.5, "g2-gpu-rtx4000a4-m": 0.5,
    "g3-gpu-h100-1": 3, "g3-gpu-h100-2": 2, "g3-gpu-h100-3": 0.5, "g3-gpu-h100-4": 1,
    "g6-nanode-1": 1, "g6-standard-1": 1, "g6-standard-2": 1, "g6-standard-4": 1, "g6-standard-6": 0.5,
    "g6-standard-8": 0.5, "g7-highmem-1": 0.5, "g6-dedicated-2": 0.5, "g6-dedicated-4": 0.5, "g6-dedicated-8": 0.5,
}


# --- fleets and workloads ------------------------------------------------------------------------


def profile_states() -> dict[str, HostState]:
    """One host state per shipped profile (copied per host with a new id: building is not measured)."""
    catalog = load_catalog()
    states = {}
    for name in {**FLEET_MIX, **GPU_ONLY_FLEET_MIX}:
        topo = load_profile(name)
        models = {g.address: m.id for g in topo.gpus if (m := catalog.model_for_device(g.vendor_id, g.device_id))}
        states[name] = build_host_state(0, REGION, topo, models)
    return states


def make_fleet(size: int, seed: int, mix: dict[str, float] = FLEET_MIX) -> list[HostState]:
    states, rng = profile_states(), random.Random(seed)
    names = list(mix)
    picks = rng.choices(names, weights=[mix[n] for n in names], k=size)
    return [replace(states[name], id=i) for i, name in enumerate(picks, start=1)]


@dataclass(frozen=True)
class Arrival:
    at: float
    lifetime: float
    plan_id: str


class Workload:
    """Seeded arrivals: plans drawn from the mix, Poisson arrivals, exponential lifetimes.

    Two merged streams. GPU plans: each model's share of GPU demand equals its share of the
    fleet's GPUs, plans within a model weighted by PLAN_WEIGHTS, and the rate set so the GPUs
    asked for (rate x mean lifetime x GPUs per arrival) are `load` times the fleet's. Plans
    without GPUs: sized the same way against the memory of the CPU-only hosts, so beyond 1
    they spill onto GPU hosts, where they can strand GPUs.
    """

    def __init__(self, hosts: list[HostState], load: float, seed: int, mean_lifetime: float = 100.0):
        catalog = load_catalog()
        self.plans = {p.id: p for p in catalog.plans if p.id in PLAN_WEIGHTS}
        fleet_gpus: dict[str, int] = {}
        cpu_host_gib = 0
        for h in hosts:
            for n in h.nodes:
                for g in n.gpus:
                    fleet_gpus[g.model] = fleet_gpus.get(g.model, 0) + 1
            if not any(n.gpus for n in h.nodes):
                cpu_host_gib += sum(n.free_memory_mib for n in h.nodes) / 1024
        total_gpus = sum(fleet_gpus.values())
        gpu_plans = [p for p in self.plans.values() if p.is_gpu and p.gpu_model in fleet_gpus]
        demand = {m: sum(PLAN_WEIGHTS[p.id] * p.gpus for p in gpu_plans if p.gpu_model == m) for m in fleet_gpus}
        self.gpu_ids = [p.id for p in gpu_plans]
        self.gpu_weights = [PLAN_WEIGHTS[p.id] * fleet_gpus[p.gpu_model] / total_gpus / demand[p.gpu_model] for p in gpu_plans]
        gpus_per_arrival = sum(self.plans[i].gpus * w for i, w in zip(self.gpu_ids, self.gpu_weights)) / sum(self.gpu_weights)
        self.gpu_rate = load * total_gpus / (mean_lifetime * gpus_per_arrival)
        cpu_plans = [p for p in self.plans.values() if not p.is_gpu]
        self.cpu_ids = [p.id for p in cpu_plans]
        self.cpu_weights = [PLAN_WEIGHTS[p.id] for p in cpu_plans]
        gib_per_arrival = sum(self.plans[i].memory_mib / 1024 * w for i, w in zip(self.cpu_ids, self.cpu_weights)) / sum(self.cpu_weights)
        self.cpu_rate = load * cpu_host_gib / (mean_lifetime * gib_per_arrival)
        self.ids = self.gpu_ids + self.cpu_ids
        self.weights = [w * self.gpu_rate / sum(self.gpu_weights) for w in self.gpu_weights] + [
            w * self.cpu_rate / sum(self.cpu_weights) for w in self.cpu_weights
        ]
        self.mean_lifetime = mean_lifetime
        self.rng = random.Random(seed)

    def draw(self) -> str:
        return self.rng.choices(self.ids, self.weights)[0]

    def arrivals(self, lifetimes: float):
        """Poisson arrivals of the merged streams for `lifetimes` mean lifetimes of simulated time."""
        now, rate = 0.0, self.gpu_rate + self.cpu_rate
        while True:
            now += self.rng.expovariate(rate)
            if now > lifetimes * self.mean_lifetime:
                return
            yield Arrival(now, self.rng.expovariate(1 / self.mean_lifetime), self.draw())


class GpuOnlyDraw:
    """--gpu-only's arrivals, with `Workload`'s `plans`, `ids`, `weights` and `draw`: claims.py's
    GPU plan mix, and GPU_ONLY_WITHOUT_GPUS of the arrivals a plan without GPUs drawn uniformly."""

    def __init__(self, seed: int):
        catalog = load_catalog()
        self.plans = {p.id: p for p in catalog.plans if p.id in GPU_ONLY_PLAN_MIX or (p.id in PLAN_WEIGHTS and not p.is_gpu)}
        without = [i for i, p in self.plans.items() if not p.is_gpu]
        gpu_total = sum(GPU_ONLY_PLAN_MIX.values())
        self.ids = list(GPU_ONLY_PLAN_MIX) + without
        self.weights = [w / gpu_total * (1 - GPU_ONLY_WITHOUT_GPUS) for w in GPU_ONLY_PLAN_MIX.values()] + [
            GPU_ONLY_WITHOUT_GPUS / len(without)] * len(without)
        self.rng = random.Random(seed)

    def draw(self) -> str:
        return self.rng.choices(self.ids, self.weights)[0]


def config_for(policy: str, seed: int = 0, product: bool = False) -> PlacementConfig:
    """The bench's config (pack's mix: PLAN_WEIGHTS), or with `product` the one the product builds
    from default settings (`services.placement_config`: every GPU plan weighs 1, the catalog's
    plans warmed)."""
    catalog = load_catalog()
    if product:
        return PlacementConfig(policy=policy, seed=seed, demand_mix=demand_mix(catalog.plans), plans=tuple(catalog.plans))
    return PlacementConfig(policy=policy, seed=seed, demand_mix=demand_mix(catalog.plans, PLAN_WEIGHTS))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- speed -------------------------------------------------------------------------------------


def first_fit_scan(hosts: list[HostState], need: Need, config: PlacementConfig) -> bool:
    """The baseline: a plain scan in host id order that stops at the first host that fits (no index,
    no memo, no ranking; it does not even keep NUMA spans minimal across hosts)."""
    return any(may_fit(host.shape, need) and choose(host.shape, need, config) is not None for host in hosts)


def filled(size: int, seed: int, gpu_only: bool = False) -> tuple[list[HostState], list[Placement], Workload | GpuOnlyDraw]:
    """A fleet filled to ~80 % of its GPUs with the workload's plan mix (by `pack`); `gpu_only`:
    GPU hosts only, filled with `GpuOnlyDraw` under the product's config."""
    hosts = make_fleet(size, seed, GPU_ONLY_FLEET_MIX if gpu_only else FLEET_MIX)
    fleet = Fleet(hosts, config_for("pack", product=gpu_only))
    total_gpus = sum(len(n.gpus) for h in hosts for n in h.nodes)
    work: Workload | GpuOnlyDraw = GpuOnlyDraw(seed) if gpu_only else Workload(hosts, 1.0, seed)
    plans = {i: PlacementRequest.for_plan(p, REGION) for i, p in work.plans.items()}
    live: list[Placement] = []
    used = 0
    while used < 0.8 * total_gpus:
        result = fleet.place(plans[work.draw()])
        if isinstance(result, Placement):
            fleet.apply(result)
            live.append(result)
            used += len(result.gpu_addresses)
    return fleet.hosts(), live, work


def speed(policy: str, hosts: list[HostState], live: list[Placement], work: Workload | GpuOnlyDraw, churn: int,
          seed: int = 1, product: bool = False) -> dict:
    """Load the filled fleet into a new index (as a process does), then churn: delete one, create one.

    Every decision is timed, the first of each plan included. Beside it, in the same loop, the
    plain first-fit scan answers the same request on the same hosts (`baseline_*`), and a
    request of a shape no plan has (each GPU plan with 2 or more extra vCPUs, each plan without
    GPUs with 1 more) is asked at even intervals of the churn: its first call ranks the hosts
    that can take it (`new_gpu_*`, `new_cpu_*`; the garbage collector's pauses inside those
    calls are timed apart with `gc.callbacks`, and their maxima given without them too; so are
    the decisions': their p99 without them, and how many of the slowest 1 % had one).
    `product`: the product's config (`config_for`)."""
    config = config_for(policy, seed, product)
    if not product:
        config = replace(config, plans=tuple(work.plans.values()))
    scan_config = config_for("first-fit")
    c0 = time.thread_time()
    fleet = Fleet(hosts, config)
    fleet.warm(REGION)
    load_cpu = time.thread_time() - c0
    live = list(live)
    total_gpus = sum(len(n.gpus) for h in hosts for n in h.nodes) + sum(len(g.gpu_addresses) for g in live)
    used_gpus = sum(len(g.gpu_addresses) for g in live)
    plans = {i: PlacementRequest.for_plan(p, REGION) for i, p in work.plans.items()}
    odd = [replace(r, vcpus=r.vcpus + 2 + k) for k, r in enumerate(r for r in plans.values() if r.gpus)]
    odd += [replace(r, vcpus=r.vcpus + 1) for r in plans.values() if not r.gpus]
    random.Random(seed + 2).shuffle(odd)
    every = max(1, churn // (len(odd) + 1))  # spread over the churn: shapes grow more varied as it goes
    rng, draws = random.Random(seed), random.Random(seed + 1)
    decide_cpu, baseline_cpu, upkeep_cpu = [], [], []
    decide_gc: list[int] = []  # the collector's pauses inside each decision
    new_shape_cpu: dict[bool, list[int]] = {True: [], False: []}  # GPU plan or not -> first calls
    new_shape_gc: dict[bool, list[int]] = {True: [], False: []}  # ... of which the collector's pauses
    collecting = CollectorTime()
    gc.collect()
    gc.freeze()  # what a long-running service does once its state is loaded
    gc.callbacks.append(collecting)
    placed = 0
    c_loop = time.thread_time()
    for op in range(churn):
        gone = live.pop(rng.randrange(len(live)))
        c0 = time.thread_time_ns()
        fleet.release(gone)
        upkeep_cpu.append(time.thread_time_ns() - c0)
        used_gpus -= len(gone.gpu_addresses)
        request = plans[draws.choices(work.ids, work.weights)[0]]
        if op and op % every == 0 and odd:
            request = odd.pop()
            paused = collecting.total
            c0 = time.thread_time_ns()
            result = fleet.place(request)
            new_shape_cpu[bool(request.gpus)].append(time.thread_time_ns() - c0)
            new_shape_gc[bool(request.gpus)].append(collecting.total - paused)
        else:
            paused = collecting.total
            c0 = time.thread_time_ns()
            result = fleet.place(request)
            decide_cpu.append(time.thread_time_ns() - c0)
            decide_gc.append(collecting.total - paused)
        if op % 10 == 0:
            scan_hosts = fleet.hosts()
            c0 = time.thread_time_ns()
            first_fit_scan(scan_hosts, request.need, scan_config)
            baseline_cpu.append(time.thread_time_ns() - c0)
        if isinstance(result, Placement):
            c0 = time.thread_time_ns()
            fleet.apply(result)
            upkeep_cpu.append(time.thread_time_ns() - c0)
            live.append(result)
            used_gpus += len(result.gpu_addresses)
            placed += 1
    loop_cpu = time.thread_time() - c_loop - sum(baseline_cpu) / 1e9
    gc.callbacks.remove(collecting)
    gc.unfreeze()
    without_gc = {k: [t - g for t, g in zip(new_shape_cpu[k], new_shape_gc[k])] for k in new_shape_cpu}
    tail = sorted(zip(decide_cpu, decide_gc), reverse=True)[: max(1, len(decide_cpu) // 100)]
    return {
        "policy": policy,
        "hosts": len(hosts),
        "gpus": total_gpus,
        "churn_ops": churn,
        "load_s": load_cpu,
        "placed_per_cpu_s": placed / loop_cpu,
        "p50_ms": percentile(decide_cpu, 0.5) / 1e6,
        "p99_ms": percentile(decide_cpu, 0.99) / 1e6,
        "max_ms": max(decide_cpu) / 1e6,
        "p99_nogc_ms": percentile([t - g for t, g in zip(decide_cpu, decide_gc)], 0.99) / 1e6,
        "tail_gc": sum(1 for _, g in tail if g) / len(tail),
        "new_gpu_p50_ms": percentile(new_shape_cpu[True], 0.5) / 1e6,
        "new_gpu_max_ms": max(new_shape_cpu[True]) / 1e6,
        "new_cpu_p50_ms": percentile(new_shape_cpu[False], 0.5) / 1e6,
        "new_cpu_max_ms": max(new_shape_cpu[False]) / 1e6,
        "new_gpu_max_nogc_ms": max(without_gc[True]) / 1e6,
        "new_cpu_max_nogc_ms": max(without_gc[False]) / 1e6,
        "new_gc_calls": sum(1 for k in new_shape_gc for g in new_shape_gc[k] if g),
        "baseline_p50_ms": percentile(baseline_cpu, 0.5) / 1e6,
        "baseline_p99_ms": percentile(baseline_cpu, 0.99) / 1e6,
        "upkeep_p99_ms": percentile(upkeep_cpu, 0.99) / 1e6,
        "gpu_use": used_gpus / total_gpus,
    }


class CollectorTime:
    """A `gc.callbacks` entry adding up the thread CPU time of the collector's pauses, so that a
    maximum can be told apart from a collection that landed in it."""

    def __init__(self) -> None:
        self.total = 0
        self._start = 0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.thread_time_ns()
        else:
            self.total += time.thread_time_ns() - self._start


def capacity_speed(hosts: list[HostState]) -> tuple[float, float]:
    """`capacity_rows` over the whole fleet for every plan: cold (a new config) and warm."""
    catalog = load_catalog()
    config = config_for("pack")
    c0 = time.thread_time()
    capacity_rows(hosts, catalog.plans, config)
    cold = time.thread_time() - c0
    c0 = time.thread_time()
    capacity_rows(hosts, catalog.plans, config)
    return cold, time.thread_time() - c0


# --- quality -----------------------------------------------------------------------------------


def stranded(hosts: list[HostState], config: PlacementConfig, needs: list) -> tuple[int, int, int]:
    """Free GPUs, cores and GiB that stay idle whichever single plan of the mix fills each host."""
    gpus = cores = gib = 0
    per_shape: dict = {}
    for h in hosts:
        if h.shape not in per_shape:
            per_shape[h.shape] = _stranded_on(h, config, needs)
        g, c, m = per_shape[h.shape]
        gpus, cores, gib = gpus + g, cores + c, gib + m
    return gpus, cores, gib


def _stranded_on(h: HostState, config: PlacementConfig, needs: list) -> tuple[int, int, int]:
    shape, tpc = h.shape, h.threads_per_core
    free_gpus = {}
    for n in h.nodes:
        for g in n.gpus:
            free_gpus[g.model] = free_gpus.get(g.model, 0) + 1
    free_cores = sum(len(n.free_cores) for n in h.nodes)
    free_mib = sum(n.free_hugepages * 1024 if n.total_hugepages else n.free_memory_mib for n in h.nodes)
    left_gpus = dict(free_gpus)
    left_cores, left_mib = free_cores, free_mib
    for need in needs:
        if need.gpus and need.gpu_model not in free_gpus:
            continue
        n = fill_count(shape, need, config)
        if need.gpus:
            left_gpus[need.gpu_model] = min(left_gpus[need.gpu_model], free_gpus[need.gpu_model] - n * need.gpus)
        if need.dedicated:
            used_cores = n * cores_for(need.vcpus, tpc)
        else:
            used_cores = cores_for(shared_threads(n * need.vcpus, config.shared_cpu_overcommit), tpc)
        left_cores = min(left_cores, free_cores - used_cores)
        left_mib = min(left_mib, free_mib - n * (-(-need.memory_mib // 1024) * 1024))
    return sum(left_gpus.values()), max(left_cores, 0), max(left_mib, 0) // 1024


def quality(policy: str, size: int, lifetimes: float, seed: int) -> dict:
    hosts = make_fleet(size, seed)
    config = config_for(policy, seed)
    fleet = Fleet(hosts, config)
    work = Workload(hosts, QUALITY_LOAD, seed)
    requests = {i: PlacementRequest.for_plan(p, REGION) for i, p in work.plans.items()}
    needs = [r.need for r in requests.values()]
    total = {"gpus": 0, "cores": 0, "gib": 0}
    free: dict[str, int] = {}
    for h in hosts:
        for n in h.nodes:
            total["cores"] += len(n.free_cores)
            total["gib"] += (n.free_hugepages * 1024 if n.total_hugepages else n.free_memory_mib) // 1024
            for g in n.gpus:
                free[g.model] = free.get(g.model, 0) + 1
                total["gpus"] += 1

    departures: list = []
    first_refusal_rate = None
    per_node = {h.id: max(len(n.gpus) for n in h.nodes) for h in hosts}  # GPUs of the fullest node
    cpu_only = [h.id for h in hosts if not h.shape.installed]
    n = dict.fromkeys(("single", "single_refused", "multi", "multi_refused", "multi_refused_with_room", "gpus",
                       "gpus_refused", "could_be_local", "split", "std", "std_on_gpu_host", "std_cpu_had_room"), 0)
    samples, allocation = [], []
    next_sample = 0.0
    for k, arrival in enumerate(work.arrivals(lifetimes)):
        while departures and departures[0][0] <= arrival.at:
            _, _, gone, model = heapq.heappop(departures)
            fleet.release(gone)
            if model:
                free[model] += len(gone.gpu_addresses)
        request = requests[arrival.plan_id]
        result = fleet.place(request)
        placed = isinstance(result, Placement)
        if placed and not request.gpus and arrival.at >= STEADY_AFTER * work.mean_lifetime:
            n["std"] += 1
            if fleet.host(result.host_id).shape.installed:  # a plan without GPUs on a GPU host
                n["std_on_gpu_host"] += 1
                n["std_cpu_had_room"] += any(best_fit(fleet.host(i).shape, request.need, config) for i in cpu_only)
        if placed:
            fleet.apply(result)
            heapq.heappush(departures, (arrival.at + arrival.lifetime, k, result, request.gpu_model))
            if request.gpus:
                free[request.gpu_model] -= request.gpus
        if request.gpus and not placed and first_refusal_rate is None:
            first_refusal_rate = 1 - sum(free.values()) / total["gpus"]
        steady = arrival.at >= STEADY_AFTER * work.mean_lifetime
        if placed and steady and 1 < request.gpus <= per_node[result.host_id]:
            n["could_be_local"] += 1
            n["split"] += len(result.nodes) > 1 or bool(result.numa_unknown_gpus)
        if request.gpus and steady:
            kind = "multi" if request.gpus > 1 else "single"
            n[kind] += 1
            n["gpus"] += request.gpus
            if not placed:
                n[f"{kind}_refused"] += 1
                n["gpus_refused"] += request.gpus
                if request.gpus > 1 and free[request.gpu_model] >= request.gpus:
                    n["multi_refused_with_room"] += 1
        if steady and arrival.at >= next_sample:
            samples.append(stranded(fleet.hosts(), config, needs))
            allocation.append(1 - sum(free.values()) / total["gpus"])
            next_sample = arrival.at + work.mean_lifetime / 10
    g, c, m = (statistics.mean(s[i] for s in samples) if samples else 0.0 for i in range(3))
    return {
        "alloc_at_first_refusal": first_refusal_rate if first_refusal_rate is not None else 1.0,
        "allocation": statistics.mean(allocation) if allocation else 0.0,
        "gpus_refused": n["gpus_refused"] / max(n["gpus"], 1),
        "single_refused": n["single_refused"] / max(n["single"], 1),
        "multi_refused": n["multi_refused"] / max(n["multi"], 1),
        "multi_refused_with_room": n["multi_refused_with_room"],
        "multi_refused_with_room_pct": n["multi_refused_with_room"] / max(n["multi"], 1),
        "split": n["split"] / max(n["could_be_local"], 1),
        "stranded_gpus_pct": g / total["gpus"],
        "stranded_cores_pct": c / total["cores"],
        "stranded_gib_pct": m / total["gib"],
        "std_on_gpu_host": n["std_on_gpu_host"] / max(n["std"], 1),
        "std_cpu_had_room": n["std_cpu_had_room"],
    }


# --- through the store -----------------------------------------------------------------------


# --- report ------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (smaller fleets, fewer seeds)")
    parser.add_argument("--hosts", type=int, nargs="*", help="fleet sizes of the speed run (default 1,000 and 10,000)")
    parser.add_argument("--no-quality", action="store_true", help="the speed run only")
    parser.add_argument("--no-speed", action="store_true", help="the quality run only")
    parser.add_argument("--quality-hosts", type=int, help="hosts of the quality run (default 300; --quick 150)")
    parser.add_argument("--gpu-only", action="store_true",
                        help="the speed run on GPU hosts only, with plans without GPUs asked (3,000 churn operations; no quality run)")
    parser.add_argument("--policies", nargs="*", choices=POLICIES, default=POLICIES, help="the speed run's policies")
    args = parser.parse_args()
    if args.no_speed and args.no_quality:
        parser.error("--no-speed with --no-quality leaves nothing to run")
    if args.gpu_only and (args.no_speed or args.quality_hosts):
        parser.error("--gpu-only is a speed run only: it takes neither --no-speed nor --quality-hosts")
    quick, gpu_only = args.quick, args.gpu_only
    parser_sizes = args.hosts or ((1000, 10000) if not quick else (1000,))
    sizes, churn = (() if args.no_speed else parser_sizes), (1000 if quick else 3000 if gpu_only else 5000)
    q_size, q_lifetimes, seeds = (300, 5.0, 5) if not quick else (150, 4.0, 2)
    q_size = args.quality_hosts or q_size

    print(f"# placement benchmark ({'quick' if quick else 'GPU hosts only' if gpu_only else 'full'}) on {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}\n")
    rows = []
    for size in sizes:
        hosts, live, work = filled(size, 1, gpu_only)
        cold, warm = capacity_speed(hosts)
        for policy in args.policies:
            r = speed(policy, hosts, live, work, churn, product=gpu_only)
            rows.append([f"{r['hosts']:,}", f"{r['gpus']:,}", policy, f"{r['churn_ops']:,}", f"{r['load_s']:.2f}",
                         f"{r['placed_per_cpu_s']:,.0f}", f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}",
                         f"{r['p99_nogc_ms']:.3f}", f"{r['tail_gc']:.0%}", f"{r['max_ms']:.2f}",
                         f"{r['new_gpu_p50_ms']:.2f} / {r['new_gpu_max_ms']:.2f} ({r['new_gpu_max_nogc_ms']:.2f})",
                         f"{r['new_cpu_p50_ms']:.2f} / {r['new_cpu_max_ms']:.2f} ({r['new_cpu_max_nogc_ms']:.2f})",
                         f"{r['new_gc_calls']}",
                         f"{r['baseline_p50_ms']:.3f}", f"{r['baseline_p99_ms']:.3f}",
                         f"{r['baseline_p99_ms'] / r['p99_ms']:.1f}x", f"{r['upkeep_p99_ms']:.3f}",
                         f"{r['gpu_use']:.0%}", f"{cold:.2f} / {warm:.2f}"])
    if rows:
        fleet = "GPU hosts only, 30 % of arrivals without GPUs, the product's config; " if gpu_only else ""
        print(f"## Speed ({fleet}churn at ~80 % of GPUs; CPU time of this thread; every decision timed, first calls included)\n")
        print(table(["hosts", "GPUs", "policy", "churn ops", "load + warm s", "placements/s (CPU)", "p50 ms",
                     "p99 ms", "p99 w/o collections ms", "slowest 1 % with a collection", "max ms", "new GPU shape p50 / max (w/o collections) ms",
                     "new shape w/o GPUs p50 / max (w/o collections) ms", "new-shape calls with a collection",
                     "first-fit scan p50 ms", "scan p99 ms", "scan p99 / p99", "apply/release p99 ms", "GPUs used",
                     "capacity cold / warm s"], rows))

    if args.no_quality or gpu_only:
        return
    print(f"\n## Quality ({q_size} hosts, load {QUALITY_LOAD}x, {q_lifetimes:g} mean lifetimes, seeds 1-{seeds}; medians)\n")
    results = {p: [quality(p, q_size, q_lifetimes, seed) for seed in range(1, seeds + 1)] for p in POLICIES}
    med = {p: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for p, rs in results.items()}
    base = med["first-fit"]

    def ratio(p: str, key: str) -> str:
        return f"{med[p][key] / base[key]:.2f}" if base[key] else "-"

    rows = [[p, f"{m['alloc_at_first_refusal']:.1%}", f"{m['allocation']:.1%}", f"{m['gpus_refused']:.1%}",
             f"{m['single_refused']:.1%}", f"{m['multi_refused']:.1%}", f"{m['multi_refused_with_room']:.0f}",
             f"{m['multi_refused_with_room_pct']:.1%}", ratio(p, "multi_refused_with_room"), f"{m['split']:.1%}",
             f"{m['stranded_gpus_pct']:.2%}",
             f"{m['stranded_cores_pct']:.2%}", f"{m['stranded_gib_pct']:.2%}", f"{m['std_on_gpu_host']:.1%}",
             f"{m['std_cpu_had_room']:.0f}"] for p, m in med.items()]
    print(table(["policy", "alloc at 1st refusal", "mean GPU alloc", "GPUs refused", "1-GPU reqs refused",
                 "multi-GPU reqs refused", "multi-GPU refused with room", "% of multi-GPU", "vs first-fit",
                 "split over NUMA nodes", "stranded GPUs", "stranded cores", "stranded GiB",
                 "plans without GPUs on GPU hosts", "... while a CPU-only host had room"], rows))
    per_seed = {p: [r["multi_refused_with_room"] for r in rs] for p, rs in results.items()}
    print("\nmulti-GPU refused with room, per seed: " + "; ".join(f"{p} {v}" for p, v in per_seed.items()))


if __name__ == "__main__":
    main()
