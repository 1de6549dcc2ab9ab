"""What a guest looks like on its host: the hypervisor-neutral description of one domain.

Built from an instance's claims (which host CPUs, NUMA nodes, memory and GPUs it holds);
turned into libvirt domain XML by `gpucloud.hypervisor.domain_xml`, or run by the sim driver.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpucloud.domain.topology import HostTopology


@dataclass(frozen=True)
class GuestCell:
    """One guest NUMA cell, backed by exactly one host NUMA node."""

    id: int
    host_node: int
    vcpus: tuple[int, ...]  # guest vCPU numbers in this cell
    memory_mib: int
    hugepages_1g: bool = False  # backed by 1 GiB pages of host_node


@dataclass(frozen=True)
class GuestGpu:
    """A passed-through GPU with the companion functions of its IOMMU group."""

    address: str  # host PCI address of the GPU function
    functions: tuple[str, ...]  # every host function handed over, the GPU first
    cell: int  # guest cell whose PCIe expander bus it sits behind


@dataclass(frozen=True)
class GuestNetwork:
    """The guest's one interface as it configures it (cloud-init network-config v2): matched by
    MAC, static addresses with their pools' prefix and gateway, the region's resolvers."""

    mac: str
    ipv4: str | None = None
    ipv4_prefix: int = 32
    ipv4_gateway: str | None = None
    ipv6: str | None = None
    ipv6_prefix: int = 128
    ipv6_gateway: str | None = None
    resolvers: tuple[str, ...] = ()


@dataclass(frozen=True)
class CloudInit:
    hostname: str
    root_pass_hash: str | None = None  # crypt(3) SHA-512 hash, never the password
    authorized_keys: tuple[str, ...] = ()
    user_data: bytes | None = None  # the customer's `metadata.user_data`, decoded
    network: GuestNetwork | None = None  # None: the image's own default (DHCP)


@dataclass(frozen=True)
class DomainSpec:
    name: str  # libvirt domain name: "gpucloud-<instance id>"
    uuid: str
    title: str  # the customer's label, for operators reading `virsh list --title`
    vcpu_pins: tuple[int | None, ...]  # host CPU per guest vCPU; None = floats over shared_cpuset
    cells: tuple[GuestCell, ...]
    emulator_cpuset: tuple[int, ...] = ()  # host CPUs for QEMU's own threads (the node's reserved cores)
    shared_cpuset: tuple[int, ...] = ()  # where unpinned vCPUs may run
    threads_per_core: int = 1  # siblings shown to the guest as threads of one core
    gpus: tuple[GuestGpu, ...] = ()
    image: str | None = None
    disk_mib: int = 0
    cloud_init: CloudInit | None = None
    domain_type: str = "kvm"  # "qemu" for software emulation (CI, hosts without KVM)
    rescue: bool = False  # boot the rescue image, the instance's own disk attached beside it
    mac: str | None = None  # the interface's MAC; None: derived from the uuid (instances from before MACs were kept)

    @property
    def vcpus(self) -> int:
        return len(self.vcpu_pins)

    @property
    def memory_mib(self) -> int:
        return sum(c.memory_mib for c in self.cells)

    @property
    def pinned(self) -> bool:
        return all(p is not None for p in self.vcpu_pins)


def domain_name(instance_id: int) -> str:
    return f"gpucloud-{instance_id}"


def instance_id_from_domain(name: str) -> int | None:
    """The inverse of `domain_name`; None for domains we did not create."""
    prefix = "gpucloud-"
    if name.startswith(prefix) and name[len(prefix) :].isdigit():
        return int(name[len(prefix) :])
    return None


@dataclass(frozen=True)
class CellClaim:
    """What an instance holds on one host node, as stored: cell `guest_cell` mirrors `host_node`."""

    guest_cell: int
    host_node: int
    memory_mib: int
    hugepages_1g: int = 0
    shared_vcpus: int = 0


def spec_from_claims(
    *,
    name: str,
    uuid: str,
    title: str,
    topology: HostTopology,
    cells: list[CellClaim],
    pins: dict[int, int],
    gpu_addresses: list[str],
    reserved_cpus: set[int],
    pinned_elsewhere: set[int] | frozenset[int] = frozenset(),
    image: str | None = None,
    disk_mib: int = 0,
    cloud_init: CloudInit | None = None,
    domain_type: str = "kvm",
) -> DomainSpec:
    """The domain an instance's claims describe. `pins` maps guest vCPU -> host CPU for pinned
    instances; shared ones float over their nodes' CPUs that no pinned guest holds."""
    ordered = sorted(cells, key=lambda c: c.guest_cell)
    by_node = {c.host_node: c.guest_cell for c in ordered}
    node_of_cpu = {cpu: n.index for n in topology.nodes for cpu in n.cpu_ids}
    guest_cells, next_vcpu = [], 0
    vcpu_pins: list[int | None] = []
    for claim in ordered:
        if pins:
            vcpus = tuple(sorted(v for v, cpu in pins.items() if node_of_cpu.get(cpu) == claim.host_node))
            vcpu_pins += [pins[v] for v in vcpus]
        else:
            vcpus = tuple(range(next_vcpu, next_vcpu + claim.shared_vcpus))
            vcpu_pins += [None] * claim.shared_vcpus
        next_vcpu += len(vcpus)
        guest_cells.append(GuestCell(claim.guest_cell, claim.host_node, vcpus, claim.memory_mib,
                                     claim.hugepages_1g > 0))
    used_nodes = [topology.node(c.host_node) for c in ordered]
    gpus_by_address = {g.address: g for g in topology.gpus}
    guest_gpus = tuple(
        GuestGpu(
            a,
            gpus_by_address[a].passthrough_functions,
            by_node.get(gpus_by_address[a].numa_node, ordered[0].guest_cell),
        )
        for a in sorted(gpu_addresses)
    )
    shared = () if pins else tuple(sorted(
        cpu for n in used_nodes for cpu in n.cpu_ids if cpu not in reserved_cpus and cpu not in pinned_elsewhere))
    siblings_paired = bool(pins) and all(
        _siblings(topology, vcpu_pins[i]) == {vcpu_pins[i], vcpu_pins[i + 1]}
        for i in range(0, len(vcpu_pins) - 1, 2)
    )
    return DomainSpec(
        name=name,
        uuid=uuid,
        title=title,
        vcpu_pins=tuple(vcpu_pins),
        cells=tuple(guest_cells),
        emulator_cpuset=tuple(sorted(cpu for n in used_nodes for cpu in n.cpu_ids if cpu in reserved_cpus)),
        shared_cpuset=shared,
        threads_per_core=topology.threads_per_core if siblings_paired and topology.threads_per_core == 2 else 1,
        gpus=guest_gpus,
        image=image,
        disk_mib=disk_mib,
        cloud_init=cloud_init,
        domain_type=domain_type,
    )


def _siblings(topology: HostTopology, cpu: int | None) -> set[int]:
    for node in topology.nodes:
        for c in node.cpus:
            if c.id == cpu:
                return set(c.siblings)
    return set()
