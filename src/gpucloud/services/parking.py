"""Parked instances: an offline instance whose claims (GPUs, cores, memory) were given back
while it keeps its host, its disk and its plan, so the GPUs can be sold meanwhile (a GPU
trial's end). Booting it takes claims on its host again (`unpark`, in the boot job) or
fails with "No capacity" when that host has no room now."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gpucloud.catalog import load_catalog
from gpucloud.config import Settings
from gpucloud.domain import lifecycle
from gpucloud.domain.placement import NoRoom, PlacementRequest
from gpucloud.services import gating, placing
from gpucloud.store.claims import holds_claims
from gpucloud.store.db import Database
from gpucloud.store.tables import Instance


def park(s: Session, instance: Instance) -> bool:
    """Give back an offline instance's claims, in the caller's transaction; False when it is
    not offline or holds nothing already."""
    if instance.status != lifecycle.OFFLINE or not holds_claims(s, instance.id):
        return False
    placing.release(s, instance.id)  # takes the region's placement lock and bumps the host
    instance.status_reason = "Parked: its GPUs were released; booting takes them again on its host."
    return True


def unpark(db: Database, settings: Settings, instance_id: int) -> None:
    """Before a boot: a parked instance claims again on its own host (its disk is there)."""
    for _ in range(max(settings.claim_retries, 1)):
        try:
            with db.write() as s:
                instance = s.get(Instance, instance_id)
                if instance is None or instance.host_id is None or holds_claims(s, instance_id):
                    return
                plan = load_catalog().plan(instance.type_id)
                if plan is None:
                    raise RuntimeError(f"instance {instance_id} has the unknown plan {instance.type_id!r}")
                request = PlacementRequest.for_plan(plan, instance.region_id, instance.host_id, ())
                placing.lock_region(s, instance.region_id)
                decision = placing.place_new(s, settings, request)
                if isinstance(decision, NoRoom):
                    raise placing.no_capacity(s, settings, request, decision)
                account = gating.account_in(s, instance.account_id)
                placing.claim(s, settings, instance.region_id, instance_id, decision, staff=account.is_staff)
                instance.status_reason = ""
                return
        except placing.LostRace:
            continue
    raise placing.LostRaces("placement kept losing races; will try again")
