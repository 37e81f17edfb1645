"""The inbox page for the humans: one static HTML file, served at ``/`` and ``/inbox``.

The page needs no key to load (it holds no data); everything it shows comes from the public API,
called from the browser with the key the reviewer enters. Its inline script and style are pinned
by hash in a strict Content-Security-Policy, so nothing else can run in the page.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["inbox"], include_in_schema=False)

_INLINE = re.compile(rb"<(script|style)>(.*?)</\1>", re.DOTALL)


def _sha256(body: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"


@cache
def page() -> tuple[bytes, dict[str, str]]:
    """The page's bytes and its response headers (read once, from the installed package)."""
    html = (resources.files("app.api") / "static" / "inbox.html").read_bytes()
    hashes: dict[bytes, list[str]] = {b"script": [], b"style": []}
    for kind, body in _INLINE.findall(html):
        hashes[kind].append(_sha256(body))
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {' '.join(hashes[b'script'])}",
            f"style-src {' '.join(hashes[b'style'])}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    headers = {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return html, headers


@router.get("/", response_class=HTMLResponse)
async def inbox_root() -> HTMLResponse:
    """The inbox page."""
    html, headers = page()
    return HTMLResponse(html, headers=headers)


@router.get("/inbox", response_class=HTMLResponse)
async def inbox_page() -> HTMLResponse:
    """The inbox page."""
    html, headers = page()
    return HTMLResponse(html, headers=headers)
