"""Hosts: the list, a host's topology picture, and the audited status changes."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from gpucloud.admin.actions import perform, refuse, required
from gpucloud.admin.rendering import page
from gpucloud.admin.session import PATH, Viewer, changer, viewer
from gpucloud.admin.topology import picture
from gpucloud.catalog import load_catalog
from gpucloud.services import audit_trail, host_health
from gpucloud.services import hosts as service
from gpucloud.services.host_memory import memory_by_instance
from gpucloud.store.tables import HOST_STATUSES

router = APIRouter()

# what the buttons say -> the host status it sets
HOST_ACTIONS = {"drain": "draining", "maintenance": "maintenance", "activate": "active"}


@router.get("/hosts")
def host_list(request: Request, region: str = "", status: str = "", q: str = "",
              _: Viewer = Depends(viewer)) -> Response:
    db = request.app.state.admin.db
    every = service.list_hosts(db, region or None, request.app.state.admin.settings)
    shown = [h for h in every if (not status or h["status"] == status) and q.lower() in h["name"].lower()]
    return page(request, "hosts.html", {
        "nav": "hosts", "hosts": shown, "count": len(every), "region": region, "status": status, "q": q,
        "regions": [r.id for r in load_catalog().regions], "statuses": HOST_STATUSES,
        "gpus": sum(h["gpus"] for h in shown), "claimed": sum(h["gpus_claimed"] for h in shown),
        "free": sum(h["gpus_free"] for h in shown), "unavailable": sum(h["gpus_unavailable"] for h in shown),
    })


@router.get("/hosts/{ref}")
def host_page(request: Request, ref: str, _: Viewer = Depends(viewer)) -> Response:
    db = request.app.state.admin.db
    detail = service.host_detail(db, ref, request.app.state.admin.settings)
    drawing = picture(detail, memory_by_instance(db, detail["id"]), lambda iid: f"{PATH}/instances/{iid}")
    gpus = [g for n in detail["nodes"] for g in n["gpus"]] + detail["gpus_unknown_node"]
    cpus = [c for n in detail["nodes"] for c in n["cpus"]]
    return page(request, "host.html", {
        "nav": "hosts", "host": detail, "picture": drawing, "gpus": gpus,
        "cpu_count": len(cpus), "cpus_held": sum(1 for c in cpus if c["holder"]),
        "cpus_reserved": sum(1 for c in cpus if c["reserved"]),
        "memory_only": sum(1 for n in detail["nodes"] if n["memory_only"]),
        "audit": audit_trail.of_host(db, detail["id"], detail["name"]),
    })


def _back(ref: str) -> str:
    return f"/hosts/{quote(ref, safe='')}"


@router.post("/hosts/{ref}/status")
def host_status(request: Request, ref: str, action: str = Form(""), why: str = Form(""),
                who: Viewer = Depends(changer)) -> Response:
    if action not in HOST_ACTIONS:
        return refuse(request, _back(ref), f"Unknown action {action!r}: drain, maintenance or activate.")
    if problem := required(why, "why"):
        return refuse(request, _back(ref), problem)
    status = HOST_ACTIONS[action]

    def change() -> str:
        if service.set_host_status(request.app.state.admin.db, ref, status, why=why.strip(), actor=who.actor):
            return f"Host {ref} is now {status}."
        return f"Host {ref} is already {status}; nothing changed."

    return perform(request, _back(ref), change)


@router.post("/hosts/{ref}/gpu")
def gpu_status(request: Request, ref: str, address: str = Form(""), status: str = Form(""),
               why: str = Form(""), who: Viewer = Depends(changer)) -> Response:
    def change() -> str:
        service.set_gpu_status(request.app.state.admin.db, ref, address, status, why=why.strip(), actor=who.actor)
        return f"GPU {address} on {ref} is now {status}."

    return perform(request, _back(ref), change)


@router.post("/hosts/{ref}/lost")
def declare_lost(request: Request, ref: str, why: str = Form(""), confirm: str = Form(""),
                 who: Viewer = Depends(changer)) -> Response:
    if problem := required(why, "why the host is lost"):
        return refuse(request, _back(ref), problem)
    if confirm.strip() != ref:
        return refuse(request, _back(ref), f"Type the host's name ({ref}) to confirm: its guests are given up "
                                           "and their claims freed.")

    def change() -> str:
        n = host_health.declare_lost(request.app.state.admin.db, ref, why=why.strip(), actor=who.actor)
        return f"Host {ref} declared lost; {n} instance(s) released."

    return perform(request, _back(ref), change)
