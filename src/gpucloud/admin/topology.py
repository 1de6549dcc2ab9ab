"""The geometry of a host's topology picture (the template draws it as SVG).

Each NUMA node is a box: its physical cores as a grid (one cell per core, split in one
strip per hardware thread), its GPUs beside them, a memory bar below. Every core thread,
GPU and memory share held by an instance gets that instance's colour; cores kept for the
host are hatched. Pure: takes `services.hosts.host_detail`'s dict, returns shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# distinct, readable with white text, and none of them the grey of "kept for the host"
PALETTE = ("#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626",
           "#4f46e5", "#ca8a04", "#0d9488", "#9333ea", "#ea580c", "#16a34a", "#c026d3", "#0284c7")

OTHERS = "#b8c2cf"  # holders other than the focused instance

CORE = 22  # a core's cell
CORE_GAP = 4
CORE_COLUMNS = 8
GPU_W, GPU_H, GPU_GAP = 176, 46, 8
PAD = 14
HEADER = 30
MEMORY_H = 14
NODE_GAP = 18
NODE_COLUMNS = 2


@dataclass(frozen=True)
class Shape:
    x: float
    y: float
    w: float
    h: float
    fill: str  # a colour, or a css class name prefixed with "." (free, reserved, ...)
    title: str
    href: str | None = None


@dataclass(frozen=True)
class GpuCard:
    x: float
    y: float
    w: float
    h: float
    fill: str
    address: str
    model: str
    line2: str
    state: str  # free, claimed, or why placement cannot use it (services.hosts: the GPU's `state`)
    title: str
    href: str | None = None


@dataclass(frozen=True)
class Holder:
    colour: str
    instance_id: int
    label: str
    account_id: int | None  # None: known by e-mail only
    account: str
    staff: bool
    cpus: int = 0
    gpus: int = 0
    memory_mib: int = 0


@dataclass
class NodeBox:
    x: float
    y: float
    w: float
    h: float
    title: str
    subtitle: str
    threads: list[Shape] = field(default_factory=list)
    cores: list[Shape] = field(default_factory=list)  # outlines, one per physical core
    gpus: list[GpuCard] = field(default_factory=list)
    memory: list[Shape] = field(default_factory=list)
    memory_label: str = ""
    memory_y: float = 0


@dataclass
class Picture:
    width: float
    height: float
    nodes: list[NodeBox]
    legend: list[Holder]


def _gib(mib: int) -> str:
    value = mib / 1024
    return f"{value:.0f} GiB" if value >= 10 or value == int(value) else f"{value:.1f} GiB"


def _short(address: str) -> str:
    """0000:01:00.0 -> 01:00.0 (the domain is 0000 on every host we know)."""
    return address[5:] if address.startswith("0000:") else address


def picture(detail: dict, memory_by_instance: dict[int, dict[int, int]], instance_url,
            focus: int | None = None) -> Picture:
    """`memory_by_instance`: node index -> instance id -> MiB (services.host_memory).
    `instance_url(id)` makes the links of held shapes. With `focus`, only that instance is in
    colour and every other holder is greyed: where one instance sits among its neighbours."""
    holders = _holders(detail)
    colours = {iid: PALETTE[n % len(PALETTE)] for n, iid in enumerate(sorted(holders))}
    if focus is not None:
        colours = {iid: PALETTE[0] if iid == focus else OTHERS for iid in holders}
    counts = {iid: {"cpus": 0, "gpus": 0, "memory_mib": 0} for iid in holders}

    nodes_in = list(detail["nodes"])
    if detail["gpus_unknown_node"]:
        nodes_in.append({"index": None, "cpus": [], "gpus": detail["gpus_unknown_node"], "memory_mib": 0,
                         "reserved_memory_mib": 0, "memory_claimed_mib": 0, "hugepages_1g": 0,
                         "hugepages_claimed": 0, "shared_vcpus": 0})
    max_core_rows = max((_core_rows(n) for n in nodes_in), default=1)
    max_gpus = max((len(n["gpus"]) for n in nodes_in), default=0)
    cores_w = CORE_COLUMNS * (CORE + CORE_GAP) - CORE_GAP
    node_w = PAD + cores_w + PAD + GPU_W + PAD
    body_h = max(max_core_rows * (CORE + CORE_GAP) - CORE_GAP, max_gpus * (GPU_H + GPU_GAP) - GPU_GAP, CORE)
    node_h = HEADER + body_h + PAD + 16 + MEMORY_H + PAD
    columns = min(NODE_COLUMNS, max(len(nodes_in), 1))

    boxes = []
    for n, node in enumerate(nodes_in):
        x = (n % columns) * (node_w + NODE_GAP)
        y = (n // columns) * (node_h + NODE_GAP)
        box = _node_box(node, x, y, node_w, node_h, colours, holders, counts, memory_by_instance,
                        instance_url)
        boxes.append(box)
    rows = (len(nodes_in) + columns - 1) // columns
    legend = [Holder(colours[iid], iid, h["label"], h["account_id"], h["account"], h["staff"], **counts[iid])
              for iid, h in sorted(holders.items())]
    return Picture(width=columns * node_w + (columns - 1) * NODE_GAP, height=rows * node_h + (rows - 1) * NODE_GAP,
                   nodes=boxes, legend=legend)


def _holders(detail: dict) -> dict[int, dict]:
    """Every instance on the host, from the instance list and from what holds cores and GPUs."""
    found: dict[int, dict] = {}
    for node in detail["nodes"]:
        for cpu in node["cpus"]:
            if cpu["holder"]:
                found[cpu["holder"]["instance_id"]] = cpu["holder"]
        for gpu in node["gpus"]:
            if gpu["holder"]:
                found[gpu["holder"]["instance_id"]] = gpu["holder"]
    for gpu in detail["gpus_unknown_node"]:
        if gpu["holder"]:
            found[gpu["holder"]["instance_id"]] = gpu["holder"]
    for inst in detail["instances"]:
        found.setdefault(inst["id"], {"instance_id": inst["id"], "label": inst["label"],
                                      "account_id": None, "account": inst["account"],
                                      "staff": inst["staff"]})
    return found


def _cores_of(node: dict) -> list[list[dict]]:
    cores: dict[tuple, list[dict]] = {}
    for cpu in node["cpus"]:
        cores.setdefault(tuple(sorted(cpu["siblings"])), []).append(cpu)
    return [sorted(threads, key=lambda c: c["id"]) for threads in cores.values()]


def _core_rows(node: dict) -> int:
    return max(1, -(-len(_cores_of(node)) // CORE_COLUMNS))


def _node_box(node, x, y, w, h, colours, holders, counts, memory_by_instance, instance_url) -> NodeBox:
    if node["index"] is None:
        title, subtitle = "NUMA node unknown", "the firmware reports -1 for these GPUs"
    elif node.get("memory_only"):
        title = f"NUMA node {node['index']} · memory-only"
        subtitle = "no CPUs (GPU, HBM or CXL memory): never a guest's RAM"
    else:
        cores = _cores_of(node)
        reserved = sum(1 for c in cores if c[0]["reserved"])
        held = sum(1 for c in cores if any(t["holder"] for t in c))
        title = f"NUMA node {node['index']}"
        subtitle = f"{len(cores)} cores · {held} held · {reserved} kept for the host"
    box = NodeBox(x, y, w, h, title, subtitle)

    for n, threads in enumerate(_cores_of(node)):
        cx = x + PAD + (n % CORE_COLUMNS) * (CORE + CORE_GAP)
        cy = y + HEADER + (n // CORE_COLUMNS) * (CORE + CORE_GAP)
        strip = CORE / len(threads)
        cpu_ids = ",".join(str(t["id"]) for t in threads)
        for k, t in enumerate(threads):
            if t["reserved"]:
                fill, what, href = ".reserved", "kept for the host", None
            elif t["holder"]:
                iid = t["holder"]["instance_id"]
                fill = colours[iid]
                what = f"instance {iid} {t['holder']['label']}, vCPU {t['guest_vcpu']}"
                href = instance_url(iid)
                counts[iid]["cpus"] += 1
            else:
                fill, what, href = ".free", "free", None
            box.threads.append(Shape(cx + k * strip, cy, strip, CORE, fill, f"CPU {t['id']}: {what}", href))
        box.cores.append(Shape(cx, cy, CORE, CORE, "", f"core {threads[0]['core']} (CPUs {cpu_ids})"))

    gx = x + PAD + CORE_COLUMNS * (CORE + CORE_GAP) - CORE_GAP + PAD
    if node["index"] is None:
        gx = x + PAD
    for n, gpu in enumerate(node["gpus"]):
        gy = y + HEADER + n * (GPU_H + GPU_GAP)
        box.gpus.append(_gpu_card(gpu, gx, gy, colours, counts, instance_url))

    total = node["memory_mib"]
    box.memory_y = y + h - PAD - MEMORY_H
    if total:
        bar_x, bar_w = x + PAD, w - 2 * PAD
        cursor = bar_x
        reserved = node["reserved_memory_mib"]
        if node.get("memory_only"):  # none of it is for guests
            reserved = total
        segments = [(reserved, ".reserved", f"{_gib(reserved)} kept for the host", None)]
        for iid, mib in sorted(memory_by_instance.get(node["index"], {}).items()):
            if iid in colours:
                counts[iid]["memory_mib"] += mib
                segments.append((mib, colours[iid], f"instance {iid} {holders[iid]['label']}: {_gib(mib)}",
                                 instance_url(iid)))
        free = max(total - reserved - node["memory_claimed_mib"], 0)
        segments.append((free, ".free", f"{_gib(free)} free", None))
        for mib, fill, title, href in segments:
            width = bar_w * mib / total
            if width > 0:
                box.memory.append(Shape(cursor, box.memory_y, width, MEMORY_H, fill, title, href))
                cursor += width
        pages = f" · 1G pages {node['hugepages_claimed']}/{node['hugepages_1g']}" if node["hugepages_1g"] else ""
        box.memory_label = (
            f"memory {_gib(total)} · {_gib(node['memory_claimed_mib'])} claimed · {_gib(free)} free{pages}"
        )
        if node.get("memory_only"):
            box.memory_label = f"memory {_gib(total)} · not for guests"
    return box


def _gpu_card(gpu: dict, x: float, y: float, colours: dict, counts: dict, instance_url) -> GpuCard:
    """A GPU is drawn free only when placement may hand it out (`gpu["state"]`, the rule
    capacity counts by); otherwise it is hatched and says why."""
    model = gpu["model"] or gpu["product"] or "unknown"
    state = gpu["state"]
    if state == "free":
        fill, line2 = ".free", f"IOMMU group {gpu['iommu_group']} · free"
    elif state == "claimed":
        fill, line2 = ".free", "claimed"
    else:
        fill = {"faulty": ".faulty", "iommu-blocker": ".blocked", "reserved": ".reserved",
                "not-sold": ".reserved"}.get(state, ".out")
        line2 = gpu["state_words"].removeprefix("unplaceable: ")
    href = None
    title = f"GPU {gpu['address']} {model} · IOMMU group {gpu['iommu_group']} · {gpu['state_words']}"
    if gpu["status_reason"]:
        title += f" ({gpu['status_reason']})"
    if gpu["blocker"]:
        title += f" · unplaceable: {gpu['blocker']}"
    holder = gpu["holder"]
    if holder:
        iid = holder["instance_id"]
        fill = colours[iid]
        counts[iid]["gpus"] += 1
        line2 = f"#{iid} {holder['label']}"
        title += f" · held by instance {iid} {holder['label']} ({holder['account']})"
        href = instance_url(iid)
    if len(line2) > 28:
        line2 = line2[:27] + "…"
    return GpuCard(x, y, GPU_W, GPU_H, fill, _short(gpu["address"]), model, line2, state, title, href)
