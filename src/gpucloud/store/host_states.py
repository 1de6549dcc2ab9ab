"""Placement's view of hosts (`HostState`s), read from the database and kept in this process.

**Building a state** (or a topology, for a domain spec) reads a host's rows with a fixed
number of Core queries. A host's CPU layout never changes once registered (a rediscovery
that would change it is refused), and the hosts of a hardware profile share one: it is read
once per process and layout key (`hosts.cpu_layout_key`), from one host that has it, and the
row ids of a host's threads (what its claims point at) at its first claim. The host row, NUMA
nodes, GPUs and claims are read each time.

**The per-process view of a region** is one `domain.fleet_index.Fleet` per (database,
region, placement config): every placement decision of this process goes through it.
Every write that changes what a host has free takes the region's placement lock and moves
the host's generation past the largest one in its region (`store.claims`), so generations
in a region grow in commit order. A process that has seen every change up to generation G
therefore learns what changed since with one indexed query, `generation > G` (usually one
host or none), and re-reads only those hosts. After its own claims it applies the
placement to its copy (`claimed`), so it never re-reads what it has just written. A claim
that still finds a host changed (a write that bypassed these rules) makes the view start
over (`forget`).
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sqlalchemy import ColumnElement, Text, bindparam, cast, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.pool import Pool

from gpucloud.domain.fleet_index import Fleet
from gpucloud.domain.host_state import HostState, build_host_state
from gpucloud.domain.placement import OVERRIDABLE, NoRoom, Placement, PlacementConfig, PlacementRequest
from gpucloud.domain.topology import Cpu, Gpu, HostTopology, NumaNode, PciFunction
from gpucloud.store.tables import (
    Account,
    CpuClaim,
    CpuRow,
    GpuClaim,
    GpuRow,
    Host,
    Instance,
    MemoryClaim,
    NumaNodeRow,
)


@dataclass(frozen=True)
class HostRows:
    """Row ids of a host's nodes, threads and GPUs, by natural key: what claims point at."""

    nodes: dict[int, int]  # node index -> numa_nodes.id
    cpus: dict[int, int]  # cpu index -> cpus.id
    gpus: dict[str, int]  # PCI address -> gpus.id


@dataclass(frozen=True)
class _CpuLayout:
    by_node: dict[int, tuple[Cpu, ...]]  # node index -> its threads
    reserved: tuple[int, ...]
    threads_per_core: int


# Everything here is kept per connection pool: one per database in a process (PostgreSQL's
# reads and writes share one), and a test's fresh database never sees another's.
# Layouts by layout key (a host without one: by its id); per host, its nodes' and GPUs' row ids
# (node index -> numa_nodes.id, PCI address -> gpus.id) and its threads' (cpu index -> cpus.id).
_layouts: weakref.WeakKeyDictionary[Pool, dict[str | int, _CpuLayout]] = weakref.WeakKeyDictionary()
_rows: weakref.WeakKeyDictionary[Pool, dict[int, tuple[dict[int, int], dict[str, int]]]] = weakref.WeakKeyDictionary()
_cpu_ids: weakref.WeakKeyDictionary[Pool, dict[int, dict[int, int]]] = weakref.WeakKeyDictionary()
# Per host, its topology without GPUs and its reserved threads, for domain specs (`cpu_topology`).
_cpu_topologies: weakref.WeakKeyDictionary[Pool, dict[int, tuple[HostTopology, tuple[int, ...]]]] = (
    weakref.WeakKeyDictionary())
_lock = threading.Lock()


def pool_of(session: Session) -> Pool:
    """The key of this session's database in the caches of this process."""
    bind = session.get_bind()
    return bind.pool if isinstance(bind, Engine) else bind.engine.pool


def _among(column: InstrumentedAttribute[int], ids: list[int]) -> ColumnElement[bool]:
    """`column IN (ids)` with the ids written into the SQL: a region's 10,000 ids as bound
    parameters cost the driver more to convert than the rows they select."""
    return column.in_(bindparam(f"{column.key}_in", ids, expanding=True, literal_execute=True))


@dataclass(frozen=True)
class HostTopologyRows:
    """A host's topology as its rows say now, with what a domain or a state needs beside it."""

    topology: HostTopology
    reserved_cpus: tuple[int, ...]
    settings: dict
    region: str
    status: str
    generation: int
    nodes: tuple  # its numa_nodes rows (Core rows)
    gpus: tuple  # its gpus rows (Core rows)


def topologies(session: Session, host_ids: list[int]) -> dict[int, HostTopologyRows]:
    """The topology of these hosts: three small queries, the CPU layout from this process's
    cache (it never changes once a host is registered)."""
    if not host_ids:
        return {}
    pool = pool_of(session)
    db = session.connection()  # Core rows: the ORM's result machinery cost more than the rows here
    hosts = db.execute(select(Host.id, Host.region_id, Host.status, Host.generation, Host.settings,
                              Host.cpu_model, Host.cpu_layout_key).where(_among(Host.id, host_ids))
                       .order_by(Host.id)).all()
    ids = [h.id for h in hosts]
    layouts = _cpu_layouts(session, pool, {h.id: h.cpu_layout_key or h.id for h in hosts})
    # JSON columns are read as their text and parsed once per distinct text: hosts of one
    # hardware profile repeat the same distances and companions.
    nodes: dict[int, list] = defaultdict(list)
    for row in db.execute(select(NumaNodeRow.host_id, NumaNodeRow.id, NumaNodeRow.node_index,
                                 NumaNodeRow.memory_mib, NumaNodeRow.hugepages_1g,
                                 cast(NumaNodeRow.distances, Text).label("distances_json"),
                                 NumaNodeRow.reserved_memory_mib)
                          .where(_among(NumaNodeRow.host_id, ids)).order_by(NumaNodeRow.node_index)).all():
        nodes[row.host_id].append(row)
    gpus: dict[int, list] = defaultdict(list)
    for gpu in db.execute(select(GpuRow.host_id, GpuRow.id, GpuRow.pci_address, GpuRow.vendor_id,
                                 GpuRow.device_id, GpuRow.class_code, GpuRow.numa_node, GpuRow.iommu_group,
                                 GpuRow.product, cast(GpuRow.companions, Text).label("companions_json"),
                                 GpuRow.gpu_model_id, GpuRow.status)
                          .where(_among(GpuRow.host_id, ids)).order_by(GpuRow.pci_address)).all():
        gpus[gpu.host_id].append(gpu)
    distances: dict[str | None, tuple[int, ...]] = {}
    companions: dict[str | None, tuple[PciFunction, ...]] = {}
    for n in (n for rows in nodes.values() for n in rows):
        if n.distances_json not in distances:
            distances[n.distances_json] = tuple(json.loads(n.distances_json or "null") or ())
    for g in (g for rows in gpus.values() for g in rows):
        if g.companions_json not in companions:
            functions = json.loads(g.companions_json or "null") or ()
            companions[g.companions_json] = tuple(PciFunction(**c) for c in functions)
    # Nodes, GPUs and whole topologies alike on many hosts are one object each (immutable), so
    # what the domain works out per node (its cores) is worked out once for them, and the
    # hosts of a profile build one topology.
    same_nodes: dict[tuple, NumaNode] = {}
    same_gpus: dict[tuple, Gpu] = {}
    same_topologies: dict[tuple, HostTopology] = {}

    def node(n: Any, cpus: tuple[Cpu, ...]) -> NumaNode:
        key = (n.node_index, id(cpus), n.memory_mib, n.hugepages_1g, n.distances_json)
        if key not in same_nodes:
            same_nodes[key] = NumaNode(index=n.node_index, cpus=cpus, memory_mib=n.memory_mib,
                                       hugepages_1g=n.hugepages_1g, distances=distances[n.distances_json])
        return same_nodes[key]

    def gpu_of(g: Any) -> Gpu:
        key = tuple(g[2:10])  # pci_address to companions_json: all but its ids, model and status
        if key not in same_gpus:
            same_gpus[key] = Gpu(address=g.pci_address, vendor_id=g.vendor_id, device_id=g.device_id,
                                 class_code=g.class_code, numa_node=g.numa_node, iommu_group=g.iommu_group,
                                 product=g.product, companions=companions[g.companions_json])
        return same_gpus[key]

    out = {}
    for h in hosts:
        layout = layouts[h.id]
        host_nodes = tuple(node(n, layout.by_node.get(n.node_index, ())) for n in nodes[h.id])
        host_gpus = tuple(gpu_of(g) for g in gpus[h.id])
        key = (tuple(map(id, host_nodes)), tuple(map(id, host_gpus)), h.cpu_model, layout.threads_per_core)
        if key not in same_topologies:
            same_topologies[key] = HostTopology(nodes=host_nodes, gpus=host_gpus, cpu_model=h.cpu_model,
                                                threads_per_core=layout.threads_per_core)
        topology = same_topologies[key]
        with _lock:
            _rows.setdefault(pool, {})[h.id] = ({n.node_index: n.id for n in nodes[h.id]},
                                                {g.pci_address: g.id for g in gpus[h.id]})
        out[h.id] = HostTopologyRows(topology, layout.reserved, dict(h.settings or {}), h.region_id, h.status,
                                     h.generation, tuple(nodes[h.id]), tuple(gpus[h.id]))
    return out


def build_states(session: Session, host_ids: list[int], ignore_instance: int | None = None) -> list[HostState]:
    """Fresh states of these hosts. `ignore_instance`: count that instance's claims as free
    (a resize asking where it could go)."""
    read = topologies(session, host_ids)
    ids = list(read)
    if not ids:
        return []
    skip = ignore_instance if ignore_instance is not None else -1
    db = session.connection()
    claimed_cpus: dict[int, set[int]] = defaultdict(set)
    for host_id, cpu_index in db.execute(
        select(CpuClaim.host_id, CpuRow.cpu_index).join(CpuRow, CpuRow.id == CpuClaim.cpu_id)
        .where(_among(CpuClaim.host_id, ids), CpuClaim.instance_id != skip)
    ).all():
        claimed_cpus[host_id].add(cpu_index)
    claimed_gpus: dict[int, set[str]] = defaultdict(set)
    staff_gpus: dict[int, set[str]] = defaultdict(set)
    for host_id, address, staff in db.execute(
        select(GpuClaim.host_id, GpuRow.pci_address, Account.is_staff)
        .join(GpuRow, GpuRow.id == GpuClaim.gpu_id)
        .join(Instance, Instance.id == GpuClaim.instance_id)
        .join(Account, Account.id == Instance.account_id)
        .where(_among(GpuClaim.host_id, ids), GpuClaim.instance_id != skip)
    ).all():
        claimed_gpus[host_id].add(address)
        if staff:
            staff_gpus[host_id].add(address)
    memory: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    pages: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    shared: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    node_index = {n.id: (host_id, n.node_index) for host_id, r in read.items() for n in r.nodes}
    for numa_node_id, mib, hugepages, vcpus in db.execute(
        select(MemoryClaim.numa_node_id, MemoryClaim.memory_mib, MemoryClaim.hugepages_1g, MemoryClaim.shared_vcpus)
        .where(_among(MemoryClaim.host_id, ids), MemoryClaim.instance_id != skip)
    ).all():
        host_id, index = node_index[numa_node_id]
        if hugepages:
            pages[host_id][index] += hugepages
        else:
            memory[host_id][index] += mib
        shared[host_id][index] += vcpus
    memo: dict[tuple, tuple[HostTopology, HostState]] = {}  # a profile's idle hosts: one state built, copies
    return [
        build_host_state(
            host_id, r.region, r.topology, {g.pci_address: g.gpu_model_id for g in r.gpus if g.gpu_model_id},
            status=r.status, generation=r.generation, claimed_cpus=claimed_cpus[host_id],
            claimed_gpus=claimed_gpus[host_id], staff_gpus=staff_gpus[host_id], claimed_memory_mib=memory[host_id],
            claimed_hugepages=pages[host_id], shared_vcpus=shared[host_id],
            gpu_statuses={g.pci_address: g.status for g in r.gpus}, reserved_cpus=r.reserved_cpus,
            reserved_memory_mib={n.node_index: n.reserved_memory_mib for n in r.nodes},
            overrides={k: v for k, v in r.settings.items() if k in OVERRIDABLE} or None, memo=memo,
        )
        for host_id, r in read.items()
    ]


def _cpu_layouts(session: Session, pool: Pool, keys: dict[int, str | int]) -> dict[int, _CpuLayout]:
    """The CPU layout of each host (`keys`: host id -> its layout key), reading the threads of
    one host per key not read yet."""
    with _lock:
        known = _layouts.setdefault(pool, {})
        read_from: dict[str | int, int] = {}  # layout key -> a host that has it
        for host_id, key in keys.items():
            if key not in known:
                read_from.setdefault(key, host_id)
    if read_from:
        threads: dict[int, dict[int, list[Cpu]]] = defaultdict(lambda: defaultdict(list))
        reserved: dict[int, list[int]] = defaultdict(list)
        for host_id, node, index, socket, core, siblings, is_reserved in session.connection().execute(
            select(CpuRow.host_id, NumaNodeRow.node_index, CpuRow.cpu_index, CpuRow.socket_id, CpuRow.core_id,
                   CpuRow.siblings, CpuRow.reserved).join(NumaNodeRow, NumaNodeRow.id == CpuRow.numa_node_id)
            .where(_among(CpuRow.host_id, list(read_from.values()))).order_by(CpuRow.cpu_index)
        ).all():
            threads[host_id][node].append(Cpu(index, socket, core, tuple(siblings)))
            if is_reserved:
                reserved[host_id].append(index)
        with _lock:
            for key, host_id in read_from.items():
                by_node = {n: tuple(cpus) for n, cpus in threads[host_id].items()}
                known[key] = _CpuLayout(by_node, tuple(reserved[host_id]),
                                        max((len(c.siblings) for cpus in by_node.values() for c in cpus), default=1))
    with _lock:
        return {host_id: known[key] for host_id, key in keys.items()}


def cpu_topology(session: Session, host_id: int) -> tuple[HostTopology, tuple[int, ...]]:
    """The host's NUMA nodes and CPU threads (a topology without GPUs: only its CPU layout is to
    be used) and its reserved threads, read once per process: they never change once a host is
    registered (a rediscovery that would change them is refused). A domain spec takes the GPUs
    it passes through from its claims, fresh."""
    pool = pool_of(session)
    with _lock:
        known = _cpu_topologies.get(pool, {}).get(host_id)
    if known is None:
        rows = topologies(session, [host_id])[host_id]
        known = (replace(rows.topology, gpus=()), rows.reserved_cpus)
        with _lock:
            _cpu_topologies.setdefault(pool, {})[host_id] = known
    return known


_CPU_IDS = select(CpuRow.cpu_index, CpuRow.id).where(CpuRow.host_id == bindparam("host"))


def host_rows(session: Session, host_id: int) -> HostRows:
    """The row ids claims of this host point at: its nodes' and GPUs' as read with its last
    state, its threads' read at its first claim in this process (a region's load reads the
    threads of one host per layout)."""
    pool = pool_of(session)
    with _lock:
        rows = _rows.get(pool, {}).get(host_id)
        cpus = _cpu_ids.get(pool, {}).get(host_id)
    if rows is None:
        topologies(session, [host_id])
        with _lock:
            rows = _rows[pool][host_id]
    if cpus is None:
        cpus = {index: row_id for index, row_id in session.connection().execute(_CPU_IDS, {"host": host_id})}
        with _lock:
            _cpu_ids.setdefault(pool, {})[host_id] = cpus
    return HostRows(rows[0], cpus, rows[1])


# --- the per-process view of each region ------------------------------------------------------


@dataclass
class _RegionView:
    fleet: Fleet
    config: PlacementConfig
    newest: int = -1  # every change of a host of the region up to this generation is in `fleet`
    lock: threading.Lock = field(default_factory=threading.Lock)
    warmed: bool = False  # the config's plans ranked (`Fleet.warm`) since the region was loaded


_views: weakref.WeakKeyDictionary[Pool, dict[tuple[str, int], _RegionView]] = weakref.WeakKeyDictionary()


def _view(session: Session, region: str, config: PlacementConfig) -> _RegionView:
    with _lock:
        views = _views.setdefault(pool_of(session), {})
        view = views.get((region, id(config)))
        if view is not None and view.config is config:
            return view
        # Configs whose learnt mix was replaced: their views are not asked again, and their hosts
        # carry over (a new mix ranks them again, it need not read them again).
        replaced = [views.pop(k) for k in [k for k, v in views.items()
                                           if k[0] == region and _succeeds(config, v.config)]]
        view = views[(region, id(config))] = _RegionView(Fleet((), config), config)
        view.lock.acquire()  # at once: no other thread has seen this view yet
    try:
        for old in replaced:
            with old.lock:  # not under _lock: a placement holding it may need _lock to finish
                if old.newest > view.newest:
                    view.fleet, view.newest = Fleet(old.fleet.hosts(), config), old.newest
    finally:
        view.lock.release()
    return view


def _succeeds(new: PlacementConfig, old: PlacementConfig) -> bool:
    """`new` is `old` with other learnt mixes (`services.placement_config.learn_demand`)."""
    return all(getattr(new, f.name) == getattr(old, f.name) for f in fields(PlacementConfig)
               if f.compare and f.name != "region_mix")


# Asked before every placement: built once (building it cost more than running it).
_CHANGED = select(Host.id, Host.generation).where(Host.region_id == bindparam("region"),
                                                  Host.generation > bindparam("newest"))


def _sync(session: Session, view: _RegionView, region: str) -> None:
    """Bring the view up to date: re-read the hosts whose generation moved past `newest`.
    Call with `view.lock` held."""
    changed = session.connection().execute(_CHANGED, {"region": region, "newest": view.newest}).all()
    if changed:
        for state in build_states(session, [host_id for host_id, _ in changed]):
            view.fleet.update(state)
        view.newest = max(view.newest, max(generation for _, generation in changed))
    if not view.warmed and view.newest != -1:
        view.fleet.warm(region)  # the catalog's plans ranked now: their first decision is not a build
        view.warmed = True


def regions(session: Session) -> list[str]:
    """The regions that have hosts."""
    return sorted(session.scalars(select(Host.region_id).distinct()))


def all_states(session: Session, config: PlacementConfig, region: str | None = None) -> list[HostState]:
    """Every host (of `region`) as placement sees it now, from this process's views."""
    return [state for r in ([region] if region else regions(session)) for state in region_states(session, r, config)]


def region_states(session: Session, region: str, config: PlacementConfig) -> list[HostState]:
    """Every host of the region as placement sees it now."""
    view = _view(session, region, config)
    with view.lock:
        _sync(session, view, region)
        return view.fleet.hosts()


def place(session: Session, request: PlacementRequest, config: PlacementConfig) -> Placement | NoRoom:
    """The decision for `request` over its region's hosts as they are now. To claim it, hold
    the region's placement lock (`store.claims.serialize_placements`) from before this call
    until the transaction ends."""
    view = _view(session, request.region, config)
    with view.lock:
        _sync(session, view, request.region)
        return view.fleet.place(request)


def claimed(bind: Pool, region: str, config: PlacementConfig, placement: Placement, generation: int,
            staff: bool) -> None:
    """This process committed `placement`, moving its host to `generation`: apply it to the
    view instead of reading the host again (skipped when the view has moved on already)."""
    with _lock:
        view = _views.get(bind, {}).get((region, id(config)))
    if view is None:
        return
    with view.lock:
        try:
            host = view.fleet.host(placement.host_id)
        except KeyError:
            return
        if host.generation != placement.generation:
            return  # another decision already read the host again
        view.fleet.update(replace(view.fleet.apply(placement, staff=staff), generation=generation))
        view.newest = max(view.newest, generation)


def forget(bind: Pool, region: str) -> None:
    """Start the region's views over: a claim found a host changed behind their back."""
    with _lock:
        views = _views.get(bind, {})
        for key in [k for k in views if k[0] == region]:
            del views[key]
