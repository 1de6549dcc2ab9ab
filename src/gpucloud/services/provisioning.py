"""What the instance jobs write: statuses along the state machine, a resize's new claims,
and the removal of a deleted instance. The job handlers (`jobs.instance_jobs`) drive the
hypervisor and call these in between, one short transaction each.

An instance being deleted belongs to its delete job: any other job that finds it so (a
create racing its delete, say) stops with `InstanceDeleted`, an expected outcome.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gpucloud.catalog import load_catalog
from gpucloud.config import Settings
from gpucloud.domain import lifecycle
from gpucloud.domain.guest import DomainSpec
from gpucloud.domain.placement import Placement
from gpucloud.services import guests, placing
from gpucloud.store import instances as instance_store
from gpucloud.store import usage
from gpucloud.store.db import Database
from gpucloud.store.instances import InstanceRow
from gpucloud.store.tables import Instance


class InstanceDeleted(Exception):
    """The job's instance is gone or being deleted; the delete job cleans up."""

    def __init__(self, instance_id: int):
        super().__init__(f"instance {instance_id} is being deleted")
        self.instance_id = instance_id


def instance(db: Database, instance_id: int) -> InstanceRow | None:
    with db.read() as s:
        return instance_store.row_of(s, instance_id)


def wanted(db: Database, instance_id: int) -> InstanceRow:
    """The instance, unless it is gone or being deleted (then `InstanceDeleted`)."""
    found = instance(db, instance_id)
    if found is None or found.status == lifecycle.DELETING:
        raise InstanceDeleted(instance_id)
    return found


def wanted_with_spec(db: Database, instance_id: int) -> tuple[InstanceRow, DomainSpec]:
    """`wanted`, and the domain its claims describe, in one read."""
    with db.read() as s:
        found = instance_store.row_of(s, instance_id)
        if found is None or found.status == lifecycle.DELETING:
            raise InstanceDeleted(instance_id)
        return found, guests.spec_in_session(s, found)


def enter(s: Session, instance_id: int, status: str, reason: str = "") -> None:
    """Move an instance along its state machine in the caller's transaction; already there is
    fine (a retried step). One conditional UPDATE; only a refusal reads the row to say why."""
    if instance_store.move_status(s, instance_id, lifecycle.ENTERED_FROM.get(status, (status,)), status, reason):
        return
    found = s.get(Instance, instance_id)
    if found is None or found.status == lifecycle.DELETING:
        raise InstanceDeleted(instance_id)
    lifecycle.check_transition(found.status, status)
    raise RuntimeError(f"instance {instance_id}: {found.status} -> {status} was allowed but not written")


def set_status(db: Database, instance_id: int, status: str, reason: str = "") -> None:
    """`enter`, in a transaction of its own."""
    with db.write() as s:
        enter(s, instance_id, status, reason)


def mark_failed(db: Database, instance_id: int, reason: str) -> None:
    """The job gave up: the customer sees `failed` and why, not a status stuck half-way."""
    with db.write() as s:
        found = s.get(Instance, instance_id)
        if found is not None and found.status != lifecycle.DELETING:
            found.status, found.status_reason = lifecycle.FAILED, reason


def resize_claims(db: Database, settings: Settings, instance_id: int, type_id: str) -> int | None:
    """Swap the instance's claims for ones that fit plan `type_id`, by the rules the API's
    pre-check applied (`placing.place_resized`). The new host id, or None (nothing changed)
    when no host has room. The one place an instance's plan changes."""
    plan = load_catalog().plan(type_id)
    if plan is None:
        raise RuntimeError(f"resize to unknown plan {type_id!r}")
    for _ in range(max(settings.claim_retries, 1)):
        try:
            with db.write() as s:
                current = s.get(Instance, instance_id)
                if current is None or current.status == lifecycle.DELETING:
                    raise InstanceDeleted(instance_id)
                placing.lock_region(s, current.region_id)
                decision = placing.place_resized(s, settings, current, plan)
                if not isinstance(decision, Placement):
                    return None
                placing.reclaim(s, current, decision)
                if current.type_id != plan.id:  # a retried job finds it done
                    current.type_id = plan.id
                    usage.plan_changed(s, current)
                return decision.host_id
        except placing.LostRace:
            continue
    raise placing.LostRaces("placement kept losing races; will try again")


def remove(s: Session, instance_id: int) -> None:
    """The host confirmed the guest gone: free its claims and forget the instance, in the
    caller's transaction. The one place an instance ends."""
    found = s.get(Instance, instance_id)
    if found is None:
        return
    placing.release(s, instance_id)
    usage.closed(s, instance_id)
    s.delete(found)


def remove_instance(db: Database, instance_id: int) -> None:
    """`remove`, in a transaction of its own."""
    with db.write() as s:
        remove(s, instance_id)
