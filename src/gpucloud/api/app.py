"""The HTTP application: the Linode-compatible public API under /v4 (and /v4beta, which
linode_api4's own tests default to), plus /healthz and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from gpucloud.admin.app import mount_admin
from gpucloud.api import auth, errors, metrics, password_link
from gpucloud.api.middleware import LinodeMiddleware, SecurityHeaders
from gpucloud.api.ratelimit import RateLimiter
from gpucloud.api.routes import account, billing, catalog, instances, sshkeys, tags
from gpucloud.catalog import load_catalog
from gpucloud.config import Settings, load_settings
from gpucloud.console.app import mount_console
from gpucloud.services import preload
from gpucloud.services.gating import flags_for
from gpucloud.store.db import Database

PREFIXES = ("/v4", "/v4beta")

DESCRIPTION = """The subset of the Linode API v4 that gpucloud serves: types, regions and plan
availability, images, instances (with GPU plans and user data), events, account (settings,
billing), profile, SSH keys, tags and personal access tokens. Point `linode-cli` or
`linode_api4` at this server (see docs/api.md). Errors are
`{"errors": [{"reason": ..., "field": ...}]}`; a Linode route or field for a feature we do not
offer answers an error whose reason names it. Lists are paginated (`page`, `page_size`
25-500) and filterable with the `X-Filter` header."""


def create_app(settings: Settings, db: Database) -> FastAPI:
    app = FastAPI(title="gpucloud public API (Linode API v4 compatible)", version="4.0", description=DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url="/v4/openapi.json", strict_content_type=False,
                  servers=[{"url": "/", "description": "this server"}], redirect_slashes=False)
    app.state.settings = settings
    app.state.db = db
    app.state.catalog = load_catalog()
    app.state.flags = flags_for(db)  # the same cache the instance service consults
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
    errors.install(app)
    app.add_middleware(LinodeMiddleware, max_body_bytes=settings.max_body_bytes,
                       body_timeout=settings.http_body_timeout_seconds, observe=metrics.observe_request)
    app.add_middleware(SecurityHeaders)  # outermost: every page of every entry point mounted here

    api = APIRouter(responses={"default": {"model": errors.ErrorBody, "description": "A Linode-shaped error"}})
    for module in (catalog, instances, account, sshkeys, billing, tags):
        api.include_router(module.router)
    for prefix in PREFIXES:
        app.include_router(api, prefix=prefix, include_in_schema=prefix == "/v4")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        db.check_reachable()
        return {"status": "ok"}

    metrics.mount(app)
    app.include_router(password_link.router)  # the one-time root password page (before the console's /)
    mount_admin(app, settings, db)  # the admin web interface under /admin
    mount_console(app)  # the customer console at /
    _document_optional_tokens(app)
    return app


def _document_optional_tokens(app: FastAPI) -> None:
    """/v4/openapi.json is generated from the routes; this corrects the one thing FastAPI
    cannot tell: an operation whose only auth is `maybe_identity` (types, regions, images)
    answers without a token too, so its security lists "none" beside the bearer token."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            for context in iter_route_contexts(app.routes):  # included routers flattened, prefixes applied
                route = context.original_route
                if isinstance(route, APIRoute) and route.include_in_schema and _token_optional(route.dependant):
                    for method in context.methods or ():
                        operation = schema["paths"].get(context.path, {}).get(method.lower())
                        if operation is not None and "security" in operation:
                            operation["security"] = [{}, *operation["security"]]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _token_optional(dependant: Dependant) -> bool:
    calls = _calls(dependant)
    required = auth.identity in calls or any(getattr(c, "__name__", "").startswith("requires_") for c in calls)
    return auth.maybe_identity in calls and not required


def _calls(dependant: Dependant) -> set:
    out = {dependant.call} if dependant.call is not None else set()
    for sub in dependant.dependencies:
        out |= _calls(sub)
    return out


def app_from_environment() -> FastAPI:
    """The app for each process of `gpucloud api --workers N`: settings from GPUCLOUD_*. The
    process loads placement's views beside serving (`services.preload`)."""
    settings = load_settings()
    db = Database.for_settings(settings)
    app = create_app(settings, db)
    preload.start(db, settings)
    return app
