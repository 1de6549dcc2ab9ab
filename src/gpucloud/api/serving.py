"""How the app is served: uvicorn, with a bound on how long a client may take to send a
request's head.

uvicorn waits forever for the head of a request (a connection that sends nothing, or half a
header line, holds a socket and a slot indefinitely: the slowloris attack). The HTTP/1.1
protocol here gives each request head `head_timeout` seconds from its first byte (or from
the connection, for the first request); past that the client gets a 408 and the connection
is closed. Other connections are served meanwhile: it is a timer, nothing waits. The body
is bounded by LinodeMiddleware (`body_timeout`), which reads every body before routing.
Idle keep-alive connections are closed by uvicorn's own `timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from gpucloud.config import Settings

REQUEST_TIMEOUT_BODY = json.dumps({"errors": [{"reason": "Request timeout: the request was not sent in time"}]})
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                   b"content-length: " + str(len(REQUEST_TIMEOUT_BODY)).encode() + b"\r\n\r\n"
                   + REQUEST_TIMEOUT_BODY.encode())


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on each request head."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any):
        super().__init__(config, *args, **kwargs)
        self.head_timeout: float = getattr(config, "head_timeout", 10.0)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # still waiting for (the rest of) a head
            self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()


def uvicorn_config(app: Any, settings: Settings, **kwargs: Any) -> uvicorn.Config:
    """A uvicorn configuration serving `app` (an app or an import string) with the bounded
    protocol and these settings' timeouts; `kwargs` go to uvicorn as they are."""
    config = uvicorn.Config(app, http=BoundedH11Protocol, timeout_keep_alive=int(settings.http_keep_alive_seconds),
                            **kwargs)
    config.head_timeout = settings.http_head_timeout_seconds  # type: ignore[attr-defined]  # read by the protocol
    return config
