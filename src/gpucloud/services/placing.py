"""Placing an instance and claiming what it takes: the one unit that create, the admin
interface's boot, the resize pre-check and the resize job all go through, so each applies
the same rules.

A placement is computed under the region's placement lock (`lock_region`, held until the
caller's transaction ends) from placement's view of the region's hosts, then claimed in the
same transaction: the host's generation is compared and swapped, and the claim rows are
written, where the unique keys of GPUs and threads have the last word. A claim that finds
the host changed since it was read raises `LostRace`; the caller redoes the whole attempt.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gpucloud.config import Settings
from gpucloud.domain.catalog import Plan
from gpucloud.domain.placement import NoRoom, Placement, PlacementRequest, place
from gpucloud.errors import GpucloudError
from gpucloud.services.placement_config import placement_config
from gpucloud.store import claims as claim_store
from gpucloud.store.tables import Host, Instance

NO_CAPACITY_PREFIX = "No capacity"
STAYS_ON_ITS_HOST = ("Its host has no room for the new plan, and a Linode on a libvirt host cannot move to "
                     "another host yet (its disk stays on that host).")


class LostRace(Exception):
    """Another claim changed the chosen host between reading it and claiming on it."""


class LostRaces(GpucloudError):
    """Placement lost its race `claim_retries` times in a row; trying again later can help."""

    retryable = True


def no_capacity(refusal: NoRoom) -> GpucloudError:
    """What a customer reads when no host takes the plan."""
    return GpucloudError(f"{NO_CAPACITY_PREFIX}: {refusal.reason}", field="type")


def lock_region(s: Session, region: str) -> None:
    """One placement (or release) at a time in the region, until the transaction ends."""
    claim_store.serialize_placements(s, region)


def place_new(s: Session, settings: Settings, request: PlacementRequest) -> Placement | NoRoom:
    """Where a new instance goes (an operator's pin of host and GPUs included)."""
    states = claim_store.load_host_states(s, settings, region=request.region, gpu_model=request.gpu_model)
    return place(request, states, placement_config(settings))


def place_resized(s: Session, settings: Settings, instance: Instance, plan: Plan) -> Placement | NoRoom:
    """Where the instance could live with `plan`, counting its own claims as free.

    Its own host first: a move costs the customer the copy of their disk. Another host only
    when its host's disk can move (not from a libvirt host yet); the refusal says so."""
    states = claim_store.load_host_states(s, settings, region=instance.region_id,
                                          gpu_model=plan.gpu_model if plan.is_gpu else None,
                                          ignore_instance=instance.id)
    config = placement_config(settings)
    if instance.host_id is None:
        return place(PlacementRequest.for_plan(plan, instance.region_id), states, config)
    if all(h.id != instance.host_id for h in states):  # it may hold no GPU of the new plan's model
        states += claim_store.load_host_states(s, settings, host_ids=[instance.host_id],
                                               ignore_instance=instance.id)
    here = place(PlacementRequest.for_plan(plan, instance.region_id, instance.host_id), states, config)
    if isinstance(here, Placement):
        return here
    host = s.get(Host, instance.host_id)
    if host is not None and host.driver == "libvirt":
        return NoRoom(here.code, STAYS_ON_ITS_HOST)
    return place(PlacementRequest.for_plan(plan, instance.region_id), states, config)


def claim(s: Session, instance_id: int, placement: Placement) -> None:
    """Take what the placement names for the instance, or raise `LostRace`."""
    if not claim_store.bump_generation(s, placement.host_id, placement.generation):
        raise LostRace()
    claim_store.write_claims(s, instance_id, placement)


def reclaim(s: Session, instance: Instance, placement: Placement) -> None:
    """Swap everything the instance holds for what the placement names (a resize)."""
    if not claim_store.bump_generation(s, placement.host_id, placement.generation):
        raise LostRace()
    claim_store.release_claims(s, instance.id)
    claim_store.write_claims(s, instance.id, placement)
    instance.host_id = placement.host_id


def release(s: Session, instance_id: int) -> None:
    """Give back everything the instance holds (its guest is gone from its host)."""
    claim_store.release_claims(s, instance_id)
