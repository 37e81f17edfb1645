"""Optional API keys (``HITL_API_KEYS``) and the principal a request acts as.

With keys configured, every route but ``/healthz`` (and the inbox page's static file) needs
``Authorization: Bearer <key>``. The presented key's SHA-256 is compared with every configured
key's in constant time (no early exit, equal lengths), so timing tells nothing about which key
nearly matched. Keys are never logged, echoed or stored: only their names are.

The principal is the key's name and tenant. A tenant key sees only its tenant's threads and
interrupts (the services are scoped in `app.api.deps`); an operator key (no tenant), or any
request while keys are off, sees everything.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request

from app.config import ApiKey, Settings
from app.errors import AuthenticationError

__all__ = ["ANONYMOUS", "Principal", "configured_keys", "require_api_key"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's name (None when keys are off) and its tenant (None: all)."""

    name: str | None
    tenant: str | None

    @property
    def is_operator(self) -> bool:
        return self.tenant is None

    def audit_name(self, claimed: str | None) -> str | None:
        """Who an answer is recorded as: the key's name; without keys, what the body claims
        (nobody is authenticated then, so the claim is all there is)."""
        return self.name if self.name is not None else claimed


#: The caller when no keys are configured: unnamed, sees everything.
ANONYMOUS = Principal(name=None, tenant=None)


def configured_keys(settings: Settings) -> tuple[ApiKey, ...]:
    """The accepted keys, parsed once at startup (empty: authentication is off)."""
    return settings.api_key_entries


def authenticate(keys: tuple[ApiKey, ...], authorization: str) -> Principal:
    """The principal of an ``Authorization`` header value; AuthenticationError when none."""
    if not keys:
        return ANONYMOUS
    scheme, _, token = authorization.partition(" ")
    digest = hashlib.sha256(token.strip().encode()).digest()
    found: ApiKey | None = None
    for key in keys:  # every key, every time: the time taken does not depend on the match
        if hmac.compare_digest(digest, key.digest):
            found = key
    if scheme.lower() != "bearer" or not token.strip() or found is None:
        raise AuthenticationError()
    return Principal(name=found.name, tenant=found.tenant)


async def require_api_key(request: Request) -> Principal:
    """Route dependency: the calling principal (FastAPI runs it once per request)."""
    keys: tuple[ApiKey, ...] = request.app.state.api_keys
    return authenticate(keys, request.headers.get("authorization", ""))
