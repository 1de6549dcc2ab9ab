"""Queries about instances and their unfinished work."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    String,
    bindparam,
    exists,
    func,
    insert,
    inspect,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from gpucloud.clock import utcnow
from gpucloud.domain.addresses import PoolShape
from gpucloud.store.addresses import POOL_COLUMNS, POOL_ORDER, parsed
from gpucloud.store.tables import (
    CpuClaim,
    CpuRow,
    GpuClaim,
    GpuRow,
    Host,
    Instance,
    IpPool,
    Job,
    MemoryClaim,
    NumaNodeRow,
)

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


def pinned_cpus_of_others(session: Session, host_id: int, instance_id: int) -> set[int]:
    """Host threads other instances have pinned (shared guests must stay off them)."""
    return set(session.connection().scalars(_PINNED_BY_OTHERS, {"host_id": host_id, "instance_id": instance_id}))


@dataclass(frozen=True)
class InstanceRow:
    """What a job reads of its instance (the handler, and the domain spec it defines), with the
    settings of its host (domain type, NIC) and its region's address pools (the guest's
    network): one statement of Core rows, not an ORM entity, whose loading was a quarter of a
    create job's read (issue #11). A snapshot: writes go through statements."""

    id: int
    label: str
    region_id: str
    type_id: str
    image: str | None
    status: str
    host_id: int | None
    booted: bool
    ipv4: str | None
    ipv6: str | None
    mac: str | None
    root_pass_hash: str | None
    authorized_keys: tuple[str, ...]
    user_data: str | None
    created_at: datetime
    host_settings: dict | None  # None: on no host, or on one that does not exist
    pools: tuple[PoolShape, ...]  # as `store.addresses.shapes` lists them


_ROW_COLUMNS = tuple(getattr(Instance, f.name) for f in fields(InstanceRow) if f.name not in ("host_settings", "pools"))
# One row per pool of the region (one with NULL pool columns without any); built once per process.
_INSTANCE_ROWS = (select(*_ROW_COLUMNS, Host.id, Host.settings, *POOL_COLUMNS)
                  .outerjoin(Host, Host.id == Instance.host_id)
                  .outerjoin(IpPool, IpPool.region_id == Instance.region_id)
                  .where(Instance.id == bindparam("instance_id")).order_by(*POOL_ORDER))


def row_of(session: Session, instance_id: int) -> InstanceRow | None:
    """The instance as `InstanceRow`, or None when there is none; one statement."""
    rows = session.connection().execute(_INSTANCE_ROWS, {"instance_id": instance_id}).all()
    if not rows:
        return None
    n = len(_ROW_COLUMNS)  # then the host's id and settings, then the pool's columns
    given = dict(zip((c.key for c in _ROW_COLUMNS), rows[0][:n], strict=True))
    host_id, host_settings = rows[0][n:n + 2]
    return InstanceRow(**{**given, "authorized_keys": tuple(given["authorized_keys"] or ())},
                       host_settings=None if host_id is None else dict(host_settings or {}),
                       pools=tuple(parsed(*r[n + 2:]) for r in rows if r[n + 2] is not None))


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


# What `claims_of` reads, as one statement built once per process: a UNION ALL of the instance's
# threads, memory cells and GPUs, each row tagged with its kind and NULL in the other kinds'
# columns. A worker reads it for every job that defines a domain; three statements (and, before
# them, the ORM's entity loading) were most of that read's cost (issue #11).
_CLAIMED = {
    "cpu": select(NumaNodeRow.node_index.label("node"), CpuClaim.guest_vcpu, CpuRow.cpu_index.label("cpu"))
    .join_from(CpuClaim, CpuRow, CpuRow.id == CpuClaim.cpu_id).join(NumaNodeRow, NumaNodeRow.id == CpuRow.numa_node_id)
    .where(CpuClaim.instance_id == bindparam("id")),
    "memory": select(NumaNodeRow.node_index.label("node"), MemoryClaim.guest_cell, MemoryClaim.memory_mib,
                     MemoryClaim.hugepages_1g, MemoryClaim.shared_vcpus)
    .join_from(MemoryClaim, NumaNodeRow, NumaNodeRow.id == MemoryClaim.numa_node_id)
    .where(MemoryClaim.instance_id == bindparam("id")),
    "gpu": select(*GpuRow.__table__.columns).join_from(GpuClaim, GpuRow, GpuRow.id == GpuClaim.gpu_id)
    .where(GpuClaim.instance_id == bindparam("id")),
}
_CLAIMED_TYPES = {c.name: c.type for stmt in _CLAIMED.values() for c in stmt.selected_columns}


def _padded(kind: str, stmt: Select[Any]) -> Select[Any]:
    """`stmt` with the kind, and every kind's columns in one order (NULLs of their types for the
    others: PostgreSQL matches a UNION's column types branch by branch)."""
    given = {c.name: c for c in stmt.selected_columns}
    return stmt.with_only_columns(
        literal_column(f"'{kind}'", String).label("kind"),
        *(given[name] if name in given else null().cast(type_).label(name)
          for name, type_ in _CLAIMED_TYPES.items()))


_CLAIMS = (union_all(*(_padded(kind, stmt) for kind, stmt in _CLAIMED.items()))
           .order_by("kind", "guest_vcpu", "guest_cell", "pci_address"))


def claims_of(session: Session, instance_id: int) -> dict:
    """What an instance holds, by natural keys: for building its domain and for reports. GPUs
    are rows with the `gpus` table's columns (read-only; their attributes are its column names)."""
    rows = session.connection().execute(_CLAIMS, {"id": instance_id}).all()
    return {
        "cpus": [{"guest_vcpu": r.guest_vcpu, "cpu": r.cpu, "node": r.node} for r in rows if r.kind == "cpu"],
        "gpus": [r for r in rows if r.kind == "gpu"],
        "memory": [{"node": r.node, "guest_cell": r.guest_cell, "memory_mib": r.memory_mib,
                    "hugepages_1g": r.hugepages_1g, "shared_vcpus": r.shared_vcpus}
                   for r in rows if r.kind == "memory"],
    }
