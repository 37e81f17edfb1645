"""Optional API keys (``HITL_API_KEYS``): with keys configured, every route but ``/healthz``
needs ``Authorization: Bearer <key>``.

Keys are compared in constant time. Tenants (keys bound to a tenant that sees only its own
threads) are not implemented yet: every valid key sees everything.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from app.config import Settings
from app.errors import AuthenticationError


def configured_keys(settings: Settings) -> tuple[bytes, ...]:
    """The accepted keys (empty: authentication is off)."""
    if settings.api_keys is None:
        return ()
    raw = settings.api_keys.get_secret_value()
    return tuple(k.strip().encode() for k in raw.split(",") if k.strip())


async def require_api_key(request: Request) -> None:
    """Route dependency: pass when no keys are configured or the bearer key is one of them."""
    keys: tuple[bytes, ...] = request.app.state.api_keys
    if not keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    presented = token.strip().encode()
    valid = False
    for key in keys:  # no early exit: the time taken does not tell which key nearly matched
        valid |= hmac.compare_digest(presented, key)
    if scheme.lower() != "bearer" or not presented or not valid:
        raise AuthenticationError()
