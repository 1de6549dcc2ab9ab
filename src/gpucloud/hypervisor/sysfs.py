"""A host's topology read from sysfs and /proc under a root (`/` on the host, a recorded tree in tests).

The same `HostTopology` as libvirt discovery gives, from the files libvirt itself reads:
/sys/devices/system/node (cells, memory, 1 GiB pages, SLIT), /sys/devices/system/cpu (cores
and siblings) and /sys/bus/pci/devices (GPUs and their IOMMU groups). sysfs also has what
libvirt does not show: a device's `local_cpulist`, from which the rule in
`domain.topology.locality_from_cpulist` recovers the node of a GPU whose firmware says -1.
Product names are not in sysfs (they come from pci.ids), so GPUs read here have none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gpucloud.domain.topology import (
    UNKNOWN_NUMA_NODE,
    Cpu,
    Gpu,
    HostTopology,
    NumaNode,
    PciFunction,
    cpulist_locality,
    parse_cpu_list,
    pci_class_is_gpu,
)

NODE_DIR = "sys/devices/system/node"
PCI_DIR = "sys/bus/pci/devices"
HUGEPAGE_DIR = "hugepages/hugepages-1048576kB"


class SysfsHost:
    """Read-only view of sysfs and /proc below `root`; missing files read as None."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, relative: str) -> Path:
        return self.root / relative.lstrip("/")

    def read(self, relative: str) -> str | None:
        try:
            return self.path(relative).read_text().strip()
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return None

    def link_name(self, relative: str) -> str | None:
        """Basename of a symlink's target (sysfs `driver`, `iommu_group`), None when absent."""
        try:
            return os.path.basename(os.readlink(self.path(relative)))
        except (FileNotFoundError, NotADirectoryError, OSError):
            return None

    def entries(self, relative: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(relative)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def exists(self, relative: str) -> bool:
        return self.path(relative).exists()


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text or "", 0)
    except ValueError:
        return default


@dataclass(frozen=True)
class PciDevice:
    """One function under /sys/bus/pci/devices."""

    address: str
    class_code: int  # -1 when unreadable
    vendor: int
    device: int
    driver: str | None
    numa_node: int
    iommu_group: int | None
    local_cpus: tuple[int, ...]
    boot_vga: bool

    @property
    def ids(self) -> str:
        return f"{self.vendor:04x}:{self.device:04x}"

    @property
    def function(self) -> PciFunction:
        return PciFunction(self.address, self.class_code, self.vendor, self.device)

    @property
    def is_gpu(self) -> bool:
        return self.class_code >= 0 and pci_class_is_gpu(self.class_code)

    def describe(self) -> str:
        bound = f"driver {self.driver}" if self.driver else "no driver"
        return f"{self.address} [{self.ids}] class {self.class_code:06x}, {bound}"


def pci_device(host: SysfsHost, address: str) -> PciDevice:
    base = f"{PCI_DIR}/{address}"
    group = host.link_name(f"{base}/iommu_group")
    try:
        local = parse_cpu_list(host.read(f"{base}/local_cpulist") or "")
    except ValueError:
        local = ()
    return PciDevice(
        address=address,
        class_code=_int(host.read(f"{base}/class"), -1),
        vendor=_int(host.read(f"{base}/vendor"), -1),
        device=_int(host.read(f"{base}/device"), -1),
        driver=host.link_name(f"{base}/driver"),
        numa_node=max(_int(host.read(f"{base}/numa_node"), UNKNOWN_NUMA_NODE), UNKNOWN_NUMA_NODE),
        iommu_group=int(group) if group and group.isdigit() else None,
        local_cpus=local,
        boot_vga=host.read(f"{base}/boot_vga") == "1",
    )


def pci_devices(host: SysfsHost) -> list[PciDevice]:
    return [pci_device(host, a) for a in host.entries(PCI_DIR)]


def node_names(host: SysfsHost) -> list[str]:
    """'node0', 'node8', ... in index order."""
    names = [n for n in host.entries(NODE_DIR) if n.startswith("node") and n[4:].isdigit()]
    return sorted(names, key=lambda n: int(n[4:]))


def _cpu(host: SysfsHost, cpu_id: int) -> Cpu:
    base = f"sys/devices/system/cpu/cpu{cpu_id}/topology"
    # Without topology files every thread is its own core, as discovery does for libvirt.
    try:
        siblings = parse_cpu_list(host.read(f"{base}/thread_siblings_list") or str(cpu_id))
    except ValueError:
        siblings = (cpu_id,)
    return Cpu(
        id=cpu_id,
        socket=_int(host.read(f"{base}/physical_package_id")),
        core=_int(host.read(f"{base}/core_id"), cpu_id),
        siblings=tuple(sorted({*siblings, cpu_id})),
    )


def _memory_mib(host: SysfsHost, name: str) -> int:
    for line in (host.read(f"{NODE_DIR}/{name}/meminfo") or "").splitlines():
        words = line.split()
        if len(words) >= 4 and words[2] == "MemTotal:":
            return _int(words[3]) // 1024
    return 0


def read_nodes(host: SysfsHost) -> tuple[NumaNode, ...]:
    """Every NUMA node, memory-only ones (an empty cpulist) included."""
    nodes = []
    for name in node_names(host):
        try:
            cpu_ids = parse_cpu_list(host.read(f"{NODE_DIR}/{name}/cpulist") or "")
        except ValueError:
            cpu_ids = ()
        nodes.append(
            NumaNode(
                index=int(name[4:]),
                cpus=tuple(_cpu(host, c) for c in cpu_ids),
                memory_mib=_memory_mib(host, name),
                hugepages_1g=_int(host.read(f"{NODE_DIR}/{name}/{HUGEPAGE_DIR}/nr_hugepages")),
                distances=tuple(_int(d) for d in (host.read(f"{NODE_DIR}/{name}/distance") or "").split()),
            )
        )
    return tuple(nodes)


def _cpu_model(host: SysfsHost) -> str:
    for line in (host.read("proc/cpuinfo") or "").splitlines():
        if line.startswith(("model name", "cpu\t", "cpu ")):
            return line.split(":", 1)[1].strip()
    return ""


def topology_from_sysfs(root: Path) -> HostTopology:
    """The host under `root` as `HostTopology`, GPU locality recovered from local_cpulist where the
    firmware left numa_node at -1. A display device outside any IOMMU group is not a GPU here
    (it cannot be passed through; `host inspect` says why)."""
    host = SysfsHost(Path(root))
    nodes = read_nodes(host)
    devices = pci_devices(host)
    members: dict[int, list[PciDevice]] = {}
    for dev in devices:
        if dev.iommu_group is not None:
            members.setdefault(dev.iommu_group, []).append(dev)
    gpus, in_gpu_groups = [], set()
    for dev in devices:
        if not dev.is_gpu or dev.iommu_group is None:
            continue
        companions = tuple(m.function for m in members[dev.iommu_group] if m.address != dev.address)
        in_gpu_groups |= {m.address for m in members[dev.iommu_group]}
        gpus.append(Gpu(dev.address, dev.vendor, dev.device, dev.class_code, dev.numa_node, dev.iommu_group,
                        companions=companions))
    others = tuple(d.function for d in devices if d.address not in in_gpu_groups)
    threads = max((len(c.siblings) for n in nodes for c in n.cpus), default=1)
    topology = HostTopology(nodes=nodes, gpus=tuple(gpus), cpu_model=_cpu_model(host), threads_per_core=threads,
                            other_functions=others)
    return cpulist_locality(topology, {d.address: d.local_cpus for d in devices if d.is_gpu})
