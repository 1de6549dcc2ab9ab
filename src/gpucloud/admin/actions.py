"""How every operator change ends: back to the page it came from, with what happened.

The services refuse bad input with a `GpucloudError` whose text is meant for people, and
change nothing when they refuse (each change is one transaction)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from starlette.responses import RedirectResponse

from gpucloud.errors import GpucloudError


def perform(request: Request, back: str, change: Callable[[], str]) -> RedirectResponse:
    """Run `change` (which returns the success message) and redirect to `back` (a path
    under /admin) with its message, or with the refusal's reason."""
    try:
        kind, message = "ok", change()
    except GpucloudError as exc:
        kind, message = "error", exc.reason
    return redirect(request, back, kind, message)


def refuse(request: Request, back: str, reason: str) -> RedirectResponse:
    """Input the route itself finds wanting (a missing reason, a number that is not one)."""
    return redirect(request, back, "error", reason)


def redirect(request: Request, back: str, kind: str | None = None, message: str = "") -> RedirectResponse:
    response = RedirectResponse("/admin" + back, status_code=303)
    if kind:
        request.app.state.admin.sessions.flash(request, response, kind, message)
    return response


def required(value: str, what: str = "a reason") -> str | None:
    """The refusal for an empty required field, or None."""
    return None if value.strip() else f"Say {what}: it is kept in the audit log."
