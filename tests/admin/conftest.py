"""A real `gpucloud serve --demo` per test module, an httpx client that logs in to its admin
interface, and Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.live import LiveServer, run_cli, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SUPPORT_USER, SUPPORT_PASSWORD = "helpdesk", "support-password-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("admin")
    live = start_server(data_dir, "--demo")
    try:
        run_cli(data_dir, "admin", "create", SUPPORT_USER, "--role", "support", "--password", SUPPORT_PASSWORD)
        yield live
    finally:
        live.stop()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def admin_client(server: LiveServer, username: str | None = None, password: str | None = None) -> httpx.Client:
    """An httpx client logged in to /admin (as the demo's admin unless told otherwise)."""
    demo = server.demo()
    client = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
    form = client.get("/admin/login")
    response = client.post("/admin/login", data={
        "username": username or demo["admin_user"], "password": password or demo["admin_password"],
        "csrf_token": csrf_of(form.text), "next": "/admin/"})
    assert response.status_code == 303, response.text
    return client


@pytest.fixture(scope="module")
def chromium():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (the browser tests need it; "
                    "no browser is downloaded)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _tab(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    return context, context.new_page()


@pytest.fixture
def page(chromium, server):
    """A fresh, logged-out browser tab."""
    context, tab = _tab(chromium)
    yield tab
    context.close()


@pytest.fixture(scope="module")
def admin_page(chromium, server):
    """A browser tab logged in as the demo's admin, shared by a module's tests."""
    context, tab = _tab(chromium)
    demo = server.demo()
    tab.goto(server.url + "/admin/login")
    tab.fill("input[name=username]", demo["admin_user"])
    tab.fill("input[name=password]", demo["admin_password"])
    tab.click("button[type=submit]")
    tab.wait_for_selector("h1:has-text('Inventory')")
    yield tab
    context.close()
