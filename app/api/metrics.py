"""Prometheus metrics of the API, in a registry per app (so tests can build many apps)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from app.errors import ConflictError, InvalidInputError, NotFoundError

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ApiMetrics:
    """Request counts and latencies by route template, and resume outcomes."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "hitl_http_requests",
            "HTTP requests served, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hitl_http_request_duration_seconds",
            "Time to serve an HTTP request (including ?wait=true waits).",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.threads_started = Counter(
            "hitl_threads_started",
            "Threads created through POST /threads, by graph.",
            ["graph"],
            registry=self.registry,
        )
        self.resumes = Counter(
            "hitl_resumes",
            "Resume requests by outcome (accepted, conflict, invalid, not_found, error).",
            ["outcome"],
            registry=self.registry,
        )
        self.answers = Counter(
            "hitl_interrupts_answered",
            "Interrupts answered through the API.",
            registry=self.registry,
        )

        #: (method, route template, status) -> its counter and histogram children: `labels`
        #: validates and locks on every call, and the label sets are few (route templates).
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            if len(self._request_children) < 1000:  # odd methods and statuses stay uncached
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    @contextmanager
    def count_resume(self) -> Iterator[None]:
        """Count one resume request by how it ended (the exception, if any, propagates)."""
        try:
            yield
        except NotFoundError:
            self.resumes.labels("not_found").inc()
            raise
        except ConflictError:
            self.resumes.labels("conflict").inc()
            raise
        except InvalidInputError:
            self.resumes.labels("invalid").inc()
            raise
        except Exception:
            self.resumes.labels("error").inc()
            raise
        self.resumes.labels("accepted").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
