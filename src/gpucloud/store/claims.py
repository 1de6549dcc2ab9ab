"""Claims: writing, in the caller's transaction, what an instance takes or gives back, and
moving the generation of every host whose free resources (or how they count) changed.

Every such write takes the region's placement lock and sets the host's generation to one
past the largest in its region, so generations in a region grow in commit order: that is
what lets a process learn what changed since it last looked with one indexed query
(`store.host_states`). The compare-and-swap on the generation makes two placements computed
from the same view of one host impossible to both commit; the unique keys of `gpu_claims`
and `cpu_claims` stay the last word whatever happens above.
"""

from __future__ import annotations

from sqlalchemy import String, bindparam, delete, func, insert, select, text, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.selectable import ScalarSelect

from gpucloud.clock import utcnow
from gpucloud.domain.placement import Placement
from gpucloud.store.host_states import HostRows
from gpucloud.store.tables import CpuClaim, GpuClaim, Host, Instance, MemoryClaim


def serialize_placements(session: Session, region: str) -> None:
    """One placement at a time per region, for the rest of this transaction.

    Concurrent placements would otherwise pick the same best host, and all but one would
    lose the compare-and-swap and start over (at 100 creates/s, a fifth of them gave up).
    On PostgreSQL a transaction-scoped advisory lock queues them instead; SQLite's write
    transaction already runs one at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"gpucloud-placement:{region}"})


def _next_generation(region: str | None = None) -> ScalarSelect[int]:
    """One past the largest generation in the host's region (or in `region`)."""
    other = aliased(Host)
    where = other.region_id == (region if region is not None else Host.region_id)
    return select(func.max(other.generation) + 1).where(where).scalar_subquery()


# Built once: building the aliased subquery cost more CPU than running the statement.
_CLAIM_HOST = (update(Host).where(Host.id == bindparam("host_id"), Host.generation == bindparam("seen"))
               .values(generation=_next_generation(bindparam("region", type_=String)))  # type: ignore[arg-type]
               .returning(Host.generation))
_BUMP_HOSTS = (update(Host).where(Host.id.in_(bindparam("ids", expanding=True))).values(generation=_next_generation())
               .execution_options(synchronize_session=False))
_INSERTS = {table: insert(table) for table in (MemoryClaim, CpuClaim, GpuClaim)}


def claim_host(session: Session, host_id: int, region: str, seen: int) -> int | None:
    """Compare-and-swap before claiming on a host: its new generation, or None when somebody
    changed the host since placement read generation `seen`. Hold the region's lock."""
    return session.connection().scalar(_CLAIM_HOST, {"host_id": host_id, "seen": seen, "region": region})


def write_claims(session: Session, instance_id: int, placement: Placement, rows: HostRows) -> None:
    """The placement's memory, pinned threads and GPUs as claim rows of this instance (`rows`:
    the host's row ids): one Core INSERT per table with all its rows (statements built once,
    so their compiled form is cached). The primary keys of `cpu_claims` and `gpu_claims` refuse
    a thread or GPU that another instance holds, whatever happened above."""
    host_id = placement.host_id
    threads = [cpu for node in placement.nodes for cpu in node.cpus]
    conn = session.connection()
    conn.execute(_INSERTS[MemoryClaim], [
        {"instance_id": instance_id, "numa_node_id": rows.nodes[n.node], "host_id": host_id, "guest_cell": cell,
         "memory_mib": n.memory_mib, "hugepages_1g": n.hugepages, "shared_vcpus": n.shared_vcpus}
        for cell, n in enumerate(placement.nodes)])
    if threads:
        conn.execute(_INSERTS[CpuClaim], [
            {"cpu_id": rows.cpus[cpu], "instance_id": instance_id, "host_id": host_id, "guest_vcpu": vcpu}
            for vcpu, cpu in enumerate(threads)])
    if placement.gpu_addresses:
        now = utcnow()
        conn.execute(_INSERTS[GpuClaim], [
            {"gpu_id": rows.gpus[address], "instance_id": instance_id, "host_id": host_id, "claimed_at": now}
            for address in placement.gpu_addresses])


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


def holds_claims(session: Session, instance_id: int) -> bool:
    """Whether the instance holds any claim (a parked or deleted one holds none)."""
    return session.scalar(select(MemoryClaim.instance_id).where(MemoryClaim.instance_id == instance_id)
                          .limit(1)) is not None


def gpus_held(session: Session, instance_id: int) -> int:
    return session.scalar(select(func.count()).select_from(GpuClaim).where(GpuClaim.instance_id == instance_id)) or 0


def bump_hosts(session: Session, host_ids: set[int] | list[int]) -> None:
    """Mark these hosts changed (their free state, or how it is counted): under their
    regions' placement locks, one past the largest generation of their region."""
    ids = sorted(set(host_ids))
    if not ids:
        return
    for region in sorted(set(session.scalars(select(Host.region_id).where(Host.id.in_(ids))))):
        serialize_placements(session, region)
    session.execute(_BUMP_HOSTS, {"ids": ids})


def hosts_of_account(session: Session, account_id: int) -> set[int]:
    """Hosts where the account holds something (a staff change recounts their GPUs)."""
    return set(session.scalars(select(MemoryClaim.host_id).join(Instance, Instance.id == MemoryClaim.instance_id)
                               .where(Instance.account_id == account_id)))
