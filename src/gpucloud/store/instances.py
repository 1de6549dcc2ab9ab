"""Queries about instances and their unfinished work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import bindparam, exists, func, insert, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gpucloud.clock import utcnow
from gpucloud.store.tables import CpuClaim, CpuRow, GpuClaim, GpuRow, Host, Instance, Job, MemoryClaim, NumaNodeRow

# (attribute, column) of every column a new row is written with; the id comes back from the INSERT
_NEW_COLUMNS = tuple((a.key, a.columns[0].name) for a in inspect(Instance).column_attrs if a.key != "id")
_INSERT = insert(Instance).returning(Instance.id)  # built once per process
# ON CONFLICT (ipv4) DO NOTHING: a taken address answers no row instead of failing the transaction
# (any other unique key still refuses with an IntegrityError)
_INSERT_UNLESS_ADDRESS_TAKEN = {
    name: dialect_insert(Instance).on_conflict_do_nothing(index_elements=[Instance.ipv4]).returning(Instance.id)
    for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))}


def insert_new(session: Session, instance: Instance) -> int:
    """Write a new instance, the columns as set on `instance` (which stays out of the session:
    one Core INSERT, not an ORM flush, issue #11); its id."""
    return int(session.connection().execute(_INSERT, _row(instance)).scalar_one())


def insert_new_unless_address_taken(session: Session, instance: Instance) -> int | None:
    """`insert_new`, or nothing and None when another instance holds `instance.ipv4` (the
    unique key checks it: a create learns whether its address was free without asking first)."""
    conn = session.connection()
    found = conn.execute(_INSERT_UNLESS_ADDRESS_TAKEN[conn.dialect.name], _row(instance)).scalar_one_or_none()
    return None if found is None else int(found)


def _row(instance: Instance) -> dict:
    """The columns set on `instance` (the rest take their defaults)."""
    given = instance.__dict__
    return {column: given[key] for key, column in _NEW_COLUMNS if key in given}


_MOVE_STATUS = (update(Instance).where(Instance.id == bindparam("instance_id"),
                                       Instance.status.in_(bindparam("sources", expanding=True)))
                .values(status=bindparam("new"), status_reason=bindparam("reason")))  # built once per process


def move_status(session: Session, instance_id: int, sources: tuple[str, ...], new: str, reason: str) -> bool:
    """Set the instance's status to `new` if it is one of `sources`, in one conditional
    UPDATE on the session's connection; whether it moved."""
    moved = session.connection().execute(_MOVE_STATUS, {"instance_id": instance_id, "sources": list(sources),
                                                        "new": new, "reason": reason})
    return moved.rowcount == 1


def owned(session: Session, account_id: int, instance_id: int, *, lock: bool = False) -> Instance | None:
    """The instance if this account owns it; another account's instance does not exist for it."""
    stmt = select(Instance).where(Instance.id == instance_id, Instance.account_id == account_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def of_account(session: Session, account_id: int) -> list[Instance]:
    return list(session.scalars(select(Instance).where(Instance.account_id == account_id).order_by(Instance.id)))


def on_host(session: Session, host_id: int) -> list[Instance]:
    return list(session.scalars(select(Instance).where(Instance.host_id == host_id).order_by(Instance.id)))


_PINNED_BY_OTHERS = (select(CpuRow.cpu_index).join(CpuClaim, CpuClaim.cpu_id == CpuRow.id)
                     .where(CpuClaim.host_id == bindparam("host_id"), CpuClaim.instance_id != bindparam("instance_id")))
_HOST_SETTINGS = select(Host.settings).where(Host.id == bindparam("host_id"))


def pinned_cpus_of_others(session: Session, host_id: int, instance_id: int) -> set[int]:
    """Host threads other instances have pinned (shared guests must stay off them)."""
    return set(session.connection().scalars(_PINNED_BY_OTHERS, {"host_id": host_id, "instance_id": instance_id}))


def settings_of_host(session: Session, host_id: int) -> dict | None:
    """The settings of the host an instance is on (its domain type, NIC), or None when there is no
    such host: one column, not the host's ORM entity."""
    row = session.connection().execute(_HOST_SETTINGS, {"host_id": host_id}).first()
    return None if row is None else dict(row[0] or {})


def labels_of_account(session: Session, account_id: int) -> set[str]:
    return set(session.scalars(select(Instance.label).where(Instance.account_id == account_id)))


def label_taken(session: Session, account_id: int, label: str, *, besides: int | None = None) -> bool:
    stmt = select(func.count()).select_from(Instance).where(Instance.account_id == account_id,
                                                            Instance.label == label)
    if besides is not None:
        stmt = stmt.where(Instance.id != besides)
    return session.execute(stmt).scalar_one() > 0


@dataclass(frozen=True)
class GuestState:
    """What the host sweep compares with a hypervisor's domains, of one instance."""

    id: int
    host_id: int
    status: str
    booted: bool
    watchdog_enabled: bool
    status_reason: str
    busy: bool  # a job of it is queued or running: its state is that job's to change


def guest_states(session: Session, host_ids: list[int]) -> list[GuestState]:
    """The instances on these hosts, in one statement."""
    if not host_ids:
        return []
    busy = exists().where(Job.instance_id == Instance.id, Job.state.in_(("queued", "running")))
    rows = session.execute(select(Instance.id, Instance.host_id, Instance.status, Instance.booted,
                                  Instance.watchdog_enabled, Instance.status_reason, busy)
                           .where(Instance.host_id.in_(host_ids)).order_by(Instance.id))
    return [GuestState(id, cast(int, host_id), status, booted, watchdog, reason, busy_now)
            for id, host_id, status, booted, watchdog, reason, busy_now in rows]  # host_id: never NULL here


def has_unfinished_job(session: Session, instance_id: int) -> bool:
    return session.execute(
        select(func.count()).select_from(Job).where(Job.instance_id == instance_id,
                                                    Job.state.in_(("queued", "running")))
    ).scalar_one() > 0


def cancel_queued_jobs(session: Session, instance_id: int, why: str) -> list[tuple[int, int | None]]:
    """Cancel the instance's queued (not running) jobs; (job id, event id) of each, so their
    events can be closed. One UPDATE that re-checks the state: on PostgreSQL a worker's claim
    committing meanwhile makes the row `running`, and the update then leaves it alone."""
    rows = session.execute(
        update(Job).where(Job.instance_id == instance_id, Job.state == "queued")
        .values(state="cancelled", last_error=why, finished_at=utcnow())
        .returning(Job.id, Job.event_id).execution_options(synchronize_session=False)
    ).all()
    return [(job_id, event_id) for job_id, event_id in rows]


# Built once and run as plain rows on the session's connection: a worker reads them for every
# job that defines a domain, and the ORM's entity loading was most of their cost (issue #11).
_CLAIMED_CPUS = (select(CpuClaim.guest_vcpu, CpuRow.cpu_index, NumaNodeRow.node_index)
                 .join(CpuRow, CpuRow.id == CpuClaim.cpu_id).join(NumaNodeRow, NumaNodeRow.id == CpuRow.numa_node_id)
                 .where(CpuClaim.instance_id == bindparam("instance_id")).order_by(CpuClaim.guest_vcpu))
_CLAIMED_GPUS = (select(*GpuRow.__table__.columns).join(GpuClaim, GpuClaim.gpu_id == GpuRow.id)
                 .where(GpuClaim.instance_id == bindparam("instance_id")).order_by(GpuRow.pci_address))
_CLAIMED_MEMORY = (select(NumaNodeRow.node_index, MemoryClaim.guest_cell, MemoryClaim.memory_mib,
                          MemoryClaim.hugepages_1g, MemoryClaim.shared_vcpus)
                   .join(NumaNodeRow, NumaNodeRow.id == MemoryClaim.numa_node_id)
                   .where(MemoryClaim.instance_id == bindparam("instance_id")).order_by(MemoryClaim.guest_cell))


def claims_of(session: Session, instance_id: int) -> dict:
    """What an instance holds, by natural keys: for building its domain and for reports. GPUs
    are rows of the `gpus` table (read-only; their attributes are its column names)."""
    conn, key = session.connection(), {"instance_id": instance_id}
    return {
        "cpus": [{"guest_vcpu": v, "cpu": c, "node": n} for v, c, n in conn.execute(_CLAIMED_CPUS, key)],
        "gpus": conn.execute(_CLAIMED_GPUS, key).all(),
        "memory": [{"node": n, "guest_cell": cell, "memory_mib": mib, "hugepages_1g": huge, "shared_vcpus": shared}
                   for n, cell, mib, huge, shared in conn.execute(_CLAIMED_MEMORY, key)],
    }
