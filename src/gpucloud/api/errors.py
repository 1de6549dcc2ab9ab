"""Linode-shaped errors: whatever fails, the client gets `{"errors": [{"reason", "field"?}]}`.

Both clients depend on this shape: linode_api4 reads `reason` of every entry (a missing one
is a KeyError on the client side) and linode-cli prints a field/reason table. Statuses are
chosen with the clients' retry rules in mind: they retry 408, 429 and 502, so only a real
rate limit answers 429, only a request not sent in time answers 408 (middleware, serving),
and nothing answers 502.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gpucloud.api import unoffered
from gpucloud.errors import ConfigError, GpucloudError, ValidationErrors

log = logging.getLogger(__name__)

FieldError = tuple[str | None, str]  # (field or None, reason)


class ApiError(Exception):
    """An error raised by the API layer itself (auth, scopes, rate limit, bad paging)."""

    def __init__(self, status: int, reason: str, field: str | None = None, headers: dict | None = None):
        super().__init__(reason)
        self.status, self.reason, self.field, self.headers = status, reason, field, headers or {}


class ErrorEntry(BaseModel):
    reason: str
    field: str | None = None


class ErrorBody(BaseModel):
    """What every failing request answers (documented as each operation's `default` response)."""

    errors: list[ErrorEntry]


def invalid_token() -> ApiError:
    return ApiError(401, "Invalid Token")


def unauthorized() -> ApiError:
    """403: authenticated, but the token's scopes do not cover the operation (Linode's text)."""
    return ApiError(403, "Unauthorized")


def not_found() -> ApiError:
    return ApiError(404, "Not found")


def body(errors: list[FieldError]) -> dict:
    return {"errors": [{"reason": reason, **({"field": field} if field else {})} for field, reason in errors]}


def response(status: int, errors: list[FieldError], headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body(errors), status_code=status, headers=headers)


# --- translating pydantic's complaints into Linode's terse reasons ----------------------------

_WHERE = ("body", "query", "header", "path", "cookie")
_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _field(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p not in _WHERE]
    return ".".join(parts) or None


def _reason(error: dict[str, Any], field: str | None) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    name = (field or "value").rsplit(".", 1)[-1]
    if kind == "missing":
        return f"{name} is required"
    if kind == "extra_forbidden":
        return f"{name} is not a field this endpoint accepts"
    if kind in _TYPE_WORDS:
        return f"{name} must be {_TYPE_WORDS[kind]}"
    if kind == "greater_than_equal":
        return f"{name} must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"{name} must be at most {ctx.get('le')}"
    if kind == "greater_than":
        return f"{name} must be greater than {ctx.get('gt')}"
    if kind == "string_too_short":
        return f"{name} must be at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"{name} must be at most {ctx.get('max_length')} characters"
    if kind == "too_long":
        return f"{name} must have at most {ctx.get('max_length')} items"
    if kind == "too_short":
        return f"{name} must have at least {ctx.get('min_length')} items"
    if kind == "literal_error":
        return f"{name} must be one of {ctx.get('expected')}"
    return f"{name}: {error.get('msg', 'is not valid')}"


def validation_errors(raw: list[dict[str, Any]]) -> list[FieldError]:
    """Pydantic/FastAPI validation errors as Linode field errors (one per field, first wins)."""
    out: list[FieldError] = []
    seen: set[str | None] = set()
    for error in raw:
        loc = tuple(error.get("loc") or ())
        kind = error.get("type", "")
        if kind == "json_invalid":
            return [(None, "Invalid JSON")]
        field = _field(loc)
        if loc and loc[0] == "body" and field is None:
            return [(None, "The request body must be a JSON object")]
        if field in seen:
            continue
        seen.add(field)
        out.append((field, _reason(error, field)))
    return out or [(None, "Invalid request")]


def from_service(exc: GpucloudError) -> list[FieldError]:
    if isinstance(exc, ValidationErrors):
        return list(exc.errors)
    return [(exc.field, exc.reason)]


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed(request: Request) -> list[str]:
    """Every method some route serves at this path (routing stops at the first route whose
    path matches, so its own 405 would name that route's methods only)."""
    routes = request.app.router.routes
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)]


def install(app: FastAPI) -> None:
    """Every handled failure becomes a Linode body; the ASGI layer catches the rest (500)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status == 404 and (reason := unoffered.route_reason(request.method, request.url.path)):
            return response(404, [(None, reason)])  # e.g. /regions/vpc-availability read as a region's id
        return response(exc.status, [(exc.field, exc.reason)], exc.headers)

    @app.exception_handler(GpucloudError)
    async def _service_error(_request: Request, exc: GpucloudError) -> JSONResponse:
        if isinstance(exc, ConfigError):  # an unreachable dependency, not the customer's fault
            log.error("service unavailable: %s", exc.reason)
            return response(503, [(None, "Service temporarily unavailable")])
        return response(exc.status, from_service(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        raw = list(exc.errors())
        if any((e.get("loc") or ("",))[0] == "path" for e in raw):  # /linode/instances/abc names nothing
            return response(404, [(None, "Not found")])
        return response(400, validation_errors(raw))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):  # no route: say so when it is a feature not offered here
            reason = unoffered.route_reason(request.method, request.url.path)
            if exc.status_code == 404:
                return response(404, [(None, reason or "Not found")])
            return response(405, [(None, reason or "Method not allowed")], {"Allow": ", ".join(_allowed(request))})
        reason = exc.detail if isinstance(exc.detail, str) else "Bad request"
        return response(exc.status_code, [(None, reason)], getattr(exc, "headers", None))
