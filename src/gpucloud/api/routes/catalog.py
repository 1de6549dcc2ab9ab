"""What we sell and where: types, regions and images. Public: no token needed (clients send
one anyway, and a valid one may reveal GPU plans its account is allowed to see)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from gpucloud.api import errors, schemas, views
from gpucloud.api.auth import identity, maybe_identity
from gpucloud.api.filters import Filterable
from gpucloud.api.gating import gpu_access
from gpucloud.api.listing import ListRequest, envelope, list_request, respond
from gpucloud.api.routing import LinodeRoute
from gpucloud.services import capacity
from gpucloud.services.tokens import Identity

router = APIRouter(route_class=LinodeRoute)

TYPE_FIELDS = Filterable.of("id", "accelerated_devices", "class", "disk", "gpus", "label", "memory",
                            "network_out", "transfer", "vcpus")
REGION_FIELDS = Filterable.of("id", "country", "site_type", "label", "status", "capabilities")
AVAILABILITY_FIELDS = Filterable.of("region", "plan", "available")
IMAGE_FIELDS = Filterable.of("id", "label", "vendor", "deprecated", "is_public", "size", "status", "type",
                             "created", "eol")


@router.get("/linode/types", tags=["linode"], summary="List types")
def list_types(request: Request, who: Identity | None = Depends(maybe_identity),
               req: ListRequest = Depends(list_request)) -> dict:
    access = gpu_access(request, who)
    plans = [views.plan(p) for p in request.app.state.catalog.plans if access.sees_plan(p.is_gpu)]
    return respond(plans, req, TYPE_FIELDS)


@router.get("/linode/types/{type_id}", tags=["linode"], summary="View a type")
def get_type(type_id: str, request: Request, who: Identity | None = Depends(maybe_identity)) -> dict:
    plan = request.app.state.catalog.plan(type_id)
    if plan is None or not gpu_access(request, who).sees_plan(plan.is_gpu):
        raise errors.not_found()
    return views.plan(plan)


@router.get("/regions", tags=["regions"], summary="List regions")
def list_regions(request: Request, who: Identity | None = Depends(maybe_identity),
                 req: ListRequest = Depends(list_request)) -> dict:
    gpu_regions = gpu_access(request, who).regions
    regions = [views.region(r, show_gpus=r.id in gpu_regions) for r in request.app.state.catalog.regions]
    return respond(regions, req, REGION_FIELDS)


@router.get("/regions/availability", tags=["regions"], summary="List plan availability in every region",
            response_model=schemas.AvailabilityPage,
            description="`available` is true exactly when one more instance of the plan can be created in the "
                        "region now. GPU plans are listed for accounts that may see them.")
def list_availability(request: Request, who: Identity | None = Depends(maybe_identity),
                      req: ListRequest = Depends(list_request)) -> dict:
    query = req.query(AVAILABILITY_FIELDS)  # a bad filter fails before any capacity work
    return envelope(query.apply(_availability(request, who, None)), req)


@router.get("/regions/{region_id}/availability", tags=["regions"], summary="List plan availability in a region",
            response_model=list[schemas.Availability])
def region_availability(region_id: str, request: Request, who: Identity | None = Depends(maybe_identity)) -> list:
    if request.app.state.catalog.region(region_id) is None:
        raise errors.not_found()
    return _availability(request, who, region_id)


def _availability(request: Request, who: Identity | None, region: str | None) -> list[dict]:
    """A GPU plan in a region the account's flags keep it out of is not available to it."""
    access = gpu_access(request, who)
    plans = {p.id: p for p in request.app.state.catalog.plans if access.sees_plan(p.is_gpu)}
    found = capacity.available(request.app.state.db, request.app.state.settings, plans.values(), region)
    return [{"region": r, "plan": p, "available": sellable and (r in access.regions or not plans[p].is_gpu)}
            for (r, p), sellable in found.items()]


@router.get("/regions/{region_id}", tags=["regions"], summary="View a region")
def get_region(region_id: str, request: Request, who: Identity | None = Depends(maybe_identity)) -> dict:
    region = request.app.state.catalog.region(region_id)
    if region is None:
        raise errors.not_found()
    return views.region(region, show_gpus=region.id in gpu_access(request, who).regions)


@router.get("/images", tags=["images"], summary="List images")
def list_images(request: Request, _who: Identity | None = Depends(maybe_identity),
                req: ListRequest = Depends(list_request)) -> dict:
    return respond([views.image(i) for i in request.app.state.catalog.images], req, IMAGE_FIELDS)


@router.get("/images/{vendor}/{name}", tags=["images"], summary="View an image",
            description="Image ids contain a slash (`linode/debian12`); clients send it unencoded.")
def get_image(vendor: str, name: str, request: Request, _who: Identity | None = Depends(maybe_identity)) -> dict:
    image = request.app.state.catalog.image(f"{vendor}/{name}")
    if image is None:
        raise errors.not_found()
    return views.image(image)


@router.delete("/images/{vendor}/{name}", tags=["images"], summary="Delete an image",
               description="Public images belong to the platform: deleting one is refused (403).")
def delete_image(vendor: str, name: str, request: Request, _who: Identity = Depends(identity)) -> dict:
    if request.app.state.catalog.image(f"{vendor}/{name}") is None:
        raise errors.not_found()
    raise errors.unauthorized()
