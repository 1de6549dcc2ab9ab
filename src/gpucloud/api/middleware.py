"""What every API request passes through, outside routing.

- The body is read here, up to `max_body_bytes`; a larger one is refused with 400 before any
  route parses it (Linode answers bad input with 400; 413 would be a status clients ignore).
  A body not received within `body_timeout` seconds is answered 408 and the connection
  closed (a client announcing 1000 bytes and sending 10 holds nothing for long).
- Text with control characters (NUL, C0, DEL, C1, lone surrogates) is refused with 400
  naming the field, before any route sees it: in a JSON or form body, in the query string
  and in `X-Filter`, and a path holding one names nothing (404). Every route, whoever adds
  it, gets this rule without doing anything.
- Headers that routes decide (the token's scopes, the operation's accepted scopes, rate-limit
  counters) are left in `request.state` and added to whatever response goes out, errors too.
- The database going away mid-request (a cut connection, a server restart) is not a bug:
  a GET or HEAD is run once more at once, on a fresh connection (reads are safe to repeat);
  anything else, or a second failure, answers 503 with `Retry-After`, and the transaction
  it was in was rolled back by the database, so nothing is half-written.
- An exception nobody handled becomes a Linode-shaped 500 and a log line with the traceback;
  the client never sees a stack trace.
- Each request's latency is observed per route template (never per raw path).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpucloud.api import errors
from gpucloud.domain.validation import control_character_field, has_control_characters
from gpucloud.store.db import unavailable

log = logging.getLogger(__name__)

# request.state keys whose values become response headers
HEADER_STATE = "linode_headers"
SAFE_METHODS = ("GET", "HEAD")
DATABASE_RETRY_AFTER = 1  # seconds: a cut connection is replaced by the pool on the next request

Observe = Callable[[str, str, int, float], None]  # method, route template, status, seconds


class LinodeMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_timeout: float = 30.0,
                 observe: Observe | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                extra = scope.get("state", {}).get(HEADER_STATE) or {}
                if extra:
                    message = {**message, "headers": [*message.get("headers", []),
                                                       *((k.lower().encode(), str(v).encode())
                                                         for k, v in extra.items())]}
            await send(message)

        try:
            try:
                body = await self._read_body(scope, receive)
            except TimeoutError:
                await errors.response(408, [(None, "Request timeout: the request was not sent in time")],
                                      {"Connection": "close"})(scope, receive, send_with_headers)
                return
            if body is None:
                await self._reply(scope, receive, send_with_headers, 400, "Request body is too large")
                return
            refused = control_characters(scope, body)
            if refused is not None:
                status, field = refused
                reason = "Not found" if status == 404 else f"{field} must not contain control characters"
                await errors.response(status, [(None if status == 404 else field, reason)])(
                    scope, receive, send_with_headers)
                return
            await self._run(scope, body, receive, send_with_headers, lambda: response_started)
        except Exception as exc:
            if unavailable(exc) and not response_started:
                log.warning("database unavailable during %s %s: %s", scope.get("method"), scope.get("path"),
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
                await errors.response(503, [(None, "The database is briefly unavailable; try again")],
                                      {"Retry-After": str(DATABASE_RETRY_AFTER)})(scope, receive, send_with_headers)
                return
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if response_started:
                raise
            await self._reply(scope, receive, send_with_headers, 500, "Internal server error")
        finally:
            if self.observe is not None:
                self.observe(scope.get("method", ""), _template(scope), status, time.perf_counter() - started)

    async def _run(self, scope: Scope, body: bytes, receive: Receive, send: Send,
                   started: Callable[[], bool]) -> None:
        """The app, run once more when a read lost its database connection before answering."""
        try:
            await self.app(scope, _replay(body, receive), send)
        except Exception as exc:
            if not (unavailable(exc) and scope.get("method") in SAFE_METHODS and not started()):
                raise
            log.info("database connection lost during %s %s; running it again", scope["method"], scope.get("path"))
            scope.get("state", {}).pop(HEADER_STATE, None)
            await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None when it exceeds the limit (announced or actual size);
        TimeoutError when it is not all there within `body_timeout`."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    if int(value) > self.max_body_bytes:
                        return None
                except ValueError:
                    return None
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.body_timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    break
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body_bytes:
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        return b"".join(chunks)

    @staticmethod
    async def _reply(scope: Scope, receive: Receive, send: Send, status: int, reason: str) -> None:
        await errors.response(status, [(None, reason)])(scope, receive, send)


class SecurityHeaders:
    """Browser protections on whatever this app serves, added once for every entry point
    (the admin interface, the console, any page a stream adds later): `nosniff` on every
    response; on HTML pages also no framing by other sites (clickjacking: X-Frame-Options
    and CSP `frame-ancestors`) and no full URLs leaked to other sites in `Referer`. A page
    that sets its own Content-Security-Policy keeps it, with `frame-ancestors` added."""

    HTML = ((b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin"))

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": secured(list(message.get("headers", [])))}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def secured(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    names = {name.lower() for name, _ in headers}
    out = [*headers] if b"x-content-type-options" in names else [*headers, (b"x-content-type-options", b"nosniff")]
    content_type = next((value for name, value in headers if name.lower() == b"content-type"), b"")
    if not content_type.lower().startswith(b"text/html"):
        return out
    out += [(name, value) for name, value in SecurityHeaders.HTML if name not in names]
    csp = [i for i, (name, _) in enumerate(out) if name.lower() == b"content-security-policy"]
    if not csp:
        out.append((b"content-security-policy", b"frame-ancestors 'none'"))
    elif b"frame-ancestors" not in out[csp[0]][1]:
        out[csp[0]] = (out[csp[0]][0], out[csp[0]][1] + b"; frame-ancestors 'none'")
    return out


def control_characters(scope: Scope, body: bytes) -> tuple[int, str] | None:
    """(status, field) when the request carries a control character in any text it sends.

    JSON can only carry one escaped (a raw one is invalid JSON, refused later as such), so
    the JSON is parsed here only when the raw text holds a backslash."""
    if has_control_characters(scope.get("path", "")):  # already percent-decoded
        return 404, "path"
    query = _form_field(scope.get("query_string", b"").decode("latin-1"))
    if query is not None:
        return 400, query
    headers = dict(scope.get("headers", ()))
    x_filter = headers.get(b"x-filter")
    if x_filter is not None and _json_field(x_filter) is not None:
        return 400, "X-Filter"
    if not body:
        return None
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type == b"application/x-www-form-urlencoded":
        form = _form_field(body.decode("utf-8", "replace"))
        return None if form is None else (400, form)
    if content_type.startswith(b"multipart/"):
        return None  # files: their handlers decide
    field = _json_field(body)
    return None if field is None else (400, field or "body")


def _form_field(encoded: str) -> str | None:
    """The first name in `a=1&b=2` whose name or value holds a control character."""
    for name, value in parse_qsl(encoded, keep_blank_values=True):
        if has_control_characters(name) or has_control_characters(value):
            return name
    return None


def _json_field(raw: bytes) -> str | None:
    """The field of the first control character in a JSON text ('' for the whole value);
    None when clean or not JSON (what is not JSON fails later, as itself)."""
    if b"\\" not in raw:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return control_character_field(value)


def _template(scope: Scope) -> str:
    """The matched route's path template with its version prefix: `/v4/linode/instances/{instance_id}`."""
    template = getattr(scope.get("route"), "path", None)
    if template is None:
        return "unmatched"
    prefix = "/" + scope.get("path", "/").lstrip("/").split("/", 1)[0]
    return template if template.startswith(prefix + "/") or template == prefix else prefix + template


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands the already-read body over once, then waits like the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
