"""`HitlClient`: the blocking client. A thin driver of `app.client.protocol` flows over httpx."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from app.client import protocol as p
from app.client.models import Checkpoint, Event, Graph, Interrupt, Page, Thread
from app.client.sse import SSEDecoder

T = TypeVar("T")


class HitlClient:
    """Talk to a hitl service: start threads, read the inbox, answer, wait, follow events.

    ``api_key`` is sent as ``Authorization: Bearer``. Failed calls raise `HitlError` subclasses
    (`NotFoundError`, `ConflictError`, `ValidationError`...). Use it as a context manager, or call
    `close`. ``transport`` is handed to httpx (e.g. ``httpx.ASGITransport`` for in-process use).
    """

    def __init__(
        self,
        base_url: str = p.DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout: float | None = p.DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        options = p.client_options(base_url, api_key, timeout, headers)
        self._http = httpx.Client(transport=transport, **options)

    # --- driving flows ------------------------------------------------------------------

    def _send(self, call: p.Call) -> httpx.Response:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=call.headers
            )
        except httpx.TransportError as exc:
            raise p.transport_error(exc, self._http.base_url) from exc
        return p.checked(response)

    def _run(self, flow: p.Flow[T]) -> T:
        reply: httpx.Response | None = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as done:
                result: T = done.value
                return result
            if isinstance(step, p.Sleep):
                time.sleep(step.seconds)
                reply = None
            else:
                reply = self._send(step)

    @staticmethod
    def _pages(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            page = fetch(cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def _events(self, call: p.Call) -> Iterator[Event]:
        decoder = SSEDecoder(call.headers.get("Last-Event-ID"))
        try:
            with self._http.stream(
                call.method, call.path, headers=call.headers, timeout=httpx.Timeout(None)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    p.checked(response)
                for line in response.iter_lines():
                    if (event := decoder.feed(line)) is not None:
                        yield event
        except httpx.TransportError as exc:
            raise p.transport_error(exc, self._http.base_url) from exc

    # --- threads ------------------------------------------------------------------------

    def start(
        self,
        graph: str,
        input: Any = None,
        *,
        thread_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        webhook: str | None = None,
        wait: bool = False,
        idempotency_key: str | None = None,
    ) -> Thread:
        """Start a thread of ``graph`` (the same ``thread_id`` again returns the existing one)."""
        return self._run(
            p.start(
                graph,
                input,
                thread_id=thread_id,
                metadata=metadata,
                webhook=webhook,
                wait=wait,
                idempotency_key=idempotency_key,
            )
        )

    def get(self, thread_id: str) -> Thread:
        """One thread."""
        return self._run(p.get(thread_id))

    def list(
        self,
        *,
        status: str | None = None,
        graph: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Thread]:
        """One page of threads, newest first."""
        return self._run(
            p.list_threads(
                status=status, graph=graph, metadata=metadata, limit=limit, cursor=cursor
            )
        )

    def iter_threads(
        self,
        *,
        status: str | None = None,
        graph: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        page_size: int | None = None,
    ) -> Iterator[Thread]:
        """Every matching thread, newest first, fetching pages as needed."""
        return self._pages(
            lambda cursor: self.list(
                status=status, graph=graph, metadata=metadata, limit=page_size, cursor=cursor
            )
        )

    def resume(
        self,
        thread_id: str,
        value: Any = p.MISSING,
        *,
        values: Mapping[str, Any] | None = None,
        answered_by: str | None = None,
        wait: bool = False,
        idempotency_key: str | None = None,
    ) -> Thread:
        """Answer the thread: ``value`` (one interrupt pending) or ``values`` by interrupt id."""
        return self._run(
            p.resume(
                thread_id,
                value,
                values,
                answered_by=answered_by,
                wait=wait,
                idempotency_key=idempotency_key,
            )
        )

    def wait(self, thread_id: str, timeout: float = 30.0, *, interval: float = 1.0) -> Thread:
        """The thread once settled; `WaitTimeoutError` after ``timeout`` seconds."""
        return self._run(p.wait(thread_id, timeout, interval))

    def history(
        self, thread_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Checkpoint]:
        """The thread's checkpoints, newest first."""
        return self._run(p.history(thread_id, limit=limit, cursor=cursor))

    def cancel(self, thread_id: str) -> Thread:
        """Cancel the thread: pending questions are withdrawn, nothing more runs."""
        return self._run(p.cancel(thread_id))

    def delete(self, thread_id: str) -> None:
        """Delete the thread and everything it stored."""
        self._run(p.delete(thread_id))

    def stream(self, thread_id: str, *, last_event_id: str | None = None) -> Iterator[Event]:
        """The thread's events as they happen (``last_event_id`` resumes after a disconnect)."""
        return self._events(p.stream_call(thread_id, last_event_id))

    # --- the inbox ----------------------------------------------------------------------

    def interrupts(
        self,
        *,
        status: str | None = None,
        graph: str | None = None,
        node: str | None = None,
        thread_id: str | None = None,
        older_than: datetime | None = None,
        expires_before: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Interrupt]:
        """One page of the inbox, newest first (pending unless ``status`` says otherwise)."""
        return self._run(
            p.list_interrupts(
                status=status,
                graph=graph,
                node=node,
                thread_id=thread_id,
                older_than=older_than,
                expires_before=expires_before,
                limit=limit,
                cursor=cursor,
            )
        )

    def iter_interrupts(
        self,
        *,
        status: str | None = None,
        graph: str | None = None,
        node: str | None = None,
        thread_id: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Interrupt]:
        """Every matching interrupt, newest first, fetching pages as needed."""
        return self._pages(
            lambda cursor: self.interrupts(
                status=status,
                graph=graph,
                node=node,
                thread_id=thread_id,
                limit=page_size,
                cursor=cursor,
            )
        )

    def interrupt(self, interrupt_id: str) -> Interrupt:
        """One interrupt; once answered, also who answered, when, and the answer."""
        return self._run(p.get_interrupt(interrupt_id))

    def resume_interrupt(
        self,
        interrupt_id: str,
        value: Any,
        *,
        answered_by: str | None = None,
        wait: bool = False,
        idempotency_key: str | None = None,
    ) -> Thread:
        """Answer one interrupt by its id; returns its thread."""
        return self._run(
            p.resume_interrupt(
                interrupt_id,
                value,
                answered_by=answered_by,
                wait=wait,
                idempotency_key=idempotency_key,
            )
        )

    def stream_interrupts(self, *, last_event_id: str | None = None) -> Iterator[Event]:
        """Events of every thread's interrupts, for an inbox that watches all."""
        return self._events(p.stream_call(None, last_event_id))

    # --- graphs and lifecycle -------------------------------------------------------------

    def graphs(self) -> builtins.list[Graph]:
        """The hosted graphs."""
        return self._run(p.graphs())

    def graph(self, name: str) -> Graph:
        """One hosted graph."""
        return self._run(p.graph(name))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HitlClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
