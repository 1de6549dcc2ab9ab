"""Placing an instance and claiming what it takes: the one unit that create, the admin
interface's boot, the resize pre-check and the resize job all go through, so each applies
the same rules.

A placement is computed under the region's placement lock (`lock_region`, held until the
caller's transaction ends) from this process's view of the region (`store.host_states`: one
`Fleet` per database and region, brought up to date by one indexed query), then claimed in
the same transaction: the host's generation is compared and swapped, and the claim rows are
written, where the unique keys of GPUs and threads have the last word. Once the transaction
commits, the view applies the placement itself instead of reading the host again. A claim
that finds the host changed since it was read raises `LostRace` (and the view starts over);
the caller redoes the whole attempt.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import event
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from gpucloud.config import Settings
from gpucloud.domain.catalog import Plan
from gpucloud.domain.placement import NoRoom, Placement, PlacementConfig, PlacementRequest, place
from gpucloud.errors import GpucloudError
from gpucloud.services.placement_config import placement_config
from gpucloud.store import claims as claim_store
from gpucloud.store import host_states
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
    return host_states.place(s, request, placement_config(settings))


def place_resized(s: Session, settings: Settings, instance: Instance, plan: Plan) -> Placement | NoRoom:
    """Where the instance could live with `plan`, counting its own claims as free.

    Its own host first: a move costs the customer the copy of their disk. Another host only
    when its host's disk can move (not from a libvirt host yet); the refusal says so."""
    config = placement_config(settings)
    anywhere = PlacementRequest.for_plan(plan, instance.region_id)
    if instance.host_id is None:
        return host_states.place(s, anywhere, config)
    here = place(PlacementRequest.for_plan(plan, instance.region_id, instance.host_id),
                 host_states.build_states(s, [instance.host_id], ignore_instance=instance.id), config)
    if isinstance(here, Placement):
        return here
    host = s.get(Host, instance.host_id)
    if host is not None and host.driver == "libvirt":
        return NoRoom(here.code, STAYS_ON_ITS_HOST)
    return host_states.place(s, anywhere, config)  # its own host, its claims counted, was just refused


def claim(s: Session, settings: Settings, region: str, instance_id: int, placement: Placement, *,
          staff: bool) -> None:
    """Take what the placement names for the instance, or raise `LostRace`. `staff`: the
    instance's account is staff's (capacity counts their GPUs apart)."""
    generation = _take_host(s, region, placement)
    claim_store.write_claims(s, instance_id, placement, host_states.host_rows(s, placement.host_id))
    event.listen(s, "after_commit", partial(_committed, host_states.pool_of(s), region,
                                             placement_config(settings), placement, generation, staff), once=True)


def reclaim(s: Session, instance: Instance, placement: Placement) -> None:
    """Swap everything the instance holds for what the placement names (a resize); the view
    reads both hosts again on its next decision."""
    _take_host(s, instance.region_id, placement)
    claim_store.release_claims(s, instance.id)
    claim_store.write_claims(s, instance.id, placement, host_states.host_rows(s, placement.host_id))
    instance.host_id = placement.host_id


def release(s: Session, instance_id: int) -> None:
    """Give back everything the instance holds (its guest is gone from its host)."""
    claim_store.release_claims(s, instance_id)


def _take_host(s: Session, region: str, placement: Placement) -> int:
    generation = claim_store.claim_host(s, placement.host_id, region, placement.generation)
    if generation is None:
        host_states.forget(host_states.pool_of(s), region)
        raise LostRace()
    return generation


def _committed(pool: Pool, region: str, config: PlacementConfig, placement: Placement, generation: int,
               staff: bool, _session: Session) -> None:
    host_states.claimed(pool, region, config, placement, generation, staff)
