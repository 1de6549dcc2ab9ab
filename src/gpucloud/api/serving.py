"""How the app is served: uvicorn with its httptools HTTP/1.1 protocol, and a bound on how long
a client may take to send a request's head.

uvicorn waits forever for the head of a request (a connection that sends nothing, or half a
header line, holds a socket and a slot indefinitely: the slowloris attack). The protocol here
gives each request head `head_timeout` seconds from its first byte (or from the connection,
for the first request); past that the client gets a 408 and the connection is closed. Other
connections are served meanwhile: it is a timer, nothing waits. The body is bounded by
LinodeMiddleware (`body_timeout`), which reads every body before routing. Idle keep-alive
connections are closed by uvicorn's own `timeout_keep_alive`.

httptools (llhttp, in C) rather than uvicorn's pure-Python h11: the protocol's CPU per request
was about half (docs/benchmarks.md, issue #11).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gpucloud.config import Settings

REQUEST_TIMEOUT_BODY = json.dumps({"errors": [{"reason": "Request timeout: the request was not sent in time"}]})
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                   b"content-length: " + str(len(REQUEST_TIMEOUT_BODY)).encode() + b"\r\n\r\n"
                   + REQUEST_TIMEOUT_BODY.encode())


class HeadDeadline:
    """One connection's deadline on the request head it is waiting for: when it passes and the
    head is still not complete (`awaiting_head`), 408 and close."""

    def __init__(self, timeout: float, awaiting_head: Callable[[], bool]):
        self.timeout = timeout
        self._awaiting_head = awaiting_head
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def arm(self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport) -> None:
        """Start the clock, unless it runs already."""
        if self._timer is None and not transport.is_closing():
            self._transport = transport
            self._timer = loop.call_later(self.timeout, self._passed)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _passed(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is not None and self._awaiting_head() and not transport.is_closing():
            transport.write(REQUEST_TIMEOUT)
            transport.close()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request head: armed when the
    connection opens and at the first byte of each request, disarmed when its head is complete."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any):
        super().__init__(config, *args, **kwargs)
        self._in_head = True  # the first request's head is awaited from the connection on
        self.deadline = HeadDeadline(getattr(config, "head_timeout", 10.0), lambda: self._in_head)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline.arm(self.loop, transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self.deadline.arm(self.loop, self.transport)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self.deadline.disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline.disarm()
        super().connection_lost(exc)


def uvicorn_config(app: Any, settings: Settings, **kwargs: Any) -> uvicorn.Config:
    """A uvicorn configuration serving `app` (an app or an import string) with the bounded
    protocol and these settings' timeouts; `kwargs` go to uvicorn as they are."""
    config = uvicorn.Config(app, http=BoundedHttpToolsProtocol,
                            timeout_keep_alive=int(settings.http_keep_alive_seconds), **kwargs)
    config.head_timeout = settings.http_head_timeout_seconds  # type: ignore[attr-defined]  # read by the protocol
    return config
