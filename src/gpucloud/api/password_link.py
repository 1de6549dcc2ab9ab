"""The page a customer opens once to see the root password an operator booted their instance
with (services.password_links): a plain page, never cached, the same answer for a link
opened before, lapsed or unknown."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from gpucloud.services import password_links

router = APIRouter()

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Root password · gpucloud</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<style>body{{font:16px system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1f2937}}
code{{font-size:1.2rem;background:#f3f4f6;padding:.4rem .6rem;border-radius:6px;display:inline-block}}</style>
</head><body><h1>{title}</h1>{body}</body></html>"""


@router.get(password_links.PATH + "{token}", include_in_schema=False)
def open_password_link(request: Request, token: str) -> HTMLResponse:
    opened = password_links.open_link(request.app.state.db, token)
    if opened is None or opened.password is None:
        body = ("<p data-password-gone>This link shows a password only once, and it has been opened already "
                "(or it lapsed). Ask the operator for a new root password, or reset it from the API.</p>")
        return _page("Root password: already shown", body, 410)
    body = (f"<p>The root password of your instance <strong>{escape(opened.label)}</strong> "
            f"(#{opened.instance_id}):</p><p><code data-password>{escape(opened.password)}</code></p>"
            "<p>This page will not show it again: keep it in your password manager now.</p>")
    return _page("Root password", body, 200)


def _page(title: str, body: str, status: int) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=escape(title), body=body), status_code=status,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
