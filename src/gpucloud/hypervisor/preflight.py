"""`gpucloud host inspect`: is this machine ready to pass its GPUs through to guests?

Runs on the hypervisor host itself and only reads sysfs and /proc under `root` (default `/`),
so tests point it at fixture trees. Each check says pass, warn or fail (or info: a display
device we do not sell, listed and never judged), and for anything
short of pass, the fix to apply. The rules for which IOMMU-group companions may travel with
a GPU are the ones placement uses (`gpucloud.domain.topology`), so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpucloud.catalog import load_catalog
from gpucloud.domain.topology import (
    NumaNode,
    format_cpu_list,
    locality_from_cpulist,
    numa_summary,
    unsold_display_reason,
)
from gpucloud.hypervisor.sysfs import (
    HUGEPAGE_DIR,
    NODE_DIR,
    PciDevice,
    SysfsHost,
    pci_device,
    pci_devices,
    read_nodes,
)

PASS, WARN, FAIL, INFO = "pass", "warn", "fail", "info"
VFIO_DRIVER = "vfio-pci"


@dataclass(frozen=True)
class Check:
    name: str  # what was checked, e.g. "GPU 0000:41:00.0 driver"
    status: str  # PASS, WARN, FAIL, or INFO (listed for information, never a verdict)
    detail: str  # what was found
    fix: str = ""  # what to do about it, for WARN and FAIL


def _cpu_vendor(host: SysfsHost) -> str:
    for line in (host.read("proc/cpuinfo") or "").splitlines():
        if line.startswith("vendor_id"):
            return "amd" if "AMD" in line else "intel"
    return ""


def _iommu_cmdline(vendor: str) -> str:
    if vendor == "amd":
        return "amd_iommu=on iommu=pt"
    if vendor == "intel":
        return "intel_iommu=on iommu=pt"
    return "intel_iommu=on iommu=pt (Intel) or amd_iommu=on iommu=pt (AMD)"


_GRUB = "add {} to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and reboot"


def _check_kvm(host: SysfsHost) -> Check:
    if host.exists("dev/kvm"):
        return Check("KVM", PASS, "/dev/kvm present")
    return Check(
        "KVM", FAIL, "/dev/kvm missing",
        "enable VT-x / AMD-V (SVM) in the firmware setup, then load the module: modprobe kvm_intel (or kvm_amd)",
    )  # fmt: skip


def _check_iommu(host: SysfsHost) -> Check:
    groups = [g for g in host.entries("sys/kernel/iommu_groups") if g.isdigit()]
    cmdline = (host.read("proc/cmdline") or "").split()
    flags = [f for f in cmdline if f in ("intel_iommu=on", "amd_iommu=on", "iommu=pt")]
    wanted = _iommu_cmdline(_cpu_vendor(host))
    shown = " ".join(flags) or "no IOMMU options on the kernel command line"
    if not groups:
        if any(f.endswith("_iommu=on") for f in flags):
            why = f"the kernel was asked for it ({shown}) but found no IOMMU, so it is off in the firmware"
            fix = "enable VT-d (Intel) or AMD-Vi / IOMMU (AMD) in the firmware setup and reboot"
        else:
            why = shown
            fix = "enable VT-d / AMD-Vi in the firmware setup; " + _GRUB.format(wanted)
        return Check("IOMMU", FAIL, f"off: /sys/kernel/iommu_groups is empty; {why}", fix)
    if "iommu=pt" not in flags:
        return Check(
            "IOMMU", WARN, f"on ({len(groups)} groups) but not in passthrough mode: {shown}",
            "iommu=pt spares host devices the DMA translation cost; " + _GRUB.format("iommu=pt"),
        )  # fmt: skip
    return Check("IOMMU", PASS, f"on: {len(groups)} groups ({shown})")


def _check_vfio(host: SysfsHost) -> Check:
    if host.exists(f"sys/bus/pci/drivers/{VFIO_DRIVER}"):
        return Check("vfio-pci", PASS, "driver registered (/sys/bus/pci/drivers/vfio-pci)")
    if host.exists("sys/module/vfio_pci"):
        return Check("vfio-pci", PASS, "module present (/sys/module/vfio_pci)")
    return Check(
        "vfio-pci", FAIL, "neither /sys/bus/pci/drivers/vfio-pci nor /sys/module/vfio_pci exists",
        "modprobe vfio-pci, and load it at boot: echo vfio-pci > /etc/modules-load.d/vfio-pci.conf",
    )  # fmt: skip


def _check_nodes(nodes: tuple[NumaNode, ...]) -> Check:
    cpu_nodes = [n for n in nodes if not n.memory_only]
    memory_only = [n for n in nodes if n.memory_only]
    summary = numa_summary(len(cpu_nodes), len(memory_only))
    if not nodes:
        return Check("NUMA", WARN, "no NUMA nodes under /sys/devices/system/node", "")
    detail = f"{summary}: " + ", ".join(f"node{n.index} {len(n.cpus)} CPUs" for n in cpu_nodes)
    if memory_only:
        detail += "; memory-only (no CPUs; never a guest's RAM): " + ", ".join(
            f"node{n.index} {n.memory_mib // 1024} GiB" for n in memory_only
        )
    return Check("NUMA", PASS, detail)


_NUMA_FIX = (
    "the firmware does not report this slot's proximity (ACPI _PXM/SRAT): enable NUMA / SRAT reporting "
    "in the firmware setup (on AMD EPYC: NPS1 or higher) or update the firmware"
)


def _check_numa(gpu: PciDevice, nodes: tuple[NumaNode, ...]) -> Check:
    name = f"GPU {gpu.address} NUMA node"
    cpu_nodes = [n for n in nodes if not n.memory_only]
    if gpu.numa_node >= 0:
        if any(n.index == gpu.numa_node and n.memory_only for n in nodes):
            return Check(name, WARN, f"node {gpu.numa_node}, a memory-only node: no cores are local to it",
                         _NUMA_FIX + "; until then its guests get cores and memory from any node with room")
        return Check(name, PASS, f"node {gpu.numa_node}")
    local = locality_from_cpulist(gpu.local_cpus, nodes)
    if local:
        where = f"node {local[0]}" if len(local) == 1 else f"nodes {format_cpu_list(local)} (placed as node {local[0]})"
        return Check(
            name, WARN, f"{where}, from local_cpulist {format_cpu_list(gpu.local_cpus)}; the firmware reports -1",
            f"libvirt shows only the firmware's -1, so give the node when registering: gpucloud host add ... "
            f"--gpu-node {gpu.address}={local[0]}; for good, have the firmware report the slot's proximity "
            "(ACPI _PXM/SRAT): enable NUMA / SRAT reporting in the firmware setup or update the firmware",
        )  # fmt: skip
    fix = _NUMA_FIX + "; until then placement cannot tell which CPUs are local to this GPU"
    if len(cpu_nodes) <= 1:  # one node: the GPU can only be local to it
        return Check(name, WARN, "unknown (-1), harmless on this single-node host", fix)
    why = "local_cpulist names every CPU" if gpu.local_cpus else "no local_cpulist"
    summary = numa_summary(len(cpu_nodes), len(nodes) - len(cpu_nodes))
    return Check(name, FAIL, f"unknown (-1) on a host with {summary} ({why})", fix)


def _check_display(dev: PciDevice, reason: str) -> Check:
    vga = ", the boot VGA" if dev.boot_vga else ""
    return Check(f"display {dev.address}", INFO,
                 f"[{dev.ids}] class {dev.class_code:06x}{vga}: {reason}; listed for information, not checked")


def _check_group(host: SysfsHost, gpu: PciDevice) -> Check:
    name = f"GPU {gpu.address} IOMMU group"
    group = host.link_name(f"sys/bus/pci/devices/{gpu.address}/iommu_group")
    if group is None:
        return Check(name, FAIL, "no IOMMU group: the IOMMU is off", "turn the IOMMU on (see the IOMMU check)")
    addresses = host.entries(f"sys/kernel/iommu_groups/{group}/devices")
    members = [pci_device(host, a) for a in addresses if a != gpu.address]
    blockers, notes = [], []
    for member in members:
        function = member.function
        if function.is_bridge:
            notes.append(f"{member.address} bridge (stays with the host)")
        elif function.passable:
            notes.append(f"{member.address} companion, {member.driver or 'no driver'} (goes to the guest)")
        else:
            blockers.append(member)
    if blockers:
        names = "; ".join(b.describe() for b in blockers)
        return Check(
            name, FAIL, f"group {group} is not viable: it also holds {names}",
            "the whole group goes to one guest, and these devices must stay with the host: move the GPU or "
            "them to a slot behind its own root port, or enable ACS (PCIe Access Control Services) in the "
            "firmware setup so the IOMMU separates them; the pcie_acs_override patch is unsafe between tenants",
        )  # fmt: skip
    members_text = ", ".join(notes) if notes else "the GPU alone"
    return Check(name, PASS, f"group {group} is viable: {members_text}")


def _check_driver(gpu: PciDevice, companions: list[PciDevice]) -> Check:
    name = f"GPU {gpu.address} driver"
    if gpu.driver == VFIO_DRIVER:
        return Check(name, PASS, "bound to vfio-pci")
    if gpu.driver is None:
        return Check(name, PASS, "no driver bound; libvirt binds vfio-pci when a guest starts")
    ids = ",".join(sorted({gpu.ids} | {c.ids for c in companions}))
    return Check(
        name, FAIL, f"bound to {gpu.driver}, which holds the GPU for the host",
        f"bind it to vfio-pci at boot: echo 'options vfio-pci ids={ids}' > /etc/modprobe.d/vfio.conf; "
        f"echo 'softdep {gpu.driver} pre: vfio-pci' >> /etc/modprobe.d/vfio.conf; update-initramfs -u; reboot. "
        f"Right now: echo vfio-pci > /sys/bus/pci/devices/{gpu.address}/driver_override; "
        f"echo {gpu.address} > /sys/bus/pci/devices/{gpu.address}/driver/unbind; "
        f"echo {gpu.address} > /sys/bus/pci/drivers_probe",
    )  # fmt: skip


def _check_hugepages(host: SysfsHost, nodes: list[str]) -> list[Check]:
    """Per CPU node: memory-only nodes never back a guest's RAM, so their pages do not matter."""
    fix = (
        "reserve them at boot: " + _GRUB.format("default_hugepagesz=1G hugepagesz=1G hugepages=N")
        + " (the kernel spreads N evenly over the nodes), or per node soon after boot, before memory "
        "fragments: echo N > /sys/devices/system/node/nodeX/hugepages/hugepages-1048576kB/nr_hugepages"
    )  # fmt: skip
    if not nodes:
        return [Check("1 GiB hugepages", WARN, "no NUMA nodes under /sys/devices/system/node", fix)]
    checks = []
    for node in nodes:
        base = f"{NODE_DIR}/{node}/{HUGEPAGE_DIR}"
        total, free = host.read(f"{base}/nr_hugepages"), host.read(f"{base}/free_hugepages")
        name = f"1 GiB hugepages {node}"
        if total is None:
            checks.append(Check(name, WARN, "this CPU or kernel offers no 1 GiB pages (pdpe1gb)", ""))
        elif int(total) == 0:
            checks.append(Check(name, WARN, "none reserved: guests there get 4 KiB pages", fix))
        else:
            checks.append(Check(name, PASS, f"{total} reserved, {free if free is not None else '?'} free"))
    return checks


def run_preflight(root: Path = Path("/")) -> list[Check]:
    """Every check, in the order an operator would fix them. `root` must be a directory."""
    if not Path(root).is_dir():
        raise NotADirectoryError(f"host inspect: root {root} is not a directory")
    host = SysfsHost(Path(root))
    checks = [_check_kvm(host), _check_iommu(host), _check_vfio(host)]
    nodes = read_nodes(host)
    if nodes:
        checks.append(_check_nodes(nodes))
    catalog = load_catalog()
    gpus = []
    for dev in pci_devices(host):
        if not dev.is_gpu:
            continue
        reason = unsold_display_reason(dev.vendor, dev.device, catalog)
        if reason:
            checks.append(_check_display(dev, reason))
        else:
            gpus.append(dev)
    if not gpus:
        checks.append(Check("GPUs", WARN, "no GPU of a model in the catalog found", ""))
    for gpu in gpus:
        group = host.link_name(f"sys/bus/pci/devices/{gpu.address}/iommu_group")
        members = host.entries(f"sys/kernel/iommu_groups/{group}/devices") if group else []
        companions = [pci_device(host, a) for a in members if a != gpu.address]
        companions = [c for c in companions if c.function.passable]
        checks += [_check_numa(gpu, nodes), _check_group(host, gpu), _check_driver(gpu, companions)]
    checks += _check_hugepages(host, [f"node{n.index}" for n in nodes if not n.memory_only])
    return checks


def host_ready(checks: list[Check]) -> bool:
    """Ready for passthrough when nothing failed (warnings are advice, INFO lines only information)."""
    return all(c.status != FAIL for c in checks)


def format_report(checks: list[Check]) -> str:
    """A plain-text table, one line per check, with the fix under anything not passing."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for check in checks:
        lines.append(f"{check.status.upper():<5} {check.name:<{width}}  {check.detail}")
        if check.fix and check.status != PASS:
            lines.append(f"{'':<5} {'':<{width}}  fix: {check.fix}")
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    if failed:
        lines.append(f"NOT READY: {failed} check(s) failed, {warned} warning(s)")
    else:
        lines.append(f"READY for GPU passthrough ({warned} warning(s))")
    return "\n".join(lines)
