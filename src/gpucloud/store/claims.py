"""Claims: reading what hosts have free (as placement's `HostState`) and writing, in the
caller's transaction, what an instance takes or gives back.

The compare-and-swap on `hosts.generation` makes two placements computed from the same
view of one host impossible to both commit; the unique keys of `gpu_claims` and
`cpu_claims` stay the last word whatever happens above.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gpucloud.config import Settings
from gpucloud.domain.host_state import HostState, build_host_state
from gpucloud.domain.placement import OVERRIDABLE
from gpucloud.store.fleet import load_hosts_full, topology_of
from gpucloud.store.tables import Account, CpuClaim, CpuRow, GpuClaim, GpuRow, Host, Instance, MemoryClaim


def load_host_states(session: Session, settings: Settings, *, region: str | None = None,
                     host_ids: list[int] | None = None, gpu_model: str | None = None,
                     ignore_instance: int | None = None) -> list[HostState]:
    """Placement's view of hosts; with `gpu_model`, only hosts that have GPUs of that model.
    `ignore_instance`: count that instance's claims as free (a resize asking where it could go)."""
    if gpu_model is not None and host_ids is None:
        stmt = select(GpuRow.host_id).where(GpuRow.gpu_model_id == gpu_model).distinct()
        if region:
            stmt = stmt.join(Host, Host.id == GpuRow.host_id).where(Host.region_id == region)
        host_ids = list(session.scalars(stmt))
        if not host_ids:
            return []
    hosts = load_hosts_full(session, host_ids, region)
    if not hosts:
        return []
    ids = [h.id for h in hosts]
    claimed_cpus: dict[int, set[int]] = defaultdict(set)
    for host_id, cpu_index in session.execute(
        select(CpuClaim.host_id, CpuRow.cpu_index).join(CpuRow, CpuRow.id == CpuClaim.cpu_id)
        .where(CpuClaim.host_id.in_(ids), CpuClaim.instance_id != (ignore_instance or -1))
    ):
        claimed_cpus[host_id].add(cpu_index)
    claimed_gpus: dict[int, set[str]] = defaultdict(set)
    staff_gpus: dict[int, set[str]] = defaultdict(set)
    for host_id, address, staff in session.execute(
        select(GpuClaim.host_id, GpuRow.pci_address, Account.is_staff)
        .join(GpuRow, GpuRow.id == GpuClaim.gpu_id)
        .join(Instance, Instance.id == GpuClaim.instance_id)
        .join(Account, Account.id == Instance.account_id)
        .where(GpuClaim.host_id.in_(ids), GpuClaim.instance_id != (ignore_instance or -1))
    ):
        claimed_gpus[host_id].add(address)
        if staff:
            staff_gpus[host_id].add(address)
    memory: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    pages: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    shared: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    node_index = {n.id: (h.id, n.node_index) for h in hosts for n in h.numa_nodes}
    for claim in session.scalars(select(MemoryClaim).where(MemoryClaim.host_id.in_(ids),
                                                           MemoryClaim.instance_id != (ignore_instance or -1))):
        host_id, index = node_index[claim.numa_node_id]
        if claim.hugepages_1g:
            pages[host_id][index] += claim.hugepages_1g
        else:
            memory[host_id][index] += claim.memory_mib
        shared[host_id][index] += claim.shared_vcpus
    return [
        build_host_state(
            h.id,
            h.region_id,
            topology_of(h),
            {g.pci_address: g.gpu_model_id for g in h.gpus if g.gpu_model_id},
            status=h.status,
            generation=h.generation,
            claimed_cpus=claimed_cpus[h.id],
            claimed_gpus=claimed_gpus[h.id],
            staff_gpus=staff_gpus[h.id],
            claimed_memory_mib=memory[h.id],
            claimed_hugepages=pages[h.id],
            shared_vcpus=shared[h.id],
            gpu_statuses={g.pci_address: g.status for g in h.gpus},
            reserved_cpus=[c.cpu_index for n in h.numa_nodes for c in n.cpus if c.reserved],
            reserved_memory_mib={n.node_index: n.reserved_memory_mib for n in h.numa_nodes},
            overrides={k: v for k, v in (h.settings or {}).items() if k in OVERRIDABLE} or None,
        )
        for h in hosts
    ]


def bump_generation(session: Session, host_id: int, seen: int) -> bool:
    """Compare-and-swap: True when nobody changed the host since placement read `seen`."""
    result = session.execute(
        update(Host).where(Host.id == host_id, Host.generation == seen).values(generation=Host.generation + 1)
    )
    return result.rowcount == 1


def release_claims(session: Session, instance_id: int) -> None:
    """Give back everything an instance holds (same transaction as its state change)."""
    for table in (GpuClaim, CpuClaim, MemoryClaim):
        session.execute(delete(table).where(table.instance_id == instance_id))
