"""What the client raises: one error per kind of problem response, all under `HitlError`.

    HitlError                   status, code, detail, problem (the parsed problem+json body)
    ├── AuthError               401, 403: no key, a wrong key
    ├── NotFoundError           404: unknown thread, interrupt or graph (or another tenant's)
    ├── ConflictError           409: not waiting, answered elsewhere first, key reused
    ├── PayloadTooLargeError    413
    ├── ValidationError         422: ``errors`` lists what is wrong (an answer that fails its schema)
    ├── UnavailableError        503: the database cannot be reached; try again
    ├── ServerError             other 5xx
    ├── TransportError          the service could not be reached at all (no status)
    └── WaitTimeoutError        `wait` ran out of time; ``thread`` is the last state seen

The mapping is by status only, so the client keeps working when the service adds new codes; the
service's ``code`` (``interrupt_not_pending``, ``invalid_answer``...) is kept for finer checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.client.models import Thread


class HitlError(Exception):
    """The service refused or failed a request."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail or (type(self).__doc__ or "").strip()
        self.problem: dict[str, Any] = problem or {}
        super().__init__(self.detail)

    @property
    def request_id(self) -> str | None:
        """The service's request id, to find the request in its logs."""
        value = self.problem.get("request_id")
        return value if isinstance(value, str) else None

    def __str__(self) -> str:
        prefix = f"{self.status} {self.code}: " if self.status and self.code else ""
        return f"{prefix}{self.detail}"


class AuthError(HitlError):
    """The request needs a valid API key."""


class NotFoundError(HitlError):
    """No such thread, interrupt or graph."""


class ConflictError(HitlError):
    """The request conflicts with the current state (e.g. the interrupt was answered already)."""


class PayloadTooLargeError(HitlError):
    """The request body is larger than the service accepts."""


class ValidationError(HitlError):
    """The request, or the answer, is not valid."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Each problem found: ``loc`` (a path), ``msg``, ``type`` (and ``interrupt_id``)."""
        items = self.problem.get("errors")
        return [e for e in items if isinstance(e, dict)] if isinstance(items, list) else []


class UnavailableError(HitlError):
    """The service cannot reach its database right now; retry shortly."""


class ServerError(HitlError):
    """The service failed unexpectedly."""


class TransportError(HitlError):
    """The service could not be reached."""


class WaitTimeoutError(HitlError, TimeoutError):
    """The thread did not settle in time."""

    def __init__(self, detail: str, thread: Thread) -> None:
        super().__init__(detail)
        self.thread = thread


_BY_STATUS: dict[int, type[HitlError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    503: UnavailableError,
}


def error_for(status: int, body: Any, text: str = "") -> HitlError:
    """The typed error for a failed response; ``body`` is its parsed JSON (anything, or None)."""
    problem = body if isinstance(body, dict) else {}
    detail = problem.get("detail") or problem.get("title") or text.strip()[:500] or None
    code = problem.get("code")
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else HitlError)
    return cls(
        str(detail) if detail is not None else None,
        status=status,
        code=code if isinstance(code, str) else None,
        problem=problem,
    )
