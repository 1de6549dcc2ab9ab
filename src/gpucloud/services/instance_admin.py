"""Instances as operators see them: found by id, label, host or GPU; what each holds, the
jobs and events of its life, its domain XML; and the admin interface's one-click boot."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from gpucloud.catalog import load_catalog
from gpucloud.config import Settings
from gpucloud.errors import NotFound
from gpucloud.services import accounts, guests, password_links
from gpucloud.services.gating import flags_for
from gpucloud.services.instances import NewInstance, create_instance
from gpucloud.services.job_board import attempt_view, job_view
from gpucloud.store import accounts as account_q
from gpucloud.store import audit, events
from gpucloud.store import instance_search as q
from gpucloud.store import job_listing as jobs_q
from gpucloud.store.db import Database
from gpucloud.store.instances import claims_of
from gpucloud.store.tables import Account


def search(db: Database, query: str = "", limit: int = 100, *, region: str | None = None,
           gpu_model: str | None = None, status: str | None = None, account: str | int | None = None) -> list[dict]:
    """Instances by id, label, host or GPU address (see `store.instance_search`), narrowed by
    region, GPU model (the plans of that model), status and account (id or e-mail); an
    account that does not exist matches nothing."""
    plans = [p.id for p in load_catalog().gpu_plans(gpu_model)] if gpu_model else None
    with db.read() as s:
        account_id = None
        if account not in (None, ""):
            found = account_q.account_by_ref(s, account)
            if found is None:
                return []
            account_id = found.id
        rows = q.search_instances(s, query, limit, region=region or None, status=status or None,
                                  account_id=account_id, type_ids=plans)
        return [_summary(i, a.email, a.is_staff, host) for i, a, host in rows]


def of_account(db: Database, account_id: int) -> list[dict]:
    """An account's instances with their host, GPUs (PCI addresses) and NUMA nodes."""
    with db.read() as s:
        out = []
        for instance, host in q.instances_of_account(s, account_id):
            held = claims_of(s, instance.id)
            out.append({**_summary(instance, "", False, host),
                        "gpus": [g.pci_address for g in held["gpus"]],
                        "numa_nodes": sorted({m["node"] for m in held["memory"]})})
        return out


def detail(db: Database, instance_id: int) -> dict:
    """Everything on the instance page: summary, claims by node, jobs with attempts, events."""
    with db.read() as s:
        found = q.instance_with_owner(s, instance_id)
        if found is None:
            raise NotFound(f"no instance {instance_id}")
        instance, account, host = found
        held = claims_of(s, instance.id)
        jobs = jobs_q.jobs_of_instance(s, instance.id)
        attempts = jobs_q.attempts_of_jobs(s, [j.id for j in jobs])
        feed = events.of_account(s, account.id, entity_id=instance.id, entity_type="linode")
        cpus_by_node: dict[int, list[int]] = {}
        for c in held["cpus"]:
            cpus_by_node.setdefault(c["node"], []).append(c["cpu"])
        return {
            **_summary(instance, account.email, account.is_staff, host.name if host else None),
            "account_id": account.id,
            "ipv4": instance.ipv4,
            "ipv6": instance.ipv6,
            "image": instance.image,
            "created_by": instance.created_by,
            "gpus": [{"address": g.pci_address, "model": g.gpu_model_id, "numa_node": g.numa_node,
                      "iommu_group": g.iommu_group, "status": g.status} for g in held["gpus"]],
            "memory": [{**m, "cpus": cpu_ranges(cpus_by_node.get(m["node"], [])),
                        "cpu_count": len(cpus_by_node.get(m["node"], []))} for m in held["memory"]],
            "jobs": [{**job_view(j), "attempts": [attempt_view(a) for a in attempts[j.id]]} for j in reversed(jobs)],
            "events": [{"id": e.id, "action": e.action, "status": e.status, "percent": e.percent_complete,
                        "message": e.shown_message, "username": e.username, "created": e.created_at,
                        "finished": e.finished_at} for e in feed],
        }


def domain_xml_or_none(db: Database, instance_id: int) -> str | None:
    """The libvirt XML of a placed instance; None when it is on no host."""
    try:
        return guests.domain_xml(db, instance_id)
    except NotFound:
        return None


def progress(db: Database, instance_id: int) -> dict:
    """Where an instance's newest job stands: status, the event's percent_complete, and
    whether there is anything left to watch (`done`)."""
    with db.read() as s:
        found = q.instance_with_owner(s, instance_id)
        if found is None:
            return {"id": instance_id, "status": "deleted", "percent": 100, "message": "", "done": True,
                    "error": ""}
        instance = found[0]
        jobs = jobs_q.jobs_of_instance(s, instance_id)
        job = jobs[-1] if jobs else None
        event = events.owned(s, instance.account_id, job.event_id) if job and job.event_id else None
    finished = job is None or job.state in ("succeeded", "failed", "cancelled")
    return {
        "id": instance_id,
        "label": instance.label,
        "status": instance.status,
        "percent": (
            event.percent_complete if event and event.percent_complete is not None else (job.progress if job else 100)
        ),
        "message": event.shown_message if event else "",
        "job_state": job.state if job else None,
        "error": job.last_error if job and job.state in ("failed", "cancelled") else "",
        "done": finished,
    }


@dataclass(frozen=True)
class Booted:
    instance_id: int
    label: str
    root_password: str | None  # shown once to the operator; only its hash is kept
    flags_bypassed: bool  # the account's flags alone would have refused this plan here
    password_link: str | None = None  # a path that shows the customer the password once (services.password_links)


def boot_for_account(db: Database, settings: Settings, account_ref: str | int, *, plan: str, region: str,
                     image: str | None, label: str | None, actor: str, ssh_users: tuple[str, ...] = ()) -> Booted:
    """Create (and so boot) an instance for an account exactly as the API does: same
    validation, placement, claims, job and event. Operators are not held back by feature
    flags (booting for a trial or a test before a rollout is what this is for); when a
    flag would have refused the account, the audit entry says so. `ssh_users`: the account's
    users whose SSH keys root gets (as the API's authorized_users). The root password comes
    with a link that shows it to the customer once."""
    info = accounts.get_account(db, account_ref)
    with db.read() as s:
        account = s.get(Account, info.id)
        allowed = flags_for(db).gpu_allowed(account, region)
    password = secrets.token_urlsafe(18) if image else None
    instance = create_instance(db, settings, info.id, info.username,
                               NewInstance(type=plan, region=region, image=image or None, root_pass=password,
                                           label=label or None, authorized_users=tuple(ssh_users)),
                               bypass_flags=True, actor=actor)
    with db.write() as s:
        audit.record(s, actor=actor, action="instance.create", target_type="instance", target_id=instance.id,
                     after={"account_id": info.id, "type": plan, "region": region, "image": image,
                            "host_id": instance.host_id, "flags_bypassed": not allowed,
                            "ssh_users": list(ssh_users)},
                     why="booted from the admin interface")
    link = password_links.PATH + password_links.create_link(db, instance.id, password, actor=actor) \
        if password else None
    return Booted(instance.id, instance.label, password, not allowed, link)


def cpu_ranges(cpus: list[int]) -> str:
    """[4, 5, 6, 7, 52, 53] -> '4-7, 52-53': how CPU lists are written in Linux."""
    out: list[str] = []
    for cpu in sorted(cpus):
        if out and cpu == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{cpu}"
        else:
            out.append(str(cpu))
    return ", ".join(out)


def _summary(instance, email: str, staff: bool, host: str | None) -> dict:
    plan = load_catalog().plan(instance.type_id)
    return {"id": instance.id, "label": instance.label, "status": instance.status,
            "gpu_model": plan.gpu_model if plan else None, "gpu_count": plan.gpus if plan else 0,
            "status_reason": instance.status_reason, "type": instance.type_id, "region": instance.region_id,
            "host_id": instance.host_id, "host": host, "account_id": instance.account_id, "account": email,
            "staff": staff, "created": instance.created_at}
