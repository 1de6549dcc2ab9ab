"""Sign-up and log-in (the console's only routes outside /v4), its access tokens, and the app
shell served at the console's paths, over HTTP."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from gpucloud.clock import utcnow
from gpucloud.services import console_login
from gpucloud.services.console_login import IDLE, MAX_SESSION, REFRESH_EVERY, TooMany, WrongLogin
from gpucloud.store.tables import ApiToken
from tests.console.conftest import PASSWORD, new_email


def _post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=30)


def test_the_shell_answers_the_console_paths_and_nothing_else(api_server):
    for path in ("/", "/login", "/signup", "/linodes", "/linodes/create", "/linodes/42", "/events",
                 "/profile/tokens", "/profile/keys", "/profile/password", "/account/billing"):
        response = httpx.get(api_server.url + path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert '<script type="module" src="/assets/js/main.js">' in response.text
    for path in ("/linodes/abc", "/nothing-here", "/profile"):
        assert httpx.get(api_server.url + path).status_code == 404, path
    assert httpx.get(api_server.url + "/assets/js/main.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(api_server.url + "/v4/regions").status_code == 200  # the API and the admin stay where they were
    assert httpx.get(api_server.url + "/admin/login").status_code == 200


def test_sign_up_refuses_bad_input_naming_the_field(api_server):
    weak = _post(api_server, "/signup", {"email": new_email(), "password": "password1"})
    assert weak.status_code == 400
    assert weak.json()["errors"][0]["field"] == "password"
    assert "strength" in weak.json()["errors"][0]["reason"]
    both = _post(api_server, "/signup", {"email": "not-an-address", "password": "x"})
    assert {e["field"] for e in both.json()["errors"]} == {"email", "password"}
    unknown = _post(api_server, "/signup", {"email": new_email(), "password": PASSWORD, "plan": "gpu"})
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "plan"
    email = new_email()
    assert _post(api_server, "/signup", {"email": email, "password": PASSWORD}).status_code == 200
    again = _post(api_server, "/signup", {"email": email.upper(), "password": PASSWORD})
    assert again.status_code == 400 and again.json()["errors"][0]["field"] == "email"


def test_a_console_token_works_on_v4_is_not_listed_and_dies_at_logout(api_server):
    email = new_email()
    made = _post(api_server, "/signup", {"email": email, "password": PASSWORD}).json()
    assert _post(api_server, "/login", {"email": email, "password": "wrong one"}).status_code == 401
    login = _post(api_server, "/login", {"email": email.upper(), "password": PASSWORD})
    assert login.status_code == 200
    token = login.json()
    assert token["token"] != made["token"]
    with api_server.http(token["token"]) as http:
        assert http.get("/profile").json()["email"] == email
        types = {t["class"] for t in http.get("/linode/types").json()["data"]}
        assert "standard" in types and "gpu" not in types  # a new account starts with standard plans
        assert http.get("/profile/tokens").json()["data"] == []  # console sessions are not personal tokens
        assert http.delete(f"/profile/tokens/{token['token_id']}").status_code == 200  # log out
        assert http.get("/profile").status_code == 401
    with api_server.http(made["token"]) as http:
        assert http.get("/profile").status_code == 200  # the other session lives on


def test_changing_the_password_needs_the_current_one_and_ends_every_console_session(api_server):
    email, new = new_email(), "amber lighthouse drifts slowly"
    first = _post(api_server, "/signup", {"email": email, "password": PASSWORD}).json()
    second = _post(api_server, "/login", {"email": email, "password": PASSWORD}).json()
    with api_server.http(first["token"]) as http:
        personal = http.post("/profile/tokens", json={"label": "ci", "scopes": "*"}).json()["token"]

    def change(**body):
        return _post(api_server, "/password", {"email": email, "password": PASSWORD, "new_password": new, **body})

    wrong = change(password="not my password")
    assert wrong.status_code == 401
    weak = change(new_password="password1")
    assert weak.status_code == 400 and weak.json()["errors"][0]["field"] == "new_password"
    same = change(new_password=PASSWORD)
    assert same.status_code == 400 and "different" in same.json()["errors"][0]["reason"]
    unknown = change(otp="123456")
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "otp"
    for session in (first, second):  # nothing above changed anything
        with api_server.http(session["token"]) as http:
            assert http.get("/profile").status_code == 200

    changed = change()
    assert changed.status_code == 200
    for session in (first, second):
        with api_server.http(session["token"]) as http:
            assert http.get("/profile").status_code == 401
    for token in (changed.json()["token"], personal):  # the fresh session, and personal tokens stay
        with api_server.http(token) as http:
            assert http.get("/profile").json()["email"] == email
    assert _post(api_server, "/login", {"email": email, "password": PASSWORD}).status_code == 401
    assert _post(api_server, "/login", {"email": email, "password": new}).status_code == 200


def test_a_console_token_slides_while_used_and_is_short_lived(api_server):
    made = _post(api_server, "/signup", {"email": new_email(), "password": PASSWORD}).json()
    with api_server.db.write() as s:
        s.get(ApiToken, made["token_id"]).expires_at = utcnow() + timedelta(minutes=3)
    with api_server.http(made["token"]) as http:
        assert http.get("/profile").status_code == 200
    with api_server.db.read() as s:
        left = s.get(ApiToken, made["token_id"]).expires_at - utcnow()
    assert IDLE - timedelta(minutes=1) < left <= IDLE
    with api_server.db.write() as s:
        s.get(ApiToken, made["token_id"]).expires_at = utcnow() - timedelta(seconds=1)
    with api_server.http(made["token"]) as http:
        assert http.get("/profile").status_code == 401  # idle too long: log in again


def test_refreshed_expiry_rules():
    now = utcnow()
    assert console_login.refreshed_expiry("personal", now, now, now) is None
    assert console_login.refreshed_expiry("console", now, now + IDLE, now) is None  # fresh: no write
    assert console_login.refreshed_expiry("console", now, now + IDLE - REFRESH_EVERY, now) == now + IDLE
    old = now - MAX_SESSION + timedelta(minutes=1)
    assert console_login.refreshed_expiry("console", old, now + timedelta(seconds=30), now) == old + MAX_SESSION
    assert console_login.refreshed_expiry("console", now - MAX_SESSION, now + timedelta(seconds=1), now) is None


def test_sign_ups_are_limited_per_address_and_wrong_passwords_back_off(api_server):
    db = api_server.db
    for _ in range(2):
        console_login.sign_up(db, new_email(), PASSWORD, "198.51.100.7", per_hour=2)
    with pytest.raises(TooMany) as refused:
        console_login.sign_up(db, new_email(), PASSWORD, "198.51.100.7", per_hour=2)
    assert refused.value.retry_after > 0
    console_login.sign_up(db, new_email(), PASSWORD, "198.51.100.8", per_hour=2)  # another address is fine

    email = new_email()
    console_login.sign_up(db, email, PASSWORD, "198.51.100.9", per_hour=2)
    for _ in range(console_login.FREE_FAILURES["email"] + 1):
        with pytest.raises(WrongLogin):
            console_login.log_in(db, email, "not the password", "198.51.100.9")
    with pytest.raises(TooMany):  # locked for a while, even with the right password
        console_login.log_in(db, email, PASSWORD, "198.51.100.9")

