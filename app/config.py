"""Settings: every knob an operator can turn, read from the environment (prefix ``HITL_``) and ``.env``.

Only composition roots (the CLI, the API lifespan, the worker entry point) call `get_settings()`;
everything below receives the values it needs as arguments.
"""

from __future__ import annotations

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


class Settings(BaseSettings):
    """The service's settings; names match SPEC section 11 (flat, as operators type them)."""

    model_config = SettingsConfigDict(
        env_prefix="HITL_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./hitl.db"
    graphs: str = ""
    api_keys: SecretStr | None = None
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
