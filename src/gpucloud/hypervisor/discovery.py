"""libvirt's view of a host (capabilities XML and PCI node-device XML) into `HostTopology`.

The parsers take documents, not connections, so the libvirt driver, the CLI and the tests
all feed them the same way: live from `virConnect.getCapabilities()` /
`virNodeDevice.XMLDesc()`, or recorded from `virsh capabilities` / `virsh nodedev-dumpxml`.
A document that does not say what we need is refused with one line naming it; guessing a
topology would put guests on the wrong NUMA node.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from gpucloud.catalog import load_catalog
from gpucloud.domain.topology import (
    UNKNOWN_NUMA_NODE,
    Cpu,
    Gpu,
    HostTopology,
    NumaNode,
    PciFunction,
    TopologyError,
    parse_cpu_list,
    pci_class_is_gpu,
    unsold_display_reason,
)
from gpucloud.errors import GpucloudError

ONE_GIB_KIB = 1024 * 1024

# libvirt's scaled-integer units, in bytes. Capabilities always says 'KiB', but the schema allows more.
_UNIT_BYTES = {
    "b": 1, "bytes": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
}  # fmt: skip


class DiscoveryError(GpucloudError):
    """A libvirt document we cannot turn into a topology; the message names the document."""


def _fail(source: str, what: str) -> DiscoveryError:
    return DiscoveryError(" ".join(f"{source}: {what}".split()))  # always one line


def _parse_xml(text: str | bytes, source: str) -> etree._Element:
    if isinstance(text, str):
        text = text.encode()
    try:
        return etree.fromstring(text, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise _fail(source, f"not well-formed XML ({exc})") from None


def _int(value: str | None, source: str, what: str, base: int = 10) -> int:
    if value is None or not value.strip():
        raise _fail(source, f"{what} is missing")
    text = value.strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text, base)
    except ValueError:
        raise _fail(source, f"{what} is not a number: {text!r}") from None


def _kib(number: str | None, unit: str | None, source: str, what: str) -> int:
    """A libvirt scaled integer (`<memory unit='KiB'>...`, `<pages unit='KiB' size=...>`) in KiB."""
    factor = _UNIT_BYTES.get((unit or "KiB").lower())
    if factor is None:
        raise _fail(source, f"{what} has an unknown unit {unit!r}")
    return _int(number, source, what) * factor // 1024


# --- capabilities ---------------------------------------------------------------------------


def _parse_cpu(element: etree._Element, source: str, cell: int) -> Cpu:
    if element.get("id") is None:
        raise _fail(source, f"cell {cell} has a <cpu> without an id")
    cpu_id = _int(element.get("id"), source, f"cell {cell} cpu id")
    where = f"cell {cell} cpu {cpu_id}"
    # libvirt omits the topology attributes when the host does not expose them: treat
    # every thread as its own core then, which never pins two guests onto one core.
    socket = _int(element.get("socket_id", "0"), source, f"{where} socket_id")
    core = _int(element.get("core_id", str(cpu_id)), source, f"{where} core_id")
    try:
        siblings = parse_cpu_list(element.get("siblings", str(cpu_id)))
    except ValueError:
        raise _fail(source, f"{where} has unreadable siblings {element.get('siblings')!r}") from None
    if cpu_id not in siblings:
        siblings = tuple(sorted({*siblings, cpu_id}))
    return Cpu(id=cpu_id, socket=socket, core=core, siblings=siblings)


def _parse_cell(cell: etree._Element, source: str) -> NumaNode:
    if cell.get("id") is None:
        raise _fail(source, "a <cell> has no id")
    index = _int(cell.get("id"), source, "cell id")
    memory = cell.find("memory")
    if memory is None:
        raise _fail(source, f"cell {index} has no <memory>")
    hugepages = 0
    for pages in cell.findall("pages"):
        if _kib(pages.get("size"), pages.get("unit"), source, f"cell {index} <pages> size") == ONE_GIB_KIB:
            hugepages = _int(pages.text, source, f"cell {index} 1 GiB page count")
    siblings = sorted(
        (
            _int(s.get("id"), source, f"cell {index} distance sibling id"),
            _int(s.get("value"), source, f"cell {index} distance"),
        )
        for s in cell.findall("distances/sibling")
    )
    cpus = cell.find("cpus")
    if cpus is None:
        raise _fail(source, f"cell {index} has no <cpus>")
    return NumaNode(
        index=index,
        cpus=tuple(sorted((_parse_cpu(c, source, index) for c in cpus.findall("cpu")), key=lambda c: c.id)),
        memory_mib=_kib(memory.text, memory.get("unit"), source, f"cell {index} <memory>") // 1024,
        hugepages_1g=hugepages,
        distances=tuple(value for _, value in siblings),
    )


def parse_capabilities(xml: str | bytes, source: str = "capabilities") -> tuple[tuple[NumaNode, ...], str, int]:
    """NUMA cells, host CPU model and threads per core from `virsh capabilities` XML."""
    root = _parse_xml(xml, source)
    if root.tag != "capabilities":
        raise _fail(source, f"expected <capabilities>, found <{root.tag}>")
    cells = root.findall("host/topology/cells/cell")
    if not cells:
        # libvirt's test driver and some nested/container hosts report <cells num='0'>.
        raise _fail(source, "no NUMA cells under /capabilities/host/topology/cells")
    nodes = tuple(sorted((_parse_cell(c, source) for c in cells), key=lambda n: n.index))
    model = (root.findtext("host/cpu/model") or "").strip()
    threads_attr = root.find("host/cpu/topology")
    if threads_attr is not None and threads_attr.get("threads") is not None:
        threads = _int(threads_attr.get("threads"), source, "host cpu topology threads")
    else:
        threads = max((len(c.siblings) for n in nodes for c in n.cpus), default=1)
    return nodes, model, threads


# --- node devices ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _PciDevice:
    """What one `nodedev-dumpxml` of a PCI device tells us."""

    function: PciFunction
    numa_node: int
    iommu_group: int | None
    group_members: tuple[str, ...]


def _address(element: etree._Element, source: str, base: int) -> str:
    """PCI address from <domain>/<bus>/... children (decimal) or from attributes (hex)."""
    parts = []
    for name in ("domain", "bus", "slot", "function"):
        text = element.findtext(name) if base == 10 else element.get(name)
        parts.append(_int(text, source, f"PCI {name}", base))
    d, b, s, f = parts
    if d > 0xFFFF or b > 0xFF or s > 0x1F or f > 0x7:
        raise _fail(source, f"PCI address out of range: {d:x}:{b:x}:{s:x}.{f:x}")
    return f"{d:04x}:{b:02x}:{s:02x}.{f:x}"


def _parse_device(xml: str | bytes, source: str) -> _PciDevice | None:
    """One node device; None when it is not a PCI device (the caller may pass any)."""
    root = _parse_xml(xml, source)
    if root.tag != "device":
        raise _fail(source, f"expected <device>, found <{root.tag}>")
    cap = root.find("capability[@type='pci']")
    if cap is None:
        return None
    name = (root.findtext("name") or "").strip()
    if name:
        source = f"{source}: {name}"
    address = _address(cap, source, base=10)
    vendor, product = cap.find("vendor"), cap.find("product")
    if vendor is None or product is None:
        raise _fail(source, "missing <vendor> or <product>")
    numa = cap.find("numa")
    numa_node = UNKNOWN_NUMA_NODE
    if numa is not None and numa.get("node") is not None:
        numa_node = _int(numa.get("node"), source, "numa node")
    group = cap.find("iommuGroup")
    members: tuple[str, ...] = ()
    if group is not None:
        members = tuple(_address(a, source, base=16) for a in group.findall("address"))
    return _PciDevice(
        function=PciFunction(
            address=address,
            # Without <class> (libvirt older than 4.x) the function is unknown, hence never passable.
            class_code=_int(cap.findtext("class") or "0", source, "class", base=16),
            vendor_id=_int(vendor.get("id"), source, "vendor id", base=16),
            device_id=_int(product.get("id"), source, "product id", base=16),
            description=(product.text or "").strip(),
        ),
        numa_node=max(numa_node, UNKNOWN_NUMA_NODE),
        iommu_group=None if group is None else _int(group.get("number"), source, "iommuGroup number"),
        group_members=members,
    )


def _assemble(devices: list[tuple[str, _PciDevice]]) -> tuple[tuple[Gpu, ...], tuple[PciFunction, ...]]:
    by_address: dict[str, _PciDevice] = {}
    for source, dev in devices:
        if dev.function.address in by_address:
            raise _fail(source, f"PCI device {dev.function.address} is described twice")
        by_address[dev.function.address] = dev
    gpus: list[Gpu] = []
    in_gpu_groups: set[str] = set()
    for source, dev in devices:
        fn = dev.function
        if not pci_class_is_gpu(fn.class_code):
            continue
        if dev.iommu_group is None:
            if unsold_display_reason(fn.vendor_id, fn.device_id, load_catalog()):
                continue  # a BMC's display chip: listed among the other functions, never a reason to refuse
            raise _fail(
                source, f"GPU {fn.address} has no IOMMU group: is the IOMMU on (intel_iommu=on / amd_iommu=on)?"
            )
        # Members named by the GPU's own group, plus any device that says it is in that group.
        members = set(dev.group_members) | {a for a, d in by_address.items() if d.iommu_group == dev.iommu_group}
        members.discard(fn.address)
        companions = tuple(
            by_address[a].function if a in by_address
            # No XML for a member: we cannot know what it is, so it blocks the group.
            else PciFunction(address=a, class_code=0, description="no node-device XML for this function")
            for a in sorted(members)
        )
        in_gpu_groups |= members | {fn.address}
        gpus.append(
            Gpu(
                address=fn.address,
                vendor_id=fn.vendor_id,
                device_id=fn.device_id,
                class_code=fn.class_code,
                numa_node=dev.numa_node,
                iommu_group=dev.iommu_group,
                product=fn.description,
                companions=companions,
            )
        )
    others = tuple(d.function for a, d in sorted(by_address.items()) if a not in in_gpu_groups)
    return tuple(sorted(gpus, key=lambda g: g.address)), others


def parse_node_devices(
    xmls: Iterable[str], source: str = "node devices"
) -> tuple[tuple[Gpu, ...], tuple[PciFunction, ...]]:
    """GPUs (with their IOMMU-group companions) and the remaining PCI functions.

    Non-PCI devices are ignored. Every PCI function of a GPU's IOMMU group should be among
    the documents; a member without one becomes an unknown companion that blocks the GPU.
    """
    parsed = []
    for i, xml in enumerate(xmls, 1):
        where = f"{source} #{i}"
        dev = _parse_device(xml, where)
        if dev is not None:
            parsed.append((where, dev))
    return _assemble(parsed)


def _topology(
    nodes: tuple[NumaNode, ...],
    model: str,
    threads: int,
    gpus: tuple[Gpu, ...],
    others: tuple[PciFunction, ...],
    source: str,
) -> HostTopology:
    try:
        return HostTopology(nodes=nodes, gpus=gpus, cpu_model=model, threads_per_core=threads, other_functions=others)
    except TopologyError as exc:
        raise _fail(source, str(exc)) from None


def topology_from_libvirt(
    capabilities_xml: str, nodedev_xmls: Iterable[str], source: str = "libvirt host"
) -> HostTopology:
    """The whole host: capabilities for NUMA/CPUs/memory, node devices for GPUs."""
    nodes, model, threads = parse_capabilities(capabilities_xml, f"{source}: capabilities")
    gpus, others = parse_node_devices(nodedev_xmls, f"{source}: node devices")
    return _topology(nodes, model, threads, gpus, others, source)


def load_fixture_dir(path: str | Path) -> HostTopology:
    """A host recorded as `capabilities.xml` plus `nodedev/*.xml` (one `virsh nodedev-dumpxml` each).

    Errors name the file at fault.
    """
    root = Path(path)
    caps_file = root / "capabilities.xml"
    try:
        caps_xml = caps_file.read_bytes()
        device_files = sorted((root / "nodedev").glob("*.xml"))
        devices = [(str(f), f.read_bytes()) for f in device_files]
    except OSError as exc:
        raise _fail(str(root), f"cannot read {exc.filename}: {exc.strerror}") from None
    nodes, model, threads = parse_capabilities(caps_xml, str(caps_file))
    parsed = [(name, dev) for name, xml in devices if (dev := _parse_device(xml, name)) is not None]
    gpus, others = _assemble(parsed)
    return _topology(nodes, model, threads, gpus, others, str(root))
