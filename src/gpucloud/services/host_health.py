"""Host health: a host that misses `host_down_after_missed` checks in a row is marked down
(no new placements; its instances show `offline` with the reason), and returns to active
when it answers again. The checks come a shard of hosts at a time (`jobs.host_jobs`), and
so do their results. An operator may declare a down host lost, which frees its claims."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from gpucloud.clock import utcnow
from gpucloud.domain import lifecycle
from gpucloud.errors import Conflict, NotFound
from gpucloud.store import audit, events, fleet
from gpucloud.store import claims as claim_store
from gpucloud.store.db import Database
from gpucloud.store.fleet import host_by_ref
from gpucloud.store.instances import has_unfinished_job, on_host
from gpucloud.store.tables import Host

HOST_UNREACHABLE = "host unreachable"
HOST_LOST = "host lost"


def record_checks(db: Database, answered: list[int], missed: dict[int, str], down_after: int,
                  now: datetime | None = None) -> tuple[list[int], list[int]]:
    """One sweep's checks, in one transaction: the hosts in `answered` were seen (a down one
    is back: active again); each host in `missed` (id: the reason) missed one more check (at
    `down_after` in a row it is marked down). Only a change of status writes more than the
    two counting statements. Returns (hosts marked down, hosts back up); the caller
    reconciles those back."""
    now = now or utcnow()
    with db.write() as s:
        fleet.mark_seen(s, answered, now)
        back = fleet.hosts_among(s, answered, down=True)
        for host in back:
            _mark_up(s, host)
        fleet.count_missed(s, list(missed))
        lost = fleet.hosts_among(s, list(missed), down=False, missed_at_least=down_after)
        for host in lost:
            _mark_down(s, host, missed[host.id])
        return [h.id for h in lost], [h.id for h in back]


def _mark_up(s: Session, host: Host) -> None:
    host.status, host.status_reason = "active", ""
    claim_store.bump_hosts(s, [host.id])
    events.create(s, action="host_up", account_id=None, entity_type="host", entity_id=host.id,
                  entity_label=host.name, message=f"host {host.name} answers again")
    audit.record(s, actor="health-check", action="host.status", target_type="host", target_id=host.id,
                 before={"status": "down"}, after={"status": "active"}, why="answered a health check")


def _mark_down(s: Session, host: Host, reason: str) -> None:
    before = host.status
    host.status = "down"
    host.status_reason = f"missed {host.missed_checks} health checks: {reason}"
    claim_store.bump_hosts(s, [host.id])
    for instance in on_host(s, host.id):
        if instance.status in (lifecycle.RUNNING, lifecycle.OFFLINE) and not has_unfinished_job(s, instance.id):
            instance.status, instance.status_reason = lifecycle.OFFLINE, HOST_UNREACHABLE
    events.create(s, action="host_down", account_id=None, entity_type="host", entity_id=host.id,
                  entity_label=host.name, message=host.status_reason)
    audit.record(s, actor="health-check", action="host.status", target_type="host", target_id=host.id,
                 before={"status": before}, after={"status": "down"}, why=host.status_reason)


def declare_lost(db: Database, host_ref: str | int, *, why: str, actor: str) -> int:
    """An operator's word that a down host's guests are gone for good (dead machine, wiped
    disks): instances being deleted are removed, the others are left `failed`, and every
    claim on the host is freed. Returns how many instances were affected."""
    with db.write() as s:
        host = host_by_ref(s, host_ref)
        if host is None:
            raise NotFound(f"no host {host_ref}")
        if host.status != "down":
            raise Conflict(f"host {host.name} is {host.status}; only a down host can be declared lost")
        instances = on_host(s, host.id)
        for instance in instances:
            claim_store.release_claims(s, instance.id)
            if instance.status == lifecycle.DELETING:
                s.delete(instance)
            else:
                instance.status, instance.status_reason, instance.host_id = lifecycle.FAILED, HOST_LOST, None
        host.status_reason = f"lost: {why}"
        claim_store.bump_hosts(s, [host.id])
        audit.record(s, actor=actor, action="host.lost", target_type="host", target_id=host.id,
                     after={"instances": [i.id for i in instances]}, why=why)
        return len(instances)
