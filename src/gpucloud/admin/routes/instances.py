"""Instances: search, the instance page, and the live progress fragment."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from gpucloud.admin.rendering import page
from gpucloud.admin.session import PATH, Viewer, viewer
from gpucloud.admin.topology import picture
from gpucloud.catalog import load_catalog
from gpucloud.domain import lifecycle
from gpucloud.services import audit_trail, hosts, instance_admin
from gpucloud.services.host_memory import memory_by_instance

router = APIRouter()


@router.get("/instances")
def instance_list(request: Request, q: str = "", region: str = "", model: str = "", status: str = "",
                  account: str = "", _: Viewer = Depends(viewer)) -> Response:
    """Search (id, label, host, GPU address) narrowed by region (id or city), GPU model,
    status and account (id or e-mail)."""
    catalog = load_catalog()
    found_region = catalog.find_region(region) if region.strip() else None
    unknown = bool(region.strip()) and found_region is None
    found = [] if unknown else instance_admin.search(
        request.app.state.admin.db, q, region=found_region.id if found_region else None, gpu_model=model or None,
        status=status or None, account=account.strip() or None)
    return page(request, "instances.html", {
        "nav": "instances", "instances": found, "q": q, "region": region, "model": model, "status": status,
        "account": account, "unknown_region": unknown, "statuses": lifecycle.STATUSES,
        "regions": catalog.regions, "models": catalog.gpu_models,
        "filtered": any(v.strip() for v in (q, region, model, status, account)),
    })


@router.get("/instances/{instance_id}")
def instance_page(request: Request, instance_id: int, _: Viewer = Depends(viewer)) -> Response:
    db = request.app.state.admin.db
    detail = instance_admin.detail(db, instance_id)
    drawing = host = None
    if detail["host_id"] is not None:
        host = hosts.host_detail(db, detail["host_id"], request.app.state.admin.settings)
        drawing = picture(host, memory_by_instance(db, host["id"]), lambda iid: f"{PATH}/instances/{iid}",
                          focus=instance_id)
    return page(request, "instance.html", {
        "nav": "instances", "i": detail, "xml": instance_admin.domain_xml_or_none(db, instance_id),
        "picture": drawing, "host": host,
        "progress": instance_admin.progress(db, instance_id),
        "audit": audit_trail.of_target(db, "instance", instance_id),
    })


@router.get("/instances/{instance_id}/progress")
def progress(request: Request, instance_id: int, _: Viewer = Depends(viewer)) -> Response:
    """A fragment the page polls until `done`: status, the event's percent_complete."""
    p = instance_admin.progress(request.app.state.admin.db, instance_id)
    return page(request, "_progress.html", {"p": p})
