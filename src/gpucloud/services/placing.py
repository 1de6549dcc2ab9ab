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

from gpucloud.catalog import load_catalog
from gpucloud.config import Settings
from gpucloud.domain.capacity import explain_refusal
from gpucloud.domain.catalog import GPU_CAPABILITY, Plan
from gpucloud.domain.placement import NoRoom, Placement, PlacementConfig, PlacementRequest, place
from gpucloud.errors import GpucloudError
from gpucloud.services.placement_config import learn_demand
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


def no_capacity(s: Session, settings: Settings, request: PlacementRequest, refusal: NoRoom) -> GpucloudError:
    """What a customer (API create, resize) or an operator (admin and CLI boot) reads when no
    host takes the plan: the real cause, told from the region's GPU counts, which are the
    ones `gpucloud capacity` shows (`domain.capacity.explain_refusal`). A pinned request and
    a resize held on its libvirt host keep placement's own reason."""
    if refusal.reason != STAYS_ON_ITS_HOST:
        catalog = load_catalog()
        model = catalog.gpu_model(request.gpu_model) if request.gpu_model else None
        config = learn_demand(s, settings)
        refusal = explain_refusal(request, host_states.region_states(s, request.region, config),
                                  config, refusal, where=region_words(request.region),
                                  model_name=model_words(model.name) if model else str(request.gpu_model))
    return GpucloudError(f"{NO_CAPACITY_PREFIX}: {refusal.reason}", field="type")


def region_words(region_id: str) -> str:
    """'ap-west (Mumbai, IN)': a region as people read it."""
    region = load_catalog().region(region_id)
    return f"{region_id} ({region.label})" if region else region_id


def model_words(name: str) -> str:
    """'NVIDIA H100 PCIe 80GB' -> 'H100 PCIe 80GB'."""
    return name.removeprefix("NVIDIA ")


def require_gpu_region(region_id: str) -> None:
    """GPU plans only where the catalog has GPUs; elsewhere the region itself is the answer
    (checked before feature flags, so no account is told 'not available to this account')."""
    region = load_catalog().region(region_id)
    if region is not None and GPU_CAPABILITY not in region.capabilities:
        raise GpucloudError(f"Region {region_words(region_id)} offers no GPU plans.", field="region")


def lock_region(s: Session, region: str) -> None:
    """One placement (or release) at a time in the region, until the transaction ends."""
    claim_store.serialize_placements(s, region)


def place_new(s: Session, settings: Settings, request: PlacementRequest) -> Placement | NoRoom:
    """Where a new instance goes (an operator's pin of host and GPUs included)."""
    return host_states.place(s, request, learn_demand(s, settings))


def place_resized(s: Session, settings: Settings, instance: Instance, plan: Plan) -> Placement | NoRoom:
    """Where the instance could live with `plan`, counting its own claims as free.

    Its own host first: a move costs the customer the copy of their disk. Another host only
    when its host's disk can move (not from a libvirt host yet); the refusal says so."""
    config = learn_demand(s, settings)
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
                                             learn_demand(s, settings), placement, generation, staff), once=True)


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
