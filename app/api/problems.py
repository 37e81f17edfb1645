"""The one mapping from errors to HTTP responses: RFC 9457 ``application/problem+json``.

Routes never build error responses; they let domain errors propagate and these handlers render
them. The status and code of an exception come from `PROBLEMS`, looked up along the exception's MRO
(as Starlette resolves handlers), so a new leaf error inherits its family's status. Context kept on
an `AppError` (``thread_id``, ``pending_ids``, ``errors``...) becomes extra members of the body.
Anything unexpected is logged and answered with a 500 that hides internals.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import errors
from app.api.context import current_request_id
from app.graph import errors as graph_errors
from app.services.threads import ThreadExistsError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

#: status and code per error class; resolved along the MRO, so leaves inherit their family's entry.
PROBLEMS: dict[type[BaseException], tuple[int, str]] = {
    # A bare AppError is an unexpected failure below (e.g. a database error that is neither an
    # outage nor a conflict): a 500, logged with its context.
    errors.AppError: (500, "internal_error"),
    errors.NotFoundError: (404, "not_found"),
    errors.ThreadNotFoundError: (404, "thread_not_found"),
    errors.InterruptNotFoundError: (404, "interrupt_not_found"),
    errors.GraphNotFoundError: (404, "graph_not_found"),
    errors.ConflictError: (409, "conflict"),
    errors.ThreadNotInterruptedError: (409, "thread_not_interrupted"),
    errors.InterruptNotPendingError: (409, "interrupt_not_pending"),
    errors.IdempotencyKeyReusedError: (409, "idempotency_key_reused"),
    errors.ThreadBusyError: (409, "thread_busy"),
    ThreadExistsError: (409, "thread_exists"),
    errors.InvalidInputError: (422, "invalid_input"),
    errors.InvalidAnswerError: (422, "invalid_answer"),
    errors.AmbiguousResumeError: (422, "ambiguous_resume"),
    errors.AuthenticationError: (401, "unauthorized"),
    errors.UnavailableError: (503, "unavailable"),
    errors.LeaseLostError: (503, "unavailable"),
    graph_errors.GraphError: (422, "graph_error"),
    graph_errors.InvalidResumeError: (422, "invalid_resume"),
    graph_errors.InvalidConfigError: (404, "checkpoint_not_found"),
}

#: Starlette's own errors (unknown route, wrong method) by status.
HTTP_CODES = {404: "route_not_found", 405: "method_not_allowed", 413: "payload_too_large"}

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def lookup(exc: BaseException) -> tuple[int, str]:
    """The (status, code) of an exception: the first class of its MRO that `PROBLEMS` names."""
    for cls in type(exc).__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]
    return 500, "internal_error"


def problem(
    request: Request | None,
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """Build one problem response; every error body of the service goes through here."""
    body: dict[str, Any] = {
        "type": f"urn:hitl:problem:{code.replace('_', '-')}",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path if request is not None else None,
        "code": code,
        "request_id": current_request_id(),
    }
    body.update({k: v for k, v in (extra or {}).items() if k not in body})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def _title_of(exc: BaseException, status: int) -> str:
    doc = (type(exc).__doc__ or "").strip().splitlines()
    if isinstance(exc, errors.AppError | graph_errors.GraphError) and doc:
        return doc[0].rstrip(".")
    return _TITLES.get(status, "Error")


async def handle_app_error(request: Request, exc: Exception) -> JSONResponse:
    status, code = lookup(exc)
    if status >= 500 and not isinstance(exc, errors.UnavailableError | errors.LeaseLostError):
        log.error("%s: %s %s", type(exc).__name__, exc, getattr(exc, "context", {}))
        return await handle_unexpected(request, exc)
    context: dict[str, Any] = dict(getattr(exc, "context", {}) or {})
    if isinstance(exc, graph_errors.InvalidResumeError):
        context = {
            "reason": getattr(exc, "reason", None),
            "pending_ids": list(getattr(exc, "pending_ids", ()) or ()),
            "interrupt_ids": list(getattr(exc, "interrupt_ids", ()) or ()),
            "errors": list(getattr(exc, "errors", ()) or ()),
        }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        # Driver details help operators, not clients: log them, answer with the short message.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, context)
        context, headers = {}, {"Retry-After": "1"}
    detail = getattr(exc, "message", None) or str(exc) or _title_of(exc, status)
    return problem(
        request,
        status,
        code,
        detail,
        title=_title_of(exc, status),
        headers=headers,
        extra=_jsonable(context),
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        item: dict[str, Any] = {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        if err.get("type") == "json_invalid" and err.get("ctx"):
            item["msg"] = f"Malformed JSON: {_jsonable(err['ctx'].get('error'))}"
        out.append(item)
    return out


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = _validation_errors(exc)
    malformed = any(i["type"] == "json_invalid" for i in items)
    detail = (
        "The request body is not valid JSON."
        if malformed
        else "; ".join(f"{'.'.join(i['loc'])}: {i['msg']}" for i in items[:5])
    )
    return problem(
        request,
        422,
        "malformed_json" if malformed else "validation_error",
        detail,
        title="Request validation failed",
        extra={"errors": items},
    )


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = HTTP_CODES.get(status, re.sub(r"\W+", "_", _TITLES.get(status, "error").lower()))
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(status, "Error")
    if status == 404 and detail == "Not Found":
        detail = f"No route matches {request.method} {request.url.path}."
    return problem(request, status, code, detail, headers=exc.headers)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception(
        "unhandled error on %s %s (request %s)",
        request.method,
        request.url.path,
        current_request_id(),
        exc_info=exc,
    )
    return problem(
        request,
        500,
        "internal_error",
        "An unexpected error occurred; it has been logged with this request id.",
    )


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (MRO lookup makes one handler per root enough)."""
    app.add_exception_handler(errors.AppError, handle_app_error)
    app.add_exception_handler(graph_errors.GraphError, handle_app_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)
