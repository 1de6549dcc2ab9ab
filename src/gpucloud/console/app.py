"""The customer web console, served at `/`: a framework-free ES-module app (static files in
`static/`, no build step) that is a client of the public API.

Only three things here are not static: `POST /signup`, `POST /login` and `POST /password`
(the current password required), which hand the browser a short-lived console access token
(services.console_login). Like Linode's login service, they sit outside `/v4`: the API has no
call that takes or changes a customer's password. Everything else the console
does is a `/v4` call made by the browser with that token. The app shell (`static/index.html`)
answers every path the console routes on the client side; other paths stay 404.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from gpucloud.api import errors
from gpucloud.api.bodies import Body
from gpucloud.services import console_login
from gpucloud.services.console_login import ConsoleSession, TooMany

STATIC = Path(__file__).parent / "static"
ASSETS = "/assets"  # the console's scripts, styles and icons
SHELL_PATHS = ("/", "/login", "/signup", "/linodes", "/linodes/create", "/events", "/profile/tokens",
               "/profile/keys", "/profile/password", "/account/billing")
# ES modules from this origin only; no inline script or style, no other site reached
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'")


class Credentials(Body):
    email: str = ""
    password: str = ""


class PasswordChange(Credentials):
    new_password: str = ""


def mount_console(app: FastAPI) -> None:
    """Serve the console's shell, assets, sign-up and log-in on `app` (after /v4 and /admin)."""
    app.mount(ASSETS, StaticFiles(directory=str(STATIC)), name="console-assets")
    router = APIRouter(include_in_schema=False)

    def shell() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})

    for path in SHELL_PATHS:
        router.add_api_route(path, shell, methods=["GET"])

    @router.get("/linodes/{instance_id}")
    def instance_page(instance_id: str) -> FileResponse:
        if not instance_id.isdigit():
            raise errors.not_found()
        return shell()

    @router.post("/signup")
    def sign_up(body: Credentials, request: Request) -> dict:
        per_hour = request.app.state.settings.console_signups_per_hour
        return _answer(lambda: console_login.sign_up(request.app.state.db, body.email, body.password,
                                                     _address(request), per_hour=per_hour))

    @router.post("/login")
    def log_in(body: Credentials, request: Request) -> dict:
        return _answer(lambda: console_login.log_in(request.app.state.db, body.email, body.password,
                                                    _address(request)))

    @router.post("/password")
    def change_password(body: PasswordChange, request: Request) -> dict:
        return _answer(lambda: console_login.change_password(request.app.state.db, body.email, body.password,
                                                             body.new_password, _address(request)))

    app.include_router(router)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _answer(open_session: Callable[[], ConsoleSession]) -> dict:
    try:
        session = open_session()
    except TooMany as exc:
        raise errors.ApiError(429, exc.reason, headers={"Retry-After": str(exc.retry_after)}) from None
    return {"token": session.token, "token_id": session.token_id, "expiry": session.expiry.isoformat(),
            "username": session.username, "email": session.email}
