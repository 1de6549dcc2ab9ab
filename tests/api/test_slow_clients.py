"""Issue 12, item 4: a client that never finishes its headers or its body is answered 408 and
dropped, and everyone else is served meanwhile. Against `gpucloud api` as operators run it,
with the timeouts set to 1 s so the test is quick (the defaults are 10 s and 30 s)."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.live import start_server

TIMEOUT = 1  # seconds, for head and body
PATIENCE = 15  # how long the test waits for the server to give up (before the fix: forever)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"GPUCLOUD_HTTP_HEAD_TIMEOUT_SECONDS": str(TIMEOUT), "GPUCLOUD_HTTP_BODY_TIMEOUT_SECONDS": str(TIMEOUT)}
    live = start_server(tmp_path_factory.mktemp("slow-clients"), command="api", env=env)
    yield live
    live.stop()


def _stall(server, sent: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE)
    if sent:
        sock.sendall(sent)
    return sock


def _answer_then_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a socket timeout fails the test)."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    sock.close()
    return received


@pytest.mark.parametrize("sent", [
    b"",  # connects, sends nothing
    b"GET /v4/regions HTTP/1.1\r\nHost: x\r\nX-Filt",  # headers never finished
    b"POST /v4/profile/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n{\"label\":",  # 1000 bytes announced, 10 sent
])
def test_a_stalled_request_is_answered_408_and_closed_while_others_are_served(server, sent):
    stalled = _stall(server, sent)
    time.sleep(0.2)
    assert httpx.get(f"{server.api}/regions", timeout=5).status_code == 200  # served meanwhile
    started = time.monotonic()
    answer = _answer_then_close(stalled)
    assert time.monotonic() - started < PATIENCE
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(body)["errors"][0]["reason"].startswith("Request timeout")


def test_a_slow_but_steady_client_within_the_bound_is_served(server):
    sock = _stall(server, b"GET /v4/regions HTTP/1.1\r\n")
    time.sleep(TIMEOUT / 3)
    sock.sendall(b"Host: x\r\nConnection: close\r\n\r\n")
    assert _answer_then_close(sock).startswith(b"HTTP/1.1 200")


def test_the_next_request_on_a_kept_alive_connection_has_its_own_head_deadline(server):
    sock = _stall(server, b"GET /v4/regions HTTP/1.1\r\nHost: x\r\n\r\n")
    first = b""
    while b"\r\n\r\n" not in first:
        first += sock.recv(4096)
    head, _, body = first.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200")
    time.sleep(TIMEOUT * 1.5)  # idle between requests: not the head deadline's business
    sock.sendall(b"GET /v4/regions HTTP/1.1\r\nHo")  # the next head, never finished
    started = time.monotonic()
    answer = _answer_then_close(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert TIMEOUT * 0.8 < time.monotonic() - started < PATIENCE  # counted from its first byte
