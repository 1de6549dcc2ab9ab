"""What must always hold, checked against the database and the hosts (`gpucloud check`).

- Claims: every GPU, CPU thread and NUMA memory claim sits on its instance's host and on
  a resource of that host; each instance with a host holds exactly what its plan needs (no
  leaked and no doubled claims); no NUMA node is promised more memory than it has for
  guests; no reserved CPU is pinned to a guest; a host holding claims has a generation
  above 0 (every claim bumps it).
- Jobs: an attempt is `running` only while its job is, and a running job has exactly one;
  no job succeeded twice; one job at a time per instance; no job is stuck (a running job
  whose lease expired, or a queued one overdue, for longer than `stuck_after`).
- Instances: none sits in a transitional status (provisioning, booting, ...) without a
  job to end it.
- Hosts (when given a way to list their domains): every `gpucloud-N` domain belongs to
  instance N on that host; every running or offline instance has its domain, in the
  matching state. Instances with work in flight are left out (their job decides).

A violation is one line of text. Nothing is changed: this only looks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.domain import lifecycle
from gpucloud.domain.catalog import Plan
from gpucloud.domain.guest import domain_name, instance_id_from_domain
from gpucloud.store import invariants as q
from gpucloud.store.db import Database
from gpucloud.store.tables import Host

# host -> [(domain name, state)], or None when the host did not answer
DomainLister = Callable[[Host], list[tuple[str, str]] | None]


@dataclass(frozen=True)
class Violation:
    rule: str
    text: str

    def line(self) -> str:
        return f"{self.rule}: {self.text}"


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    hosts_visited: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, rule: str, text: str) -> None:
        self.violations.append(Violation(rule, text))


def check(db: Database, *, stuck_after: timedelta = timedelta(minutes=5),
          list_domains: DomainLister | None = None) -> Report:
    report = Report()
    with db.read() as s:
        report.counts = q.counts(s)
        _claims(s, report)
        _jobs(s, report, stuck_after)
        for instance_id, status in q.instances_stuck_in_transition(s):
            report.add("instance-stuck", f"instance {instance_id} is {status} with no job queued or running")
        hosts = q.hosts_to_visit(s) if list_domains is not None else []
        by_host = q.instances_by_host(s) if hosts else {}
        where = q.instance_hosts(s) if hosts else {}
    if list_domains is not None:
        for host in hosts:
            _domains(host, list_domains(host), by_host.get(host.id, {}), where, report)
            report.hosts_visited += 1
    return report


def _claims(s, report: Report) -> None:
    for kind, instance_id, claim_host, instance_host, resource_host in q.claims_off_their_host(s):
        report.add("claim-off-host", f"{kind} claim of instance {instance_id} names host {claim_host}; the instance "
                                     f"is on {instance_host}, the {kind} on {resource_host}")
    catalog = load_catalog()
    for instance_id, (type_id, status, host_id, gpus, cpus, mib, shared) in sorted(q.claim_counts(s).items()):
        plan = catalog.plan(type_id)
        held = (gpus, cpus, mib, shared)
        wanted = _needs(plan) if host_id is not None else (0, 0, 0, 0)
        if plan is None:
            report.add("unknown-plan", f"instance {instance_id} has the unknown plan {type_id}")
        elif held != wanted and not (status == lifecycle.OFFLINE and held == (0, 0, 0, 0)):  # parked (off, released)
            report.add("claims-not-plan", f"instance {instance_id} ({type_id}, {status}, host {host_id}) holds "
                                          f"{_describe(held)}; it should hold {_describe(wanted)}")
    for host, node, claimed, has in q.overfull_nodes(s):
        report.add("node-overcommitted", f"{host} NUMA node {node}: {claimed} MiB claimed, {has} MiB for guests")
    for host, cpu, instance_id in q.reserved_cpus_claimed(s):
        report.add("reserved-cpu-claimed", f"{host} CPU {cpu} is reserved for the host but pinned to instance "
                                           f"{instance_id}")
    for host, generation in q.ungenerated_hosts(s):
        report.add("generation", f"{host} holds claims at generation {generation}: a claim did not bump it")


def _needs(plan: Plan | None) -> tuple[int, int, int, int]:
    if plan is None:
        return (0, 0, 0, 0)
    pinned = plan.vcpus if plan.dedicated_cpus else 0
    return (plan.gpus, pinned, plan.memory_mib, plan.vcpus - pinned)


def _describe(held: tuple[int, int, int, int]) -> str:
    gpus, cpus, mib, shared = held
    return f"{gpus} GPUs, {cpus} pinned CPUs, {mib} MiB, {shared} shared vCPUs"


def _jobs(s, report: Report, stuck_after: timedelta) -> None:
    for attempt, job, state, worker in q.running_attempts_of_settled_jobs(s):
        report.add("attempt-running", f"attempt {attempt} of job {job} ({worker}) is running but the job is {state}")
    for job, kind, running in q.running_jobs_without_one_attempt(s):
        report.add("job-attempts", f"running job {job} ({kind}) has {running} running attempts, not 1")
    for job, kind, succeeded in q.jobs_succeeded_twice(s):
        report.add("job-ran-twice", f"job {job} ({kind}) succeeded {succeeded} times")
    for instance_id, running in q.instances_running_two_jobs(s):
        report.add("instance-jobs", f"instance {instance_id} has {running} jobs running at once")
    for job, kind, state, since in q.stuck_jobs(s, utcnow() - stuck_after):
        what = "lease expired" if state == "running" else "due"
        report.add("job-stuck", f"job {job} ({kind}) is {state}, {what} since {since:%Y-%m-%dT%H:%M:%S}")


def _domains(host: Host, domains: list[tuple[str, str]] | None, mine: dict[int, tuple[str, bool]],
             where: dict[int, int | None], report: Report) -> None:
    if domains is None:
        report.add("host-unreachable", f"{host.name} ({host.status}) did not list its domains")
        return
    states = dict(domains)
    for name in states:
        instance_id = instance_id_from_domain(name)
        if instance_id is None or instance_id in mine:
            continue
        elsewhere = where.get(instance_id)
        report.add("stray-domain", f"{name} is defined on {host.name} but instance {instance_id} "
                                   + ("does not exist" if instance_id not in where else f"is on host {elsewhere}"))
    for instance_id, (status, busy) in sorted(mine.items()):
        if busy or status not in ("running", "offline"):
            continue
        state = states.get(domain_name(instance_id))
        if state is None:
            report.add("missing-domain", f"instance {instance_id} is {status} on {host.name} but has no domain there")
        elif (status == "running") != (state == "running"):
            report.add("domain-state", f"instance {instance_id} is {status} but its domain on {host.name} is {state}")
