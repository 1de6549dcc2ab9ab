"""What placement sees of a host: its free resources per NUMA node, keyed by natural keys only.

The store builds a `HostState` from the database with `build_host_state` (topology plus what
is claimed and reserved); tests and benchmarks build it the same way from a topology. It is
a value: `placement.apply` and `placement.release` return new states, nothing is mutated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from functools import cached_property

from gpucloud.domain.numa_fit import HostShape, NodeShape
from gpucloud.domain.topology import UNKNOWN_NUMA_NODE, HostTopology, default_reserved_cpus

HOST_STATUSES = ("active", "draining", "maintenance", "down")
DEFAULT_RESERVED_CORES = 2
DEFAULT_RESERVED_MEMORY_MIB = 8192
# Why a GPU that is neither free nor claimed cannot be sold (GPU-level reasons).
FAULTY, RESERVED, IOMMU_BLOCKER = "faulty", "reserved", "iommu-blocker"


@dataclass(frozen=True)
class FreeGpu:
    address: str
    model: str
    functions: tuple[str, ...]  # every PCI function of its IOMMU group handed to the guest


@dataclass(frozen=True)
class ClaimedGpu:
    address: str
    model: str
    node: int
    staff: bool = False


@dataclass(frozen=True)
class UnavailableGpu:
    address: str
    model: str
    node: int
    reason: str  # FAULTY, RESERVED or IOMMU_BLOCKER
    detail: str = ""


@dataclass(frozen=True)
class NodeState:
    index: int
    free_cores: tuple[tuple[int, ...], ...]  # whole free cores (thread ids), reserved and claimed excluded
    reserved_cpus: tuple[int, ...]  # the node's host threads: where emulator threads are pinned
    free_memory_mib: int  # normal memory, host reserve and claims excluded
    free_hugepages: int
    total_hugepages: int  # > 0: guests on this node are backed by 1 GiB pages
    gpus: tuple[FreeGpu, ...]  # free, placeable GPUs wired to this node, sorted by address
    shared_vcpus: int = 0  # unpinned vCPUs of standard plans already on this node
    distances: tuple[int, ...] = ()  # SLIT row, indexed by node

    @property
    def free_threads(self) -> int:
        return sum(len(core) for core in self.free_cores)


@dataclass(frozen=True)
class HostState:
    id: int
    region: str
    status: str
    generation: int  # the store's compare-and-swap counter; a placement names the one it saw
    nodes: tuple[NodeState, ...]
    numa_unknown_gpus: tuple[FreeGpu, ...] = ()  # free GPUs whose NUMA node the firmware does not give
    threads_per_core: int = 1
    claimed_gpus: tuple[ClaimedGpu, ...] = ()
    unavailable_gpus: tuple[UnavailableGpu, ...] = ()
    # Per-host config overrides, e.g. (("numa_unknown_policy", "legacy"),); see PlacementConfig.
    overrides: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        if self.status not in HOST_STATUSES:
            raise ValueError(f"host status must be one of {', '.join(HOST_STATUSES)}, not {self.status!r}")

    def node(self, index: int) -> NodeState:
        for n in self.nodes:
            if n.index == index:
                return n
        raise KeyError(index)

    @cached_property
    def shape(self) -> HostShape:
        """The compact form placement scores (identical shapes answer identically)."""
        installed = Counter(g.model for n in self.nodes for g in n.gpus)
        installed.update(g.model for g in self.numa_unknown_gpus)
        installed.update(g.model for g in self.claimed_gpus)
        installed.update(g.model for g in self.unavailable_gpus)
        return HostShape(
            region=self.region,
            status=self.status,
            threads_per_core=self.threads_per_core,
            nodes=tuple(
                NodeShape(
                    index=n.index,
                    gpus=_counts(g.model for g in n.gpus),
                    cores=len(n.free_cores),
                    memory_mib=n.free_memory_mib,
                    hugepages=n.free_hugepages,
                    total_hugepages=n.total_hugepages,
                    shared_vcpus=n.shared_vcpus,
                    distances=n.distances,
                )
                for n in sorted(self.nodes, key=lambda n: n.index)
            ),
            unknown_gpus=_counts(g.model for g in self.numa_unknown_gpus),
            installed=tuple(sorted(installed.items())),
            overrides=self.overrides,
        )


def _counts(models) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(Counter(models).items()))


def build_host_state(
    host_id: int,
    region: str,
    topology: HostTopology,
    gpu_models: Mapping[str, str],
    *,
    status: str = "active",
    generation: int = 0,
    claimed_cpus: Collection[int] = (),
    claimed_gpus: Collection[str] = (),
    staff_gpus: Collection[str] = (),
    claimed_memory_mib: Mapping[int, int] | None = None,
    claimed_hugepages: Mapping[int, int] | None = None,
    shared_vcpus: Mapping[int, int] | None = None,
    gpu_statuses: Mapping[str, str] | None = None,
    reserved_cpus: Collection[int] | None = None,
    reserved_cores_per_node: int = DEFAULT_RESERVED_CORES,
    reserved_memory_mib: Mapping[int, int] | int = DEFAULT_RESERVED_MEMORY_MIB,
    overrides: Mapping[str, object] | None = None,
    memo: dict[tuple, tuple[HostTopology, HostState]] | None = None,
) -> HostState:
    """A host's placement state from its topology and what is claimed or reserved on it.

    - `gpu_models`: GPU address -> model id for the GPUs we sell (others are ignored).
    - `claimed_*`: what instances hold. Memory claims backed by hugepages count in
      `claimed_hugepages` (pages per node) and not in `claimed_memory_mib` (normal MiB per node).
    - `staff_gpus`: the claimed GPUs that staff accounts hold (capacity reports them apart).
    - `gpu_statuses`: address -> 'available' / 'reserved' / 'faulty' (missing = available).
    - `reserved_cpus`: the host's threads as stored; None = the first `reserved_cores_per_node`
      cores of each node. `reserved_memory_mib`: per node, or one figure for every node.
    - `memo`: one dict over the hosts of a read. A host whose topology is an object built before
      and whose other inputs are equal (the idle hosts of a hardware profile in a region) gets
      that state with its own id and generation, and its `shape` (a copy costs 5-10x less).
    """
    claimed_cpu_set, claimed_gpu_set, staff = set(claimed_cpus), set(claimed_gpus), set(staff_gpus)
    claimed_memory_mib, claimed_hugepages = claimed_memory_mib or {}, claimed_hugepages or {}
    shared_vcpus, gpu_statuses = shared_vcpus or {}, gpu_statuses or {}
    own_overrides = tuple(sorted((overrides or {}).items()))
    key: tuple = ()
    if memo is not None:
        key = (id(topology), region, status, own_overrides, tuple(gpu_models.items()), frozenset(claimed_cpu_set),
               frozenset(claimed_gpu_set), frozenset(staff), tuple(claimed_memory_mib.items()),
               tuple(claimed_hugepages.items()), tuple(shared_vcpus.items()), tuple(gpu_statuses.items()),
               None if reserved_cpus is None else tuple(reserved_cpus), reserved_cores_per_node,
               reserved_memory_mib if isinstance(reserved_memory_mib, int) else tuple(reserved_memory_mib.items()))
        built = memo.get(key)  # (its topology is held there: no other object has its id meanwhile)
        if built is not None:
            copy = replace(built[1], id=host_id, generation=generation)
            # Neither id nor generation is in a shape: one object for them all (placement's index
            # looks every host up by its shape); `cached_property` keeps it in the instance's dict.
            vars(copy)["shape"] = built[1].shape
            return copy
    tpc = max(topology.threads_per_core, 1)

    free_gpus: dict[int, list[FreeGpu]] = {}
    claimed: list[ClaimedGpu] = []
    unavailable: list[UnavailableGpu] = []
    for gpu in sorted(topology.gpus, key=lambda g: g.address):
        model = gpu_models.get(gpu.address)
        if model is None:
            continue
        gpu_status = gpu_statuses.get(gpu.address, "available")
        if gpu.address in claimed_gpu_set:
            claimed.append(ClaimedGpu(gpu.address, model, gpu.numa_node, gpu.address in staff))
        elif gpu_status in (FAULTY, RESERVED):
            unavailable.append(UnavailableGpu(gpu.address, model, gpu.numa_node, gpu_status))
        elif gpu.passthrough_blocker:
            unavailable.append(
                UnavailableGpu(gpu.address, model, gpu.numa_node, IOMMU_BLOCKER, gpu.passthrough_blocker)
            )
        else:
            free_gpus.setdefault(topology.placement_node(gpu), []).append(
                FreeGpu(gpu.address, model, gpu.passthrough_functions)
            )

    nodes = []
    for node in sorted(topology.cpu_nodes, key=lambda n: n.index):  # memory-only nodes are not placement nodes
        if reserved_cpus is None:
            held = set(default_reserved_cpus(node, reserved_cores_per_node))
        else:
            held = set(reserved_cpus) & set(node.cpu_ids)
        busy = held | claimed_cpu_set
        cores = tuple(core for core in node.cores() if len(core) == tpc and not busy.intersection(core))
        reserve = (
            reserved_memory_mib if isinstance(reserved_memory_mib, int) else reserved_memory_mib.get(node.index, 0)
        )
        normal = node.memory_mib - node.hugepages_1g * 1024 - reserve - claimed_memory_mib.get(node.index, 0)
        nodes.append(
            NodeState(
                index=node.index,
                free_cores=cores,
                reserved_cpus=tuple(sorted(held)),
                free_memory_mib=max(normal, 0),
                free_hugepages=max(node.hugepages_1g - claimed_hugepages.get(node.index, 0), 0),
                total_hugepages=node.hugepages_1g,
                gpus=tuple(free_gpus.get(node.index, ())),
                shared_vcpus=shared_vcpus.get(node.index, 0),
                distances=topology.distances_by_index(node),
            )
        )
    state = HostState(
        id=host_id,
        region=region,
        status=status,
        generation=generation,
        nodes=tuple(nodes),
        numa_unknown_gpus=tuple(free_gpus.get(UNKNOWN_NUMA_NODE, ())),
        threads_per_core=tpc,
        claimed_gpus=tuple(claimed),
        unavailable_gpus=tuple(unavailable),
        overrides=own_overrides,
    )
    if memo is not None:
        memo[key] = (topology, state)
    return state
