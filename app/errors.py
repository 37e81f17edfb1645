"""The application's error tree (everything outside the engine). Bottom layer: imports nothing from app.

    AppError
    ├── NotFoundError            ThreadNotFoundError, InterruptNotFoundError, GraphNotFoundError
    ├── ConflictError            ThreadNotInterruptedError, InterruptNotPendingError,
    │                            IdempotencyKeyReusedError, ThreadBusyError
    ├── InvalidInputError        InvalidAnswerError, AmbiguousResumeError
    ├── UnavailableError         (the database cannot be reached)
    ├── AuthenticationError      (API keys are configured and the request has no valid one)
    └── LeaseLostError           (a worker no longer owns its run; it must write nothing)

The class docstring is the default message; context is kept as attributes, so the HTTP layer
(`app/api/problems.py`, the one place that maps errors to responses) can render structured fields.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Something went wrong."""

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.message = message or (self.__doc__ or type(self).__name__).strip()
        self.context = context
        for key, value in context.items():
            setattr(self, key, value)
        super().__init__(self.message)


class NotFoundError(AppError):
    """The resource does not exist."""


class ThreadNotFoundError(NotFoundError):
    """No such thread."""


class InterruptNotFoundError(NotFoundError):
    """No such interrupt."""


class GraphNotFoundError(NotFoundError):
    """No graph is registered under that name."""


class ConflictError(AppError):
    """The request conflicts with the current state of the resource."""


class ThreadNotInterruptedError(ConflictError):
    """The thread is not waiting for an answer."""


class InterruptNotPendingError(ConflictError):
    """The interrupt is not pending: it was answered, expired or cancelled."""


class IdempotencyKeyReusedError(ConflictError):
    """This Idempotency-Key was already used with a different request."""


class ThreadBusyError(ConflictError):
    """The thread cannot take this action in its current status."""


class InvalidInputError(AppError):
    """The request is not valid."""


class InvalidAnswerError(InvalidInputError):
    """The answer does not satisfy the interrupt's schema."""


class AmbiguousResumeError(InvalidInputError):
    """Several interrupts are pending: answer them by id."""


class AuthenticationError(AppError):
    """A valid API key is required: send ``Authorization: Bearer <key>``."""


class UnavailableError(AppError):
    """The database is unavailable; try again shortly."""


class LeaseLostError(AppError):
    """This worker no longer holds the run's lease; it must write nothing."""
