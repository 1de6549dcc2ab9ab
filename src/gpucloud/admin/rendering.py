"""Templates and the filters they use to write numbers, sizes and times."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from gpucloud.admin import billing
from gpucloud.admin.session import FLASH_COOKIE, PATH
from gpucloud.clock import utcnow

TEMPLATES = Path(__file__).parent / "templates"


def ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    seconds = int((utcnow() - value).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            text = f"{seconds // size}{unit}"
            break
    else:
        text = f"{seconds}s"
    return f"in {text}" if future else f"{text} ago"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def gib(mib: int | None) -> str:
    if mib is None:
        return "—"
    value = mib / 1024
    return f"{value:,.0f} GiB" if value >= 10 or value == int(value) else f"{value:,.1f} GiB"


def num(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def percent(part: float, whole: float) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    env = templates.env
    env.filters.update(ago=ago, when=when, gib=gib, num=num)
    env.globals.update(percent=percent, url=lambda path="/": PATH + path)
    env.globals.update(billing_account_panel=billing.account_panel, billing_dashboard_panel=billing.dashboard_panel)
    env.trim_blocks = True
    env.lstrip_blocks = True
    return templates


def page(request: Request, name: str, context: dict | None = None, status: int = 200) -> Response:
    """Render a page for the request's operator, with the message a redirect left for it."""
    admin = request.app.state.admin
    flash = admin.sessions.take_flash(request)
    viewer = getattr(request.state, "viewer", None)
    response = admin.templates.TemplateResponse(request, name, {
        "viewer": viewer, "csrf": viewer.csrf if viewer else "", "flash": flash, **(context or {}),
    }, status_code=status)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path=PATH)
    return response
