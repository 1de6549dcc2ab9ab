"""The queries behind `gpucloud check`: rows that break a rule the code relies on. Each
returns the offending rows only (an empty result is a healthy database)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from gpucloud.store.tables import (
    CpuClaim,
    CpuRow,
    GpuClaim,
    GpuRow,
    Host,
    Instance,
    Job,
    JobAttempt,
    MemoryClaim,
    NumaNodeRow,
)

TRANSITIONAL = ("provisioning", "booting", "shutting_down", "rebooting", "resizing", "deleting")


def claims_off_their_host(s: Session) -> list[tuple]:
    """(kind, claim's instance, claim's host, instance's host, resource's host) where the three disagree."""
    out: list[tuple[str, int, int, int | None, int]] = []
    for kind, claim, resource, key in (("gpu", GpuClaim, GpuRow, GpuClaim.gpu_id),
                                       ("cpu", CpuClaim, CpuRow, CpuClaim.cpu_id),
                                       ("memory", MemoryClaim, NumaNodeRow, MemoryClaim.numa_node_id)):
        rows = s.execute(
            select(claim.instance_id, claim.host_id, Instance.host_id, resource.host_id)
            .join(Instance, Instance.id == claim.instance_id).join(resource, resource.id == key)
            .where(or_(Instance.host_id.is_(None), claim.host_id != Instance.host_id,
                       claim.host_id != resource.host_id))).all()
        out += [(kind, *row) for row in rows]
    return out


def claim_counts(s: Session) -> dict[int, tuple[str, str, int | None, int, int, int, int]]:
    """instance id -> (type, status, host, GPUs, pinned CPUs, memory MiB, shared vCPUs) it holds."""
    gpus = select(GpuClaim.instance_id, func.count().label("n")).group_by(GpuClaim.instance_id).subquery()
    cpus = select(CpuClaim.instance_id, func.count().label("n")).group_by(CpuClaim.instance_id).subquery()
    memory = (select(MemoryClaim.instance_id, func.sum(MemoryClaim.memory_mib).label("mib"),
                     func.sum(MemoryClaim.shared_vcpus).label("shared"))
              .group_by(MemoryClaim.instance_id).subquery())
    rows = s.execute(
        select(Instance.id, Instance.type_id, Instance.status, Instance.host_id, func.coalesce(gpus.c.n, 0),
               func.coalesce(cpus.c.n, 0), func.coalesce(memory.c.mib, 0), func.coalesce(memory.c.shared, 0))
        .outerjoin(gpus, gpus.c.instance_id == Instance.id).outerjoin(cpus, cpus.c.instance_id == Instance.id)
        .outerjoin(memory, memory.c.instance_id == Instance.id)).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def overfull_nodes(s: Session) -> list[tuple]:
    """(host, node, claimed MiB, MiB it has for guests) where claims exceed the node."""
    claimed = func.sum(MemoryClaim.memory_mib)
    rows = s.execute(
        select(Host.name, NumaNodeRow.node_index, claimed, NumaNodeRow.memory_mib - NumaNodeRow.reserved_memory_mib)
        .join(NumaNodeRow, NumaNodeRow.id == MemoryClaim.numa_node_id).join(Host, Host.id == NumaNodeRow.host_id)
        .group_by(Host.name, NumaNodeRow.node_index, NumaNodeRow.memory_mib, NumaNodeRow.reserved_memory_mib)
        .having(claimed > NumaNodeRow.memory_mib - NumaNodeRow.reserved_memory_mib)).all()
    return [tuple(r) for r in rows]


def reserved_cpus_claimed(s: Session) -> list[tuple]:
    """(host, cpu, instance): a CPU kept for the host and emulator threads, pinned to a guest."""
    rows = s.execute(select(Host.name, CpuRow.cpu_index, CpuClaim.instance_id)
                     .join(CpuRow, CpuRow.id == CpuClaim.cpu_id).join(Host, Host.id == CpuRow.host_id)
                     .where(CpuRow.reserved.is_(True))).all()
    return [tuple(r) for r in rows]


def ungenerated_hosts(s: Session) -> list[tuple]:
    """(host, generation) of hosts holding claims although no claim ever bumped their generation."""
    rows = s.execute(select(Host.name, Host.generation).where(
        Host.generation <= 0, Host.id.in_(select(GpuClaim.host_id).union(select(CpuClaim.host_id),
                                                                          select(MemoryClaim.host_id))))).all()
    return [tuple(r) for r in rows]


def running_attempts_of_settled_jobs(s: Session) -> list[tuple]:
    """(attempt, job, job state, worker): an attempt still `running` on a job that is not."""
    rows = s.execute(select(JobAttempt.id, Job.id, Job.state, JobAttempt.worker)
                     .join(Job, Job.id == JobAttempt.job_id)
                     .where(JobAttempt.outcome == "running", Job.state != "running")).all()
    return [tuple(r) for r in rows]


def running_jobs_without_one_attempt(s: Session) -> list[tuple]:
    """(job, kind, running attempts) of running jobs that do not have exactly one running attempt."""
    running = (select(func.count()).select_from(JobAttempt)
               .where(JobAttempt.job_id == Job.id, JobAttempt.outcome == "running").scalar_subquery())
    rows = s.execute(select(Job.id, Job.kind, running).where(Job.state == "running", running != 1)).all()
    return [tuple(r) for r in rows]


def jobs_succeeded_twice(s: Session) -> list[tuple]:
    """(job, kind, succeeded attempts) where more than one attempt succeeded: work done twice."""
    count = func.count()
    rows = s.execute(select(Job.id, Job.kind, count).join(JobAttempt, JobAttempt.job_id == Job.id)
                     .where(JobAttempt.outcome == "succeeded").group_by(Job.id, Job.kind).having(count > 1)).all()
    return [tuple(r) for r in rows]


def instances_running_two_jobs(s: Session) -> list[tuple]:
    """(instance, running jobs) where more than one job of one instance runs at once."""
    count = func.count()
    rows = s.execute(select(Job.instance_id, count).where(Job.state == "running", Job.instance_id.is_not(None))
                     .group_by(Job.instance_id).having(count > 1)).all()
    return [tuple(r) for r in rows]


def stuck_jobs(s: Session, before: datetime) -> list[tuple]:
    """(job, kind, state, since): running with a lease that expired before `before`, or queued
    and due since before `before`: no worker is moving them."""
    rows = s.execute(select(Job.id, Job.kind, Job.state, Job.lease_expires_at, Job.run_after).where(or_(
        and_(Job.state == "running", Job.lease_expires_at < before),
        and_(Job.state == "queued", Job.run_after < before)))).all()
    return [(j, kind, state, lease if state == "running" else due) for j, kind, state, lease, due in rows]


def instances_stuck_in_transition(s: Session) -> list[tuple]:
    """(instance, status): a transitional status with no job queued or running to end it."""
    unfinished = select(Job.id).where(Job.instance_id == Instance.id, Job.state.in_(("queued", "running")))
    rows = s.execute(select(Instance.id, Instance.status)
                     .where(Instance.status.in_(TRANSITIONAL), ~unfinished.exists())).all()
    return [tuple(r) for r in rows]


def hosts_to_visit(s: Session) -> list[Host]:
    """Hosts expected to answer (not down, not in maintenance)."""
    return list(s.scalars(select(Host).where(Host.status.in_(("active", "draining"))).order_by(Host.name)))


def instances_by_host(s: Session) -> dict[int, dict[int, tuple[str, bool]]]:
    """host id -> {instance id: (status, has unfinished work)}."""
    busy = aliased(Job)
    unfinished = select(busy.id).where(busy.instance_id == Instance.id, busy.state.in_(("queued", "running")))
    out: dict[int, dict[int, tuple[str, bool]]] = {}
    for instance_id, host_id, status, working in s.execute(
            select(Instance.id, Instance.host_id, Instance.status, unfinished.exists())
            .where(Instance.host_id.is_not(None))).all():
        if host_id is not None:
            out.setdefault(host_id, {})[instance_id] = (status, bool(working))
    return out


def instance_hosts(s: Session) -> dict[int, int | None]:
    return {i: h for i, h in s.execute(select(Instance.id, Instance.host_id)).all()}


def counts(s: Session) -> dict[str, int]:
    return {name: s.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in (("instances", Instance), ("gpu claims", GpuClaim), ("cpu claims", CpuClaim),
                                ("jobs", Job), ("hosts", Host))}
