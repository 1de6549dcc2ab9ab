"""Workload benchmark: how full each policy gets a GPU fleet, and what it refuses under churn.

    .venv/bin/python bench/workload.py                 # 300 hosts, 12 mean lifetimes, seeds 1-5, every mix
    .venv/bin/python bench/workload.py --hosts 60 --seeds 1 --lifetimes 6 --mix mixed   # a quick look

Its own generator: GPU plans drawn from the catalog (each with the vCPUs and memory per GPU
its plan defines), in one of three size mixes (1-GPU heavy, mixed, multi-GPU heavy); each GPU
model gets a share of the demand equal to its share of the fleet's GPUs, and the plans of one
size of a model share that size's weight evenly. Poisson arrivals; lifetimes are log-normal
(sigma 1.5: heavy-tailed, a few instances live ten times the mean). The fleet is GPU hosts of
the shipped profiles (4 and 8 GPUs, 2 and 4 NUMA nodes), one region.

Two experiments, every policy on the very same arrivals (fixed seeds), medians over seeds:
- fill-until-full: arrivals without departures until 300 in a row are refused; the GPU
  allocation when the first request of each size is refused, and at the end;
- churn at 1.1x the fleet's GPUs offered: from 2 mean lifetimes on (steady state), mean GPU
  allocation, multi-GPU (and 4-GPU) requests refused while at least that many GPUs of their
  model were free in the region ("with room"), and stranded GPUs (free, but idle whichever
  single plan of the mix fills their host).

`pack` runs twice: with the catalog's plans as its demand mix (what the product uses when no
mix is learnt) and with the workload's own mix (what a mix learnt from creates would give).

Under churn, a bound rather than a policy: "pack, clairvoyant" knows when every instance will
leave (which no placement does) and, among the hosts pack ranks alike up to its fragmentation
cost, takes the one whose busy time the instance extends least (a scan of every host, not the
index). How far it gets below `pack` is what lifetime information could add to a greedy
placement that never moves an instance.

With --variants (churn only), pack changed in one way, each a scan of every host like the bound
(`Variant`, `VARIANTS`): what a control plane knows of its residents (when each came: with
heavy-tailed lifetimes an old instance is likely to live long), other uses of the bound's
knowledge, hard reserves (admission control: a smaller plan refused rather than take one of the
last hosts able to take its model's largest plan) and a soft drain (hosts kept from smaller
plans after a refusal of the largest); 1-GPU refusals and all refusals are shown beside the
multi-GPU ones, since a reserve refuses 1-GPU requests.

    .venv/bin/python bench/workload.py --variants      # ~40 min on a busy 2-core machine

The counts under churn are totals over the seeds (one seed's count swings by 2-3x with the
heavy-tailed lifetimes), the ratios are ratios of those totals, with the range of the per-seed
ratios beside them.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from placement import stranded, table

from gpucloud.catalog import load_catalog
from gpucloud.domain.catalog import Plan
from gpucloud.domain.fleet_index import Fleet
from gpucloud.domain.numa_fit import HostShape, Need, after, best_fit, fill_count
from gpucloud.domain.placement import (
    HostState,
    NoRoom,
    Placement,
    PlacementConfig,
    PlacementRequest,
    apply,
    build_host_state,
    demand_mix,
    materialise,
    release,
)
from gpucloud.hypervisor.profile import load_profile

REGION = "bench"
FLEET = {"rtx6000-2s4g": 0.35, "rtx4000ada-2s8g": 0.30, "h100-nps4-8g": 0.35}
MIXES = {  # share of arrivals per GPU count
    "1-GPU heavy": {1: 0.75, 2: 0.15, 3: 0.03, 4: 0.07},
    "mixed": {1: 0.45, 2: 0.25, 3: 0.05, 4: 0.25},
    "multi-GPU heavy": {1: 0.15, 2: 0.35, 3: 0.05, 4: 0.45},
}
POLICIES = ("pack", "pack (workload mix)", "first-fit", "spread", "random")
CLAIRVOYANT = "pack, clairvoyant"
# Under churn, with --variants: pack changed in one way (see `Variant`): row -> (how, share, whether
# the variant's preference comes before pack's fullness rather than after it)
VARIANTS = {
    "pack, clairvoyant (before fullness)": ("clairvoyant", 0.0, True),
    "pack, clairvoyant (latest)": ("clairvoyant, latest", 0.0, False),
    "pack, oldest resident": ("oldest", 0.0, False),
    "pack, oldest resident (before fullness)": ("oldest", 0.0, True),
    "pack, oldest resident (1-GPU)": ("oldest, 1-GPU", 0.0, False),
    "pack, hard reserve 5 %": ("reserve", 0.05, False),
    "pack, hard 1-GPU reserve 5 %": ("reserve, 1-GPU", 0.05, False),
    "pack, hard 1-GPU reserve 20 %": ("reserve, 1-GPU", 0.2, False),
    "pack, drain 1 host": ("drain", 1, False),
}
LOAD = 1.1
LIFETIMES = 12.0
STEADY_AFTER = 2.0
SIGMA = 1.5
GIVE_UP = 300


def fleet(size: int, seed: int) -> list[HostState]:
    catalog, rng = load_catalog(), random.Random(seed)
    states = {}
    for name in FLEET:
        topo = load_profile(name)
        models = {g.address: m.id for g in topo.gpus if (m := catalog.model_for_device(g.vendor_id, g.device_id))}
        states[name] = build_host_state(0, REGION, topo, models)
    picks = rng.choices(list(FLEET), weights=list(FLEET.values()), k=size)
    return [replace(states[name], id=i) for i, name in enumerate(picks, start=1)]


@dataclass(frozen=True)
class Arrival:
    at: float
    lifetime: float
    plan: Plan


class Generator:
    """Seeded arrivals of the catalog's GPU plans in a size mix; rate set for `load` x the fleet's GPUs."""

    def __init__(self, hosts: list[HostState], mix: dict[int, float], load: float, seed: int, mean: float = 100.0):
        gpus: dict[str, int] = {}
        for h in hosts:
            for n in h.nodes:
                for g in n.gpus:
                    gpus[g.model] = gpus.get(g.model, 0) + 1
        total = sum(gpus.values())
        plans = [p for p in load_catalog().plans if p.is_gpu and p.gpu_model in gpus]
        self.plans, self.weights = [], []
        for model, count in gpus.items():
            mine = [p for p in plans if p.gpu_model == model]
            sizes = {p.gpus for p in mine}
            share = {g: w for g, w in mix.items() if g in sizes}
            per_gpu = sum(g * w for g, w in share.items())  # GPUs per arrival of this model
            for p in mine:
                same = sum(1 for q in mine if q.gpus == p.gpus)
                # arrivals of this plan, so that the model's GPU demand is its share of the fleet's GPUs
                self.plans.append(p)
                self.weights.append(count / total * share[p.gpus] / same / per_gpu)
        per_arrival = sum(p.gpus * w for p, w in zip(self.plans, self.weights)) / sum(self.weights)
        self.rate = load * total / (mean * per_arrival)
        self.mean, self.rng = mean, random.Random(seed)
        self.mu = math.log(mean) - SIGMA**2 / 2  # log-normal with this mean

    def mix(self) -> tuple[tuple[Plan, float], ...]:
        return tuple(zip(self.plans, self.weights))

    def arrivals(self, until: float | None = None):
        now = 0.0
        while until is None or now <= until:
            now += self.rng.expovariate(self.rate)
            yield Arrival(now, self.rng.lognormvariate(self.mu, SIGMA), self.rng.choices(self.plans, self.weights)[0])


def config_for(policy: str, gen: Generator, seed: int) -> PlacementConfig:
    if policy == "pack (workload mix)":
        return PlacementConfig(policy="pack", demand_mix=gen.mix())
    return PlacementConfig(policy=policy, seed=seed, demand_mix=demand_mix(load_catalog().plans))


def free_by_model(hosts: list[HostState]) -> dict[str, int]:
    free: dict[str, int] = {}
    for h in hosts:
        for n in h.nodes:
            for g in n.gpus:
                free[g.model] = free.get(g.model, 0) + 1
    return free


def fill(policy: str, size: int, mix: dict[int, float], seed: int) -> dict:
    hosts = fleet(size, seed)
    gen = Generator(hosts, mix, LOAD, seed)
    index = Fleet(hosts, config_for(policy, gen, seed))
    total = sum(free_by_model(hosts).values())
    used, refused_in_a_row = 0, 0
    first: dict[int, float] = {}
    for arrival in gen.arrivals():
        result = index.place(PlacementRequest.for_plan(arrival.plan, REGION))
        if isinstance(result, Placement):
            index.apply(result)
            used += arrival.plan.gpus
            refused_in_a_row = 0
        else:
            first.setdefault(arrival.plan.gpus, used / total)
            refused_in_a_row += 1
            if refused_in_a_row >= GIVE_UP:
                break
    out = {f"first_refusal_{g}": first.get(g, used / total) for g in sorted(mix)}
    out["end"] = used / total
    return out


def churn(policy: str, size: int, mix: dict[int, float], seed: int, lifetimes: float = LIFETIMES,
          load: float = LOAD) -> dict:
    hosts = fleet(size, seed)
    gen = Generator(hosts, mix, load, seed)
    how, share, early = ("clairvoyant", 0.0, False) if policy == CLAIRVOYANT else VARIANTS.get(policy, ("", 0, False))
    config = config_for("pack" if how else policy, gen, seed)
    index = Variant(hosts, config, gen.plans, how, share, early) if how else Fleet(hosts, config)
    free = free_by_model(hosts)
    total = sum(free.values())
    needs = [PlacementRequest.for_plan(p, REGION).need for p in gen.plans]
    departures: list = []
    n = dict.fromkeys(("multi", "multi_with_room", "four", "four_with_room", "one", "one_refused", "one_with_room",
                       "all", "all_refused", "all_with_room"), 0)
    allocation, strand = [], []
    next_sample = next_strand = STEADY_AFTER * gen.mean
    for k, arrival in enumerate(gen.arrivals(lifetimes * gen.mean)):
        while departures and departures[0][0] <= arrival.at:
            _, _, gone, model = heapq.heappop(departures)
            index.release(gone)
            free[model] += len(gone.gpu_addresses)
        plan = arrival.plan
        if isinstance(index, Variant):
            index.now, index.leaves_at = arrival.at, arrival.at + arrival.lifetime
        result = index.place(PlacementRequest.for_plan(plan, REGION))
        placed = isinstance(result, Placement)
        refused_with_room = not placed and free[plan.gpu_model] >= plan.gpus
        if placed:
            index.apply(result)
            heapq.heappush(departures, (arrival.at + arrival.lifetime, k, result, plan.gpu_model))
            free[plan.gpu_model] -= plan.gpus
        if arrival.at < STEADY_AFTER * gen.mean:
            continue
        size = "multi" if plan.gpus > 1 else "one"
        for counted in ("all", size):
            n[counted] += 1
            n[f"{counted}_with_room"] += refused_with_room
        n["all_refused"] += not placed
        n["one_refused"] += not placed and plan.gpus == 1
        n["four"] += plan.gpus == 4
        n["four_with_room"] += refused_with_room and plan.gpus == 4
        if arrival.at >= next_sample:
            allocation.append(1 - sum(free.values()) / total)
            next_sample += gen.mean / 10
        if arrival.at >= next_strand:
            strand.append(stranded(index.hosts(), config, needs)[0] / total)
            next_strand += gen.mean / 2
    return {
        "allocation": statistics.mean(allocation),
        "multi_with_room": n["multi_with_room"],
        "multi_with_room_pct": n["multi_with_room"] / max(n["multi"], 1),
        "four_with_room": n["four_with_room"],
        "stranded": statistics.mean(strand),
        **{k: n[k] for k in ("one_refused", "one_with_room", "all_refused", "all_with_room")},
    }


class Variant:
    """`pack` over a scan of every host (not the index), changed in one way: what a choice at
    placement time could add under churn (`VARIANTS`). Its decisions are pack's when unchanged."""

    def __init__(self, hosts: list[HostState], config: PlacementConfig, plans: list[Plan], how: str, share: float,
                 early: bool = False):
        self.states = {h.id: h for h in hosts}
        self.config, self.how, self.share, self.early = config, how, share, early
        # per host, (arrival, departure) of each resident: what a control plane knows (its claims'
        # times), and what none does (when it will leave)
        self.residents: dict[int, dict[Placement, tuple[float, float]]] = {h.id: {} for h in hosts}
        self.now = self.leaves_at = 0.0  # the next request's arrival and its instance's departure
        self.hosts_of: dict[str, list[int]] = {}
        for h in hosts:
            for model in {g.model for n in h.nodes for g in n.gpus}:
                self.hosts_of.setdefault(model, []).append(h.id)
        self.largest: dict[str | None, Need] = {}  # per model, the largest plan's need
        for need in (PlacementRequest.for_plan(p, REGION).need for p in plans):
            self.largest[need.gpu_model] = max(self.largest.get(need.gpu_model, need), need)
        self.kept: dict[str | None, set[int]] = {}  # "drain": hosts kept from smaller plans

    def place(self, request: PlacementRequest) -> Placement | NoRoom:
        need = request.need
        largest = self.largest[need.gpu_model]
        smaller = need.gpus < largest.gpus and (need.gpus == 1 or not self.how.endswith("1-GPU"))
        kept = self.kept.get(need.gpu_model, set()) if smaller else set()
        # "reserve": the last hosts able to take the largest plan are not for smaller ones
        guard = smaller and self.how.startswith("reserve") and sum(
            self._takes(self.states[i].shape, largest) for i in self.hosts_of[need.gpu_model]
        ) <= self.share * len(self.hosts_of[need.gpu_model])
        best = None
        for host in self.states.values():
            fit = best_fit(host.shape, need, self.config)
            if fit is None:
                continue
            if guard and self._takes(host.shape, largest) and not self._takes(after(host.shape, fit.assignment), largest):
                continue
            # pack's rank: (preference, span, distance, (fragmentation cost, *fullness))
            head, (frag, *fullness) = fit.rank[:3], fit.rank[3]
            cost = self._cost(host.id, need)
            key = (host.id in kept, head, frag, *((cost, fullness) if self.early else (fullness, cost)), host.id)
            if best is None or key < best[0]:
                best = (key, host, fit)
        result = materialise(best[1], best[2].assignment, request) if best else NoRoom("no-room", "no host fits")
        if self.how == "drain":
            self._drain(need, result)
        return result

    def _takes(self, shape: HostShape, need: Need) -> bool:
        return fill_count(shape, need, self.config) > 0

    def _cost(self, host_id: int, need: Need) -> float:
        """The variant's preference among hosts pack ranks alike up to its fragmentation cost."""
        times = self.residents[host_id].values()
        if self.how == "clairvoyant":  # how much longer the host stays busy
            return max(0.0, self.leaves_at - max((leave for _, leave in times), default=0.0))
        if self.how == "clairvoyant, latest":  # the host whose last resident leaves last
            return -max((leave for _, leave in times), default=self.now)
        if self.how == "oldest" or (self.how == "oldest, 1-GPU" and need.gpus == 1):
            return min((start for start, _ in times), default=self.now)
        return 0.0

    def _drain(self, need: Need, result: Placement | NoRoom) -> None:
        """After a refusal of a model's largest plan, keep the `share` hosts of the model with the
        most free GPUs from smaller plans while another host fits them, until a largest plan lands."""
        kept = self.kept.setdefault(need.gpu_model, set())
        if isinstance(result, Placement):
            kept.discard(result.host_id)
            return
        if need.gpus < self.largest[need.gpu_model].gpus:
            return
        free = []
        for i in self.hosts_of[need.gpu_model]:
            n = sum(1 for node in self.states[i].nodes for g in node.gpus if g.model == need.gpu_model)
            if n and i not in kept:
                # the most free GPUs, then the youngest residents (the likeliest to leave soon)
                free.append((-n, -min((start for start, _ in self.residents[i].values()), default=self.now), i))
        kept.update(i for _, _, i in sorted(free)[: max(0, int(self.share) - len(kept))])

    def apply(self, placement: Placement) -> None:
        self.states[placement.host_id] = apply(self.states[placement.host_id], placement)
        self.residents[placement.host_id][placement] = (self.now, self.leaves_at)

    def release(self, placement: Placement) -> None:
        self.states[placement.host_id] = release(self.states[placement.host_id], placement)
        del self.residents[placement.host_id][placement]

    def hosts(self) -> list[HostState]:
        return list(self.states.values())


def medians(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def churn_rows(runs: dict[str, list[dict]], every_size: bool = False) -> list[list[str]]:
    """One row per policy: mean allocation over the seeds, refusals summed over them, and the
    ratio of those sums to first-fit's (with the per-seed ratios' range); with `every_size`, the
    1-GPU and all refusals too (a reserve refuses 1-GPU requests)."""
    base = runs["first-fit"]
    base_total = sum(r["multi_with_room"] for r in base)
    rows = []
    for policy, rs in runs.items():
        total = sum(r["multi_with_room"] for r in rs)
        asked = sum(r["multi_with_room"] / r["multi_with_room_pct"] if r["multi_with_room_pct"] else 0 for r in rs)
        per_seed = [r["multi_with_room"] / b["multi_with_room"] for r, b in zip(rs, base) if b["multi_with_room"]]
        rows.append([policy, f"{statistics.mean(r['allocation'] for r in rs):.2%}", f"{total:,}",
                     f"{total / asked:.1%}" if asked else "-",
                     f"{total / base_total:.2f}" if base_total else "-",
                     f"{min(per_seed):.2f}-{max(per_seed):.2f}" if per_seed else "-",
                     f"{sum(r['four_with_room'] for r in rs):,}", f"{statistics.mean(r['stranded'] for r in rs):.2%}"])
        if every_size:
            rows[-1][-1:] = [f"{sum(r[f'{k}_refused'] for r in rs):,} ({sum(r[f'{k}_with_room'] for r in rs):,})"
                             for k in ("one", "all")]
    return rows


CHURN_HEADER = ["policy", "mean GPU alloc", "multi-GPU refused with room", "% of multi-GPU", "vs first-fit",
                "per seed", "4-GPU refused with room", "stranded GPUs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--lifetimes", type=float, default=LIFETIMES, help="length of the churn run, in mean lifetimes")
    parser.add_argument("--mix", choices=list(MIXES), action="append", help="size mix(es) to run (default: all)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--no-clairvoyant", action="store_true", help="leave out the bound (a scan of every host)")
    parser.add_argument("--variants", action="store_true",
                        help="churn only: first-fit, pack, the bound and pack's variants (VARIANTS), refusals of every size")
    args = parser.parse_args()
    if args.variants and args.no_clairvoyant:
        parser.error("--variants always runs the clairvoyant bound beside the variants: drop --no-clairvoyant")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"# workload benchmark: {args.hosts} GPU hosts, seeds {seeds[0]}-{seeds[-1]}\n")
    for name in args.mix or list(MIXES):
        mix = MIXES[name]
        print(f"## {name} ({', '.join(f'{g} GPU {w:.0%}' for g, w in mix.items())})\n")
        if args.variants:
            churned = {p: [churn(p, args.hosts, mix, s, args.lifetimes) for s in seeds]
                       for p in ("first-fit", "pack", CLAIRVOYANT, *VARIANTS)}
            print(table([*CHURN_HEADER[:-1], "1-GPU refused (with room)", "all refused (with room)"],
                        churn_rows(churned, every_size=True)))
            print()
            continue
        filled = {p: medians([fill(p, args.hosts, mix, s) for s in seeds]) for p in POLICIES}
        sizes = sorted(mix)
        print("Fill until full: GPU allocation when the first request of each size is refused, and at the end "
              "(medians)\n")
        print(table(["policy", *(f"1st {g}-GPU refusal" for g in sizes), "end"],
                    [[p, *(f"{r[f'first_refusal_{g}']:.1%}" for g in sizes), f"{r['end']:.1%}"]
                     for p, r in filled.items()]))
        policies = POLICIES if args.no_clairvoyant else (*POLICIES, CLAIRVOYANT)
        churned = {p: [churn(p, args.hosts, mix, s, args.lifetimes) for s in seeds] for p in policies}
        print(f"\nChurn at {LOAD}x load, {args.lifetimes:g} mean lifetimes, from {STEADY_AFTER:g} on "
              f"(refusals summed over the seeds)\n")
        print(table(CHURN_HEADER, churn_rows(churned)))
        print()


if __name__ == "__main__":
    main()
