"""One model of a hypervisor host: NUMA nodes, CPUs, memory and the GPUs wired to them.

Real hosts are discovered into it (libvirt capabilities and node-device XML), simulated
hosts are described in it (profile files). Everything above works on this model only, so
placement cannot tell a sim host from a real one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

from gpucloud.domain.catalog import Catalog

UNKNOWN_NUMA_NODE = -1

# Where a GPU's NUMA node came from (`Gpu.numa_source`).
FROM_FIRMWARE = "firmware"  # the device's numa_node (sysfs) / <numa node> (libvirt), or unknown (-1)
FROM_LOCAL_CPULIST = "local_cpulist"  # numa_node was -1; its local_cpulist names one node's CPUs
FROM_OPERATOR = "operator"  # given at registration (`host add --gpu-node`)

# Display chips of servers' management controllers (BMCs): never a GPU we sell.
BMC_DISPLAY_VENDORS = {0x1A03: "ASPEED", 0x102B: "Matrox"}

# PCI base classes (first byte of the 24-bit class code).
PCI_CLASS_DISPLAY = 0x03
PCI_CLASS_MULTIMEDIA = 0x04
PCI_CLASS_BRIDGE = 0x06
PCI_CLASS_SERIAL_BUS = 0x0C

# Subclasses a GPU's IOMMU group may hold besides the GPU itself. The HDMI audio (0x0403),
# the USB xHCI (0x0c03) and the USB-C UCSI (0x0c80) functions of NVIDIA cards go to the
# guest with the GPU; a PCI bridge (0x0604) needs no driver and stays on the host. Anything
# else (a NIC, a disk controller, a second GPU behind a switch without ACS) blocks the group.
_PASSABLE_COMPANIONS = {(0x04, 0x03), (0x0C, 0x03), (0x0C, 0x80)}


class TopologyError(ValueError):
    """A host description that cannot be true (a CPU in two nodes, a GPU on a missing node...)."""


def pci_class_is_gpu(class_code: int) -> bool:
    """VGA (0x0300) or 3D controller (0x0302): what data-centre and workstation GPUs report."""
    return class_code >> 16 == PCI_CLASS_DISPLAY and (class_code >> 8) & 0xFF in (0x00, 0x02)


def unsold_display_reason(vendor_id: int, device_id: int, catalog: Catalog) -> str | None:
    """Why a display device (class 0x0300/0x0302) is not one of our GPUs, or None when we sell it.

    The one rule for BMC chips and unknown cards: registration records such a device as
    reserved with this reason, `host inspect` lists it for information and checks nothing on it.
    """
    if catalog.model_for_device(vendor_id, device_id) is not None:
        return None
    reason = f"{vendor_id:04x}:{device_id:04x} is not a GPU model in the catalog"
    bmc = BMC_DISPLAY_VENDORS.get(vendor_id)
    return f"{reason} ({bmc}: a management controller's display chip)" if bmc else reason


def normalise_pci_address(address: str) -> str:
    """'41:00.0', '0000:41:00.0' and '0000:41:00.0 ' all become '0000:41:00.0'."""
    text = address.strip().lower()
    parts = text.split(":")
    if len(parts) == 2:
        parts.insert(0, "0000")
    if len(parts) != 3 or "." not in parts[2]:
        raise TopologyError(f"not a PCI address: {address!r}")
    domain, bus = parts[0], parts[1]
    slot, function = parts[2].split(".", 1)
    try:
        d, b, s, f = int(domain, 16), int(bus, 16), int(slot, 16), int(function, 16)
    except ValueError:
        raise TopologyError(f"not a PCI address: {address!r}") from None
    if d > 0xFFFF or b > 0xFF or s > 0x1F or f > 0x7:
        raise TopologyError(f"PCI address out of range: {address!r}")
    return f"{d:04x}:{b:02x}:{s:02x}.{f:x}"


@dataclass(frozen=True)
class Cpu:
    """One logical CPU (hardware thread) as the host OS numbers it."""

    id: int
    socket: int
    core: int
    siblings: tuple[int, ...]  # every thread of the same physical core, itself included


@dataclass(frozen=True)
class PciFunction:
    """A PCI function that shares an IOMMU group with a GPU."""

    address: str
    class_code: int
    vendor_id: int = 0
    device_id: int = 0
    description: str = ""

    @property
    def is_bridge(self) -> bool:
        return self.class_code >> 16 == PCI_CLASS_BRIDGE

    @property
    def passable(self) -> bool:
        """May this function go to the guest together with its GPU?"""
        base, sub = self.class_code >> 16, (self.class_code >> 8) & 0xFF
        return (base, sub) in _PASSABLE_COMPANIONS


@dataclass(frozen=True)
class Gpu:
    address: str
    vendor_id: int
    device_id: int
    class_code: int
    numa_node: int
    iommu_group: int
    product: str = ""
    companions: tuple[PciFunction, ...] = ()  # the rest of the IOMMU group
    # How numa_node was learnt (FROM_*), and from which CPUs when from local_cpulist. Not part
    # of equality: two descriptions of one host agree on the node whatever told them.
    numa_source: str = field(default=FROM_FIRMWARE, compare=False)
    local_cpus: tuple[int, ...] = field(default=(), compare=False)

    @property
    def passthrough_functions(self) -> tuple[str, ...]:
        """Every function handed to the guest: the GPU and its passable companions (bridges stay)."""
        return (self.address,) + tuple(f.address for f in self.companions if f.passable and not f.is_bridge)

    @property
    def passthrough_blocker(self) -> str | None:
        """Why this GPU can never be passed through, or None when its IOMMU group is viable."""
        bad = [f for f in self.companions if not f.passable and not f.is_bridge]
        if not bad:
            return None
        names = ", ".join(f"{f.address} (class {f.class_code:06x})" for f in bad)
        return f"IOMMU group {self.iommu_group} also holds {names}, which must stay with the host"


@dataclass(frozen=True)
class NumaNode:
    index: int
    cpus: tuple[Cpu, ...]
    memory_mib: int
    hugepages_1g: int = 0
    distances: tuple[int, ...] = ()  # SLIT row, indexed by node

    @property
    def cpu_ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.cpus)

    @property
    def memory_only(self) -> bool:
        """A node without CPUs (GPU, HBM or CXL memory): no cores, never a guest's RAM, not a placement node."""
        return not self.cpus

    def cores(self) -> list[tuple[int, ...]]:
        """Physical cores of this node as sorted tuples of their thread ids, in core order."""
        return list(self._cores)

    @cached_property
    def _cores(self) -> tuple[tuple[int, ...], ...]:
        # Worked out once per node object: a region read shares one node object among the hosts
        # of a hardware profile (store.host_states), so 10,000 hosts group their threads ~3 times.
        seen: dict[tuple[int, ...], None] = {}
        mine = set(self.cpu_ids)  # once: a tuple rebuilt per sibling made this quadratic in the node's threads
        for cpu in sorted(self.cpus, key=lambda c: (c.socket, c.core, c.id)):
            group = tuple(sorted(s for s in cpu.siblings if s in mine)) or (cpu.id,)
            seen.setdefault(group, None)
        return tuple(seen)


@dataclass(frozen=True)
class HostTopology:
    nodes: tuple[NumaNode, ...]
    gpus: tuple[Gpu, ...] = ()
    cpu_model: str = ""
    threads_per_core: int = 1
    other_functions: tuple[PciFunction, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        indexes = [n.index for n in self.nodes]
        if not self.nodes:
            raise TopologyError("a host needs at least one NUMA node")
        if len(set(indexes)) != len(indexes):
            raise TopologyError(f"NUMA node listed twice: {sorted(indexes)}")
        cpu_ids = [c.id for n in self.nodes for c in n.cpus]
        if len(set(cpu_ids)) != len(cpu_ids):
            raise TopologyError("a CPU appears in more than one NUMA node")
        addresses = [g.address for g in self.gpus]
        if len(set(addresses)) != len(addresses):
            raise TopologyError("a GPU PCI address appears twice")
        for gpu in self.gpus:
            if gpu.numa_node != UNKNOWN_NUMA_NODE and gpu.numa_node not in indexes:
                raise TopologyError(f"GPU {gpu.address} is on NUMA node {gpu.numa_node}, which the host does not have")
        if not self.cpu_nodes:
            raise TopologyError("a host needs at least one NUMA node with CPUs")

    def node(self, index: int) -> NumaNode:
        for n in self.nodes:
            if n.index == index:
                return n
        raise KeyError(index)

    @property
    def cpu_nodes(self) -> tuple[NumaNode, ...]:
        """The nodes placement counts: those with CPUs."""
        return tuple(n for n in self.nodes if not n.memory_only)

    @property
    def memory_only_nodes(self) -> tuple[NumaNode, ...]:
        return tuple(n for n in self.nodes if n.memory_only)

    def placement_node(self, gpu: Gpu) -> int:
        """The node whose cores and memory go with this GPU: its own, or unknown (-1) when the
        firmware gives none or names a memory-only node (it has no cores to give)."""
        if gpu.numa_node == UNKNOWN_NUMA_NODE or self.node(gpu.numa_node).memory_only:
            return UNKNOWN_NUMA_NODE
        return gpu.numa_node

    def distances_by_index(self, node: NumaNode) -> tuple[int, ...]:
        """The node's SLIT row indexed by node number, as placement reads it.

        Discovery, sysfs and profiles give the row in node order; on hosts whose node numbers have
        gaps (POWER9: 0, 8, 250-255) position and number differ, so the row is spread out to the
        highest CPU node's number (memory-only nodes are never placement nodes), 0 where no node is.
        """
        order = sorted(n.index for n in self.nodes)
        if order == list(range(len(order))):
            return node.distances
        row = dict(zip(order, node.distances, strict=False))
        return tuple(row.get(i, 0) for i in range(max(n.index for n in self.cpu_nodes) + 1))

    @property
    def total_cpus(self) -> int:
        return sum(len(n.cpus) for n in self.nodes)

    @property
    def total_memory_mib(self) -> int:
        return sum(n.memory_mib for n in self.nodes)


def numa_summary(cpu_nodes: int, memory_only_nodes: int) -> str:
    """'2 NUMA nodes' or '2 NUMA nodes (+6 memory-only)': how `host inspect` and the admin count them."""
    text = f"{cpu_nodes} NUMA node{'' if cpu_nodes == 1 else 's'}"
    return f"{text} (+{memory_only_nodes} memory-only)" if memory_only_nodes else text


def locality_from_cpulist(local_cpus: tuple[int, ...], nodes: tuple[NumaNode, ...]) -> tuple[int, ...]:
    """The CPU nodes a device is wired to, from its `local_cpulist`, when its `numa_node` is -1.

    Only a strict subset of the host's CPUs that lies within fewer than all CPU nodes says
    anything: firmware that hides the node usually reports every CPU, and then the node stays
    unknown (empty answer). A CPU the host does not have makes the list untrustworthy.
    """
    owner = {cpu: n.index for n in nodes for cpu in n.cpu_ids}
    cpu_nodes = {n.index for n in nodes if not n.memory_only}
    listed = set(local_cpus)
    if not listed or not listed < set(owner):
        return ()
    touched = {owner[c] for c in listed}
    return tuple(sorted(touched)) if touched < cpu_nodes else ()


def with_gpu_locality(topology: HostTopology, nodes: dict[str, tuple[int, tuple[int, ...], str]]) -> HostTopology:
    """`topology` with the NUMA node of GPUs the firmware left unknown filled in.

    `nodes`: address -> (node, local CPUs, source). A GPU whose firmware node is known keeps it.
    """
    gpus = tuple(
        replace(g, numa_node=nodes[g.address][0], local_cpus=nodes[g.address][1], numa_source=nodes[g.address][2])
        if g.address in nodes and g.numa_node == UNKNOWN_NUMA_NODE
        else g
        for g in topology.gpus
    )
    return replace(topology, gpus=gpus)


def cpulist_locality(topology: HostTopology, local_cpus: dict[str, tuple[int, ...]]) -> HostTopology:
    """Apply `locality_from_cpulist` to every GPU with an unknown node (address -> its local_cpulist).

    A GPU local to a set of nodes (one socket of a sub-NUMA-clustered host) is placed on the lowest.
    """
    found = {}
    for gpu in topology.gpus:
        nodes = locality_from_cpulist(local_cpus.get(gpu.address, ()), topology.nodes)
        if gpu.numa_node == UNKNOWN_NUMA_NODE and nodes:
            found[gpu.address] = (nodes[0], local_cpus[gpu.address], FROM_LOCAL_CPULIST)
    return with_gpu_locality(topology, found)


def default_reserved_cpus(node: NumaNode, reserved_cores: int) -> tuple[int, ...]:
    """The threads kept for the host and emulator threads: the node's first `reserved_cores` cores."""
    return tuple(cpu for core in node.cores()[: max(reserved_cores, 0)] for cpu in core)


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """Linux cpulist syntax ('0-3,8,10-11') to sorted ids."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.update(range(int(lo), int(hi) + 1))
        else:
            out.add(int(part))
    return tuple(sorted(out))


def format_cpu_list(ids: list[int] | tuple[int, ...] | set[int]) -> str:
    """Sorted ids to the compact cpulist syntax libvirt and Linux use ('0-3,8')."""
    ordered = sorted(set(ids))
    runs: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        runs.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(runs)
