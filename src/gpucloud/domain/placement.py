"""Where an instance goes: a host, and on it the GPUs, cores and memory of the same NUMA nodes.

Pure: `place(request, hosts, config)` looks at host states built by the store (see
`build_host_state`) and answers a `Placement` or a `NoRoom` with a reason a person can act
on. `apply` and `release` return the new host state, so capacity can simulate and the
benchmark can churn. Same inputs give the same answer: ties go to the lower host id, then
node index, then PCI address.

Rules, in the order they decide:
1. Only active hosts of the request's region; GPUs of the plan's model that are free,
   viable (no IOMMU blocker), not reserved or faulty.
2. NUMA-strict: the GPUs come from as few NUMA nodes as any host allows (a 2-GPU instance
   gets two GPUs of one node whenever some host has them), then from the closest nodes by
   SLIT distance. Cores (whole, SMT siblings together) and memory come from those nodes, in
   proportion to the GPUs each gives; 1 GiB pages back the memory where the node has them.
3. Standard and dedicated plans without GPUs go to CPU-only hosts first; GPU hosts take them
   only as overflow, first where the placement leaves every GPU plan as sellable as before
   (a node without free GPUs first), and where it costs GPU sales only when nothing else has
   room (`numa_fit.keeps_gpu_sales`).
4. The policy picks among what is left: `pack` (fragmentation-aware, default), `spread`,
   `first-fit`, `random` (a baseline: a uniform draw per decision among the hosts tied on
   rules 1-3, from the config's seeded generator).

GPUs whose NUMA node is unknown (-1) follow `numa_unknown_policy`, after Nova's
`hw:pci_numa_affinity_policy`: `required` never places them; `legacy` treats them as local
to any node (Nova: a device without NUMA information satisfies affinity), so they compete
with NUMA-local GPUs; `preferred` uses them only when no NUMA-local fit exists anywhere
(Nova: affinity is best effort). In both cases the instance's GPUs all come from that pool
and its cores and memory from one node with room.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gpucloud.domain.catalog import Plan
from gpucloud.domain.guest import GuestCell, GuestGpu
from gpucloud.domain.host_state import (
    DEFAULT_RESERVED_CORES,
    DEFAULT_RESERVED_MEMORY_MIB,
    ClaimedGpu,
    FreeGpu,
    HostState,
    NodeState,
    UnavailableGpu,
    build_host_state,
)
from gpucloud.domain.numa_fit import (
    ACTIVE,
    CPU_HOST,
    Assignment,
    FitMemo,
    HostShape,
    Need,
    best_fit,
    choose,
    cores_for,
    count_of,
    lacking,
    placeable_free,
)

__all__ = [
    "ClaimedGpu",
    "FreeGpu",
    "HostState",
    "NoRoom",
    "NodeClaim",
    "NodeState",
    "Placement",
    "PlacementConfig",
    "PlacementRequest",
    "StalePlacement",
    "UnavailableGpu",
    "apply",
    "build_host_state",
    "demand_mix",
    "draw",
    "learned_weights",
    "parse_demand_mix",
    "place",
    "pool_of",
    "pools",
    "release",
    "tried",
]

POLICIES = ("pack", "spread", "first-fit", "random")
NUMA_UNKNOWN_POLICIES = ("required", "preferred", "legacy")
OVERRIDABLE = ("numa_unknown_policy", "shared_cpu_overcommit")


# --- what is asked, and how -----------------------------------------------------------------


@dataclass(frozen=True)
class PlacementRequest:
    region: str
    vcpus: int
    memory_mib: int
    gpus: int = 0
    gpu_model: str | None = None
    dedicated: bool = True  # pinned whole cores; False = shared, overcommitted CPUs
    host_id: int | None = None  # operator pin
    gpu_addresses: tuple[str, ...] = ()  # operator pin of given GPUs on that host

    def __post_init__(self) -> None:
        if self.vcpus < 1 or self.memory_mib < 1 or self.gpus < 0:
            raise ValueError("a request needs at least one vCPU and some memory")
        if self.gpus and (not self.gpu_model or not self.dedicated):
            raise ValueError("a GPU request names its GPU model and has dedicated CPUs")
        if self.gpu_addresses and self.host_id is None:
            raise ValueError("GPUs can only be pinned together with their host")

    @classmethod
    def for_plan(
        cls, plan: Plan, region: str, host_id: int | None = None, gpu_addresses: Iterable[str] = ()
    ) -> PlacementRequest:
        return cls(
            region=region,
            vcpus=plan.vcpus,
            memory_mib=plan.memory_mib,
            gpus=plan.gpus,
            gpu_model=plan.gpu_model,
            dedicated=plan.dedicated_cpus,
            host_id=host_id,
            gpu_addresses=tuple(gpu_addresses),
        )

    @property
    def need(self) -> Need:
        return Need(self.gpus, self.gpu_model, self.vcpus, self.memory_mib, self.dedicated)


# In pack's demand mix, a multi-GPU plan never weighs less than this share of its GPU model's
# plans: a mix dominated by 1-GPU plans would otherwise break up the nodes 4-GPU plans need.
MULTI_GPU_FLOOR = 0.05


def demand_mix(plans: Iterable[Plan], weights: Mapping[str, float] | None = None) -> tuple[tuple[Plan, float], ...]:
    """The GPU plans that sell, with their weights (default 1 each; with `weights`, the plans it
    names), for `pack`; every multi-GPU plan of a model in the mix at least MULTI_GPU_FLOOR of
    the model's weight."""
    gpu_plans = [p for p in plans if p.is_gpu]
    mix = {p.id: float(weights.get(p.id, 0.0)) if weights else 1.0 for p in gpu_plans}
    totals: dict[str | None, float] = {}
    for p in gpu_plans:
        totals[p.gpu_model] = totals.get(p.gpu_model, 0.0) + mix[p.id]
    for p in gpu_plans:
        if p.gpus > 1 and totals[p.gpu_model] > 0:
            mix[p.id] = max(mix[p.id], MULTI_GPU_FLOOR * totals[p.gpu_model])
    return tuple((p, mix[p.id]) for p in gpu_plans if mix[p.id] > 0)


def parse_demand_mix(text: str, plans: Iterable[Plan]) -> dict[str, float]:
    """An operator's mix, "plan=weight,plan=weight", checked against the GPU plans of the catalog."""
    known = {p.id for p in plans if p.is_gpu}
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        plan, sep, raw = item.partition("=")
        plan = plan.strip()
        if plan not in known:
            raise ValueError(f"{plan!r} is not a GPU plan of the catalog")
        try:
            weight = float(raw) if sep else float("nan")
        except ValueError:
            weight = float("nan")
        if not weight >= 0 or weight == float("inf"):
            raise ValueError(f"the weight of {plan} must be a number >= 0, not {raw.strip()!r}")
        weights[plan] = weight
    if text.strip() and not any(weights.values()):
        raise ValueError("give at least one plan a weight above 0")
    return weights


def learned_weights(created: Iterable[tuple[str, float]], half_life_s: float) -> dict[str, float]:
    """Plan id -> weight from creates (plan id, age in seconds): each counts 0.5 ** (age / half life)."""
    weights: dict[str, float] = {}
    for plan_id, age in created:
        weights[plan_id] = weights.get(plan_id, 0.0) + 0.5 ** (max(age, 0.0) / half_life_s)
    return weights


@dataclass(frozen=True)
class PlacementConfig:
    """Placement settings; regions get their own config, hosts may override some fields.

    `demand_mix` weights the plans `pack` keeps room for (see `demand_mix()`). Without one,
    `pack` keeps room for 1-4 GPUs of each model with 2 vCPUs and 1 GiB per GPU: it keeps a
    node's GPUs together but does not know how many cores and GiB the plans that sell take.
    `reserved_*` are what `build_host_state` keeps for the host when the store lists none.
    The config carries a memo of answers per host shape: keep one long-lived object (answers
    are deterministic, so threads may share it).
    """

    policy: str = "pack"
    numa_unknown_policy: str = "required"
    shared_cpu_overcommit: float = 4.0
    demand_mix: tuple[tuple[Plan, float], ...] = ()
    # Per region, a mix that replaces `demand_mix` there (learnt from the plans created there).
    region_mix: tuple[tuple[str, tuple[tuple[Plan, float], ...]], ...] = ()
    reserved_cores_per_node: int = DEFAULT_RESERVED_CORES
    reserved_memory_mib_per_node: int = DEFAULT_RESERVED_MEMORY_MIB
    seed: int = 0  # for the `random` baseline
    # Plans whose requests a `fleet_index.Fleet` keeps ranked from the moment it loads a region
    # (the catalog's): a decision for one of them never pays for ranking the region's hosts.
    plans: tuple[Plan, ...] = ()
    memo: FitMemo = field(default_factory=FitMemo, init=False, repr=False, compare=False)
    # `random`'s generator: one draw per decision, so a sequence of decisions replays from the seed
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"placement policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")
        if self.numa_unknown_policy not in NUMA_UNKNOWN_POLICIES:
            raise ValueError(f"numa_unknown_policy must be one of {', '.join(NUMA_UNKNOWN_POLICIES)}")
        if self.shared_cpu_overcommit < 1:
            raise ValueError("shared_cpu_overcommit must be at least 1")
        object.__setattr__(self, "rng", random.Random(self.seed))
        mix: dict[str | None, list[tuple[Need, float]]] = {}
        for plan, weight in self.demand_mix:
            if plan.is_gpu and weight > 0:
                mix.setdefault(plan.gpu_model, []).append((PlacementRequest.for_plan(plan, "").need, weight))
        object.__setattr__(self, "_mix", {m: _normalised(entries) for m, entries in mix.items()})
        regional: dict[tuple[str, str | None], list[tuple[Need, float]]] = {}
        for region, plans in self.region_mix:
            for plan, weight in plans:
                if plan.is_gpu and weight > 0:
                    need = PlacementRequest.for_plan(plan, "").need
                    regional.setdefault((region, plan.gpu_model), []).append((need, weight))
        object.__setattr__(self, "_region_mix", {k: _normalised(entries) for k, entries in regional.items()})

    def mix_for(self, model: str, region: str = "") -> tuple[tuple[Need, float], ...]:
        """The demand mix of a GPU model `pack` keeps room for (the region's, if it has one)."""
        if self.region_mix:
            mine = self._region_mix.get((region, model))  # type: ignore[attr-defined]
            if mine is not None:
                return mine
        mix = self._mix.get(model)  # type: ignore[attr-defined]
        if mix is None:
            mix = _normalised([(Need(g, model, 2 * g, 1024 * g, True), 1.0) for g in (1, 2, 3, 4)])
            self._mix[model] = mix  # type: ignore[attr-defined]
        return mix

    def for_host(self, host: HostState | HostShape) -> PlacementConfig:
        """This config with the host's overrides applied (the same object when it has none)."""
        if not host.overrides:
            return self
        variant = self.memo.variants.get(host.overrides)
        if variant is None:
            unknown = [k for k, _ in host.overrides if k not in OVERRIDABLE]
            if unknown:
                raise ValueError(f"a host cannot override {unknown[0]!r} (only {', '.join(OVERRIDABLE)})")
            overrides: dict[str, Any] = dict(host.overrides)
            variant = replace(self, **overrides)
            self.memo.variants[host.overrides] = variant
        return variant


def _normalised(entries: list[tuple[Need, float]]) -> tuple[tuple[Need, float], ...]:
    total = sum(w for _, w in entries)
    return tuple((need, w / total) for need, w in entries)


# --- what is answered -----------------------------------------------------------------------


@dataclass(frozen=True)
class NodeClaim:
    """What an instance holds on one NUMA node of its host."""

    node: int
    gpus: tuple[FreeGpu, ...]
    cores: tuple[tuple[int, ...], ...]  # whole cores held (an odd vCPU count leaves one thread idle)
    cpus: tuple[int, ...]  # the threads its vCPUs are pinned to, in guest vCPU order
    memory_mib: int
    hugepages: int  # 1 GiB pages backing memory_mib (0: normal memory)
    shared_vcpus: int  # unpinned vCPUs (standard plans)


@dataclass(frozen=True)
class Placement:
    host_id: int
    generation: int  # of the host state it was computed from: the store's compare-and-swap
    nodes: tuple[NodeClaim, ...]  # in guest cell order: cell i is nodes[i]
    cells: tuple[GuestCell, ...]
    guest_gpus: tuple[GuestGpu, ...]
    numa_unknown_gpus: tuple[FreeGpu, ...] = ()  # GPUs without NUMA node, behind cell 0

    @property
    def gpu_addresses(self) -> tuple[str, ...]:
        return tuple(g.address for g in self.guest_gpus)

    @property
    def vcpus(self) -> int:
        return sum(len(c.vcpus) for c in self.cells)

    @property
    def memory_mib(self) -> int:
        return sum(n.memory_mib for n in self.nodes)

    @property
    def vcpu_pins(self) -> tuple[int | None, ...]:
        """Host thread per guest vCPU; None where the vCPU floats over shared CPUs."""
        return tuple(pin for n in self.nodes for pin in (n.cpus or (None,) * n.shared_vcpus))


@dataclass(frozen=True)
class NoRoom:
    code: str  # stable, for programs: 'no-model', 'no-free-gpus', 'no-cores', ...
    reason: str  # a sentence a customer or operator can act on

    def __bool__(self) -> bool:
        return False


class StalePlacement(ValueError):
    """The host changed since the placement was computed (or it names resources that are gone)."""


# --- the decision ---------------------------------------------------------------------------


# `random` first tries this many hosts of its pool (`tried`), drawn uniformly, before it draws
# among the tied hosts themselves: with half the pool tied they are listed in 1 decision in
# 4 billion, with 1 in 7 in 1 in 139, with 1 in 50 in 1 in 2 (3.1 tries a decision on the
# bench's churn at 10,000 hosts).
DRAW_TRIES = 32


def pool_of(need: Need, rank: tuple) -> str | None:
    """Which hosts of the region `random` tries (`draw`) when the best rank is `rank`: for a GPU
    plan those with GPUs of its model installed (the model), for a plan without GPUs the
    CPU-only hosts ("") if it ranks one of them best (preference CPU_HOST), else every host
    (None); a pool that holds every host on that rank."""
    if need.gpus:
        return need.gpu_model
    return "" if rank[0] == CPU_HOST else None


def pools(shape: HostShape) -> tuple[str | None, ...]:
    """The pools (`pool_of`) a host of this shape is in: every host's, and those of its GPU
    models or, with none installed, the CPU-only hosts'."""
    return (None, *(model for model, _ in shape.installed)) if shape.installed else (None, "")


def tried(need: Need, rank: tuple, shape: HostShape) -> bool:
    """Whether `random` tries a host of this shape when the best rank is `rank` (`pool_of`)."""
    return pool_of(need, rank) in pools(shape)


def draw(
    config: PlacementConfig, pool: Sequence[int], tied: Callable[[int], bool], listed: Callable[[], Sequence[int]]
) -> int:
    """`random`'s pick among the hosts on the best rank, uniform: up to DRAW_TRIES draws of a
    host of the `pool` (the region's hosts it `tried`, ids in order), the first that is `tied`
    taken; if none is, one draw among the tied ones (`listed`, in id order). Each try is
    uniform over the pool, so a tried host that is tied is uniform over the tied ones, and so
    is the last draw. From the config's generator, so `place` and `fleet_index.Fleet` draw the
    same host from the same generator state; the index tells a host is tied from its shape,
    without listing the tied hosts (thousands, on a request's first call) unless every try
    missed."""
    for _ in range(DRAW_TRIES):
        host_id = pool[config.rng.randrange(len(pool))]
        if tied(host_id):
            return host_id
    ids = listed()
    return ids[config.rng.randrange(len(ids))]


def place(
    request: PlacementRequest, hosts: Iterable[HostState], config: PlacementConfig | None = None
) -> Placement | NoRoom:
    """The best placement of `request` on `hosts`, or why there is none.

    For a handful of hosts; `fleet_index.Fleet` gives the same answers over thousands.
    """
    config = config or PlacementConfig()
    hosts = [h for h in hosts if h.region == request.region]
    if request.host_id is not None:
        return place_pinned(request, hosts, config)
    need = request.need
    best = None
    tied: list[HostState] = []  # `random`: the hosts on the best rank, in id order
    hosts.sort(key=lambda h: h.id)
    for host in hosts:
        cfg = config.for_host(host)
        fit = best_fit(host.shape, need, cfg)
        if fit is None:
            continue
        key = (fit.rank, host.id, fit.tail)
        if best is None or fit.rank < best[0][0]:
            tied = []
        if best is None or key < best[0]:
            best = (key, host, fit)
        if fit.rank == best[0][0]:
            tied.append(host)
    if best is None:
        return no_room(request, Counter(h.shape for h in hosts), config)
    host, fit = best[1], best[2]
    if config.policy == "random":
        by_id = {h.id: h for h in tied}
        pool = [h.id for h in hosts if tried(need, fit.rank, h.shape)]
        host = by_id[draw(config, pool, by_id.__contains__, lambda: list(by_id))]
        fit = best_fit(host.shape, need, config.for_host(host)) or fit  # memoised: its shape was scored above
    return materialise(host, fit.assignment, request)


def place_pinned(request: PlacementRequest, hosts: Iterable[HostState], config: PlacementConfig) -> Placement | NoRoom:
    """An operator's pin: the given host (and GPUs), with every other rule still checked."""
    host = next((h for h in hosts if h.id == request.host_id), None)
    if host is None:
        return NoRoom("pin-unknown-host", f"Host {request.host_id} is not a host of region {request.region}.")
    if host.status != ACTIVE:
        return NoRoom(
            "pin-host-unavailable", f"Host {host.id} is {_status_words(host.status)} and takes no new instances."
        )
    cfg, need = config.for_host(host), request.need
    if not request.gpu_addresses:
        fit = best_fit(host.shape, need, cfg)
        if fit is not None:
            return materialise(host, fit.assignment, request)
        refusal = no_room(replace(request, host_id=None), {host.shape: 1}, config)
        return NoRoom(refusal.code, f"Host {host.id}: {refusal.reason}")

    chosen = _pinned_gpus(request, host, cfg)
    if isinstance(chosen, NoRoom):
        return chosen
    by_node = Counter(node for node, _ in chosen)
    unknown = by_node.pop(-1, 0)

    def same_gpus(a: Assignment) -> bool:
        return a.unknown_gpus == unknown and {p.node: p.gpus for p in a.parts if p.gpus} == dict(by_node)

    fit = choose(host.shape, need, cfg, accept=same_gpus)
    if fit is None:
        nodes = ", ".join(str(n) for n in sorted(by_node)) or "any node"
        what = " or ".join(sorted(lacking(host.shape, need, cfg))) or "room"
        return NoRoom(
            "pin-no-room",
            f"Host {host.id} lacks {what} on NUMA node(s) {nodes} for a {_need_words(request)} instance"
            " beside the pinned GPUs.",
        )
    picked: dict[int, list[FreeGpu]] = {}
    for node, gpu in chosen:
        picked.setdefault(node, []).append(gpu)
    return materialise(host, fit.assignment, request, picked)


def _pinned_gpus(
    request: PlacementRequest, host: HostState, cfg: PlacementConfig
) -> list[tuple[int, FreeGpu]] | NoRoom:
    if not request.gpus:
        return NoRoom("pin-gpus", "A plan without GPUs cannot be pinned to GPUs.")
    if len(set(request.gpu_addresses)) != request.gpus:
        return NoRoom(
            "pin-gpus", f"The plan takes {request.gpus} GPU(s); {len(set(request.gpu_addresses))} were pinned."
        )
    free = {g.address: (n.index, g) for n in host.nodes for g in n.gpus}
    free.update({g.address: (-1, g) for g in host.numa_unknown_gpus})
    claimed = {g.address for g in host.claimed_gpus}
    out_of_service = {g.address: g for g in host.unavailable_gpus}
    chosen = []
    for address in sorted(set(request.gpu_addresses)):
        if address in claimed:
            return NoRoom("pin-gpu-taken", f"GPU {address} on host {host.id} is held by another instance.")
        if address in out_of_service:
            gone = out_of_service[address]
            detail = f": {gone.detail}" if gone.detail else ""
            return NoRoom(
                "pin-gpu-unavailable", f"GPU {address} on host {host.id} is out of service ({gone.reason}){detail}."
            )
        if address not in free:
            return NoRoom("pin-gpu-unknown", f"Host {host.id} has no GPU {address}.")
        node, gpu = free[address]
        if gpu.model != request.gpu_model:
            return NoRoom(
                "pin-gpu-model", f"GPU {address} on host {host.id} is a {gpu.model}, not a {request.gpu_model}."
            )
        if node == -1 and cfg.numa_unknown_policy == "required":
            return NoRoom(
                "numa-unknown",
                f"GPU {address} on host {host.id} reports no NUMA node,"
                " and the NUMA policy 'required' keeps such GPUs out of service.",
            )
        chosen.append((node, gpu))
    if len({node == -1 for node, _ in chosen}) > 1:
        return NoRoom("pin-gpus", "GPUs without a NUMA node cannot be combined with NUMA-local GPUs in one instance.")
    return chosen


def materialise(
    host: HostState, a: Assignment, request: PlacementRequest, pinned: Mapping[int, list[FreeGpu]] | None = None
) -> Placement:
    """The concrete GPUs, threads and cells of an assignment on this host (lowest ids first)."""
    claims, cells = [], []
    guest_gpus: list[GuestGpu] = []
    vcpu, left = 0, request.vcpus
    for cell, part in enumerate(a.parts):
        node = host.node(part.node)
        if pinned is not None:
            gpus = tuple(pinned.get(part.node, ()))
        else:
            gpus = tuple(g for g in node.gpus if g.model == a.model)[: part.gpus]
        cores = node.free_cores[: part.cores]
        threads = tuple(t for core in cores for t in core)[:left] if request.dedicated else ()
        left -= len(threads)
        count = len(threads) if request.dedicated else part.shared_vcpus
        cells.append(GuestCell(cell, part.node, tuple(range(vcpu, vcpu + count)), part.memory_mib, part.hugepages > 0))
        vcpu += count
        guest_gpus.extend(GuestGpu(g.address, g.functions, cell) for g in gpus)
        claims.append(NodeClaim(part.node, gpus, cores, threads, part.memory_mib, part.hugepages, part.shared_vcpus))
    if pinned is not None:
        unknown = tuple(pinned.get(-1, ()))
    else:
        unknown = tuple(g for g in host.numa_unknown_gpus if g.model == a.model)[: a.unknown_gpus]
    guest_gpus.extend(GuestGpu(g.address, g.functions, 0) for g in unknown)
    return Placement(host.id, host.generation, tuple(claims), tuple(cells), tuple(guest_gpus), unknown)


# --- new states -----------------------------------------------------------------------------


def apply(host: HostState, placement: Placement, *, staff: bool = False) -> HostState:
    """The host once the placement is claimed; refuses a placement computed from another state."""
    if placement.host_id != host.id or placement.generation != host.generation:
        raise StalePlacement(
            f"placement for host {placement.host_id} gen {placement.generation}"
            f" does not match host {host.id} gen {host.generation}"
        )
    nodes = {n.index: n for n in host.nodes}
    claimed = list(host.claimed_gpus)
    for claim in placement.nodes:
        node = nodes[claim.node]
        taken = {g.address for g in claim.gpus}
        if not taken <= {g.address for g in node.gpus} or not set(claim.cores) <= set(node.free_cores):
            raise StalePlacement(f"host {host.id} node {node.index}: a GPU or core of the placement is not free")
        memory = node.free_memory_mib - (0 if claim.hugepages else claim.memory_mib)
        pages = node.free_hugepages - claim.hugepages
        if memory < 0 or pages < 0:
            raise StalePlacement(f"host {host.id} node {node.index}: not enough memory left")
        held = set(claim.cores)
        nodes[claim.node] = replace(
            node,
            gpus=tuple(g for g in node.gpus if g.address not in taken),
            free_cores=tuple(c for c in node.free_cores if c not in held),
            free_memory_mib=memory,
            free_hugepages=pages,
            shared_vcpus=node.shared_vcpus + claim.shared_vcpus,
        )
        claimed.extend(ClaimedGpu(g.address, g.model, claim.node, staff) for g in claim.gpus)
    unknown = {g.address for g in placement.numa_unknown_gpus}
    if not unknown <= {g.address for g in host.numa_unknown_gpus}:
        raise StalePlacement(f"host {host.id}: a GPU of the placement is not free")
    claimed.extend(ClaimedGpu(g.address, g.model, -1, staff) for g in placement.numa_unknown_gpus)
    return replace(
        host,
        generation=host.generation + 1,
        nodes=tuple(nodes[i] for i in sorted(nodes)),
        numa_unknown_gpus=tuple(g for g in host.numa_unknown_gpus if g.address not in unknown),
        claimed_gpus=tuple(sorted(claimed, key=lambda g: g.address)),
    )


def release(host: HostState, placement: Placement) -> HostState:
    """The host once an instance placed there gives its resources back (delete, resize)."""
    if placement.host_id != host.id:
        raise ValueError(f"placement is for host {placement.host_id}, not {host.id}")
    held = {g.address for g in host.claimed_gpus}
    if not set(placement.gpu_addresses) <= held:
        raise ValueError(f"host {host.id}: releasing GPUs that are not claimed")
    nodes = {n.index: n for n in host.nodes}
    for claim in placement.nodes:
        node = nodes[claim.node]
        if set(claim.cores) & set(node.free_cores):
            raise ValueError(f"host {host.id} node {node.index}: releasing cores that are free")
        nodes[claim.node] = replace(
            node,
            gpus=tuple(sorted(node.gpus + claim.gpus, key=lambda g: g.address)),
            free_cores=tuple(sorted(node.free_cores + claim.cores)),
            free_memory_mib=node.free_memory_mib + (0 if claim.hugepages else claim.memory_mib),
            free_hugepages=node.free_hugepages + claim.hugepages,
            shared_vcpus=node.shared_vcpus - claim.shared_vcpus,
        )
    gone = set(placement.gpu_addresses)
    return replace(
        host,
        generation=host.generation + 1,
        nodes=tuple(nodes[i] for i in sorted(nodes)),
        numa_unknown_gpus=tuple(sorted(host.numa_unknown_gpus + placement.numa_unknown_gpus, key=lambda g: g.address)),
        claimed_gpus=tuple(g for g in host.claimed_gpus if g.address not in gone),
    )


# --- why not --------------------------------------------------------------------------------


def _status_words(status: str) -> str:
    return {"maintenance": "in maintenance"}.get(status, status)


def _gib(mib: int) -> str:
    return f"{mib / 1024:g} GiB"


def _need_words(request: PlacementRequest) -> str:
    cpus = f"{request.vcpus}-vCPU" if request.dedicated else f"{request.vcpus}-shared-vCPU"
    gpus = f", {request.gpus}×{request.gpu_model}" if request.gpus else ""
    return f"{cpus}, {_gib(request.memory_mib)}{gpus}"


def no_room(request: PlacementRequest, shapes: Mapping[HostShape, int], config: PlacementConfig) -> NoRoom:
    """The most specific reason no host of the region takes the request.

    `shapes` counts the region's hosts per shape (identical hosts answer identically).
    """
    region, need = request.region, request.need
    if not shapes:
        return NoRoom("no-hosts", f"There are no hosts in region {region}.")
    if not need.gpus:
        active = [s for s in shapes if s.status == ACTIVE]
        if not active:
            return NoRoom("hosts-unavailable", f"Every host in {region} is {_statuses(shapes, shapes)}.")
        cpus = (
            f"{cores_for(need.vcpus, max(s.threads_per_core for s in active))} free cores"
            if need.dedicated
            else f"room for {need.vcpus} shared vCPUs"
        )
        what = _lacks_words(set().union(*(lacking(s, need, config.for_host(s)) for s in active)))
        return NoRoom(
            f"no-{what}",
            f"No NUMA node in {region} has {cpus} and {_gib(need.memory_mib)} of memory free ({what} ran out).",
        )

    model, wanted = need.gpu_model, need.gpus
    with_model = [s for s in shapes if count_of(s.installed, model)]
    if not with_model or model is None:  # no host has GPUs of no model
        return NoRoom("no-model", f"No host in {region} has {model} GPUs.")
    active = [s for s in with_model if s.status == ACTIVE]
    if not active:
        return NoRoom(
            "hosts-unavailable", f"Every host with {model} GPUs in {region} is {_statuses(with_model, shapes)}."
        )
    free = [(s, placeable_free(s, config.for_host(s).numa_unknown_policy).get(model, 0)) for s in active]
    most = max(n for _, n in free)
    if most < wanted:
        hidden = [
            s
            for s, n in free
            if n + count_of(s.unknown_gpus, model) >= wanted and config.for_host(s).numa_unknown_policy == "required"
        ]
        if hidden:
            return NoRoom(
                "numa-unknown",
                f"{wanted} free {model} GPUs in {region} are only on hosts"
                " whose firmware reports no NUMA node for them, "
                "and the NUMA policy 'required' keeps such GPUs out of service.",
            )
        total = sum(n * shapes[s] for s, n in free)
        scattered = f"; {total} are free across the region, but scattered" if total >= wanted else ""
        return NoRoom(
            "no-free-gpus",
            f"No host in {region} has {wanted} free {model} GPUs (at most {most} on one host{scattered}).",
        )
    what = _lacks_words(set().union(*(lacking(s, need, config.for_host(s)) for s, n in free if n >= wanted)))
    return NoRoom(
        f"no-{what}",
        f"{model} GPUs are free in {region}, but no host has {need.vcpus} vCPUs (whole cores) and "
        f"{_gib(need.memory_mib)} of memory free on the NUMA nodes beside {wanted} of them ({what} ran out).",
    )


def _lacks_words(missing: set[str]) -> str:
    if missing == {"cores"}:
        return "cores"
    if missing == {"memory"}:
        return "memory"
    return "cores-or-memory"


def _statuses(shapes: Iterable[HostShape], hosts_per_shape: Mapping[HostShape, int]) -> str:
    counts: Counter[str] = Counter()
    for s in shapes:
        counts[s.status] += hosts_per_shape[s]
    words = [f"{n} {_status_words(status)}" for status, n in sorted(counts.items()) if status != ACTIVE]
    return "draining, in maintenance or down (" + ", ".join(words) + ")"

