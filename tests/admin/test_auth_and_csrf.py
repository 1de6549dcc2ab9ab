"""Login, sessions, CSRF and roles, checked over plain HTTP against a real `gpucloud serve`.
Also: every refused change says why and changes nothing."""

from __future__ import annotations

import json
import stat

import httpx

from tests.admin.conftest import SUPPORT_PASSWORD, SUPPORT_USER, admin_client, csrf_of
from tests.live import run_cli

HOST = "ap-west-rtx6000-2s4g-01"
GPU = "0000:3b:00.0"


def _host(server, name=HOST) -> dict:
    return json.loads(run_cli(server.data_dir, "host", "show", name, "--json").stdout)


def _gpu_status(server, address=GPU) -> str:
    return next(g["status"] for n in _host(server)["nodes"] for g in n["gpus"] if g["address"] == address)


def test_pages_need_a_session(server):
    anonymous = httpx.Client(base_url=server.url, follow_redirects=False)
    for path in ("/admin/", "/admin/hosts", f"/admin/hosts/{HOST}", "/admin/accounts/1", "/admin/jobs",
                 "/admin/flags", "/admin/instances?q=x"):
        response = anonymous.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=/admin/"), path
    assert anonymous.get("/admin").headers["location"] == "/admin/"
    forger = httpx.Client(base_url=server.url, follow_redirects=False,
                          cookies={"gpucloud_admin": "eyJjIjoieCIsInUiOiJhZG1pbiJ9.AAAA.AAAA"})
    assert forger.get("/admin/").status_code == 303


def test_a_wrong_password_or_user_is_refused_without_saying_which(server):
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    token = csrf_of(client.get("/admin/login").text)
    answers = []
    for username, password in (("admin", "not-the-password"), ("nobody", server.demo()["admin_password"]),
                               ("", "")):
        response = client.post("/admin/login", data={"username": username, "password": password,
                                                     "csrf_token": token})
        answers.append((response.status_code, "Wrong username or password." in response.text))
    assert answers == [(401, True)] * 3
    assert client.get("/admin/").status_code == 303  # still not logged in


def test_the_session_cookie_is_httponly_strict_scoped_and_the_secret_private(server):
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    token = csrf_of(client.get("/admin/login").text)
    response = client.post("/admin/login", data={"username": "admin", "password": server.demo()["admin_password"],
                                                 "csrf_token": token, "next": "https://evil.example/"})
    assert response.headers["location"] == "/admin/"  # never an open redirect
    cookie = response.headers["set-cookie"].lower()
    for part in ("httponly", "samesite=strict", "path=/admin", "max-age=43200"):
        assert part in cookie
    secret = server.data_dir / "admin-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert client.get("/admin/").status_code == 200


def test_the_login_form_needs_its_own_csrf_token(server):
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    client.get("/admin/login")
    response = client.post("/admin/login", data={"username": "admin", "password": server.demo()["admin_password"]})
    assert response.status_code == 403 and "expired" in response.text
    assert client.get("/admin/").status_code == 303


def test_posts_need_a_session_and_its_csrf_token(server):
    change = {"address": GPU, "status": "reserved", "why": "csrf test"}
    anonymous = httpx.Client(base_url=server.url, follow_redirects=False)
    assert anonymous.post(f"/admin/hosts/{HOST}/gpu", data=change).status_code == 403

    client = admin_client(server)
    token = csrf_of(client.get(f"/admin/hosts/{HOST}").text)
    assert client.post(f"/admin/hosts/{HOST}/gpu", data=change).status_code == 403
    assert client.post(f"/admin/hosts/{HOST}/gpu", data={**change, "csrf_token": "forged"}).status_code == 403
    other = admin_client(server)  # another session's token is no good either
    assert client.post(f"/admin/hosts/{HOST}/gpu",
                       data={**change, "csrf_token": csrf_of(other.get("/admin/").text)}).status_code == 403
    assert _gpu_status(server) == "available"

    done = client.post(f"/admin/hosts/{HOST}/gpu", data={**change, "csrf_token": token})
    assert (done.status_code, done.headers["location"]) == (303, f"/admin/hosts/{HOST}")
    assert _gpu_status(server) == "reserved"
    back = client.post(f"/admin/hosts/{HOST}/gpu", data={"address": GPU, "status": "available", "why": "done"},
                       headers={"X-CSRF-Token": token})
    assert back.status_code == 303 and _gpu_status(server) == "available"


def test_support_sees_everything_and_changes_nothing(server):
    support = admin_client(server, SUPPORT_USER, SUPPORT_PASSWORD)
    host_page = support.get(f"/admin/hosts/{HOST}")
    assert host_page.status_code == 200 and "data-topology" in host_page.text
    assert "data-host-actions" not in host_page.text and 'action="/admin/hosts/' not in host_page.text
    for path in ("/admin/", "/admin/hosts", "/admin/accounts/2", "/admin/jobs", "/admin/flags", "/admin/instances"):
        assert support.get(path).status_code == 200, path
    assert "data-boot-form" not in support.get("/admin/accounts/2").text

    token = csrf_of(host_page.text)  # a valid session and token: the role alone refuses
    refused = support.post(f"/admin/hosts/{HOST}/status", data={"action": "drain", "why": "x", "csrf_token": token})
    assert refused.status_code == 403 and "read-only support role" in refused.text
    flag = support.post("/admin/flags/gpu-instances/state", data={"state": "on", "why": "x", "csrf_token": token})
    assert flag.status_code == 403
    assert _host(server)["status"] == "active"
    assert support.post("/admin/logout", data={"csrf_token": token}).status_code == 303  # leaving is allowed


def test_logging_out_ends_the_session(server):
    client = admin_client(server)
    token = csrf_of(client.get("/admin/").text)
    assert client.post("/admin/logout").status_code == 403  # logging someone out needs the token too
    response = client.post("/admin/logout", data={"csrf_token": token})
    assert (response.status_code, response.headers["location"]) == (303, "/admin/login")
    assert client.get("/admin/").status_code == 303


def _follow(client, response) -> str:
    assert response.status_code == 303
    return client.get(response.headers["location"]).text


def test_bad_changes_say_why_and_change_nothing(server):
    client = admin_client(server)
    token = csrf_of(client.get("/admin/").text)

    def post(path, **data):
        return _follow(client, client.post(path, data={**data, "csrf_token": token}))

    assert "no host nowhere-01" in post("/admin/hosts/nowhere-01/status", action="drain", why="test")
    assert "Say why" in post(f"/admin/hosts/{HOST}/status", action="drain", why="  ")
    assert "say why the GPU is taken out of service" in post(f"/admin/hosts/{HOST}/gpu", address=GPU,
                                                             status="faulty", why="")
    assert "has no GPU 0000:ff:00.0" in post(f"/admin/hosts/{HOST}/gpu", address="0000:ff:00.0",
                                              status="faulty", why="x")
    assert "only a down host can be declared lost" in post(f"/admin/hosts/{HOST}/lost", why="gone", confirm=HOST)
    assert "Say why the flag changes" in post("/admin/flags/gpu-instances/state", state="on", why="")
    assert "percentage" in post("/admin/flags/gpu-instances/state", state="percent", percent="lots", why="x")
    assert "unknown flag" in post("/admin/flags/no-such-flag/state", state="on", why="x")
    assert "no account nobody@example.com" in post("/admin/flags/gpu-instances/overrides",
                                                   account="nobody@example.com", effect="allow", why="x")
    assert "must be in the future" in post("/admin/flags/gpu-instances/overrides", account="1", effect="allow",
                                           until="2001-01-01T00:00", why="x")
    assert "job 99999 not found" in post("/admin/jobs/99999/retry")
    refused = client.post("/admin/accounts/2/boot", data={"plan": "g1-gpu-rtx6000-4", "region": "eu-central",
                                                           "csrf_token": token})
    assert refused.status_code == 400 and "Nothing was created" in refused.text  # the form, with what was chosen

    assert _host(server)["status"] == "active" and _gpu_status(server) == "available"
    flags = json.loads(run_cli(server.data_dir, "flags", "list", "--json").stdout)
    assert next(f for f in flags if f["key"] == "gpu-instances")["state"] == "staff"
    assert json.loads(run_cli(server.data_dir, "flags", "history", "--json").stdout)[0]["actor"] == "demo"
    assert client.get("/admin/instances/424242").status_code == 404
    assert client.get("/admin/hosts/nowhere-01").status_code == 404


def test_the_server_samples_capacity_while_it_serves(server):
    """The sampler runs inside `gpucloud serve`'s lifespan and records the period it starts in."""
    from datetime import timedelta

    from gpucloud.clock import utcnow
    from gpucloud.services.capacity_samples import history
    from gpucloud.store.db import Database

    db = Database(f"sqlite:///{server.data_dir / 'gpucloud.sqlite'}")
    try:
        points = history(db, utcnow() - timedelta(hours=1))
    finally:
        db.dispose()
    total = sum(r["total"] for r in json.loads(run_cli(server.data_dir, "capacity", "--json").stdout))
    assert len(points) >= 1 and points[0]["total"] == total
