"""`DomainSpec` → libvirt domain XML: a pure function, no connection needed.

The layout puts every passed-through GPU behind a PCIe expander bus (pxb-pcie) whose
`<node>` is the guest NUMA cell backed by the host node the GPU is wired to, so the
guest's `nvidia-smi topo -m` and NCCL see the same locality as the host. vCPUs are
pinned one to one, memory is bound strictly per guest cell, and QEMU's own threads
run on the node's reserved cores. See docs/operations.md and libvirt's formatdomain.
"""

from __future__ import annotations

import hashlib
import uuid as uuid_module
from dataclasses import dataclass

from lxml import etree
from lxml.builder import E

from gpucloud.domain.guest import DomainSpec
from gpucloud.domain.topology import TopologyError, format_cpu_list, normalise_pci_address

DOMAIN_TYPES = ("kvm", "qemu")
MAX_FUNCTIONS_PER_GPU = 8  # a PCI slot has functions 0-7
_TOP_BUS = 254  # highest bus number a pxb-pcie may take; expanders are stacked downwards from it
RESCUE_VOLUME = "gpucloud-rescue.iso"  # the rescue system (e.g. Finnix), put in each host's pool by operators


class DomainSpecError(ValueError):
    """A spec that cannot be a working domain; the message says which part and why."""


@dataclass(frozen=True)
class Nic:
    """How the guest's one network interface is attached on the host.

    kind 'network' (a libvirt virtual network, e.g. 'default'), 'bridge' (a host bridge,
    e.g. 'br0') or 'user' (QEMU user-mode networking: no host setup, for CI and laptops).
    """

    kind: str = "network"
    source: str = "default"

    @classmethod
    def parse(cls, text: str) -> Nic:
        """'network:default', 'bridge:br0' or 'user'."""
        kind, _, source = text.partition(":")
        if kind == "user" and not source:
            return cls("user", "")
        if kind in ("network", "bridge") and source:
            return cls(kind, source)
        raise DomainSpecError(f"network interface {text!r}: expected 'network:NAME', 'bridge:NAME' or 'user'")


@dataclass(frozen=True)
class Volumes:
    """Names of the storage volumes a domain uses, all in one libvirt storage pool."""

    pool: str
    disk: str | None  # qcow2 system disk, None for a diskless guest
    seed: str | None  # NoCloud seed ISO, None without cloud-init
    rescue: str | None = None  # the rescue ISO, booted first, when the spec asks for rescue mode


def volume_names(domain_name: str) -> tuple[str, str]:
    """Disk and seed volume names; derived from the domain name so undefine finds them again."""
    return f"{domain_name}-disk.qcow2", f"{domain_name}-seed.iso"


def volumes_for(spec: DomainSpec, pool: str) -> Volumes:
    """The volumes a spec uses: a disk when it has an image or a size, a seed with cloud-init."""
    disk, seed = volume_names(spec.name)
    has_disk = spec.disk_mib > 0 or spec.image is not None
    return Volumes(pool=pool, disk=disk if has_disk else None, seed=seed if spec.cloud_init is not None else None,
                   rescue=RESCUE_VOLUME if spec.rescue else None)


def mac_address(domain_uuid: str) -> str:
    """A stable locally administered MAC per domain, for specs that carry none (instances made
    before MACs were recorded): redefining keeps the guest's interface."""
    digest = hashlib.sha256(domain_uuid.encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def validate_spec(spec: DomainSpec) -> None:
    """Refuse specs libvirt would accept but that cannot run as intended (the test driver
    accepts, e.g., vCPUs outside every NUMA cell or a pin to a missing vCPU)."""
    if not spec.name or any(c in spec.name for c in "/\n\t "):
        raise DomainSpecError(f"domain name {spec.name!r} is empty or has a space, tab, newline or '/'")
    try:
        uuid_module.UUID(spec.uuid)
    except (ValueError, AttributeError, TypeError):
        raise DomainSpecError(f"domain uuid {spec.uuid!r} is not a UUID") from None
    if spec.domain_type not in DOMAIN_TYPES:
        raise DomainSpecError(f"domain_type {spec.domain_type!r}: expected one of {', '.join(DOMAIN_TYPES)}")
    if spec.vcpus < 1:
        raise DomainSpecError("a domain needs at least one vCPU")
    if not spec.cells:
        raise DomainSpecError("a domain needs at least one guest NUMA cell")
    ids = sorted(c.id for c in spec.cells)
    if ids != list(range(len(spec.cells))):
        raise DomainSpecError(f"guest cell ids must be 0..{len(spec.cells) - 1}, got {ids}")
    seen: dict[int, int] = {}
    for cell in spec.cells:
        if cell.memory_mib <= 0:
            raise DomainSpecError(f"guest cell {cell.id} has no memory")
        if cell.host_node < 0:
            raise DomainSpecError(f"guest cell {cell.id} is on host node {cell.host_node}; a known node is needed")
        if cell.hugepages_1g and cell.memory_mib % 1024:
            raise DomainSpecError(f"guest cell {cell.id}: {cell.memory_mib} MiB is not a whole number of 1 GiB pages")
        if not cell.vcpus:
            raise DomainSpecError(f"guest cell {cell.id} has no vCPUs")
        for v in cell.vcpus:
            if v in seen:
                raise DomainSpecError(f"vCPU {v} is in guest cells {seen[v]} and {cell.id}")
            seen[v] = cell.id
    if sorted(seen) != list(range(spec.vcpus)):
        raise DomainSpecError(f"guest cells must hold vCPUs 0..{spec.vcpus - 1} exactly once, they hold {sorted(seen)}")
    if spec.threads_per_core < 1:
        raise DomainSpecError("threads_per_core must be at least 1")
    for cell in spec.cells:
        if len(cell.vcpus) % spec.threads_per_core:
            raise DomainSpecError(
                f"guest cell {cell.id} has {len(cell.vcpus)} vCPUs, not whole cores of {spec.threads_per_core} threads"
            )
    pinned = [p for p in spec.vcpu_pins if p is not None]
    if any(p < 0 for p in pinned) or any(c < 0 for c in spec.emulator_cpuset + spec.shared_cpuset):
        raise DomainSpecError("host CPU numbers cannot be negative")
    if len(set(pinned)) != len(pinned):
        raise DomainSpecError("two vCPUs are pinned to the same host CPU")
    cell_ids = set(ids)
    functions: list[str] = []
    for gpu in spec.gpus:
        if gpu.cell not in cell_ids:
            raise DomainSpecError(f"GPU {gpu.address} sits in guest cell {gpu.cell}, which the domain does not have")
        if not gpu.functions or _pci(gpu.functions[0]) != _pci(gpu.address):
            raise DomainSpecError(f"GPU {gpu.address}: its functions must start with the GPU itself")
        if len(gpu.functions) > MAX_FUNCTIONS_PER_GPU:
            raise DomainSpecError(f"GPU {gpu.address}: {len(gpu.functions)} functions do not fit one PCI slot")
        functions += [_pci(f) for f in gpu.functions]
    duplicates = sorted({f for f in functions if functions.count(f) > 1})
    if duplicates:
        raise DomainSpecError(f"PCI function(s) passed through twice: {', '.join(duplicates)}")
    if spec.disk_mib < 0:
        raise DomainSpecError("disk_mib cannot be negative")


def _pci(address: str) -> str:
    try:
        return normalise_pci_address(address)
    except TopologyError as exc:
        raise DomainSpecError(str(exc)) from None


def _hex(value: int, width: int) -> str:
    return f"0x{value:0{width}x}"


def _pci_address_element(address: str) -> etree._Element:
    domain, bus, rest = _pci(address).split(":")
    slot, function = rest.split(".")
    return E.address(domain=f"0x{domain}", bus=f"0x{bus}", slot=f"0x{slot}", function=f"0x{function}")


def _guest_address(bus_index: int, function: int, multifunction: bool) -> etree._Element:
    attrs = {
        "type": "pci",
        "domain": "0x0000",
        "bus": _hex(bus_index, 2),
        "slot": "0x00",
        "function": _hex(function, 1),
    }
    if multifunction:
        attrs["multifunction"] = "on"
    return E.address(**attrs)


def _cpu(spec: DomainSpec) -> etree._Element:
    threads = spec.threads_per_core
    per_cell = {len(c.vcpus) for c in spec.cells}
    if len(per_cell) == 1:  # one guest socket per cell when the cells are alike
        sockets, cores = len(spec.cells), per_cell.pop() // threads
    else:
        sockets, cores = 1, spec.vcpus // threads
    if spec.domain_type == "kvm":
        cpu = E.cpu(mode="host-passthrough", check="none", migratable="off")
    else:  # TCG refuses host-passthrough; qemu64 is what QEMU emulates everywhere
        cpu = E.cpu(E.model("qemu64", fallback="forbid"), mode="custom", match="exact", check="none")
    cpu.append(E.topology(sockets=str(sockets), dies="1", cores=str(cores), threads=str(threads)))
    cells = E.numa()
    for cell in sorted(spec.cells, key=lambda c: c.id):
        cells.append(E.cell(id=str(cell.id), cpus=format_cpu_list(cell.vcpus), memory=str(cell.memory_mib), unit="MiB"))
    cpu.append(cells)
    return cpu


def _cputune(spec: DomainSpec) -> etree._Element | None:
    tune = E.cputune()
    for vcpu, host_cpu in enumerate(spec.vcpu_pins):
        if host_cpu is not None:
            tune.append(E.vcpupin(vcpu=str(vcpu), cpuset=str(host_cpu)))
    if spec.emulator_cpuset:
        tune.append(E.emulatorpin(cpuset=format_cpu_list(spec.emulator_cpuset)))
    return tune if len(tune) else None


def _numatune(spec: DomainSpec) -> etree._Element:
    nodes = format_cpu_list([c.host_node for c in spec.cells])
    tune = E.numatune(E.memory(mode="strict", nodeset=nodes))
    for cell in sorted(spec.cells, key=lambda c: c.id):
        tune.append(E.memnode(cellid=str(cell.id), mode="strict", nodeset=str(cell.host_node)))
    return tune


def _pci_topology(spec: DomainSpec, stand_in_gpus: bool) -> list[etree._Element]:
    """pcie-root, one pxb-pcie per guest cell, a root port per GPU under its cell's expander,
    and the GPU's functions at slot 0 of that port (multifunction, as on the host card)."""
    if not spec.gpus:
        return []
    cells = sorted(c.id for c in spec.cells)
    gpus_by_cell = {cell: [g for g in spec.gpus if g.cell == cell] for cell in cells}
    elements: list[etree._Element] = [E.controller(type="pci", index="0", model="pcie-root")]
    expander_index = {cell: 1 + i for i, cell in enumerate(cells)}
    top = _TOP_BUS
    for cell in cells:
        bus_nr = top - len(gpus_by_cell[cell])  # the expander's own bus plus one per root port below it
        top = bus_nr - 1
        elements.append(
            E.controller(
                E.model(name="pxb-pcie"),
                E.target(E.node(str(cell)), busNr=str(bus_nr)),
                type="pci", index=str(expander_index[cell]), model="pcie-expander-bus",
            )
        )  # fmt: skip
    next_index = 1 + len(cells)
    devices: list[etree._Element] = []
    for cell in cells:
        for slot, gpu in enumerate(gpus_by_cell[cell]):
            port = next_index
            next_index += 1
            elements.append(
                E.controller(
                    E.address(type="pci", domain="0x0000", bus=_hex(expander_index[cell], 2), slot=_hex(slot, 2),
                              function="0x0"),
                    type="pci", index=str(port), model="pcie-root-port",
                )
            )  # fmt: skip
            multifunction = len(gpu.functions) > 1
            for function, host_address in enumerate(gpu.functions):
                guest = _guest_address(port, function, multifunction and function == 0)
                if stand_in_gpus:
                    devices.append(E.rng(E.backend("/dev/urandom", model="random"), guest, model="virtio"))
                else:
                    devices.append(
                        E.hostdev(
                            E.driver(name="vfio"),
                            E.source(_pci_address_element(host_address)),
                            guest,
                            mode="subsystem", type="pci", managed="yes",
                        )
                    )  # fmt: skip
    return elements + devices


def _disks(volumes: Volumes) -> list[etree._Element]:
    disks = []
    if volumes.rescue:
        disks.append(
            E.disk(
                E.driver(name="qemu", type="raw"),
                E.source(pool=volumes.pool, volume=volumes.rescue),
                E.target(dev="sdb", bus="sata"),
                E.readonly(),
                E.boot(order="1"),
                type="volume", device="cdrom",
            )
        )  # fmt: skip
    if volumes.disk:
        disks.append(
            E.disk(
                E.driver(name="qemu", type="qcow2", discard="unmap"),
                E.source(pool=volumes.pool, volume=volumes.disk),
                E.target(dev="vda", bus="virtio"),
                E.boot(order="2" if volumes.rescue else "1"),
                type="volume", device="disk",
            )
        )  # fmt: skip
    if volumes.seed:
        disks.append(
            E.disk(
                E.driver(name="qemu", type="raw"),
                E.source(pool=volumes.pool, volume=volumes.seed),
                E.target(dev="sda", bus="sata"),
                E.readonly(),
                type="volume", device="cdrom",
            )
        )  # fmt: skip
    return disks


def _interface(nic: Nic, mac: str) -> etree._Element:
    iface = E.interface(E.mac(address=mac), type=nic.kind)
    if nic.kind == "network":
        iface.append(E.source(network=nic.source))
    elif nic.kind == "bridge":
        iface.append(E.source(bridge=nic.source))
    iface.append(E.model(type="virtio"))
    return iface


def build_domain_xml(
    spec: DomainSpec,
    *,
    pool: str = "gpucloud",
    nic: Nic = Nic(),
    stand_in_gpus: bool = False,
) -> str:
    """The libvirt domain XML for `spec`, its disks in volumes of `pool`.

    `stand_in_gpus` is for hosts without an IOMMU (CI): each GPU function becomes an emulated
    virtio-rng device at exactly the guest address the hostdev would take, so the expander
    and NUMA wiring can be booted and read back under QEMU without VFIO.
    """
    validate_spec(spec)
    volumes = volumes_for(spec, pool)
    memory = str(spec.memory_mib)
    vcpu = E.vcpu(str(spec.vcpus), placement="static")
    if not spec.pinned and spec.shared_cpuset:
        vcpu.set("cpuset", format_cpu_list(spec.shared_cpuset))

    domain = E.domain(type=spec.domain_type)
    domain.append(E.name(spec.name))
    domain.append(E.uuid(spec.uuid))
    if spec.title:
        domain.append(E.title(" ".join(spec.title.split())))  # libvirt wants one line
    domain.append(E.memory(memory, unit="MiB"))
    domain.append(E.currentMemory(memory, unit="MiB"))
    huge_cells = [c.id for c in spec.cells if c.hugepages_1g]
    if huge_cells:
        page = E.page(size="1", unit="G", nodeset=format_cpu_list(huge_cells))
        domain.append(E.memoryBacking(E.hugepages(page)))
    domain.append(vcpu)
    tune = _cputune(spec)
    if tune is not None:
        domain.append(tune)
    domain.append(_numatune(spec))
    domain.append(E.os(E.type("hvm", arch="x86_64", machine="q35")))  # boot order is on the disk
    features = E.features(E.acpi(), E.apic())
    if spec.domain_type == "kvm" and spec.pinned:
        features.append(E.kvm(E("hint-dedicated", state="on")))
    domain.append(features)
    domain.append(_cpu(spec))
    domain.append(E.on_poweroff("destroy"))
    domain.append(E.on_reboot("restart"))
    domain.append(E.on_crash("destroy"))

    devices = E.devices()
    for element in _pci_topology(spec, stand_in_gpus):
        devices.append(element)
    for disk in _disks(volumes):
        devices.append(disk)
    devices.append(_interface(nic, spec.mac or mac_address(spec.uuid)))
    devices.append(E.serial(E.target(port="0"), type="pty"))
    devices.append(E.console(E.target(type="serial", port="0"), type="pty"))
    devices.append(E.video(E.model(type="none")))
    devices.append(E.memballoon(model="none"))  # VFIO pins all guest RAM: ballooning cannot reclaim it
    domain.append(devices)
    return etree.tostring(domain, pretty_print=True, encoding="unicode")
