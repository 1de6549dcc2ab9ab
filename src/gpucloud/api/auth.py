"""Bearer tokens, OAuth scopes and the rate limit, as FastAPI dependencies.

Routes declare what they need: `Depends(scope("linodes", "read_write"))`, `Depends(identity)`
(any valid token) or `Depends(maybe_identity)` (public, token optional). Each answers the
Linode headers `X-OAuth-Scopes` (what the token holds) and `X-Accepted-OAuth-Scopes` (what the
operation needs), on errors too.

A missing, unknown or expired token is 401 `Invalid Token`; a valid token without the scope
is 403 `Unauthorized`. On public routes no token is fine, but a token that is sent must be
valid: a typo'd token would otherwise silently see the anonymous catalog.
"""

from __future__ import annotations

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from gpucloud.api import errors
from gpucloud.api.middleware import HEADER_STATE
from gpucloud.domain.scopes import allows
from gpucloud.services import tokens
from gpucloud.services.tokens import Identity

bearer = HTTPBearer(auto_error=False, description="A personal access token: `Authorization: Bearer <token>`")


def set_headers(request: Request, **headers: str) -> None:
    state = request.scope.setdefault("state", {})
    state.setdefault(HEADER_STATE, {}).update({k.replace("_", "-"): v for k, v in headers.items()})


def _secret(request: Request) -> str | None:
    """The token from `Authorization: Bearer <token>`; '' when the header is malformed."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _rate_limit(request: Request, key: str) -> None:
    verdict = request.app.state.rate_limiter.hit(key)
    if verdict.limit:  # a disabled limiter reports limit 0 and adds no headers
        set_headers(request, **verdict.headers())
    if not verdict.allowed:
        raise errors.ApiError(429, "Too many requests")  # Retry-After is among the headers set above


def maybe_identity(request: Request, _docs=Security(bearer)) -> Identity | None:
    """Who is calling, or None for a request without a token (public routes)."""
    cached = request.scope.get("state", {}).get("identity")
    if cached is not None:
        return cached
    secret = _secret(request)
    if secret is None:
        client = request.client.host if request.client else "unknown"
        _rate_limit(request, f"address:{client}")
        return None
    who = tokens.authenticate(request.app.state.db, secret)
    if who is None:
        set_headers(request, X_OAuth_Scopes="unknown")
        raise errors.invalid_token()
    request.scope.setdefault("state", {})["identity"] = who
    set_headers(request, X_OAuth_Scopes=who.scopes)
    _rate_limit(request, f"account:{who.account_id}")
    return who


async def identity(request: Request, who: Identity | None = Depends(maybe_identity)) -> Identity:
    """Any valid token (e.g. GET /profile). No I/O of its own: runs on the event loop."""
    return _present(request, who)


def _present(request: Request, who: Identity | None) -> Identity:
    if who is None:
        set_headers(request, X_OAuth_Scopes="unknown")
        raise errors.invalid_token()
    return who


def scope(resource: str, level: str):
    """A dependency requiring `resource:level` (read_write includes read_only)."""
    accepted = f"{resource}:{level}"

    def require(request: Request, _docs=Security(bearer)) -> Identity:
        set_headers(request, X_Accepted_OAuth_Scopes=accepted)
        who = _present(request, maybe_identity(request))  # one thread hop: the token lookup
        if not allows(who.scopes, resource, level):
            raise errors.unauthorized()
        return who

    require.__name__ = f"requires_{resource}_{level}"
    return require
