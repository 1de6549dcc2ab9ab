"""Logging in and out. The password check (argon2, ~50 ms of CPU) runs on a worker thread,
so a flood of logins never stalls the event loop that serves the public API."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from gpucloud.admin.actions import redirect
from gpucloud.admin.rendering import page
from gpucloud.admin.session import PATH, Viewer, csrf_ok, current_viewer, poster
from gpucloud.services.admin_login import log_in, log_out

router = APIRouter()

WRONG = "Wrong username or password."


def _next(value: str | None) -> str:
    """Only a path of this interface: never an open redirect to another site."""
    if value and value.startswith(PATH + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PATH + "/"


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    if current_viewer(request) is not None:
        return RedirectResponse(_next(next), status_code=303)
    return _login_page(request, next, None, 200)


@router.post("/login")
async def login(request: Request, username: str = Form(""), password: str = Form(""),
                next: str = Form("")) -> Response:
    sessions = request.app.state.admin.sessions
    session = sessions.read(request)
    if session is None or not await csrf_ok(request, session.csrf):
        return _login_page(request, next, "The login form expired. Try again.", 403, fresh=True)
    address = request.client.host if request.client else "unknown"
    result = await run_in_threadpool(log_in, request.app.state.admin.db, username, password, address)
    if result.retry_after:
        response = _login_page(request, next, f"Too many failed logins. Try again in {result.retry_after} s.", 429,
                               username=username)
        response.headers["Retry-After"] = str(result.retry_after)
        return response
    if result.operator is None:
        return _login_page(request, next, WRONG, 401, username=username)
    response = RedirectResponse(_next(next), status_code=303)
    sessions.write(request, response, sessions.logged_in(result.operator, result.session_id))
    return response


@router.post("/logout")
def logout(request: Request, viewer: Viewer = Depends(poster)) -> Response:
    log_out(request.app.state.admin.db, viewer.session_secret)
    response = redirect(request, "/login", "ok", f"{viewer.operator.username} logged out.")
    request.app.state.admin.sessions.clear(response)
    return response


def _login_page(request: Request, next: str | None, error: str | None, status: int, *, fresh: bool = False,
                username: str = "") -> Response:
    sessions = request.app.state.admin.sessions
    session = None if fresh else sessions.read(request)
    if session is None or session.username:
        session = sessions.anonymous()
    response = page(request, "login.html", {"csrf": session.csrf, "error": error, "next": _next(next),
                                            "username": username}, status=status)
    sessions.write(request, response, session)
    return response
