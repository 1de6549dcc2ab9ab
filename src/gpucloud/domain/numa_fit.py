"""How one request fits one host, worked out on the host's compact free *shape*.

Two hosts whose free resources have the same shape (per NUMA node: free GPUs per model, free
cores, memory, hugepages and shared vCPUs) answer every request the same way, so every
answer here is memoised per shape. That is what makes a fleet of 10,000 hosts cheap: a
decision looks at one shape per bucket of identical hosts, and capacity fills each shape once.

GPUs are never enumerated one by one: a host offers *counts* of free GPUs per NUMA node, and
the candidates are the ways of taking N GPUs from as few nodes as possible (a handful, even
on an 8-GPU host with four nodes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from itertools import combinations
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from gpucloud.domain.placement import PlacementConfig

ACTIVE = "active"
# Under `preferred`, GPUs whose NUMA node is unknown rank after every NUMA-local fit.
FALLBACK_SPAN = 1000
MIB_PER_PAGE = 1024
# In pack's fragmentation measure, a GPU usable only by a NUMA-spanning instance is half idle.
# In bench/placement.py this halves the multi-GPU instances split over nodes (5.7 % -> 2.7 %)
# at no cost in GPUs refused.
SPAN_PENALTY = 0.5
# Memo entries kept per config before the memo starts over (bounded memory in long runs).
MEMO_LIMIT = 400_000
# ... of fragmentation's parts (`_fragments`): an entry holds each plan's part per node, ~2.3 KB
# on a 4-node host with the catalog's GPU plans (a float was ~0.1 KB), so MEMO_LIMIT of them
# came near 1 GB. 20,000 is ~50 MB: ten times the live shapes of 10,000 GPU hosts after
# 40,000 churn steps (2,324), so the memo starts over about once per 350,000 steps.
FRAG_MEMO_LIMIT = 20_000


class Need(NamedTuple):
    """What a request needs, whatever its plan is called."""

    gpus: int
    gpu_model: str | None
    vcpus: int
    memory_mib: int
    dedicated: bool


class NodeShape(NamedTuple):
    index: int  # type: ignore[assignment]  # the field shadows tuple.index(), which nothing here calls
    gpus: tuple[tuple[str, int], ...]  # free placeable GPUs per model, sorted, counts > 0
    cores: int  # free whole cores
    memory_mib: int  # free normal memory
    hugepages: int  # free 1 GiB pages
    total_hugepages: int  # > 0: guests on this node are backed by 1 GiB pages
    shared_vcpus: int
    distances: tuple[int, ...]


class HostShape(NamedTuple):
    region: str
    status: str
    threads_per_core: int
    nodes: tuple[NodeShape, ...]  # sorted by index
    unknown_gpus: tuple[tuple[str, int], ...]  # free GPUs whose NUMA node is unknown, per model
    installed: tuple[tuple[str, int], ...]  # every GPU of the host per model, for "no room" reasons
    overrides: tuple[tuple[str, object], ...]


class Part(NamedTuple):
    """What an instance takes from one NUMA node (one guest cell)."""

    node: int
    gpus: int
    cores: int
    memory_mib: int  # the guest cell's memory (whole GiB when backed by hugepages)
    hugepages: int
    shared_vcpus: int


class Assignment(NamedTuple):
    model: str | None
    parts: tuple[Part, ...]
    unknown_gpus: int = 0  # GPUs taken from the unknown-NUMA pool, behind the first cell


class Fit(NamedTuple):
    """The best assignment on one host. `rank` orders hosts; `tail` breaks ties inside a host."""

    rank: tuple
    tail: tuple
    assignment: Assignment


class FitMemo:
    """Per-config memo of shape answers, and the derived configs (per-host overrides)."""

    def __init__(self) -> None:
        self.best: dict = {}
        self.fill: dict = {}
        self.frag: dict = {}
        self.frag_total: dict = {}
        self.lacking: dict = {}
        self.variants: dict = {}

    def trim(self) -> None:
        if len(self.frag) > FRAG_MEMO_LIMIT or max(
            len(self.best), len(self.fill), len(self.frag_total), len(self.lacking)
        ) > MEMO_LIMIT:
            self.best.clear()
            self.fill.clear()
            self.frag.clear()
            self.frag_total.clear()
            self.lacking.clear()


# --- small arithmetic ---------------------------------------------------------------------


def shared_threads(vcpus: int, ratio: float) -> int:
    """Threads a node keeps free for its shared vCPUs: ceil(vcpus / ratio)."""
    return int(-(-vcpus // ratio))


def cores_for(vcpus: int, threads_per_core: int) -> int:
    return -(-vcpus // threads_per_core)


def count_of(pairs: tuple[tuple[str, int], ...], model: str | None) -> int:
    for m, n in pairs:
        if m == model:
            return n
    return 0


def usable_cores(node: NodeShape, threads_per_core: int, ratio: float) -> int:
    """Free cores a pinned claim may take while the node's shared vCPUs keep their threads."""
    spare = node.cores * threads_per_core - shared_threads(node.shared_vcpus, ratio)
    return max(0, spare // threads_per_core)


def memory_part(node: NodeShape, memory_mib: int) -> tuple[int, int] | None:
    """(cell memory, hugepages) a cell of `memory_mib` takes from the node; None if it does not fit."""
    if node.total_hugepages:
        pages = -(-memory_mib // MIB_PER_PAGE)
        return (pages * MIB_PER_PAGE, pages) if pages <= node.hugepages else None
    return (memory_mib, 0) if memory_mib <= node.memory_mib else None


@lru_cache(maxsize=4096)
def core_shares(total: int, weights: tuple[int, ...]) -> tuple[int, ...] | None:
    """`total` cores split in proportion to `weights` (largest remainder), at least one each
    (memoised: a first ranking splits one plan's cores the same way on every host, ~2 us each)."""
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    for i, share in enumerate(shares):
        if share == 0:
            donor = max(range(len(shares)), key=lambda j: (shares[j], -j))
            if shares[donor] <= 1:
                return None
            shares[donor] -= 1
            shares[i] = 1
    return tuple(shares)


def memory_shares(total: int, weights: tuple[int, ...]) -> list[int]:
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    shares[0] += total - sum(shares)
    return shares


def compositions(total: int, caps: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Ways to write `total` as len(caps) positive parts, part i <= caps[i]; bigger first parts first."""
    if len(caps) == 1:
        if 1 <= total <= caps[0]:
            yield (total,)
        return
    rest_min = len(caps) - 1
    for first in range(min(caps[0], total - rest_min), 0, -1):
        for rest in compositions(total - first, caps[1:]):
            yield (first, *rest)


def span_distance(nodes: tuple[NodeShape, ...]) -> int:
    """Sum of SLIT distances between the nodes a placement spans (0 for one node)."""
    total = 0
    for a, b in combinations(nodes, 2):
        total += pair_distance(a, b)
    return total


def pair_distance(a: NodeShape, b: NodeShape) -> int:
    """The SLIT distance from node `a` to node `b` (0 where a's table does not reach b)."""
    return a.distances[b.index] if b.index < len(a.distances) else 0


def placeable_free(shape: HostShape, numa_unknown_policy: str) -> dict[str, int]:
    """Free GPUs per model that placement may hand out on this host."""
    free: dict[str, int] = {}
    for node in shape.nodes:
        for model, n in node.gpus:
            free[model] = free.get(model, 0) + n
    if numa_unknown_policy != "required":
        for model, n in shape.unknown_gpus:
            free[model] = free.get(model, 0) + n
    return free


# --- candidates ---------------------------------------------------------------------------


def _gpu_parts(
    nodes: tuple[NodeShape, ...], counts: tuple[int, ...], need: Need, tpc: int, ratio: float
) -> tuple[Part, ...] | set[str]:
    """The cells of a GPU instance taking `counts` GPUs from `nodes`, or what is lacking."""
    cores = core_shares(cores_for(need.vcpus, tpc), counts)
    if cores is None:
        return {"cores"}
    parts, missing = [], set()
    for node, gpus, c, mem in zip(nodes, counts, cores, memory_shares(need.memory_mib, counts), strict=False):
        if c > usable_cores(node, tpc, ratio):
            missing.add("cores")
        taken = memory_part(node, mem)
        if taken is None:
            missing.add("memory")
        elif not missing:
            parts.append(Part(node.index, gpus, c, taken[0], taken[1], 0))
    return missing or tuple(parts)


def single_part(node: NodeShape, need: Need, tpc: int, ratio: float) -> Part | set[str]:
    """The one cell of an instance whose CPUs and memory all come from `node`, or what is lacking."""
    missing = set()
    if need.dedicated:
        cores = cores_for(need.vcpus, tpc)
        if cores > usable_cores(node, tpc, ratio):
            missing.add("cores")
    else:
        cores = 0
        if shared_threads(node.shared_vcpus + need.vcpus, ratio) > node.cores * tpc:
            missing.add("cores")
    taken = memory_part(node, need.memory_mib)
    if taken is None:
        missing.add("memory")
    if missing or taken is None:
        return missing
    return Part(node.index, 0, cores, taken[0], taken[1], 0 if need.dedicated else need.vcpus)


# Where a plan without GPUs goes, best first: a CPU-only host; then, as overflow, a GPU host
# where it leaves every GPU plan as sellable as before (a node without free GPUs first); a GPU
# host where it costs GPU sales only when nothing else has room.
CPU_HOST, GPU_HOST_NODE_WITHOUT_GPUS, GPU_HOST_NODE_WITH_GPUS, GPU_HOST_COSTS_SALES = 0, 1, 2, 3


def keeps_gpu_sales(shape: HostShape, a: Assignment, cfg: PlacementConfig) -> bool:
    """Whether the host, once `a` (an instance without GPUs) is claimed, still takes as many
    instances of every GPU plan of the demand mix as before (`fill_count`, the sellable figure).

    Without filling when `a` takes from one node without free GPUs and no GPU without a NUMA
    node is placed: no GPU plan's fill takes anything from that node (`_same_fill`)."""
    free = placeable_free(shape, cfg.numa_unknown_policy)
    if not free:
        return True
    if len(a.parts) == 1 and not places_unknown_gpus(shape, cfg) and not next(
            n for n in shape.nodes if n.index == a.parts[0].node).gpus:
        return True
    later = after(shape, a)
    return all(_same_fill(shape, later, a, gpu_need, cfg) or fill_count(later, gpu_need, cfg) >= fill_count(
        shape, gpu_need, cfg) for model in free for gpu_need, _ in cfg.mix_for(model, shape.region))


def places_unknown_gpus(shape: HostShape, cfg: PlacementConfig) -> bool:
    """Whether placement hands out GPUs of this host whose NUMA node is unknown (they may take
    any node's cores and memory, so no node is left out of a GPU plan's fill)."""
    return bool(shape.unknown_gpus) and cfg.numa_unknown_policy != "required"


def _same_fill(shape: HostShape, later: HostShape, a: Assignment, gpu_need: Need, cfg: PlacementConfig) -> bool:
    """A sufficient condition for `fill_count` to be equal on both shapes, without filling:
    the one node `a` takes from holds as many single-node instances of `gpu_need` as before,
    and they take every GPU of its model there. Then that node's cores and memory play no part
    in the rest of the fill (instances spanning nodes take GPUs, cores and memory only from
    nodes with GPUs left), so both fills place the same instances. Only on hosts of one GPU
    model whose unknown-NUMA GPUs placement does not use: other models' GPUs on that node
    would enter pack's cost, and unknown-NUMA GPUs may take any node's cores and memory."""
    if len(a.parts) != 1 or len(shape.installed) != 1:
        return False
    if places_unknown_gpus(shape, cfg):
        return False
    index = a.parts[0].node
    node = next(n for n in shape.nodes if n.index == index)
    now = next(n for n in later.nodes if n.index == index)
    tpc, ratio = shape.threads_per_core, cfg.shared_cpu_overcommit
    k = _node_capacity(node, gpu_need, tpc, ratio)
    return count_of(node.gpus, gpu_need.gpu_model) == k * gpu_need.gpus and _node_capacity(
        now, gpu_need, tpc, ratio) == k


def candidates(
    shape: HostShape, need: Need, cfg: PlacementConfig, *, every_span: bool = False, lacking: set[str] | None = None
) -> Iterator[tuple[int, int, int, Assignment]]:
    """(preference, span, distance, assignment) for every way the request fits the host.

    Only the fewest-node spans are produced unless `every_span`, and for a plan without GPUs on a
    GPU host, the nodes with free GPUs not once a node without them keeps every GPU plan as
    sellable (they rank after it, and each costs `keeps_gpu_sales` fills); what blocked the
    others is added to `lacking` when given (for "no room" reasons).
    """
    tpc, ratio = shape.threads_per_core, cfg.shared_cpu_overcommit
    if not need.gpus:
        gpu_host = bool(shape.installed)
        overflow = False  # a node without free GPUs took it as GPU_HOST_NODE_WITHOUT_GPUS
        for node in sorted(shape.nodes, key=lambda n: bool(n.gpus)) if gpu_host else shape.nodes:
            if overflow and node.gpus and not every_span and lacking is None:
                return
            part = single_part(node, need, tpc, ratio)
            if isinstance(part, set):
                if lacking is not None:
                    lacking |= part
                continue
            a = Assignment(None, (part,))
            if not gpu_host:
                preference = CPU_HOST
            elif keeps_gpu_sales(shape, a, cfg):
                preference = GPU_HOST_NODE_WITH_GPUS if node.gpus else GPU_HOST_NODE_WITHOUT_GPUS
                overflow = overflow or not node.gpus
            else:
                preference = GPU_HOST_COSTS_SALES
            yield preference, 1, 0, a
        return

    model, wanted = need.gpu_model, need.gpus
    local = tuple((n, count_of(n.gpus, model)) for n in shape.nodes)
    local = tuple((n, c) for n, c in local if c)
    found_local = False
    for span in range(1, min(wanted, len(local)) + 1):
        for combo in combinations(local, span):
            if sum(c for _, c in combo) < wanted:
                continue
            nodes = tuple(n for n, _ in combo)
            distance = span_distance(nodes)
            for counts in compositions(wanted, tuple(c for _, c in combo)):
                parts = _gpu_parts(nodes, counts, need, tpc, ratio)
                if isinstance(parts, set):
                    if lacking is not None:
                        lacking |= parts
                    continue
                found_local = True
                yield 0, span, distance, Assignment(model, parts)
        if found_local and not every_span:
            break

    policy = cfg.numa_unknown_policy
    if policy == "required" or count_of(shape.unknown_gpus, model) < wanted:
        return
    if policy == "preferred" and found_local and not every_span:
        return
    span = 1 if policy == "legacy" else FALLBACK_SPAN
    for node in shape.nodes:
        part = single_part(node, need, tpc, ratio)
        if isinstance(part, set):
            if lacking is not None:
                lacking |= part
            continue
        yield 0, span, 0, Assignment(model, (part,), wanted)


def after(shape: HostShape, a: Assignment) -> HostShape:
    """The host's shape once the assignment is claimed (mirrors `placement.apply`)."""
    nodes = list(shape.nodes)
    for part in a.parts:
        i = part.node
        if i >= len(nodes) or nodes[i].index != i:
            i = next(k for k, n in enumerate(nodes) if n.index == part.node)
        nodes[i] = _claimed(nodes[i], a.model, part)
    unknown = _minus(shape.unknown_gpus, a.model, a.unknown_gpus) if a.unknown_gpus else shape.unknown_gpus
    return HostShape(
        shape.region, shape.status, shape.threads_per_core, tuple(nodes), unknown, shape.installed, shape.overrides
    )


def _claimed(n: NodeShape, model: str | None, part: Part) -> NodeShape:
    """One node once a claim takes `part` (of GPUs of `model`) from it."""
    return NodeShape(
        n.index,
        _minus(n.gpus, model, part.gpus) if part.gpus else n.gpus,
        n.cores - part.cores,
        n.memory_mib - (0 if part.hugepages else part.memory_mib),
        n.hugepages - part.hugepages,
        n.total_hugepages,
        n.shared_vcpus + part.shared_vcpus,
        n.distances,
    )


def _minus(pairs: tuple[tuple[str, int], ...], model: str | None, n: int) -> tuple[tuple[str, int], ...]:
    return tuple((m, c - n if m == model else c) for m, c in pairs if not (m == model and c == n))


def tail_of(a: Assignment) -> tuple:
    """Inside one host: lower node indices first, then more GPUs from the first node."""
    return (tuple(p.node for p in a.parts), tuple(-p.gpus for p in a.parts), a.unknown_gpus)


# --- policies -----------------------------------------------------------------------------


def _scorer(shape: HostShape, need: Need, cfg: PlacementConfig) -> Callable[[Assignment], tuple]:
    """The policy's cost of an assignment on this host (lower is better), host id aside."""
    # `numa_floors.cores_floor` bounds pack's and spread's costs on GPU-less hosts, its
    # `gpu_floor` and `rank_floor` theirs on GPU hosts for GPU plans: change them together
    if cfg.policy in ("first-fit", "random"):
        return lambda a: ()
    free = placeable_free(shape, cfg.numa_unknown_policy)
    cores = sum(n.cores for n in shape.nodes)
    node_cores = {n.index: n.cores for n in shape.nodes}
    if cfg.policy == "spread":
        mine = free.get(need.gpu_model, 0) if need.gpus and need.gpu_model is not None else 0
        return lambda a: (-mine, -cores, -sum(node_cores[p.node] for p in a.parts))

    # pack: the smallest rise in expected fragmentation, then the fullest host (best fit)
    free_gpus = sum(free.values())

    def fullness(a: Assignment) -> tuple:
        taken = sum(p.gpus for p in a.parts) + a.unknown_gpus
        return (
            free_gpus - taken,
            cores - sum(p.cores for p in a.parts),
            sum(node_cores[p.node] - p.cores for p in a.parts),
        )

    if not free_gpus:  # nothing to strand on this host
        return lambda a: (0.0, *fullness(a))
    before, models = _fragments(shape, cfg)
    totals = cfg.memo.frag_total

    def rise(a: Assignment) -> float:
        # kept per claimed shape: pack scores the same claims again and again as hosts fill alike,
        # and the index floors the claimed host with its new shape's total (`gpu_floor`)
        later = after(shape, a)
        total = totals.get(later)
        if total is None:
            cfg.memo.trim()
            total = totals[later] = _fragmentation_after(shape, later, models, a, cfg)
        return round(total - before, 9)

    return lambda a: (rise(a), *fullness(a))


def may_fit(shape: HostShape, need: Need) -> bool:
    """A cheap necessary condition (no hashing): an active host with, for a GPU plan, as many
    free GPUs of its model on its NUMA nodes together or without a node (`candidates` takes
    them from one or the other): an index skips the others without scoring them."""
    if shape.status != ACTIVE:
        return False
    if not need.gpus:
        return True
    model, local = need.gpu_model, 0
    for node in shape.nodes:
        local += count_of(node.gpus, model)
    return local >= need.gpus or count_of(shape.unknown_gpus, model) >= need.gpus


def fragmentation(shape: HostShape, cfg: PlacementConfig) -> float:
    """Expected idle GPUs of this host for the demand mix (FGD, USENIX ATC '23, for whole GPUs).

    For each plan that sells (weight w, g GPUs): the free GPUs of its model that would stay
    idle if the host were filled with that plan alone, weighted by w. A GPU that only an
    instance spanning NUMA nodes could use counts as half idle (SPAN_PENALTY), so breaking up a
    node's GPUs costs something even while a spanning placement would still fit. The
    candidate that raises this least leaves the host best able to take what sells. Never
    below 0 (instances use distinct GPUs), 0 without free GPUs: pack's `numa_floors.gpu_floor`.
    """
    hit = cfg.memo.frag.get(shape)
    if hit is not None:
        return hit[0]
    memo = cfg.memo.frag_total
    total = memo.get(shape)
    if total is None:
        cfg.memo.trim()  # pack's index asks it of every new shape (`gpu_floor`), never through `best_fit`
        total = memo[shape] = _fragment_sum(shape, cfg, None)
    return total


def _fragments(shape: HostShape, cfg: PlacementConfig) -> tuple[float, tuple]:
    """`fragmentation`, and the parts it sums: per GPU model with free GPUs (and their count), per
    plan of its mix (`mix_for`'s order) each node's part of its fill (`_node_usable`) and their
    sums, kept per shape so that a claim's fragmentation recomputes only the nodes it takes from
    (`_fragmentation_after`). Numbers and strings alone, which the garbage collector stops
    tracking: an entry per shape pack scores, until the memo starts over (`FitMemo.trim`)."""
    memo = cfg.memo.frag
    hit = memo.get(shape)
    if hit is not None:
        return hit
    cfg.memo.trim()
    models: list = []
    memo[shape] = hit = (_fragment_sum(shape, cfg, models), tuple(models))
    return hit


def _fragment_sum(shape: HostShape, cfg: PlacementConfig, models: list | None) -> float:
    """`fragmentation` computed, appending its parts to `models` unless None (`_fragments`): one
    sum for both, so the total alone and the total with its parts are the same float. The
    index floors every new shape with the total alone (`numa_floors.gpu_floor`); only pack's
    scoring needs the parts (~2.3 KB a shape, most never scored)."""
    total = 0.0
    if shape.status == ACTIVE:
        tpc, ratio, policy = shape.threads_per_core, cfg.shared_cpu_overcommit, cfg.numa_unknown_policy
        for model, free in placeable_free(shape, policy).items():
            unknown = count_of(shape.unknown_gpus, model) if policy != "required" else 0
            plans = []
            for plan, weight in cfg.mix_for(model, shape.region):
                nodes = [_node_usable(node, plan, tpc, ratio) for node in shape.nodes]
                local = gpus = cores = mib = 0
                for k, left, spare_cores, spare_mib in nodes:
                    local, gpus, cores, mib = local + k, gpus + left, cores + spare_cores, mib + spare_mib
                total += _idle(weight, plan, free, local, _spanning(plan, tpc, gpus + unknown, cores, mib))
                if models is not None:
                    plans.append((tuple(nodes), (local, gpus, cores, mib)))
            if models is not None:
                models.append((model, free, tuple(plans)))
    return total


def _fragmentation_after(
    shape: HostShape, later: HostShape, models: tuple, a: Assignment, cfg: PlacementConfig
) -> float:
    """`fragmentation(later, cfg)` of `later`, the claimed shape (`after(shape, a)`: the caller
    has it, its memo key), from the shape's parts (`models`, `_fragments`), each plan's fill
    recomputed only on the nodes `a` takes from (in their places: `after`): every other node's
    part is unchanged, but what is left for instances spanning nodes is summed over all nodes
    again (GPUs the claim leaves on its node may span with another node's spare cores and
    memory), and the models and their free GPUs are read from the claimed shape in
    `placeable_free`'s order, so the sum is the same float."""
    if not models:  # not active, or no free GPUs (nor any once claimed)
        return 0.0
    tpc, ratio, policy = shape.threads_per_core, cfg.shared_cpu_overcommit, cfg.numa_unknown_policy
    taken = {part.node for part in a.parts}
    claimed = [(i, node) for i, node in enumerate(later.nodes) if node.index in taken]
    unknown = later.unknown_gpus
    if len(models) == 1:  # one model: its GPUs less those taken, none left or in the same order
        model, free, _ = models[0]
        free -= sum(part.gpus for part in a.parts) + a.unknown_gpus if a.model == model else 0
        free_after = {model: free} if free else {}
    else:
        free_after = placeable_free(later, policy)
    parts = {model: plans for model, _, plans in models}
    total = 0.0
    for model, free in free_after.items():
        spare_unknown = count_of(unknown, model) if policy != "required" else 0
        mix = cfg.mix_for(model, shape.region)
        for (plan, weight), (before, (local, gpus, cores, mib)) in zip(mix, parts[model], strict=True):
            for i, node in claimed:
                k, left, spare_cores, spare_mib = _node_usable(node, plan, tpc, ratio)
                was = before[i]
                local, gpus = local + k - was[0], gpus + left - was[1]
                cores, mib = cores + spare_cores - was[2], mib + spare_mib - was[3]
            total += _idle(weight, plan, free, local, _spanning(plan, tpc, gpus + spare_unknown, cores, mib))
    return total


def _idle(weight: float, plan: Need, free: int, local: int, spanning: int) -> float:
    """A plan's weighted idle GPUs in `fragmentation`: free GPUs less those its instances on one
    node use, less half (SPAN_PENALTY) those the instances spanning nodes would."""
    return weight * (free - plan.gpus * (local + (1 - SPAN_PENALTY) * spanning))


def _node_usable(node: NodeShape, need: Need, tpc: int, ratio: float) -> tuple[int, int, int, int]:
    """One node's part of a fill with `need` alone: (instances on it alone, GPUs of the model it
    leaves, and beside them, if any, its spare cores and memory for instances spanning nodes).

    The first figure is exact (see `fill_count`); the others pool, summed over the nodes
    (`_spanning`), what the nodes have left, without simulating: a score needs to be cheap,
    not exact.
    """
    k = _node_capacity(node, need, tpc, ratio)
    left = count_of(node.gpus, need.gpu_model) - k * need.gpus
    if not left:
        return k, 0, 0, 0
    pages = -(-need.memory_mib // MIB_PER_PAGE)
    if node.total_hugepages:
        spare_mib = (node.hugepages - k * pages) * MIB_PER_PAGE
    else:
        spare_mib = node.memory_mib - k * need.memory_mib
    return k, left, usable_cores(node, tpc, ratio) - k * cores_for(need.vcpus, tpc), spare_mib


def _spanning(need: Need, tpc: int, gpus: int, spare_cores: int, spare_mib: int) -> int:
    """An estimate of the instances of `need` spanning nodes from what the nodes leave
    (`_node_usable`'s sums, GPUs without a NUMA node beside them)."""
    if gpus < need.gpus:
        return 0
    return max(min(gpus // need.gpus, spare_cores // cores_for(need.vcpus, tpc), spare_mib // need.memory_mib), 0)


# --- the answers --------------------------------------------------------------------------


def best_fit(shape: HostShape, need: Need, cfg: PlacementConfig) -> Fit | None:
    """The policy's best assignment of `need` on this host, or None when it does not fit."""
    if not may_fit(shape, need):
        return None
    key = (shape, need)
    memo = cfg.memo.best
    try:
        return memo[key]
    except KeyError:
        pass
    cfg.memo.trim()
    fit = memo[key] = choose(shape, need, cfg)
    return fit


def choose(
    shape: HostShape, need: Need, cfg: PlacementConfig, accept: Callable[[Assignment], bool] | None = None
) -> Fit | None:
    """Best candidate by (preference, span, distance, policy cost, tail); `accept` filters (pins)."""
    score = _scorer(shape, need, cfg)
    best: Fit | None = None
    for preference, span, distance, a in candidates(shape, need, cfg, every_span=accept is not None):
        if accept is not None and not accept(a):
            continue
        head = (preference, span, distance)
        if best is not None and head > best.rank[:3]:
            continue
        fit = Fit((*head, score(a)), tail_of(a), a)
        if best is None or (fit.rank, fit.tail) < (best.rank, best.tail):
            best = fit
    return best


def fill_count(shape: HostShape, need: Need, cfg: PlacementConfig) -> int:
    """How many instances of `need` this host takes, placed one after another as `place` would.

    Exact for every policy: while any node can take a whole instance, `place` puts one on a
    single node (span 1 ranks first), and single-node placements on one node never change
    another, so each node ends that phase holding as many as it can on its own, whatever the
    order. Only what follows (instances spanning nodes) is simulated step by step. Under
    `legacy`, unknown-NUMA GPUs compete in the first phase, so it is simulated too.
    """
    memo = cfg.memo.fill
    key = (shape, need)
    hit = memo.get(key)
    if hit is not None:
        return hit
    tpc, ratio = shape.threads_per_core, cfg.shared_cpu_overcommit
    if shape.status != ACTIVE:
        count = 0
    elif not need.gpus:
        count = sum(_node_capacity(n, need, tpc, ratio) for n in shape.nodes)
    elif cfg.numa_unknown_policy == "legacy" and count_of(shape.unknown_gpus, need.gpu_model) >= need.gpus:
        count = _simulate(shape, need, cfg)
    else:
        local, nodes = 0, []
        for node in shape.nodes:
            k = _node_capacity(node, need, tpc, ratio)
            local += k
            nodes.append(_minus_instances(node, need, k, tpc) if k else node)
        count = local + _simulate(shape._replace(nodes=tuple(nodes)), need, cfg)
    memo[key] = count
    return count


def _simulate(shape: HostShape, need: Need, cfg: PlacementConfig) -> int:
    """Fill by placing one instance after another (memoising every state passed)."""
    memo = cfg.memo.fill
    path = []
    state = shape
    while (done := memo.get((state, need))) is None:
        fit = best_fit(state, need, cfg)
        if fit is None:
            done = memo[(state, need)] = 0
            break
        path.append((state, need))
        state = after(state, fit.assignment)
    for placed, key in enumerate(reversed(path), start=done + 1):
        memo[key] = placed
    return done + len(path)


def _node_capacity(node: NodeShape, need: Need, tpc: int, ratio: float) -> int:
    """How many instances of `need` one node takes on its own (GPUs, cores and memory all local)."""
    if node.total_hugepages:
        by_memory = node.hugepages // -(-need.memory_mib // MIB_PER_PAGE)
    else:
        by_memory = node.memory_mib // need.memory_mib
    if need.dedicated:
        by_cpu = usable_cores(node, tpc, ratio) // cores_for(need.vcpus, tpc)
    else:
        threads = node.cores * tpc
        by_cpu = max(int((threads * ratio - node.shared_vcpus) // need.vcpus), 0)
        while by_cpu and shared_threads(node.shared_vcpus + by_cpu * need.vcpus, ratio) > threads:
            by_cpu -= 1
        while shared_threads(node.shared_vcpus + (by_cpu + 1) * need.vcpus, ratio) <= threads:
            by_cpu += 1
    by_gpus = count_of(node.gpus, need.gpu_model) // need.gpus if need.gpus else by_memory
    return min(by_memory, by_cpu, by_gpus)


def _minus_instances(node: NodeShape, need: Need, k: int, tpc: int) -> NodeShape:
    """The node once it holds k more single-node instances of a dedicated GPU `need`."""
    cell_memory, pages = memory_part(node, need.memory_mib) or (0, 0)
    return node._replace(
        gpus=_minus(node.gpus, need.gpu_model, k * need.gpus),
        cores=node.cores - k * cores_for(need.vcpus, tpc),
        memory_mib=node.memory_mib - (0 if pages else k * cell_memory),
        hugepages=node.hugepages - k * pages,
    )


def lacking(shape: HostShape, need: Need, cfg: PlacementConfig) -> set[str]:
    """What stops the request on this host although it has the GPUs: 'cores' and/or 'memory'."""
    key = (shape, need)
    missing = cfg.memo.lacking.get(key)
    if missing is None:
        missing = set()
        for _ in candidates(shape, need, cfg, every_span=True, lacking=missing):
            pass
        cfg.memo.lacking[key] = missing = frozenset(missing)
    return set(missing)
