"""Host health: a host that misses `host_down_after_missed` checks in a row is marked down
(no new placements; its instances show `offline` with the reason), and returns to active
when it answers again. An operator may declare a down host lost, which frees its claims."""

from __future__ import annotations

from gpucloud.clock import utcnow
from gpucloud.domain import lifecycle
from gpucloud.errors import Conflict, NotFound
from gpucloud.store import audit, events
from gpucloud.store import claims as claim_store
from gpucloud.store.db import Database
from gpucloud.store.fleet import host_by_ref
from gpucloud.store.instances import has_unfinished_job, on_host
from gpucloud.store.tables import Host

HOST_UNREACHABLE = "host unreachable"
HOST_LOST = "host lost"


def record_seen(db: Database, host_id: int) -> bool:
    """The host answered. True when it was down and is now back (the caller reconciles it)."""
    with db.write() as s:
        host = s.get(Host, host_id)
        if host is None:
            return False
        host.last_seen_at, host.missed_checks = utcnow(), 0
        if host.status != "down":
            return False
        host.status, host.status_reason = "active", ""
        claim_store.bump_hosts(s, [host.id])
        events.create(s, action="host_up", account_id=None, entity_type="host", entity_id=host.id,
                      entity_label=host.name, message=f"host {host.name} answers again")
        audit.record(s, actor="health-check", action="host.status", target_type="host", target_id=host.id,
                     before={"status": "down"}, after={"status": "active"}, why="answered a health check")
        return True


def record_missed(db: Database, host_id: int, reason: str, down_after: int) -> bool:
    """The host did not answer. True when this miss marked it down."""
    with db.write() as s:
        host = s.get(Host, host_id)
        if host is None:
            return False
        host.missed_checks += 1
        if host.status == "down" or host.missed_checks < down_after:
            return False
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
        return True


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
