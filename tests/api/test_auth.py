"""Tokens and scopes: 401 for missing, unknown and expired tokens, 403 past a token's scopes,
the scope headers, and 429 past the per-account rate limit."""

import time
from datetime import timedelta

import httpx
import pytest
from linode_api4 import ApiError

from gpucloud.clock import utcnow
from tests.api.conftest import LiveServer, _migrated
from tests.conftest import make_settings

INVALID = {"errors": [{"reason": "Invalid Token"}]}


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer nope", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 5000])
def test_missing_or_unknown_tokens_are_401(api_server, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    for path in ("/profile", "/account", "/account/events", "/profile/tokens", "/linode/instances"):
        response = httpx.get(api_server.base() + path, headers=headers)
        assert (response.status_code, response.json()) == (401, INVALID), path


def test_expired_tokens_are_refused(api_server):
    alice = api_server.customer()
    token = api_server.token(alice, expires_at=utcnow() + timedelta(seconds=2))
    assert api_server.http(token).get("/profile").status_code == 200
    time.sleep(2.5)
    response = api_server.http(token).get("/profile")
    assert (response.status_code, response.json()) == (401, INVALID)
    with pytest.raises(ApiError) as err:
        api_server.client(token).profile()
    assert err.value.status == 401 and "Invalid Token" in str(err.value)


def test_scopes_limit_what_a_token_may_do_and_are_echoed(api_server):
    alice = api_server.customer()
    events_only = api_server.token(alice, scopes="events:read_only")
    http = api_server.http(events_only)
    listed = http.get("/account/events")
    assert listed.status_code == 200
    assert listed.headers["X-OAuth-Scopes"] == "events:read_only"
    assert listed.headers["X-Accepted-OAuth-Scopes"] == "events:read_only"
    denied = http.get("/account")
    assert (denied.status_code, denied.json()) == (403, {"errors": [{"reason": "Unauthorized"}]})
    assert denied.headers["X-Accepted-OAuth-Scopes"] == "account:read_only"
    assert http.post("/account/events/1/seen").status_code == 403  # read_only cannot write
    assert http.get("/profile").status_code == 200  # any valid token reads its own profile
    full = api_server.http(alice.token).get("/account")
    assert full.status_code == 200 and full.headers["X-OAuth-Scopes"] == "*"
    anonymous = httpx.get(api_server.base() + "/account")
    assert anonymous.headers["X-OAuth-Scopes"] == "unknown"


@pytest.fixture
def strict_server(tmp_path):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'gpucloud.sqlite'}", rate_limit_per_minute=5)
    db = _migrated(settings.resolved_database_url)
    server = LiveServer(settings, db, worker=False).start()
    yield server
    server.stop()
    db.dispose()


def test_rate_limit_is_per_account_with_retry_after(strict_server):
    alice, bob = strict_server.customer(gpu=False), strict_server.customer(gpu=False)
    http = strict_server.http(alice.token)
    answers = [http.get("/profile") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    limited = answers[-1]
    assert limited.json() == {"errors": [{"reason": "Too many requests"}]}
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-RateLimit-Remaining"] == "0" and limited.headers["X-RateLimit-Limit"] == "5"
    assert answers[0].headers["X-RateLimit-Remaining"] == "4"
    assert strict_server.http(bob.token).get("/profile").status_code == 200  # bob has his own bucket


def test_an_unexpected_failure_is_a_logged_500_without_a_trace(tmp_path, caplog):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'gpucloud.sqlite'}")
    db = _migrated(settings.resolved_database_url)
    server = LiveServer(settings, db, worker=False)

    def broken() -> dict:
        raise RuntimeError("secret internals")

    server.app.add_api_route("/v4/test/broken", broken)  # a bug stand-in, in the real app
    server.start()
    try:
        with caplog.at_level("ERROR", logger="gpucloud.api.middleware"):
            response = httpx.get(f"{server.base()}/test/broken")
    finally:
        server.stop()
        db.dispose()
    assert (response.status_code, response.json()) == (500, {"errors": [{"reason": "Internal server error"}]})
    assert "secret internals" not in response.text
    assert any("secret internals" in (r.exc_text or "") for r in caplog.records)
