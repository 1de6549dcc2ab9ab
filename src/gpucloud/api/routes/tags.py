"""Tags (`/tags`): the account's tags, the instances carrying one, creating one (optionally on
instances) and deleting one from everything it is on. Only instances can be tagged here."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from gpucloud.api import bodies, schemas, unoffered, views
from gpucloud.api.auth import scope
from gpucloud.api.filters import Filterable
from gpucloud.api.listing import ListRequest, list_request, respond
from gpucloud.api.routing import LinodeRoute
from gpucloud.services import tags
from gpucloud.services.tokens import Identity

router = APIRouter(tags=["tags"], route_class=LinodeRoute)

read = scope("account", "read_only")
write = scope("account", "read_write")

TAG_FIELDS = Filterable.of("label")
TAGGED_FIELDS = Filterable.of("type")


@router.get("/tags", summary="List tags", response_model=schemas.TagPage)
def list_tags(request: Request, who: Identity = Depends(read), req: ListRequest = Depends(list_request)) -> dict:
    return respond([{"label": t} for t in tags.list_tags(request.app.state.db, who.account_id)], req, TAG_FIELDS)


@router.post("/tags", summary="Create a tag", response_model=schemas.Tag,
             description="Creating a tag that exists is fine; `linodes` are tagged with it. Domains, "
                         "NodeBalancers, volumes and reserved addresses are not offered here (400).")
def create_tag(body: bodies.TagCreate, request: Request, who: Identity = Depends(write)) -> dict:
    unoffered.refuse(body, unoffered.TAG_FIELDS)
    label = tags.create_tag(request.app.state.db, who.account_id, body.label, list(body.linodes or ()))
    return {"label": label}


@router.get("/tags/{label}", summary="List the objects carrying a tag", response_model=schemas.TaggedObjectPage)
def tagged(label: str, request: Request, who: Identity = Depends(read),
           req: ListRequest = Depends(list_request)) -> dict:
    catalog = request.app.state.catalog
    found = tags.tagged_instances(request.app.state.db, who.account_id, label)
    items = [{"type": "linode", "data": views.instance(i, catalog.plan(i.type_id), catalog.region(i.region_id))}
             for i in found]
    return respond(items, req, TAGGED_FIELDS)


@router.delete("/tags/{label}", summary="Delete a tag", description="Removes it from every instance it is on.")
def delete_tag(label: str, request: Request, who: Identity = Depends(write)) -> dict:
    tags.delete_tag(request.app.state.db, who.account_id, label)
    return {}
