"""`gpucloud host inspect`: is this machine ready to pass its GPUs through to guests?

Runs on the hypervisor host itself and only reads sysfs and /proc under `root` (default `/`),
so tests point it at fixture trees. Each check says pass, warn or fail, and for anything
short of pass, the fix to apply. The rules for which IOMMU-group companions may travel with
a GPU are the ones placement uses (`gpucloud.domain.topology`), so the two never disagree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gpucloud.domain.topology import PciFunction, pci_class_is_gpu

PASS, WARN, FAIL = "pass", "warn", "fail"
VFIO_DRIVER = "vfio-pci"
HUGEPAGE_DIR = "hugepages/hugepages-1048576kB"


@dataclass(frozen=True)
class Check:
    name: str  # what was checked, e.g. "GPU 0000:41:00.0 driver"
    status: str  # PASS, WARN or FAIL
    detail: str  # what was found
    fix: str = ""  # what to do about it, for WARN and FAIL


class _Host:
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


@dataclass(frozen=True)
class _Device:
    address: str
    class_code: int
    vendor: int
    device: int
    driver: str | None

    @property
    def ids(self) -> str:
        return f"{self.vendor:04x}:{self.device:04x}"

    @property
    def function(self) -> PciFunction:
        return PciFunction(self.address, self.class_code, self.vendor, self.device)

    def describe(self) -> str:
        bound = f"driver {self.driver}" if self.driver else "no driver"
        return f"{self.address} [{self.ids}] class {self.class_code:06x}, {bound}"


def _hex(text: str | None) -> int:
    try:
        return int(text or "", 16)
    except ValueError:
        return -1


def _device(host: _Host, address: str) -> _Device:
    base = f"sys/bus/pci/devices/{address}"
    return _Device(
        address=address,
        class_code=_hex(host.read(f"{base}/class")),
        vendor=_hex(host.read(f"{base}/vendor")),
        device=_hex(host.read(f"{base}/device")),
        driver=host.link_name(f"{base}/driver"),
    )


def _cpu_vendor(host: _Host) -> str:
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


def _check_kvm(host: _Host) -> Check:
    if host.exists("dev/kvm"):
        return Check("KVM", PASS, "/dev/kvm present")
    return Check(
        "KVM", FAIL, "/dev/kvm missing",
        "enable VT-x / AMD-V (SVM) in the firmware setup, then load the module: modprobe kvm_intel (or kvm_amd)",
    )  # fmt: skip


def _check_iommu(host: _Host) -> Check:
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


def _check_vfio(host: _Host) -> Check:
    if host.exists(f"sys/bus/pci/drivers/{VFIO_DRIVER}"):
        return Check("vfio-pci", PASS, "driver registered (/sys/bus/pci/drivers/vfio-pci)")
    if host.exists("sys/module/vfio_pci"):
        return Check("vfio-pci", PASS, "module present (/sys/module/vfio_pci)")
    return Check(
        "vfio-pci", FAIL, "neither /sys/bus/pci/drivers/vfio-pci nor /sys/module/vfio_pci exists",
        "modprobe vfio-pci, and load it at boot: echo vfio-pci > /etc/modules-load.d/vfio-pci.conf",
    )  # fmt: skip


def _numa_nodes(host: _Host) -> list[str]:
    return [n for n in host.entries("sys/devices/system/node") if n.startswith("node") and n[4:].isdigit()]


def _check_numa(host: _Host, gpu: _Device, node_count: int) -> Check:
    name = f"GPU {gpu.address} NUMA node"
    raw = host.read(f"sys/bus/pci/devices/{gpu.address}/numa_node")
    node = int(raw) if raw and raw.lstrip("-").isdigit() else -1
    if node >= 0:
        return Check(name, PASS, f"node {node}")
    fix = (
        "the firmware does not report this slot's proximity (ACPI _PXM/SRAT): enable NUMA / SRAT reporting "
        "in the firmware setup (on AMD EPYC: NPS1 or higher) or update the firmware; until then placement "
        "cannot tell which CPUs are local to this GPU"
    )
    if node_count <= 1:  # one node: the GPU can only be local to it
        return Check(name, WARN, "unknown (-1), harmless on this single-node host", fix)
    return Check(name, FAIL, f"unknown (-1) on a host with {node_count} NUMA nodes", fix)


def _check_group(host: _Host, gpu: _Device) -> Check:
    name = f"GPU {gpu.address} IOMMU group"
    group = host.link_name(f"sys/bus/pci/devices/{gpu.address}/iommu_group")
    if group is None:
        return Check(name, FAIL, "no IOMMU group: the IOMMU is off", "turn the IOMMU on (see the IOMMU check)")
    members = [_device(host, a) for a in host.entries(f"sys/kernel/iommu_groups/{group}/devices") if a != gpu.address]
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


def _check_driver(gpu: _Device, companions: list[_Device]) -> Check:
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


def _check_hugepages(host: _Host, nodes: list[str]) -> list[Check]:
    fix = (
        "reserve them at boot: " + _GRUB.format("default_hugepagesz=1G hugepagesz=1G hugepages=N")
        + " (the kernel spreads N evenly over the nodes), or per node soon after boot, before memory "
        "fragments: echo N > /sys/devices/system/node/nodeX/hugepages/hugepages-1048576kB/nr_hugepages"
    )  # fmt: skip
    if not nodes:
        return [Check("1 GiB hugepages", WARN, "no NUMA nodes under /sys/devices/system/node", fix)]
    checks = []
    for node in nodes:
        base = f"sys/devices/system/node/{node}/{HUGEPAGE_DIR}"
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
    host = _Host(Path(root))
    checks = [_check_kvm(host), _check_iommu(host), _check_vfio(host)]
    nodes = _numa_nodes(host)
    devices = [_device(host, a) for a in host.entries("sys/bus/pci/devices")]
    gpus = [d for d in devices if d.class_code >= 0 and pci_class_is_gpu(d.class_code)]
    if not gpus:
        checks.append(Check("GPUs", WARN, "no VGA or 3D controller (class 0x0300/0x0302) found", ""))
    for gpu in gpus:
        group = host.link_name(f"sys/bus/pci/devices/{gpu.address}/iommu_group")
        members = host.entries(f"sys/kernel/iommu_groups/{group}/devices") if group else []
        companions = [_device(host, a) for a in members if a != gpu.address]
        companions = [c for c in companions if c.function.passable]
        checks += [_check_numa(host, gpu, len(nodes)), _check_group(host, gpu), _check_driver(gpu, companions)]
    checks += _check_hugepages(host, nodes)
    return checks


def host_ready(checks: list[Check]) -> bool:
    """Ready for passthrough when nothing failed (warnings are advice)."""
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
