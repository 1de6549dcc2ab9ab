"""Issue 12, item 5: admin logins that resist guessing (backoff per username and per address,
429 with Retry-After, audited), password checks off the event loop, logout that ends the
session on the server, and browser protections on HTML pages. Each test failed before."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from gpucloud.services import admin_login, audit_trail
from gpucloud.store.db import Database
from tests.admin.conftest import admin_client, csrf_of
from tests.api.conftest import api_server  # noqa: F401  (the in-process server, to patch its password check)
from tests.live import run_cli

PASSWORD = "guess-me-not-42"


def _try(client: httpx.Client, username: str, password: str) -> httpx.Response:
    token = csrf_of(client.get("/admin/login").text)
    return client.post("/admin/login", data={"username": username, "password": password, "csrf_token": token})


def _audit(server, action: str, username: str) -> list[dict]:
    db = Database(f"sqlite:///{server.data_dir / 'gpucloud.sqlite'}")
    try:
        return [e for e in audit_trail.of_target(db, "admin_user", username, limit=500) if e["action"] == action]
    finally:
        db.dispose()


def test_wrong_passwords_back_off_per_username_with_429_and_retry_after(server):
    run_cli(server.data_dir, "admin", "create", "guessed", "--password", PASSWORD)
    client = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
    statuses = [_try(client, "guessed", f"wrong-{n}").status_code for n in range(admin_login.FREE_FAILURES["user"] + 1)]
    assert statuses == [401] * (admin_login.FREE_FAILURES["user"] + 1)
    refused = _try(client, "guessed", PASSWORD)  # the right password, while the username is locked
    assert refused.status_code == 429 and "Too many failed logins" in refused.text
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 2
    time.sleep(retry_after + 0.2)
    assert _try(client, "guessed", PASSWORD).status_code == 303
    failed = _audit(server, "admin.login.failed", "guessed")
    assert len(failed) == admin_login.FREE_FAILURES["user"] + 1
    assert failed[0]["after"]["locked_seconds"] == {"user": 1}  # newest first: the failure that locked it
    assert len(_audit(server, "admin.login", "guessed")) == 1


def test_many_usernames_from_one_address_are_throttled_too(server):
    client = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
    answers = [_try(client, f"nobody-{n}", "x").status_code for n in range(admin_login.FREE_FAILURES["address"] + 2)]
    assert answers[-1] == 429 and 401 in answers
    wait = int(_try(client, "admin", server.demo()["admin_password"]).headers["retry-after"])
    time.sleep(wait + 0.2)  # the rest of the module logs in from the same address


def test_logout_ends_the_session_on_the_server(server):
    client = admin_client(server)
    stolen = dict(client.cookies)
    assert client.get("/admin/").status_code == 200
    page = client.get("/admin/")
    assert client.post("/admin/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    replayed = httpx.Client(base_url=server.url, follow_redirects=False, cookies=stolen)
    assert replayed.get("/admin/").status_code == 303  # back to the login page: the old cookie is dead


def test_html_pages_carry_browser_protections(server):
    response = httpx.get(f"{server.url}/admin/login")
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    api = httpx.get(f"{server.url}/v4/regions")
    assert api.headers["x-content-type-options"] == "nosniff" and "x-frame-options" not in api.headers


@pytest.fixture
def slow_password_check(monkeypatch):
    """argon2, stretched until the test lets it go."""
    release = threading.Event()
    real = admin_login.verify_password

    def held(stored: str, password: str) -> bool:
        release.wait(30)
        return real(stored, password)

    monkeypatch.setattr(admin_login, "verify_password", held)
    yield release
    release.set()


def test_a_password_check_does_not_stall_the_public_api(api_server, slow_password_check):  # noqa: F811
    client = httpx.Client(base_url=api_server.url, follow_redirects=False, timeout=30)
    token = csrf_of(client.get("/admin/login").text)
    login = threading.Thread(target=client.post, args=("/admin/login",),
                             kwargs={"data": {"username": "admin", "password": "x", "csrf_token": token}})
    login.start()
    try:
        time.sleep(0.3)  # the login is inside its password check now
        assert httpx.get(f"{api_server.base()}/regions", timeout=5).status_code == 200
    finally:
        slow_password_check.set()
        login.join(30)
