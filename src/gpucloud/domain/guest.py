"""What a guest looks like on its host: the hypervisor-neutral description of one domain.

Built from an instance's claims (which host CPUs, NUMA nodes, memory and GPUs it holds);
turned into libvirt domain XML by `gpucloud.hypervisor.domain_xml`, or run by the sim driver.
"""

from __future__ import annotations

from dataclasses import dataclass


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
class CloudInit:
    hostname: str
    root_pass_hash: str | None = None  # crypt(3) SHA-512 hash, never the password
    authorized_keys: tuple[str, ...] = ()


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
