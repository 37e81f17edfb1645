"""`AsyncHitlClient`: the asyncio client. A thin driver of `app.client.protocol` flows over httpx."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from app.client import protocol as p
from app.client.models import Checkpoint, Event, Graph, Interrupt, Page, Thread
from app.client.sse import SSEDecoder

T = TypeVar("T")


class AsyncHitlClient:
    """The asyncio twin of `HitlClient`: the same calls, awaited; streams are async iterators.

    Use it as an async context manager, or call `aclose`.
    """

    def __init__(
        self,
        base_url: str = p.DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout: float | None = p.DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        options = p.client_options(base_url, api_key, timeout, headers)
        self._http = httpx.AsyncClient(transport=transport, **options)

    # --- driving flows ------------------------------------------------------------------

    async def _send(self, call: p.Call) -> httpx.Response:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=call.headers
            )
        except httpx.TransportError as exc:
            raise p.transport_error(exc, self._http.base_url) from exc
        return p.checked(response)

    async def _run(self, flow: p.Flow[T]) -> T:
        reply: httpx.Response | None = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as done:
                result: T = done.value
                return result
            if isinstance(step, p.Sleep):
                await asyncio.sleep(step.seconds)
                reply = None
            else:
                reply = await self._send(step)

    @staticmethod
    async def _pages(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            page = await fetch(cursor)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def _events(self, call: p.Call) -> AsyncIterator[Event]:
        decoder = SSEDecoder(call.headers.get("Last-Event-ID"))
        try:
            async with self._http.stream(
                call.method, call.path, headers=call.headers, timeout=httpx.Timeout(None)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    p.checked(response)
                async for line in response.aiter_lines():
                    if (event := decoder.feed(line)) is not None:
                        yield event
        except httpx.TransportError as exc:
            raise p.transport_error(exc, self._http.base_url) from exc

    # --- threads ------------------------------------------------------------------------

    async def start(
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
        return await self._run(
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

    async def get(self, thread_id: str) -> Thread:
        """One thread."""
        return await self._run(p.get(thread_id))

    async def list(
        self,
        *,
        status: str | None = None,
        graph: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Thread]:
        """One page of threads, newest first."""
        return await self._run(
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
    ) -> AsyncIterator[Thread]:
        """Every matching thread, newest first, fetching pages as needed."""
        return self._pages(
            lambda cursor: self.list(
                status=status, graph=graph, metadata=metadata, limit=page_size, cursor=cursor
            )
        )

    async def resume(
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
        return await self._run(
            p.resume(
                thread_id,
                value,
                values,
                answered_by=answered_by,
                wait=wait,
                idempotency_key=idempotency_key,
            )
        )

    async def wait(
        self,
        thread_id: str,
        timeout: float = 30.0,  # noqa: ASYNC109 - as HitlClient.wait: it bounds the polling
        *,
        interval: float = 1.0,
    ) -> Thread:
        """The thread once settled; `WaitTimeoutError` after ``timeout`` seconds."""
        return await self._run(p.wait(thread_id, timeout, interval))

    async def history(
        self, thread_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Checkpoint]:
        """The thread's checkpoints, newest first."""
        return await self._run(p.history(thread_id, limit=limit, cursor=cursor))

    async def cancel(self, thread_id: str) -> Thread:
        """Cancel the thread: pending questions are withdrawn, nothing more runs."""
        return await self._run(p.cancel(thread_id))

    async def delete(self, thread_id: str) -> None:
        """Delete the thread and everything it stored."""
        await self._run(p.delete(thread_id))

    def stream(self, thread_id: str, *, last_event_id: str | None = None) -> AsyncIterator[Event]:
        """The thread's events as they happen (``last_event_id`` resumes after a disconnect)."""
        return self._events(p.stream_call(thread_id, last_event_id))

    # --- the inbox ----------------------------------------------------------------------

    async def interrupts(
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
        return await self._run(
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
    ) -> AsyncIterator[Interrupt]:
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

    async def interrupt(self, interrupt_id: str) -> Interrupt:
        """One interrupt; once answered, also who answered, when, and the answer."""
        return await self._run(p.get_interrupt(interrupt_id))

    async def resume_interrupt(
        self,
        interrupt_id: str,
        value: Any,
        *,
        answered_by: str | None = None,
        wait: bool = False,
        idempotency_key: str | None = None,
    ) -> Thread:
        """Answer one interrupt by its id; returns its thread."""
        return await self._run(
            p.resume_interrupt(
                interrupt_id,
                value,
                answered_by=answered_by,
                wait=wait,
                idempotency_key=idempotency_key,
            )
        )

    def stream_interrupts(self, *, last_event_id: str | None = None) -> AsyncIterator[Event]:
        """Events of every thread's interrupts, for an inbox that watches all."""
        return self._events(p.stream_call(None, last_event_id))

    # --- graphs and lifecycle -------------------------------------------------------------

    async def graphs(self) -> builtins.list[Graph]:
        """The hosted graphs."""
        return await self._run(p.graphs())

    async def graph(self, name: str) -> Graph:
        """One hosted graph."""
        return await self._run(p.graph(name))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHitlClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
