"""Lower bounds of a host's rank, and ranks told by the rules, without scoring: what lets an
index over a fleet skip hosts.

`numa_fit.choose` ranks a host by scoring every candidate of the request on it; at 10,000 hosts
that is too slow to do for each. A *floor* here promises never to be above the rank `choose`
would give the host (`rank_floor`, `gpu_floor`, `cores_floor`, ...), and a *rules rank*
(`rules_rank`, `cores_rank`) equals that rank wherever it answers (None where only `choose`
knows). `fleet_index.Fleet` keeps hosts sorted on their floors (`gpu_floor`, `cores_order`),
reads them as the floors rise and leaves a host unscored while its floor is above the best rank
found; hosts no node has room on (`cell_rooms`, `node_takes`, `cell_memory_room`) it skips.
Every answer must stay in step with `numa_fit`'s candidates and policy costs (`_scorer`).
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

from gpucloud.domain.numa_fit import (
    CPU_HOST,
    FALLBACK_SPAN,
    GPU_HOST_NODE_WITH_GPUS,
    GPU_HOST_NODE_WITHOUT_GPUS,
    MIB_PER_PAGE,
    Assignment,
    HostShape,
    Need,
    NodeShape,
    Part,
    compositions,
    core_shares,
    cores_for,
    count_of,
    fragmentation,
    keeps_gpu_sales,
    memory_shares,
    pair_distance,
    placeable_free,
    places_unknown_gpus,
    shared_threads,
    single_part,
    span_distance,
    usable_cores,
)

if TYPE_CHECKING:
    from gpucloud.domain.placement import PlacementConfig


def rank_floor(
    shape: HostShape, need: Need, cfg: PlacementConfig, rooms: tuple[tuple[int, int, int], ...] | None = None,
    costs: tuple | None = None,
) -> tuple:
    """A lower bound of the first fields of this host's rank, without scoring anything.

    For GPU plans `gpu_floor` with the fewest nodes holding enough GPUs and across nodes the
    least distance between so many nodes holding enough; with its `cell_rooms` (`rooms`), the
    span and distance `rules_rank` finds on 1 or 2 nodes, else at least 3 nodes; then the plan's
    own costs' bounds (`plan_floor`; `costs`: those, where the caller has them); for plans
    without GPUs, (CPU_HOST,) on a CPU-only host and `cores_floor` on a GPU host: an index may
    leave a host unscored while its floor is above the best rank it holds. (On a CPU-only host
    a score costs a few µs, less than the decisions that would later score dozens of hosts tied
    on cores at once; on a GPU host it costs `keeps_gpu_sales`' fills.)
    """
    if not need.gpus:
        return (CPU_HOST,) if not shape.installed else cores_floor(shape, need, cfg)
    if costs is None:
        costs = _plan_costs(shape, need, cfg)
    counts = sorted((count_of(n.gpus, need.gpu_model) for n in shape.nodes), reverse=True)
    total, span = 0, FALLBACK_SPAN
    for k, c in enumerate(counts, start=1):
        total += c
        if total >= need.gpus:
            span = k
            break
    if cfg.numa_unknown_policy == "legacy" and count_of(shape.unknown_gpus, need.gpu_model) >= need.gpus:
        span = 1
    elif span <= 2 and rooms is not None:  # on 1 or 2 nodes, the rules know the span and distance
        ruled = rules_rank(shape, rooms, need, cfg)
        if ruled is not None:
            return (*ruled[:3], *costs)
        span = 3
    distance = 0
    if span == 2:  # the same least distance, pair by pair (~3x faster than through `span_distance`)
        distance = split_floor(shape, need) or 0
    elif 2 < span < FALLBACK_SPAN:
        local = [n for n in shape.nodes if count_of(n.gpus, need.gpu_model)]
        distance = min((span_distance(nodes) for nodes in combinations(local, span)
                        if sum(count_of(n.gpus, need.gpu_model) for n in nodes) >= need.gpus), default=0)
    return (0, span, distance, *costs)


def _plan_costs(shape: HostShape, need: Need, cfg: PlacementConfig) -> tuple:
    """What `rank_floor` puts after span and distance: the plan's floor of the policy's costs."""
    return plan_floor(gpu_floor(shape, need.gpu_model or "", cfg), shape, need, cfg)[3:]


def gpu_floor(shape: HostShape, model: str, cfg: PlacementConfig) -> tuple:
    """A lower bound of the rank of every GPU plan of `model` on this host once `plan_floor`
    takes the plan's cores off it: (0, 1), and under spread then 0 and its first costs, (free
    GPUs of the model, free cores) negated; under pack then 0 and its first costs' least values:
    the host's fragmentation negated (the least rise a claim can cause: the fragmentation of any
    shape is at least 0, reached when a claim takes the host's last free GPUs), the free GPUs
    of other models, the free cores (`_scorer`: keep them in step). An index may keep a model's
    hosts sorted on it (per threads per core, for pack's cores), so that a first ranking reads
    them as their floors rise (`rank_floor`: the plan's floor with its own span)."""
    if cfg.policy == "pack":
        free = placeable_free(shape, cfg.numa_unknown_policy)
        others = sum(free.values()) - free.get(model, 0)
        return (0, 1, 0, (round(-fragmentation(shape, cfg), 9), others, sum(n.cores for n in shape.nodes)))
    if cfg.policy != "spread":
        return (0, 1)
    mine = placeable_free(shape, cfg.numa_unknown_policy).get(model, 0)
    return (0, 1, 0, (-mine, -sum(n.cores for n in shape.nodes)))


def plan_floor(floor: tuple, shape: HostShape, need: Need, cfg: PlacementConfig) -> tuple:
    """The host's `gpu_floor` made a lower bound of the rank of the GPU plan `need`: under pack
    less the cores it takes (all it asks for, the same on every host of one threads per core)."""
    if cfg.policy != "pack":
        return floor
    fragmented, others, cores = floor[3]
    return (*floor[:3], (fragmented, others, cores - cores_for(need.vcpus, shape.threads_per_core)))


def cores_floor(shape: HostShape, need: Need, cfg: PlacementConfig) -> tuple:
    """A lower bound of a host's rank for a plan without GPUs, without scoring anything.

    Every host takes such a plan on one node at distance 0. The preference is at least
    CPU_HOST on a CPU-only host, GPU_HOST_NODE_WITHOUT_GPUS on a GPU host with a node without
    free GPUs that has room for it (`single_part`: no fill), GPU_HOST_NODE_WITH_GPUS on any
    other. Then spread ranks by free cores, and so does pack after its fragmentation and free
    GPUs (`_scorer`: keep the two in step): on a node without free GPUs of a host that keeps
    every GPU plan as sellable, the fragmentation does not change (no fill touches that node),
    so pack's cost starts with 0.0 there, and nothing bounds it on a node with free GPUs. On a
    GPU host the bound goes on to the node's cores (spread: the most, pack: the fewest of those
    nodes with room), so it equals the rank wherever such a node keeps every GPU plan sellable
    and hosts tied on it are told apart only by scoring them. On hosts of one kind and threads
    per core these floors rise with `cores_order` (pack's subtracts the cores the plan takes,
    which depend on it), so an index can read them in rank order (`order_floor`: they stop at
    the host's cores, the node's would break that order)."""
    if not shape.installed:
        return order_floor(CPU_HOST, cores_order(shape, cfg), shape.threads_per_core, need, cfg)
    tpc, ratio = shape.threads_per_core, cfg.shared_cpu_overcommit
    # the cores of the nodes without free GPUs with room for it
    node_cores = [n.cores for n in shape.nodes if not n.gpus and isinstance(single_part(n, need, tpc, ratio), Part)]
    if not node_cores:
        return (GPU_HOST_NODE_WITH_GPUS, 1, 0, (0, -sum(n.cores for n in shape.nodes))) if cfg.policy == "spread" \
            else (GPU_HOST_NODE_WITH_GPUS, 1, 0)
    return _on_node(order_floor(GPU_HOST_NODE_WITHOUT_GPUS, cores_order(shape, cfg), tpc, need, cfg), node_cores, tpc,
                    need, cfg)


def cores_rank(shape: HostShape, rooms: tuple[tuple[int, int, int], ...], need: Need, cfg: PlacementConfig
               ) -> tuple | None:
    """Under pack and spread, the rank `choose` gives a plan without GPUs on a CPU-only host,
    told from its `cell_rooms` without scoring: `cores_floor` and the cores of the node it
    takes (pack: the fewest, spread: the most of those with room); None when no node has room.
    (Many hosts tie on their free cores; this tells them apart at a fraction of a score.)"""
    memory, cpu, vcpus = need.memory_mib, 2 if need.dedicated else 1, need.vcpus
    node_cores = [node.cores for node, room in zip(shape.nodes, rooms, strict=True)
                  if room[0] >= memory and room[cpu] >= vcpus]
    if not node_cores:
        return None
    tpc = shape.threads_per_core
    return _on_node(order_floor(CPU_HOST, cores_order(shape, cfg), tpc, need, cfg), node_cores, tpc, need, cfg)


def _on_node(head: tuple, node_cores: list[int], tpc: int, need: Need, cfg: PlacementConfig) -> tuple:
    """`order_floor`'s `head` with pack's or spread's last cost: the node taken, among the nodes
    with room of these `node_cores` (pack: the fewest free cores left, spread: the most)."""
    if cfg.policy == "pack":
        return (*head[:3], (*head[3], min(node_cores) - cores_for(need.vcpus, tpc) * need.dedicated))
    if cfg.policy == "spread":
        return (*head[:3], (*head[3], -max(node_cores)))
    return head


def cores_order(shape: HostShape, cfg: PlacementConfig) -> tuple[int, int]:
    """What `cores_floor` rises with on hosts of one kind (CPU-only, or GPU hosts where a node
    without free GPUs has room: `order_floor`) and threads per core, ascending: (free GPUs,
    free cores) under pack, (0, free cores negated) under spread, (0, 0) otherwise. An index may
    keep hosts sorted on it to read them in the order of their floors."""
    if cfg.policy == "pack":
        return (sum(placeable_free(shape, cfg.numa_unknown_policy).values()), sum(n.cores for n in shape.nodes))
    if cfg.policy == "spread":
        return (0, -sum(n.cores for n in shape.nodes))
    return (0, 0)


def order_floor(preference: int, order: tuple[int, int], tpc: int, need: Need, cfg: PlacementConfig) -> tuple:
    """(preference, 1, 0) and pack's or spread's first costs of a plan without GPUs on one node
    of a host of this `cores_order` and threads per core: `cores_floor` on a CPU-only host, and
    short of the node's cores on a GPU host where a node without free GPUs has room for it (a
    lower bound of its rank, from the order alone)."""
    if cfg.policy == "pack":
        return (preference, 1, 0, (0.0, order[0], order[1] - cores_for(need.vcpus, tpc) * need.dedicated))
    if cfg.policy == "spread":
        return (preference, 1, 0, (0, order[1]))
    return (preference, 1, 0)


def cell_rooms(shape: HostShape, cfg: PlacementConfig) -> tuple[tuple[int, int, int], ...]:
    """Per NUMA node, the most (memory MiB, shared vCPUs, dedicated vCPUs) it can give one cell
    (exactly: a cell of m MiB and v vCPUs fits the node alone iff both are at most these): a
    plan without GPUs fits a host only if one node has room for both its memory and its vCPUs
    (an index skips the others without scoring them, and `rules_rank` ranks with them)."""
    tpc, ratio = shape.threads_per_core, cfg.shared_cpu_overcommit
    return tuple(
        (
            n.hugepages * MIB_PER_PAGE if n.total_hugepages else n.memory_mib,
            _shared_room(n, tpc, ratio),
            usable_cores(n, tpc, ratio) * tpc,
        )
        for n in shape.nodes
    )


def _shared_room(node: NodeShape, tpc: int, ratio: float) -> int:
    """The most shared vCPUs a cell may add to the node (`single_part`'s test, solved for them)."""
    threads = node.cores * tpc
    room = int(threads * ratio) - node.shared_vcpus  # float rounding: one either way, settled below
    while room > 0 and shared_threads(node.shared_vcpus + room, ratio) > threads:
        room -= 1
    while shared_threads(node.shared_vcpus + room + 1, ratio) <= threads:
        room += 1
    return room


def node_takes(rooms: tuple[tuple[int, int, int], ...], need: Need) -> bool:
    """Whether one NUMA node of a host with these `cell_rooms` has room for a plan without GPUs
    (its memory and its shared or dedicated vCPUs): only then does the host fit it at all."""
    memory, vcpus, cpu = need.memory_mib, need.vcpus, 2 if need.dedicated else 1
    for room in rooms:  # noqa: SIM110 - not any() over a generator: 3x slower, asked of every entry
        if room[0] >= memory and room[cpu] >= vcpus:
            return True
    return False


def rules_rank(
    shape: HostShape, rooms: tuple[tuple[int, int, int], ...], need: Need, cfg: PlacementConfig, spans: int = 2
) -> tuple | None:
    """Under first-fit and random (no policy cost): the host's rank when one NUMA node takes the
    whole request, or a GPU plan two nodes between them, found without `choose` from its
    `cell_rooms`. One node's fit ranks (CPU_HOST or 0, 1, 0, ()), the lowest rank the request
    can have: a plan without GPUs on a CPU-only host, a GPU plan taking its GPUs, cores and
    memory from that node (or, under `legacy`, enough GPUs without a NUMA node and that node's
    cores and memory: `candidates` ranks them alike). Else a GPU plan ranks (0, 2, distance, ())
    at the least distance of two nodes it splits over (`_split_distance`), unless `spans` is 1
    (whether one node takes it is all the caller asks). None when neither: a plan without GPUs
    then fits nowhere on the host, a GPU plan maybe across 3 nodes or more, or on GPUs without
    a NUMA node (only `choose` knows). On a GPU host, a plan without GPUs ranks
    (GPU_HOST_NODE_WITHOUT_GPUS, 1, 0, ()), the lowest rank it can have there, when a node
    without free GPUs takes it and keeps every GPU plan as sellable (without filling unless
    GPUs without a NUMA node are placed: `keeps_gpu_sales`); None otherwise (only `choose`
    knows whether and how it fits)."""
    if not need.gpus and shape.installed:
        memory, cpu, vcpus = need.memory_mib, 2 if need.dedicated else 1, need.vcpus
        fills = places_unknown_gpus(shape, cfg)
        for node, room in zip(shape.nodes, rooms, strict=True):
            if node.gpus or room[0] < memory or room[cpu] < vcpus:
                continue
            if not fills:
                return (GPU_HOST_NODE_WITHOUT_GPUS, 1, 0, ())
            part = single_part(node, need, shape.threads_per_core, cfg.shared_cpu_overcommit)
            if isinstance(part, Part) and keeps_gpu_sales(shape, Assignment(None, (part,)), cfg):
                return (GPU_HOST_NODE_WITHOUT_GPUS, 1, 0, ())
        return None
    if not need.gpus:
        return (CPU_HOST, 1, 0, ()) if node_takes(rooms, need) else None
    memory, vcpus, model, wanted = need.memory_mib, need.vcpus, need.gpu_model, need.gpus
    unplaced = count_of(shape.unknown_gpus, model) >= wanted and cfg.numa_unknown_policy == "legacy"
    for node, room in zip(shape.nodes, rooms, strict=True):
        if room[0] >= memory and room[2] >= vcpus and (unplaced or count_of(node.gpus, model) >= wanted):
            return (0, 1, 0, ())
    distance = _split_distance(shape, rooms, need) if spans > 1 else None
    return None if distance is None else (0, 2, distance, ())


def _split_distance(shape: HostShape, rooms: tuple[tuple[int, int, int], ...], need: Need) -> int | None:
    """The least distance between two nodes that a GPU plan fits across, None if no two nodes
    take it: `candidates`' 2-node fits (each node some of the GPUs and its share of the cores
    and memory, `_gpu_parts`), told from the nodes' `cell_rooms` (a node has room for c cores
    and m MiB iff c x threads per core and m are at most its room for dedicated vCPUs and
    memory)."""
    tpc, wanted = shape.threads_per_core, need.gpus
    cores = cores_for(need.vcpus, tpc)
    local = [(node, room, count) for node, room in zip(shape.nodes, rooms, strict=True)
             if (count := count_of(node.gpus, need.gpu_model))]
    best = None
    for (a, room_a, count_a), (b, room_b, count_b) in combinations(local, 2):
        if count_a + count_b < wanted:
            continue
        distance = pair_distance(a, b)
        if best is not None and distance >= best:
            continue
        for counts in compositions(wanted, (count_a, count_b)):
            shares = core_shares(cores, counts)
            memory = memory_shares(need.memory_mib, counts)
            if (shares is not None and shares[0] * tpc <= room_a[2] and shares[1] * tpc <= room_b[2]
                    and memory[0] <= room_a[0] and memory[1] <= room_b[0]):
                best = distance
                break
    return best


def split_floor(shape: HostShape, need: Need) -> int | None:
    """The least distance between two nodes holding a GPU plan's GPUs between them (some on
    each), None if no two do: never above the distance of its 2-node rank (`_split_distance`)."""
    model, wanted = need.gpu_model, need.gpus
    local = [(node, count) for node in shape.nodes if (count := count_of(node.gpus, model))]
    best = None
    for (a, count_a), (b, count_b) in combinations(local, 2):  # a loop: min() over a generator was 2x slower
        if count_a + count_b >= wanted:
            distance = pair_distance(a, b)
            if best is None or distance < best:
                best = distance
    return best


def cell_memory_room(shape: HostShape) -> int:
    """The most memory (MiB) one NUMA node can give a cell: a plan without GPUs, whose only cell
    is one node, fits a host only if its memory is at most this (an index skips the others)."""
    return max((n.hugepages * MIB_PER_PAGE if n.total_hugepages else n.memory_mib for n in shape.nodes), default=0)
