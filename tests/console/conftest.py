"""The console against the API tests' live servers (SQLite and PostgreSQL, in-process, with a
worker), in Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import secrets

import pytest

from tests.admin.conftest import chromium  # noqa: F401  (the module-scoped browser)
from tests.api.conftest import any_api_server, api_server, pg_api_server  # noqa: F401

PASSWORD = "purple elephant marches quietly"


def new_email() -> str:
    return f"c{secrets.token_hex(5)}@example.com"


@pytest.fixture
def tab(chromium):  # noqa: F811
    """A fresh, logged-out browser tab at desktop width."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def sign_up(page, server, email: str | None = None) -> str:
    """Sign up through the console's page; returns the e-mail address used."""
    email = email or new_email()
    page.goto(server.url + "/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_selector("h1:has-text('Linodes')")
    return email


def console_token(page) -> str:
    """The access token the console holds in the browser."""
    return page.evaluate("JSON.parse(localStorage.getItem('gpucloud.console')).token")
