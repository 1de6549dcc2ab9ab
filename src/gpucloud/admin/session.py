"""Admin sessions, CSRF and roles.

The session lives in one cookie, signed (itsdangerous, with the data dir's admin secret),
HttpOnly, SameSite=Strict, Secure whenever the interface is reached over HTTPS, scoped to
/admin and valid for `MAX_AGE`. It holds the username, the fingerprint of the password hash
it was opened with, the secret naming its row in the database (logging out ends that row,
so the cookie is dead even if someone kept a copy), and a random CSRF token (the synchronizer token every form and
every POST must send back). A visitor who is not logged in gets a session holding only a
CSRF token, so the login form is protected too. Logging in replaces the token.

Each request re-reads the operator from the database: a deleted operator, or one whose
password changed, is logged out at once; a role change applies at once.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

from gpucloud.services.admin_login import SESSION_HOURS, Operator, operator

COOKIE = "gpucloud_admin"
FLASH_COOKIE = "gpucloud_admin_flash"
PATH = "/admin"
MAX_AGE = SESSION_HOURS * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    csrf: str
    username: str | None = None  # None: not logged in
    fingerprint: str = ""
    secret: str = ""  # names the session's row (admin_sessions)


class LoginRequired(Exception):
    """A page was asked for without a session: the answer is the login page."""


class Refused(Exception):
    """A change was refused (no session, no or wrong CSRF token, read-only role): 403."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Sessions:
    def __init__(self, secret: bytes, *, secure: bool):
        self._signer = URLSafeTimedSerializer(secret, salt="gpucloud-admin-session")
        self._flash = URLSafeTimedSerializer(secret, salt="gpucloud-admin-flash")
        self.secure = secure

    # --- the session cookie ------------------------------------------------------------------

    def read(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._signer.loads(raw, max_age=MAX_AGE)
            return Session(csrf=str(data["c"]), username=data.get("u"), fingerprint=str(data.get("f", "")),
                           secret=str(data.get("s", "")))
        except (BadSignature, KeyError, TypeError):
            return None

    def write(self, request: Request, response: Response, session: Session) -> None:
        value = self._signer.dumps({"c": session.csrf, "u": session.username, "f": session.fingerprint,
                                    "s": session.secret})
        response.set_cookie(COOKIE, value, max_age=MAX_AGE, path=PATH, httponly=True, samesite="strict",
                            secure=self._secure(request))

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path=PATH)

    def anonymous(self) -> Session:
        return Session(csrf=secrets.token_urlsafe(32))

    def logged_in(self, who: Operator, secret: str) -> Session:
        return Session(csrf=secrets.token_urlsafe(32), username=who.username, fingerprint=who.fingerprint,
                       secret=secret)

    def _secure(self, request: Request) -> bool:
        return self.secure or request.url.scheme == "https"

    # --- one-shot messages after a redirect ------------------------------------------------

    def flash(self, request: Request, response: Response, kind: str, message: str) -> None:
        response.set_cookie(FLASH_COOKIE, self._flash.dumps([kind, message[:1000]]), max_age=120, path=PATH,
                            httponly=True, samesite="strict", secure=self._secure(request))

    def take_flash(self, request: Request) -> tuple[str, str] | None:
        raw = request.cookies.get(FLASH_COOKIE)
        if not raw:
            return None
        try:
            kind, message = self._flash.loads(raw, max_age=120)
            return str(kind), str(message)
        except (BadSignature, ValueError, TypeError):
            return None


@dataclass(frozen=True)
class Viewer:
    """The logged-in operator of a request, with the session's CSRF token for its forms."""

    operator: Operator
    csrf: str
    session_secret: str

    @property
    def can_change(self) -> bool:
        return self.operator.can_change

    @property
    def actor(self) -> str:
        return self.operator.actor


def _admin(request: Request):
    return request.app.state.admin


def current_viewer(request: Request) -> Viewer | None:
    admin = _admin(request)
    session = admin.sessions.read(request)
    if session is None or not session.username:
        return None
    who = operator(admin.db, session.username, session.fingerprint, session.secret)
    return Viewer(who, session.csrf, session.secret) if who else None


def viewer(request: Request) -> Viewer:
    """Dependency of every page: the operator, or the login page instead."""
    found = current_viewer(request)
    if found is None:
        raise LoginRequired()
    request.state.viewer = found
    return found


async def csrf_ok(request: Request, expected: str) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


async def poster(request: Request) -> Viewer:
    """Dependency of every POST by a logged-in operator (logout included): a session and its
    CSRF token, whatever the role."""
    found = current_viewer(request)
    if found is None:
        raise Refused("You are not logged in (or your session ended). Log in and try again.")
    if not await csrf_ok(request, found.csrf):
        raise Refused("The form's security token is missing or does not match your session. "
                      "Reload the page and try again.")
    request.state.viewer = found
    return found


async def changer(request: Request) -> Viewer:
    """Dependency of every POST that changes something: `poster`, and the admin role."""
    found = await poster(request)
    if not found.can_change:
        raise Refused(f"{found.operator.username} has the read-only support role: it sees everything and "
                      "changes nothing.")
    return found
