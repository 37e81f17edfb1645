"""Settings: every knob an operator can turn, read from the environment (prefix ``HITL_``) and ``.env``.

Only composition roots (the CLI, the API lifespan, the worker entry point) call `get_settings()`;
everything below receives the values it needs as arguments.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def async_database_url(url: str) -> str:
    """Map a plain database URL (``postgresql://``, ``sqlite:///``) to its async driver's URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    return f"{ASYNC_DRIVERS.get(scheme, scheme)}://{rest}"


#: Names and tenants in ``HITL_API_KEYS``: what audit records and logs may show.
API_KEY_LABEL = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
#: Shorter secrets are refused: they are guessable, and usually a ``=`` read the wrong way.
MIN_API_KEY_LENGTH = 8


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One accepted API key: its name (the audit trail's ``answered_by``) and its tenant.

    ``tenant`` None is an operator key (sees every tenant). The secret never appears in a repr;
    ``digest`` (SHA-256) is what requests are compared against, in constant time.
    """

    name: str
    tenant: str | None
    key: bytes = field(repr=False)
    digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(self.key).digest())


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """Read ``HITL_API_KEYS``: comma-separated ``KEY``, ``NAME=KEY`` or ``NAME:TENANT=KEY``.

    Errors name the entry by position, never by its secret.
    """
    keys: list[ApiKey] = []
    tenants: dict[str, str | None] = {}
    for position, entry in enumerate((e.strip() for e in raw.split(",")), start=1):
        if not entry:
            continue
        label, sep, secret = entry.partition("=")
        if not sep:
            label, secret = f"key-{position}", entry
        name, colon, tenant = label.partition(":")
        where = f"HITL_API_KEYS entry {position}"
        # "name:" with no tenant is refused, not read as an operator key (which sees all).
        if not API_KEY_LABEL.match(name) or (colon and not API_KEY_LABEL.match(tenant)):
            raise ValueError(
                f"{where}: write KEY, NAME=KEY or NAME:TENANT=KEY; names and tenants use "
                "letters, digits, '_', '.' and '-' (at most 64)"
            )
        if len(secret) < MIN_API_KEY_LENGTH:
            raise ValueError(
                f"{where}: the key is shorter than {MIN_API_KEY_LENGTH} characters (a key that "
                "contains '=' needs a name: NAME=KEY)"
            )
        key = ApiKey(name, tenant or None, secret.encode())
        if any(k.key == key.key for k in keys):
            raise ValueError(f"{where}: the same key is listed twice")
        if tenants.setdefault(name, key.tenant) != key.tenant:
            raise ValueError(f"{where}: the key name {name!r} is bound to two tenants")
        keys.append(key)
    return tuple(keys)


class Settings(BaseSettings):
    """The service's settings; names match SPEC section 11 (flat, as operators type them)."""

    model_config = SettingsConfigDict(
        env_prefix="HITL_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,  # a bad HITL_API_KEYS must not print the keys
    )

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./hitl.db"
    graphs: str = ""
    api_keys: SecretStr | None = None
    """Comma-separated API keys; unset or empty: no authentication (development only).

    Each entry is ``KEY``, ``NAME=KEY`` or ``NAME:TENANT=KEY``. NAME is what the audit trail
    records as ``answered_by`` (an unnamed key is ``key-<position>``); a key with a TENANT
    creates threads of that tenant and sees only them (others are 404); a key without one is an
    operator key that sees everything. Keys have at least 8 characters; a key containing ``=``
    must be named. Several keys may share a name (rotation), not a key.
    """
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    worker_concurrency: int = Field(default=4, ge=1, le=256)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    wait_max_seconds: float = Field(default=30.0, ge=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    public_url: str = "http://127.0.0.1:8000"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_api_keys(value.get_secret_value())
        return value

    @property
    def api_key_entries(self) -> tuple[ApiKey, ...]:
        """The parsed ``api_keys`` (empty: authentication is off)."""
        return parse_api_keys(self.api_keys.get_secret_value()) if self.api_keys else ()

    @property
    def async_database_url(self) -> str:
        return async_database_url(self.database_url)

    @property
    def effective_heartbeat_seconds(self) -> float:
        """Heartbeat often enough that two missed beats still leave the lease valid."""
        return self.heartbeat_seconds or max(self.lease_seconds / 3, 0.05)


@lru_cache
def get_settings() -> Settings:
    return Settings()
