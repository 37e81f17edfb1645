"""Translate SQLAlchemy and driver errors into the application's error tree, at the boundary.

``db``, ``queue`` and ``checkpoint.sql`` run their statements inside ``wrap_db_errors()``, so
services and the API only ever see `app.errors.AppError` subclasses:

    connection refused / lost, pool timeout, database locked  ->  UnavailableError
    integrity (unique, foreign key, not null) violation       ->  ConflictError
    any other database error                                  ->  AppError
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from app.errors import AppError, ConflictError, UnavailableError

__all__ = ["UNAVAILABLE_ERRORS", "translate_db_error", "wrap_db_errors"]

#: Errors that mean "the database cannot serve us right now"; retrying later may succeed.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # pool checkout timeout
    OSError,  # connection refused / reset and timeouts, before the driver could wrap them
)

try:  # driver errors that escape SQLAlchemy's wrapping (raised while connecting)
    import asyncpg

    UNAVAILABLE_ERRORS += (
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
        asyncpg.InterfaceError,
    )
except ImportError:  # pragma: no cover - asyncpg is a hard dependency
    pass


def translate_db_error(exc: BaseException) -> AppError | None:
    """The AppError for a database error, or None when ``exc`` is not one."""
    if isinstance(exc, AppError):
        return None
    detail = _detail(exc)
    if isinstance(exc, UNAVAILABLE_ERRORS) or _means_unavailable(exc):
        return UnavailableError(detail=detail)
    if isinstance(exc, sa_exc.IntegrityError):
        return ConflictError("The change conflicts with stored data.", detail=detail)
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return AppError("Database error.", detail=detail)
    return None


@contextmanager
def wrap_db_errors() -> Iterator[None]:
    """Re-raise database errors as AppError subclasses (``raise ... from exc``)."""
    try:
        yield
    except Exception as exc:
        translated = translate_db_error(exc)
        if translated is None:
            raise
        raise translated from exc


#: SQLSTATE prefixes of "not now" conditions: connection exceptions (08), operator intervention such
#: as "the database system is starting up / shutting down" (57P), too many connections (53300).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53300")


def _means_unavailable(exc: BaseException) -> bool:
    """A driver error wrapped as a generic DBAPIError that still means "try again later"."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    seen: BaseException | None = getattr(exc, "orig", None) or exc.__cause__
    for _ in range(4):  # SQLAlchemy's adapted error -> the driver's error
        if seen is None:
            return False
        if isinstance(seen, UNAVAILABLE_ERRORS):
            return True
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(state, str) and state.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if "not currently accepting connections" in str(seen):  # 55000, while connecting
            return True
        seen = seen.__cause__
    return False


def _detail(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    source = orig if orig is not None else exc
    return f"{type(source).__name__}: {source}".strip()[:500]
