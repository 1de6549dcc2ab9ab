"""Claims: reading what hosts have free (as placement's `HostState`) and writing, in the
caller's transaction, what an instance takes or gives back.

The compare-and-swap on `hosts.generation` makes two placements computed from the same
view of one host impossible to both commit; the unique keys of `gpu_claims` and
`cpu_claims` stay the last word whatever happens above.
"""

from __future__ import annotations

import threading
import weakref
from collections import defaultdict
from typing import cast

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.orm import Session

from gpucloud.config import Settings
from gpucloud.domain.host_state import HostState, build_host_state
from gpucloud.domain.placement import OVERRIDABLE, Placement
from gpucloud.store.fleet import load_hosts_full, topology_of
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

# Per database engine: host id -> its HostState at the generation it was built from. Every
# change to what a host has free bumps its generation (claims, releases, statuses, topology),
# so a state whose generation matches the database is exact and need not be rebuilt.
_states: weakref.WeakKeyDictionary[Engine | Connection, dict[int, HostState]] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def load_host_states(session: Session, settings: Settings, *, region: str | None = None,
                     host_ids: list[int] | None = None, gpu_model: str | None = None,
                     ignore_instance: int | None = None) -> list[HostState]:
    """Placement's view of hosts; with `gpu_model`, only hosts that have GPUs of that model.
    `ignore_instance`: count that instance's claims as free (a resize asking where it could go).

    One small query finds the hosts and their generations; only hosts whose generation moved
    since this process last looked are read in full."""
    stmt = select(Host.id, Host.generation).order_by(Host.id)
    if region:
        stmt = stmt.where(Host.region_id == region)
    if host_ids is not None:
        stmt = stmt.where(Host.id.in_(host_ids))
    if gpu_model is not None:
        stmt = stmt.where(Host.id.in_(select(GpuRow.host_id).where(GpuRow.gpu_model_id == gpu_model)))
    current = dict(session.execute(stmt).all())
    if not current:
        return []
    if ignore_instance is not None:
        return _build_states(session, list(current), ignore_instance)
    with _states_lock:
        known = _states.setdefault(session.get_bind(), {})
        stale = [h for h, generation in current.items() if h not in known or known[h].generation != generation]
    if stale:
        fresh = _build_states(session, stale, None)
        with _states_lock:
            known.update((state.id, state) for state in fresh)
    with _states_lock:
        return [known[h] for h in current if h in known]


def _build_states(session: Session, ids: list[int], ignore_instance: int | None) -> list[HostState]:
    hosts = load_hosts_full(session, ids)
    skip = ignore_instance if ignore_instance is not None else -1
    claimed_cpus: dict[int, set[int]] = defaultdict(set)
    for host_id, cpu_index in session.execute(
        select(CpuClaim.host_id, CpuRow.cpu_index).join(CpuRow, CpuRow.id == CpuClaim.cpu_id)
        .where(CpuClaim.host_id.in_(ids), CpuClaim.instance_id != skip)
    ):
        claimed_cpus[host_id].add(cpu_index)
    claimed_gpus: dict[int, set[str]] = defaultdict(set)
    staff_gpus: dict[int, set[str]] = defaultdict(set)
    for host_id, address, staff in session.execute(
        select(GpuClaim.host_id, GpuRow.pci_address, Account.is_staff)
        .join(GpuRow, GpuRow.id == GpuClaim.gpu_id)
        .join(Instance, Instance.id == GpuClaim.instance_id)
        .join(Account, Account.id == Instance.account_id)
        .where(GpuClaim.host_id.in_(ids), GpuClaim.instance_id != skip)
    ):
        claimed_gpus[host_id].add(address)
        if staff:
            staff_gpus[host_id].add(address)
    memory: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    pages: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    shared: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    node_index = {n.id: (h.id, n.node_index) for h in hosts for n in h.numa_nodes}
    for claim in session.scalars(select(MemoryClaim).where(MemoryClaim.host_id.in_(ids),
                                                           MemoryClaim.instance_id != skip)):
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


def serialize_placements(session: Session, region: str) -> None:
    """One placement at a time per region, for the rest of this transaction.

    Concurrent placements would otherwise pick the same best host, and all but one would
    lose the compare-and-swap and start over (at 100 creates/s, a fifth of them gave up).
    On PostgreSQL a transaction-scoped advisory lock queues them instead; SQLite's write
    transaction already runs one at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"gpucloud-placement:{region}"})


def bump_generation(session: Session, host_id: int, seen: int) -> bool:
    """Compare-and-swap: True when nobody changed the host since placement read `seen`."""
    result = session.execute(
        update(Host).where(Host.id == host_id, Host.generation == seen).values(generation=Host.generation + 1)
    )
    return cast(CursorResult, result).rowcount == 1


def write_claims(session: Session, instance_id: int, placement: Placement) -> None:
    """The placement's memory, pinned threads and GPUs as claim rows of this instance: one
    multi-row INSERT per table. The primary keys of `cpu_claims` and `gpu_claims` refuse a
    thread or GPU that another instance holds, whatever happened above."""
    host_id = placement.host_id
    threads = [cpu for node in placement.nodes for cpu in node.cpus]
    nodes = dict(session.execute(select(NumaNodeRow.node_index, NumaNodeRow.id)
                                 .where(NumaNodeRow.host_id == host_id)).all())
    cpus = dict(session.execute(select(CpuRow.cpu_index, CpuRow.id).where(
        CpuRow.host_id == host_id, CpuRow.cpu_index.in_(threads))).all())
    gpus = dict(session.execute(select(GpuRow.pci_address, GpuRow.id).where(
        GpuRow.host_id == host_id, GpuRow.pci_address.in_(placement.gpu_addresses))).all())
    session.execute(insert(MemoryClaim).values([
        {"instance_id": instance_id, "numa_node_id": nodes[n.node], "host_id": host_id, "guest_cell": cell,
         "memory_mib": n.memory_mib, "hugepages_1g": n.hugepages, "shared_vcpus": n.shared_vcpus}
        for cell, n in enumerate(placement.nodes)]))
    if threads:
        session.execute(insert(CpuClaim).values([
            {"cpu_id": cpus[cpu], "instance_id": instance_id, "host_id": host_id, "guest_vcpu": vcpu}
            for vcpu, cpu in enumerate(threads)]))
    if placement.gpu_addresses:
        session.execute(insert(GpuClaim).values([
            {"gpu_id": gpus[address], "instance_id": instance_id, "host_id": host_id}
            for address in placement.gpu_addresses]))


def release_claims(session: Session, instance_id: int) -> None:
    """Give back everything an instance holds (same transaction as its state change); the
    hosts it held resources on move to a new generation. Takes the placement lock of their
    regions first, like a placement does: a release bumping a host under a placement that
    had just read it would make that placement lose its compare-and-swap for nothing."""
    held = session.execute(select(MemoryClaim.host_id, Host.region_id).join(Host, Host.id == MemoryClaim.host_id)
                           .where(MemoryClaim.instance_id == instance_id).distinct()).all()
    for region in sorted({region for _, region in held}):
        serialize_placements(session, region)
    for table in (GpuClaim, CpuClaim, MemoryClaim):
        session.execute(delete(table).where(table.instance_id == instance_id))
    bump_hosts(session, {host for host, _ in held})


def bump_hosts(session: Session, host_ids: set[int] | list[int]) -> None:
    """Mark these hosts changed (their free state, or how it is counted)."""
    if host_ids:
        session.execute(update(Host).where(Host.id.in_(list(host_ids))).values(generation=Host.generation + 1))


def hosts_of_account(session: Session, account_id: int) -> set[int]:
    """Hosts where the account holds something (a staff change recounts their GPUs)."""
    return set(session.scalars(select(MemoryClaim.host_id).join(Instance, Instance.id == MemoryClaim.instance_id)
                               .where(Instance.account_id == account_id)))
