"""GPU trials: the requests, and approving or declining them with a reason (audited)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from gpucloud.admin.actions import perform, refuse, required
from gpucloud.admin.rendering import page
from gpucloud.admin.session import Viewer, changer, viewer
from gpucloud.services import trials
from gpucloud.services.gating import flags_for

router = APIRouter()


@router.get("/trials")
def trials_page(request: Request, status: str = "", _: Viewer = Depends(viewer)) -> Response:
    admin = request.app.state.admin
    return page(request, "trials.html", {
        "nav": "trials", "rows": trials.listing(admin.db, status or None), "status": status,
        "days": admin.settings.trial_days, "auto": admin.settings.trial_auto_approve,
        "policy": admin.settings.trial_end_policy})


@router.post("/trials/{trial_id}/approve")
def approve(request: Request, trial_id: int, why: str = Form(""), who: Viewer = Depends(changer)) -> Response:
    if problem := required(why, "why you approve it"):
        return refuse(request, "/trials", problem)
    admin = request.app.state.admin

    def change() -> str:
        done = trials.approve(admin.db, admin.settings, trial_id, actor=who.actor, why=why)
        flags_for(admin.db).refresh()  # this process opens GPU plans to the account at once
        return f"GPU trial {done.id} approved until {done.ends_at:%Y-%m-%d %H:%M} UTC."

    return perform(request, "/trials", change)


@router.post("/trials/{trial_id}/decline")
def decline(request: Request, trial_id: int, why: str = Form(""), who: Viewer = Depends(changer)) -> Response:
    if problem := required(why, "why you decline it (the customer reads it)"):
        return refuse(request, "/trials", problem)

    def change() -> str:
        done = trials.decline(request.app.state.admin.db, trial_id, actor=who.actor, why=why)
        return f"GPU trial {done.id} declined."

    return perform(request, "/trials", change)
