"""Hosts, their NUMA nodes, CPUs and GPUs: rows to topology and back, and who holds what."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, literal, select, update
from sqlalchemy.orm import Session, selectinload

from gpucloud.domain.topology import Cpu, Gpu, HostTopology, NumaNode, PciFunction
from gpucloud.store.tables import (
    Account,
    CpuClaim,
    GpuClaim,
    GpuRow,
    Host,
    Instance,
    MemoryClaim,
    NumaNodeRow,
)


def host_by_ref(session: Session, ref: str | int) -> Host | None:
    """A host by id or by name."""
    text = str(ref).strip()
    if text.isdigit():
        return session.get(Host, int(text))
    return session.scalar(select(Host).where(Host.name == text))


def host_by_uri(session: Session, uri: str) -> Host | None:
    return session.scalar(select(Host).where(Host.uri == uri))


def shard_of(host_id: int, shard_size: int) -> int:
    """The sweep shard of a host: ids `shard * size` to `(shard + 1) * size - 1`. A host
    never changes shard, and a shard's hosts are one index range."""
    return host_id // shard_size


def in_shard(shard: int, shard_size: int) -> ColumnElement[bool]:
    return and_(Host.id >= shard * shard_size, Host.id < (shard + 1) * shard_size)


def hosts_in_shard(session: Session, shard: int, shard_size: int, statuses: Iterable[str]) -> list[Host]:
    return list(session.scalars(select(Host).where(in_shard(shard, shard_size), Host.status.in_(list(statuses)))
                                .order_by(Host.id)))


def mark_seen(session: Session, host_ids: list[int], now: datetime) -> None:
    """These hosts answered a check: one statement for them all."""
    if host_ids:
        session.execute(update(Host).where(Host.id.in_(host_ids)).values(last_seen_at=now, missed_checks=0)
                        .execution_options(synchronize_session=False))


def count_missed(session: Session, host_ids: list[int]) -> None:
    """These hosts missed a check: one statement for them all."""
    if host_ids:
        session.execute(update(Host).where(Host.id.in_(host_ids)).values(missed_checks=Host.missed_checks + 1)
                        .execution_options(synchronize_session=False))


def hosts_among(session: Session, host_ids: list[int], *, down: bool, missed_at_least: int = 0) -> list[Host]:
    """Those of these hosts that are down (or not), having missed at least so many checks."""
    if not host_ids:
        return []
    status = Host.status == "down" if down else Host.status != "down"
    return list(session.scalars(select(Host).where(Host.id.in_(host_ids), status,
                                                   Host.missed_checks >= missed_at_least).order_by(Host.id)))


def list_hosts(session: Session, region: str | None = None) -> list[Host]:
    stmt = select(Host).options(selectinload(Host.gpus)).order_by(Host.region_id, Host.name)
    if region:
        stmt = stmt.where(Host.region_id == region)
    return list(session.scalars(stmt))


def load_hosts_full(session: Session, host_ids: list[int] | None = None, region: str | None = None) -> list[Host]:
    """Hosts with nodes, CPUs and GPUs loaded in a fixed number of queries."""
    stmt = select(Host).options(
        selectinload(Host.numa_nodes).selectinload(NumaNodeRow.cpus), selectinload(Host.gpus)
    ).order_by(Host.id)
    if host_ids is not None:
        stmt = stmt.where(Host.id.in_(host_ids))
    if region:
        stmt = stmt.where(Host.region_id == region)
    return list(session.scalars(stmt))


def topology_of(host: Host) -> HostTopology:
    """Rebuild the topology model from a host's rows (nodes, CPUs and GPUs loaded)."""
    nodes = tuple(
        NumaNode(
            index=n.node_index,
            cpus=tuple(Cpu(c.cpu_index, c.socket_id, c.core_id, tuple(c.siblings)) for c in n.cpus),
            memory_mib=n.memory_mib,
            hugepages_1g=n.hugepages_1g,
            distances=tuple(n.distances or ()),
        )
        for n in host.numa_nodes
    )
    gpus = tuple(gpu_of(g) for g in host.gpus)
    threads = max((len(c.siblings) for n in host.numa_nodes for c in n.cpus), default=1)
    return HostTopology(nodes=nodes, gpus=gpus, cpu_model=host.cpu_model, threads_per_core=threads)


# A `cpus` row: (index, NUMA node index, socket, core, siblings, reserved: kept for the host).
ThreadRow = tuple[int, int, int, int, Sequence[int], bool]


def cpu_layout_key(threads: Iterable[ThreadRow]) -> str:
    """What names a host's CPU layout: a hash of its threads, equal on every host of a hardware
    profile registered with the same reserved cores. Placement reads one host's threads per
    key (`store.host_states`)."""
    canonical = sorted([index, node, socket, core, list(siblings), bool(reserved)]
                       for index, node, socket, core, siblings, reserved in threads)
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def gpu_of(row: GpuRow) -> Gpu:
    return Gpu(
        address=row.pci_address,
        vendor_id=row.vendor_id,
        device_id=row.device_id,
        class_code=row.class_code,
        numa_node=row.numa_node,
        iommu_group=row.iommu_group,
        product=row.product,
        companions=tuple(PciFunction(**c) for c in row.companions or ()),
    )


def companions_json(gpu: Gpu) -> list[dict]:
    return [
        {"address": f.address, "class_code": f.class_code, "vendor_id": f.vendor_id, "device_id": f.device_id,
         "description": f.description}
        for f in gpu.companions
    ]


def gpu_holders(session: Session, host_ids: list[int]) -> dict[int, tuple[Instance, Account]]:
    """GPU row id -> (instance, account) holding it."""
    rows = session.execute(
        select(GpuClaim.gpu_id, Instance, Account)
        .join(Instance, GpuClaim.instance_id == Instance.id)
        .join(Account, Instance.account_id == Account.id)
        .where(GpuClaim.host_id.in_(host_ids))
    )
    return {gpu_id: (inst, acct) for gpu_id, inst, acct in rows}


def cpu_holders(session: Session, host_ids: list[int]) -> dict[int, tuple[int, int]]:
    """CPU row id -> (instance id, guest vCPU)."""
    rows = session.execute(
        select(CpuClaim.cpu_id, CpuClaim.instance_id, CpuClaim.guest_vcpu).where(CpuClaim.host_id.in_(host_ids))
    )
    return {cpu_id: (iid, vcpu) for cpu_id, iid, vcpu in rows}


def memory_claims_of_hosts(session: Session, host_ids: list[int]) -> list[MemoryClaim]:
    return list(session.scalars(select(MemoryClaim).where(MemoryClaim.host_id.in_(host_ids))))


def instances_on_host(session: Session, host_id: int) -> list[tuple[Instance, Account]]:
    rows = session.execute(
        select(Instance, Account).join(Account, Instance.account_id == Account.id)
        .where(Instance.host_id == host_id).order_by(Instance.id)
    )
    return [(i, a) for i, a in rows]


def gpu_counts_by_state(session: Session) -> list[tuple[str, str, str, int]]:
    """(region, GPU model, state, count) for every GPU we sell: `claimed`, else the GPU's own
    status when it is out of service (`faulty`, `reserved`), else `host_<status>` when its
    host takes nothing new, else `free`."""
    claimed = select(GpuClaim.gpu_id).where(GpuClaim.gpu_id == GpuRow.id).exists()
    state = case(
        (claimed, "claimed"),
        (GpuRow.status != "available", GpuRow.status),
        (Host.status != "active", literal("host_") + Host.status),
        else_="free",
    )
    rows = session.execute(
        select(Host.region_id, GpuRow.gpu_model_id, state, func.count())
        .join(Host, Host.id == GpuRow.host_id).where(GpuRow.gpu_model_id.is_not(None))
        .group_by(Host.region_id, GpuRow.gpu_model_id, state)
    )
    return [(region, model, st, n) for region, model, st, n in rows]


def gpu_rows_by_address(session: Session, host_id: int) -> dict[str, GpuRow]:
    return {g.pci_address: g for g in session.scalars(select(GpuRow).where(GpuRow.host_id == host_id))}


def node_rows_by_index(session: Session, host_id: int) -> dict[int, NumaNodeRow]:
    return {n.node_index: n for n in session.scalars(select(NumaNodeRow).where(NumaNodeRow.host_id == host_id))}
