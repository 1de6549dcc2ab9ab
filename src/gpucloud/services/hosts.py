"""Registering hosts, keeping their topology current, changing their status, and showing
who holds which core and GPU."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from gpucloud.catalog import load_catalog
from gpucloud.clock import linode_time, utcnow
from gpucloud.config import Settings
from gpucloud.domain.capacity import CLAIMED, FREE, REASON_WORDS, gpu_states, reason_words
from gpucloud.domain.host_state import HostState
from gpucloud.domain.placement import PlacementConfig
from gpucloud.domain.topology import (
    FROM_FIRMWARE,
    FROM_OPERATOR,
    UNKNOWN_NUMA_NODE,
    HostTopology,
    default_reserved_cpus,
    format_cpu_list,
    unsold_display_reason,
    with_gpu_locality,
)
from gpucloud.errors import Conflict, GpucloudError, NotFound
from gpucloud.services.placement_config import placement_config
from gpucloud.store import audit, host_states
from gpucloud.store import claims as claim_store
from gpucloud.store import fleet as q
from gpucloud.store.db import Database
from gpucloud.store.tables import HOST_STATUSES, CpuRow, GpuRow, Host, NumaNodeRow


@dataclass(frozen=True)
class HostRef:
    id: int
    name: str


GPU_NUMA = "gpu_numa"  # host settings key: address -> {"node": n, "from": how it was learnt}


def apply_gpu_nodes(topology: HostTopology, gpu_nodes: dict[str, int]) -> HostTopology:
    """The operator's word for GPUs whose firmware gives no NUMA node (`host add --gpu-node`),
    refused when it names a GPU the host does not have, one with a node, or a node without CPUs."""
    gpus = {g.address: g for g in topology.gpus}
    cpu_nodes = {n.index for n in topology.cpu_nodes}
    for address, node in gpu_nodes.items():
        if address not in gpus:
            raise GpucloudError(f"--gpu-node {address}: the host has no GPU at {address}", field="gpu_node")
        if gpus[address].numa_node != UNKNOWN_NUMA_NODE:
            raise GpucloudError(f"--gpu-node {address}: the firmware already puts it on node "
                                f"{gpus[address].numa_node}", field="gpu_node")
        if node not in cpu_nodes:
            raise GpucloudError(f"--gpu-node {address}={node}: node {node} is not a NUMA node with CPUs "
                                f"(those are {', '.join(map(str, sorted(cpu_nodes)))})", field="gpu_node")
    return with_gpu_locality(topology, {a: (n, (), FROM_OPERATOR) for a, n in gpu_nodes.items()})


def _gpu_numa_settings(topology: HostTopology) -> dict:
    """Where the node of GPUs the firmware left at -1 came from, kept so rediscovery and the
    host page know it (libvirt only ever says -1 for them)."""
    return {
        g.address: {"node": g.numa_node, "from": g.numa_source if g.numa_source == FROM_OPERATOR
                    else f"{g.numa_source} {format_cpu_list(g.local_cpus)}"}
        for g in topology.gpus if g.numa_source != FROM_FIRMWARE
    }


def register_host(db: Database, settings: Settings, *, name: str, region: str, topology: HostTopology,
                  driver: str, uri: str | None = None, profile: str | None = None,
                  host_settings: dict | None = None, gpu_nodes: dict[str, int] | None = None,
                  actor: str = "cli") -> HostRef:
    """Write a host and its whole topology in one transaction; refuse duplicates by name or URI.
    `host_settings`: driver options (nic, pool_path, domain_type) and placement overrides.
    `gpu_nodes`: the operator's NUMA node for GPUs the firmware reports at -1 (see `apply_gpu_nodes`)."""
    catalog = load_catalog()
    topology = apply_gpu_nodes(topology, gpu_nodes or {})
    host_settings = dict(host_settings or {})
    if gpu_numa := _gpu_numa_settings(topology):
        host_settings[GPU_NUMA] = gpu_numa
    if not catalog.region(region):
        raise GpucloudError(f"unknown region {region!r}; known: {', '.join(r.id for r in catalog.regions)}",
                            field="region")
    if driver == "libvirt" and not uri:
        raise GpucloudError("a libvirt host needs a URI", field="uri")
    threads = _threads(topology, settings)
    try:
        with db.write() as s:
            if q.host_by_ref(s, name):
                raise Conflict(f"host {name} is already registered")
            if uri and q.host_by_uri(s, uri):
                raise Conflict(f"a host with URI {uri} is already registered")
            host = Host(name=name, region_id=region, driver=driver, uri=uri, profile=profile,
                        cpu_model=topology.cpu_model, status="active", last_seen_at=utcnow(),
                        settings=dict(host_settings or {}), cpu_layout_key=q.cpu_layout_key(threads))
            s.add(host)
            s.flush()
            _write_topology(s, host, topology, settings, threads)
            claim_store.bump_hosts(s, [host.id])  # placement views of the region see it
            audit.record(s, actor=actor, action="host.register", target_type="host", target_id=host.id,
                         after={"name": name, "region": region, "driver": driver, "uri": uri, "profile": profile,
                                "settings": host_settings or {}})
            return HostRef(host.id, host.name)
    except IntegrityError:
        raise Conflict(f"host {name} (or its URI) is already registered") from None


def _threads(topology: HostTopology, settings: Settings) -> list[q.ThreadRow]:
    """The host's threads as its `cpus` rows will say, the first cores of each node kept for the host."""
    out: list[q.ThreadRow] = []
    for node in topology.nodes:
        reserved = set(default_reserved_cpus(node, settings.reserved_cores_per_node))
        out += [(cpu.id, node.index, cpu.socket, cpu.core, cpu.siblings, cpu.id in reserved) for cpu in node.cpus]
    return out


def _write_topology(s, host: Host, topology: HostTopology, settings: Settings, threads: list[q.ThreadRow]) -> None:
    catalog = load_catalog()
    node_ids = {}
    for node in topology.nodes:
        row = NumaNodeRow(host_id=host.id, node_index=node.index, memory_mib=node.memory_mib,
                          hugepages_1g=node.hugepages_1g, distances=list(node.distances),
                          reserved_memory_mib=min(settings.reserved_memory_mib_per_node, node.memory_mib))
        s.add(row)
        s.flush()
        node_ids[node.index] = row.id
    for index, node_index, socket, core, siblings, reserved in threads:
        s.add(CpuRow(host_id=host.id, numa_node_id=node_ids[node_index], cpu_index=index, socket_id=socket,
                     core_id=core, siblings=list(siblings), reserved=reserved))
    for gpu in topology.gpus:
        s.add(_gpu_row(host.id, gpu, catalog))


def _gpu_row(host_id: int, gpu, catalog) -> GpuRow:
    """A display device we do not sell (a BMC's VGA chip, an unknown card) is recorded but
    reserved, so it shows on the host page and never in inventory."""
    model = catalog.model_for_device(gpu.vendor_id, gpu.device_id)
    unsold = unsold_display_reason(gpu.vendor_id, gpu.device_id, catalog)
    status, reason = ("reserved", unsold) if unsold else ("available", "")
    return GpuRow(host_id=host_id, pci_address=gpu.address, vendor_id=gpu.vendor_id, device_id=gpu.device_id,
                  class_code=gpu.class_code, product=gpu.product, gpu_model_id=model.id if model else None,
                  numa_node=gpu.numa_node, iommu_group=gpu.iommu_group, companions=q.companions_json(gpu),
                  status=status, status_reason=reason)


def refresh_topology(db: Database, host_ref: str | int, topology: HostTopology, *, actor: str = "discovery") -> dict:
    """Apply a new discovery. GPUs that vanished are marked faulty (never deleted: claims and
    history point at them); new ones are added; the NUMA layout itself must not change
    under running guests, so a different CPU layout is refused."""
    catalog = load_catalog()
    with db.write() as s:
        host = q.host_by_ref(s, host_ref)
        if not host:
            raise NotFound(f"no host {host_ref}")
        known = q.topology_of(host)
        learnt = (host.settings or {}).get(GPU_NUMA, {})  # libvirt keeps saying -1 for these
        topology = with_gpu_locality(topology, {a: (v["node"], (), FROM_OPERATOR) for a, v in learnt.items()})
        if sorted(c for n in known.nodes for c in n.cpu_ids) != sorted(c for n in topology.nodes for c in n.cpu_ids):
            raise Conflict(f"host {host.name}: the CPU layout changed; drain it and register it again")
        nodes = q.node_rows_by_index(s, host.id)
        for node in topology.nodes:
            nodes[node.index].memory_mib = node.memory_mib
            nodes[node.index].hugepages_1g = node.hugepages_1g
        rows = q.gpu_rows_by_address(s, host.id)
        seen = {g.address for g in topology.gpus}
        changes: dict[str, list[str]] = {"added": [], "vanished": [], "updated": []}
        for gpu in topology.gpus:
            row = rows.get(gpu.address)
            if row is None:
                s.add(_gpu_row(host.id, gpu, catalog))
                changes["added"].append(gpu.address)
                continue
            new = (gpu.numa_node, gpu.iommu_group, q.companions_json(gpu))
            if (row.numa_node, row.iommu_group, row.companions) != new:
                row.numa_node, row.iommu_group, row.companions = new
                changes["updated"].append(gpu.address)
            if row.status == "faulty" and row.status_reason.startswith("vanished"):
                row.status, row.status_reason = "available", ""
        for address, row in rows.items():
            if address not in seen and row.status != "faulty":
                row.status = "faulty"
                row.status_reason = f"vanished from discovery at {linode_time(utcnow())}"
                changes["vanished"].append(address)
        host.last_seen_at = utcnow()
        if any(changes.values()):
            claim_store.bump_hosts(s, [host.id])
            audit.record(s, actor=actor, action="host.rediscover", target_type="host", target_id=host.id,
                         after=changes)
        return changes


def set_host_status(db: Database, host_ref: str | int, status: str, *, why: str = "", actor: str = "cli") -> bool:
    """Operators drain a host (no new guests), put it in maintenance, or bring it back. Taking
    a host out of service needs a reason. False (and nothing written) when the host already
    has that status."""
    if status not in HOST_STATUSES:
        raise GpucloudError(f"status must be one of {', '.join(HOST_STATUSES)}", field="status")
    if status != "active" and not why.strip():
        raise GpucloudError(f"say why the host is taken out of service (--why) before making it {status}",
                            field="why")
    with db.write() as s:
        host = q.host_by_ref(s, host_ref)
        if not host:
            raise NotFound(f"no host {host_ref}")
        if host.status == status:
            return False
        before = {"status": host.status, "reason": host.status_reason}
        host.status, host.status_reason = status, why
        claim_store.bump_hosts(s, [host.id])
        if status == "active":
            host.missed_checks = 0
        audit.record(s, actor=actor, action="host.status", target_type="host", target_id=host.id,
                     before=before, after={"status": status, "reason": why}, why=why)
        return True


def set_gpu_status(db: Database, host_ref: str | int, address: str, status: str, *, why: str = "",
                   actor: str = "cli") -> None:
    """Mark a GPU faulty or reserved (with a reason), or available again."""
    if status not in ("available", "reserved", "faulty"):
        raise GpucloudError("GPU status must be available, reserved or faulty", field="status")
    if status != "available" and not why.strip():
        raise GpucloudError("say why the GPU is taken out of service", field="why")
    with db.write() as s:
        host = q.host_by_ref(s, host_ref)
        if not host:
            raise NotFound(f"no host {host_ref}")
        row = q.gpu_rows_by_address(s, host.id).get(address)
        if not row:
            raise NotFound(f"host {host.name} has no GPU {address}")
        before = {"status": row.status, "reason": row.status_reason}
        row.status, row.status_reason = status, why
        claim_store.bump_hosts(s, [host.id])
        audit.record(s, actor=actor, action="gpu.status", target_type="gpu", target_id=f"{host.name}/{address}",
                     before=before, after={"status": status, "reason": why}, why=why)


def list_hosts(db: Database, region: str | None = None, settings: Settings | None = None) -> list[dict]:
    """Every host (of `region`), with its GPUs counted as capacity counts them: claimed, free
    (placement may hand them out now) and unavailable with the reasons (`gpu_availability`)."""
    config = _config(settings)
    with db.read() as s:
        hosts = q.list_hosts(s, region)
        states = {h.id: h for h in host_states.all_states(s, config, region)} if hosts else {}
        return [{**_gpu_counts(states.get(h.id), config), **summary} for h in hosts for summary in [
            {
                "id": h.id,
                "name": h.name,
                "region": h.region_id,
                "driver": h.driver,
                "uri": h.uri,
                "profile": h.profile,
                "status": h.status,
                "status_reason": h.status_reason,
                "gpu_models": sorted({g.gpu_model_id for g in h.gpus if g.gpu_model_id}),
                "last_seen": linode_time(h.last_seen_at),
            }]]


def _config(settings: Settings | None) -> PlacementConfig:
    return placement_config(settings) if settings is not None else PlacementConfig()


def gpu_availability(state: HostState | None, config: PlacementConfig) -> dict[str, str]:
    """PCI address -> 'claimed', 'free' or why placement cannot use it (`domain.capacity.gpu_states`)."""
    return {g.address: g.state for g in gpu_states(state, config)} if state is not None else {}


NOT_SOLD = "not-sold"


def state_words(state: str) -> str:
    """A GPU's placement state as the host page says it: 'free', 'claimed', or
    'unplaceable: NUMA node unknown' (and so on)."""
    if state in (CLAIMED, FREE):
        return state
    if state == NOT_SOLD:
        return "not sold: no GPU model of the catalog"
    return f"unplaceable: {REASON_WORDS.get(state, state)}"


def _gpu_counts(state: HostState | None, config: PlacementConfig) -> dict:
    counts = Counter(gpu_availability(state, config).values())
    claimed, free = counts.pop(CLAIMED, 0), counts.pop(FREE, 0)
    return {"gpus": claimed + free + sum(counts.values()), "gpus_claimed": claimed, "gpus_free": free,
            "gpus_unavailable": sum(counts.values()), "unavailable_reasons": dict(sorted(counts.items())),
            "unavailable_words": reason_words(counts)}


def host_detail(db: Database, ref: str | int, settings: Settings | None = None) -> dict:
    """Everything an operator wants on one page: nodes, their cores, memory and GPUs, and
    holders; each GPU's `state` is 'claimed', 'free' or why placement cannot use it
    ('not-sold' for a device that is no GPU model of the catalog)."""
    config = _config(settings)
    with db.read() as s:
        host = q.host_by_ref(s, ref)
        if not host:
            raise NotFound(f"no host {ref}")
        states = host_states.build_states(s, [host.id])
        availability = gpu_availability(states[0] if states else None, config)
        counts = _gpu_counts(states[0] if states else None, config)
        host = q.load_hosts_full(s, [host.id])[0]
        topology = q.topology_of(host)
        gpu_held = q.gpu_holders(s, [host.id])
        cpu_held = q.cpu_holders(s, [host.id])
        instances = {i.id: (i, a) for i, a in q.instances_on_host(s, host.id)}
        mem_by_node: dict[int, list] = defaultdict(list)
        node_index_by_id = {n.id: n.node_index for n in host.numa_nodes}
        for claim in q.memory_claims_of_hosts(s, [host.id]):
            mem_by_node[node_index_by_id[claim.numa_node_id]].append(claim)

        def holder(instance_id: int | None) -> dict | None:
            if instance_id is None or instance_id not in instances:
                return None
            inst, acct = instances[instance_id]
            return {"instance_id": inst.id, "label": inst.label, "account_id": acct.id, "account": acct.email,
                    "staff": acct.is_staff}

        gpus_by_node: dict[int, list] = defaultdict(list)
        topo_gpus = {g.address: g for g in topology.gpus}
        learnt = (host.settings or {}).get(GPU_NUMA, {})
        for g in host.gpus:
            held = gpu_held.get(g.id)
            gpus_by_node[g.numa_node].append({
                "address": g.pci_address,
                "model": g.gpu_model_id,
                "product": g.product,
                "numa_node": g.numa_node,
                "numa_from": learnt.get(g.pci_address, {}).get("from", "firmware" if g.numa_node >= 0 else ""),
                "iommu_group": g.iommu_group,
                "functions": list(topo_gpus[g.pci_address].passthrough_functions),
                "companions": g.companions,
                "status": g.status,
                "status_reason": g.status_reason,
                "state": availability.get(g.pci_address, NOT_SOLD),
                "state_words": state_words(availability.get(g.pci_address, NOT_SOLD)),
                "blocker": topo_gpus[g.pci_address].passthrough_blocker,
                "holder": holder(held[0].id) if held else None,
            })
        nodes = []
        for n in host.numa_nodes:
            claims = mem_by_node[n.node_index]
            nodes.append({
                "index": n.node_index,
                "memory_only": not n.cpus,  # GPU, HBM or CXL memory: no cores, never a guest's RAM
                "memory_mib": n.memory_mib,
                "reserved_memory_mib": n.reserved_memory_mib,
                "hugepages_1g": n.hugepages_1g,
                "memory_claimed_mib": sum(c.memory_mib for c in claims),
                "hugepages_claimed": sum(c.hugepages_1g for c in claims),
                "shared_vcpus": sum(c.shared_vcpus for c in claims),
                "distances": n.distances,
                "cpus": [
                    {"id": c.cpu_index, "socket": c.socket_id, "core": c.core_id, "siblings": c.siblings,
                     "reserved": c.reserved, "guest_vcpu": cpu_held[c.id][1] if c.id in cpu_held else None,
                     "holder": holder(cpu_held[c.id][0]) if c.id in cpu_held else None}
                    for c in n.cpus
                ],
                "gpus": gpus_by_node.get(n.node_index, []),
            })
        return {
            "id": host.id,
            "name": host.name,
            "region": host.region_id,
            "driver": host.driver,
            "uri": host.uri,
            "profile": host.profile,
            "status": host.status,
            "status_reason": host.status_reason,
            **counts,
            "cpu_model": host.cpu_model,
            "threads_per_core": topology.threads_per_core,
            "last_seen": linode_time(host.last_seen_at),
            "nodes": nodes,
            "gpus_unknown_node": gpus_by_node.get(UNKNOWN_NUMA_NODE, []),
            "instances": [
                {"id": i.id, "label": i.label, "type": i.type_id, "status": i.status, "account": a.email,
                 "staff": a.is_staff}
                for i, a in instances.values()
            ],
        }
