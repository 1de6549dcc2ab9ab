"""What every API request passes through, outside routing.

- The body is read here, up to `max_body_bytes`; a larger one is refused with 400 before any
  route parses it (Linode answers bad input with 400; 413 would be a status clients ignore).
- Headers that routes decide (the token's scopes, the operation's accepted scopes, rate-limit
  counters) are left in `request.state` and added to whatever response goes out, errors too.
- An exception nobody handled becomes a Linode-shaped 500 and a log line with the traceback;
  the client never sees a stack trace.
- Each request's latency is observed per route template (never per raw path).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpucloud.api import errors

log = logging.getLogger(__name__)

# request.state keys whose values become response headers
HEADER_STATE = "linode_headers"

Observe = Callable[[str, str, int, float], None]  # method, route template, status, seconds


class LinodeMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, observe: Observe | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
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
            body = await self._read_body(scope, receive)
            if body is None:
                await self._reply(scope, receive, send_with_headers, 400, "Request body is too large")
                return
            await self.app(scope, _replay(body, receive), send_with_headers)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if response_started:
                raise
            await self._reply(scope, receive, send_with_headers, 500, "Internal server error")
        finally:
            if self.observe is not None:
                self.observe(scope.get("method", ""), _template(scope), status, time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None when it exceeds the limit (announced or actual size)."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    if int(value) > self.max_body_bytes:
                        return None
                except ValueError:
                    return None
        chunks: list[bytes] = []
        size = 0
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
