"""Issue 12, item 8: PostgreSQL connections cut mid-request (`pg_terminate_backend`). A read is
run again on a fresh connection and answers 200; a write answers 503 with a Linode-shaped
error and Retry-After, and nothing of it is written.

The cut is made to land mid-request without timing: the test holds an exclusive lock on the
instances table, so the request's statement waits inside the database; the test sees it
waiting in pg_stat_activity, terminates every connection of the API's database, and only
then lets the lock go."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.postgres


def _dsn(server) -> str:
    url = make_url(server.db.url)
    return f"postgresql://{url.username}@{url.host}:{url.port or 5432}/{url.database}"


@contextmanager
def _instances_locked(server) -> Iterator[psycopg.Connection]:
    with psycopg.connect(_dsn(server)) as conn:
        conn.execute("LOCK TABLE instances IN ACCESS EXCLUSIVE MODE")
        try:
            yield conn
        finally:
            conn.rollback()


def _waiting(conn: psycopg.Connection) -> int:
    with psycopg.connect(conn.info.dsn, autocommit=True) as probe:
        return probe.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                             "AND wait_event_type = 'Lock' AND pid <> %s", (conn.info.backend_pid,)).fetchone()[0]


def _until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _cut(conn: psycopg.Connection) -> int:
    """Terminate every other connection to this database; how many there were."""
    with psycopg.connect(conn.info.dsn, autocommit=True) as cutter:
        rows = cutter.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                              "current_database() AND pid NOT IN (pg_backend_pid(), %s)",
                              (conn.info.backend_pid,)).fetchall()
    return len(rows)


def _http(server, token: str) -> httpx.Client:
    client = server.http(token)
    client.timeout = httpx.Timeout(120)  # the request waits on the test's lock for a while
    return client


def _in_thread(call) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    return thread, out


def test_a_write_cut_mid_request_answers_503_and_writes_nothing(pg_api_server):
    customer = pg_api_server.customer()
    with _http(pg_api_server, customer.token) as http:
        made = http.post("/linode/instances", json={"type": "g6-nanode-1", "region": "us-east", "label": "before-cut",
                                                    "booted": False}).json()
        path = f"/linode/instances/{made['id']}"
        with _instances_locked(pg_api_server) as lock:
            thread, out = _in_thread(lambda: http.put(path, json={"label": "after-cut", "group": "g"}))
            _until(lambda: _waiting(lock) >= 1, "the PUT to wait on the lock")
            assert _cut(lock) >= 1
        thread.join(120)
        response = out[0]
        assert response.status_code == 503, response.text
        assert response.json() == {"errors": [{"reason": "The database is briefly unavailable; try again"}]}
        assert int(response.headers["retry-after"]) >= 1
        after = http.get(path).json()
        assert (after["label"], after["group"]) == ("before-cut", "")  # nothing half-written


def test_a_read_cut_mid_request_is_run_again_and_answers(pg_api_server):
    customer = pg_api_server.customer()
    with _http(pg_api_server, customer.token) as http:
        http.post("/linode/instances", json={"type": "g6-nanode-1", "region": "us-east", "booted": False})
        with _instances_locked(pg_api_server) as lock:
            thread, out = _in_thread(lambda: http.get("/linode/instances"))
            _until(lambda: _waiting(lock) >= 1, "the GET to wait on the lock")
            assert _cut(lock) >= 1
            _until(lambda: _waiting(lock) >= 1, "the GET, run again, to wait on the lock")
        thread.join(120)
        response = out[0]
        assert response.status_code == 200, response.text
        assert response.json()["results"] == 1
    assert httpx.get(f"{pg_api_server.url}/healthz").status_code == 200
