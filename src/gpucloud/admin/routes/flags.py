"""Feature flags: states, account overrides, and their audit trail."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from gpucloud.admin.actions import perform, refuse, required
from gpucloud.admin.rendering import page
from gpucloud.admin.session import Viewer, changer, viewer
from gpucloud.domain.flags import STATES
from gpucloud.services import flags as service
from gpucloud.services.flag_cache import DEFAULT_POLL_SECONDS
from gpucloud.services.gating import flags_for

router = APIRouter()


@router.get("/flags")
def flags_page(request: Request, _: Viewer = Depends(viewer)) -> Response:
    db = request.app.state.admin.db
    views = service.list_flags(db)
    rollouts = {f.key: service.rollout(db, f.key) for f in views if f.known and f.state == "percent"}
    return page(request, "flags.html", {"nav": "flags", "flags": views, "states": STATES,
                                        "history": service.history(db, limit=100), "rollouts": rollouts,
                                        "seen_within": f"{DEFAULT_POLL_SECONDS:g}"})


def _changed(request: Request, message: str) -> str:
    """Every process polls the flags version; this one need not wait for its next poll."""
    flags_for(request.app.state.admin.db).refresh()
    return message


@router.post("/flags/{key}/state")
def set_state(request: Request, key: str, state: str = Form(""), percent: str = Form(""), why: str = Form(""),
              who: Viewer = Depends(changer)) -> Response:
    if problem := required(why, "why the flag changes"):
        return refuse(request, "/flags", problem)
    number = None
    if state == "percent":
        if not percent.strip().isdigit():
            return refuse(request, "/flags", "A percentage is a whole number from 0 to 100.")
        number = int(percent)

    def change() -> str:
        done = service.set_state(request.app.state.admin.db, key, state, number, why=why, actor=who.actor)
        shown = f"percent {number}" if state == "percent" else state
        return _changed(request, f"{key} is now {shown}." if done.changed else f"{key} already was {shown}.")

    return perform(request, "/flags", change)


@router.post("/flags/{key}/overrides")
def add_override(request: Request, key: str, account: str = Form(""), effect: str = Form("allow"),
                 until: str = Form(""), why: str = Form(""), who: Viewer = Depends(changer)) -> Response:
    if not account.strip():
        return refuse(request, "/flags", "Name the account: its id or e-mail.")
    if effect not in ("allow", "deny"):
        return refuse(request, "/flags", "An override allows or denies.")
    if problem := required(why, "why"):
        return refuse(request, "/flags", problem)
    expires = None
    if until.strip():
        try:
            expires = datetime.fromisoformat(until.strip())
        except ValueError:
            return refuse(request, "/flags", f"Not a date and time: {until!r} (e.g. 2027-01-31T18:00, UTC).")
    set_override = service.allow if effect == "allow" else service.deny

    def change() -> str:
        set_override(request.app.state.admin.db, key, account.strip(), until=expires, why=why, actor=who.actor)
        return _changed(request, f"{key}: account {account.strip()} {'allowed' if effect == 'allow' else 'denied'}"
                                 + (f" until {expires:%Y-%m-%d %H:%M} UTC." if expires else "."))

    return perform(request, "/flags", change)


@router.post("/flags/{key}/overrides/{account_id}/clear")
def clear_override(request: Request, key: str, account_id: int, why: str = Form(""),
                   who: Viewer = Depends(changer)) -> Response:
    if problem := required(why, "why the override goes"):
        return refuse(request, "/flags", problem)

    def change() -> str:
        service.clear(request.app.state.admin.db, key, account_id, why=why, actor=who.actor)
        return _changed(request, f"{key}: the override of account {account_id} is removed.")

    return perform(request, "/flags", change)
