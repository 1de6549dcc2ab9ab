"""The admin web interface: server-rendered pages under /admin, behind their own login.

`mount_admin` mounts it on the public app as a sub-application (its own error pages, no
OpenAPI), serves its static files under /admin/static, and runs the capacity sampler for
as long as the app is served.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from gpucloud.admin import secret
from gpucloud.admin.rendering import make_templates, page
from gpucloud.admin.routes import accounts, auth, dashboard, flags, hosts, instances, jobs, trials
from gpucloud.admin.session import PATH, LoginRequired, Refused, Sessions, current_viewer
from gpucloud.config import Settings
from gpucloud.errors import GpucloudError
from gpucloud.services.capacity_samples import SAMPLE_SECONDS, Sampler
from gpucloud.store.db import Database

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


@dataclass
class AdminState:
    settings: Settings
    db: Database
    sessions: Sessions
    templates: Jinja2Templates
    sampler: Sampler


def mount_admin(app: FastAPI, settings: Settings, db: Database, *, sample_seconds: int = SAMPLE_SECONDS) -> FastAPI:
    """Serve the admin interface under /admin of `app`; returns the admin sub-application."""
    admin = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    admin.state.admin = AdminState(
        settings=settings, db=db,
        sessions=Sessions(secret.load_or_create(settings.data_dir),
                          secure=settings.resolved_public_url.startswith("https://")),
        templates=make_templates(), sampler=Sampler(db, settings, sample_seconds))
    admin.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for module in (auth, dashboard, hosts, accounts, instances, jobs, flags, trials):
        admin.include_router(module.router)
    _install_error_pages(admin)
    app.mount(PATH, admin)

    @app.get(PATH, include_in_schema=False)
    def admin_root() -> RedirectResponse:
        return RedirectResponse(PATH + "/", status_code=307)

    _sample_while_serving(app, admin.state.admin.sampler)
    return admin


def _sample_while_serving(app: FastAPI, sampler: Sampler) -> None:
    """Run the sampler inside the app's lifespan (whatever lifespan it already has)."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a):
        sampler.start()
        try:
            async with inner(a) as state:
                yield state
        finally:
            sampler.stop()

    app.router.lifespan_context = lifespan


def _install_error_pages(admin: FastAPI) -> None:
    def error_page(request: Request, status: int, title: str, reason: str) -> Response:
        if getattr(request.state, "viewer", None) is None:
            request.state.viewer = current_viewer(request)  # the nav, when someone is logged in
        return page(request, "error.html", {"title": title, "reason": reason}, status=status)

    @admin.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PATH}/login?next={_quote(wanted)}", status_code=303)

    @admin.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return error_page(request, 403, "Not allowed", exc.reason)

    @admin.exception_handler(GpucloudError)
    async def refused_by_service(request: Request, exc: GpucloudError) -> Response:
        return error_page(request, exc.status, "Not found" if exc.status == 404 else "Cannot do that", exc.reason)

    @admin.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        title = "Not found" if exc.status_code == 404 else "Error"
        reason = "There is no such page." if exc.status_code == 404 else str(exc.detail)
        return error_page(request, exc.status_code, title, reason)

    @admin.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return error_page(request, 400, "Bad input", problems or "The request could not be read.")

    @admin.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        log.exception("admin: unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
        return error_page(request, 500, "Something went wrong", "The error was logged. Nothing you did caused it.")


def _quote(path: str) -> str:
    return quote(path, safe="/")
