"""Request and response models of the HTTP API (``...Request`` / ``...Response``).

Kept apart from the ORM and from the services' records: the routes convert records into these
with the ``from_*`` constructors. Request models forbid unknown fields, so a typo is a 422 rather
than a silently ignored option.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from app.graphs.registry import GraphInfo
from app.services.views import CheckpointItem, InterruptItem, PendingInterrupt, Thread

ThreadStatusName = Literal["queued", "running", "interrupted", "completed", "failed", "cancelled"]
InterruptStatusName = Literal["pending", "answered", "expired", "cancelled"]
ThreadId = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\s/?#]+$")]
AnsweredBy = Annotated[
    str | None,
    Field(
        default=None,
        min_length=1,
        max_length=200,
        description=(
            "Who answers, for the audit trail. Recorded only while the service runs without "
            "API keys; with keys, the answering key's name is recorded instead."
        ),
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateThreadRequest(_Request):
    """Start a thread of a hosted graph."""

    graph: str = Field(min_length=1, max_length=200, description="A registered graph's name.")
    input: JsonValue = Field(default=None, description="The graph's input; null for none.")
    thread_id: ThreadId | None = Field(
        default=None, description="Your id for the thread; a UUID is generated when omitted."
    )
    metadata: dict[str, JsonValue] = Field(
        default_factory=dict, description="Free-form labels, filterable with metadata.<key>=."
    )
    webhook: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://",
        description="URL notified of this thread's events (in addition to HITL_WEBHOOK_URL).",
    )


class ResumeThreadRequest(_Request):
    """Answer a thread: ``value`` when one interrupt is pending, ``values`` (by id) otherwise."""

    value: JsonValue = Field(default=None, description="The answer to the one pending interrupt.")
    values: dict[str, JsonValue] | None = Field(
        default=None, description="Answers by interrupt id; some or all of the pending ones."
    )
    answered_by: AnsweredBy = None

    @model_validator(mode="after")
    def _one_of(self) -> ResumeThreadRequest:
        has_value = "value" in self.model_fields_set
        has_values = "values" in self.model_fields_set and self.values is not None
        if has_value == has_values:
            raise ValueError('send exactly one of "value" and "values"')
        if has_values and not self.values:
            raise ValueError('"values" must name at least one interrupt')
        return self


class ResumeInterruptRequest(_Request):
    """Answer one interrupt."""

    value: JsonValue = Field(description="The answer.")
    answered_by: AnsweredBy = None


class ThreadInterruptResponse(BaseModel):
    """A question the thread waits on."""

    id: str
    value: Any
    node: str
    created_at: datetime
    schema_: dict[str, Any] | None = Field(alias="schema")
    expires_at: datetime | None

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def from_record(cls, i: PendingInterrupt) -> ThreadInterruptResponse:
        return cls.model_validate(
            {
                "id": i.id,
                "value": i.value,
                "node": i.node,
                "created_at": i.created_at,
                "schema": i.schema,
                "expires_at": i.expires_at,
            }
        )


class ErrorInfo(BaseModel):
    """Why a thread failed: the exception's type and message."""

    type: str | None = None
    message: str | None = None
    model_config = ConfigDict(extra="allow")


class ThreadResponse(BaseModel):
    """A thread."""

    thread_id: str
    graph: str
    status: ThreadStatusName
    values: Any
    next: list[str]
    interrupts: list[ThreadInterruptResponse]
    metadata: dict[str, Any]
    error: ErrorInfo | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, t: Thread) -> ThreadResponse:
        return cls(
            thread_id=t.thread_id,
            graph=t.graph,
            status=t.status,
            values=t.values,
            next=t.next,
            interrupts=[ThreadInterruptResponse.from_record(i) for i in t.interrupts],
            metadata=t.metadata,
            error=ErrorInfo.model_validate(t.error) if isinstance(t.error, dict) else None,
            created_at=t.created_at,
            updated_at=t.updated_at,
        )


class ThreadListResponse(BaseModel):
    threads: list[ThreadResponse]
    next_cursor: str | None


class ThreadInterruptsResponse(BaseModel):
    interrupts: list[ThreadInterruptResponse]


class InterruptResponse(BaseModel):
    """An interrupt in the inbox."""

    id: str
    thread_id: str
    graph: str
    node: str
    value: Any
    schema_: dict[str, Any] | None = Field(alias="schema")
    created_at: datetime
    expires_at: datetime | None
    status: InterruptStatusName

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def from_record(cls, i: InterruptItem) -> InterruptResponse:
        return cls.model_validate(_interrupt_fields(i))


class InterruptDetailResponse(InterruptResponse):
    """One interrupt; once answered, the audit trail: what, who (the API key's name), when
    (the database clock) and the id of the request that answered it."""

    answer: Any = None
    answered_by: str | None = None
    answered_at: datetime | None = None
    request_id: str | None = Field(
        default=None, description="X-Request-ID of the request that answered it."
    )

    @classmethod
    def from_record(cls, i: InterruptItem) -> InterruptDetailResponse:
        return cls.model_validate(
            {
                **_interrupt_fields(i),
                "answer": i.answer,
                "answered_by": i.answered_by,
                "answered_at": i.answered_at,
                "request_id": i.request_id,
            }
        )


def _interrupt_fields(i: InterruptItem) -> dict[str, Any]:
    return {
        "id": i.id,
        "thread_id": i.thread_id,
        "graph": i.graph,
        "node": i.node,
        "value": i.value,
        "schema": i.schema,
        "created_at": i.created_at,
        "expires_at": i.expires_at,
        "status": i.status,
    }


class InterruptListResponse(BaseModel):
    interrupts: list[InterruptResponse]
    next_cursor: str | None


class CheckpointResponse(BaseModel):
    """One checkpoint of a thread's history."""

    checkpoint_id: str
    parent_id: str | None
    step: int
    source: str
    created_at: str
    values: Any
    next: list[str]
    metadata: dict[str, Any]
    interrupts: list[dict[str, Any]]
    errors: list[dict[str, Any]]

    @classmethod
    def from_record(cls, c: CheckpointItem) -> CheckpointResponse:
        return cls(
            checkpoint_id=c.checkpoint_id,
            parent_id=c.parent_id,
            step=c.step,
            source=c.source,
            created_at=c.created_at,
            values=c.values,
            next=c.next,
            metadata=c.metadata,
            interrupts=c.interrupts,
            errors=c.errors,
        )


class HistoryResponse(BaseModel):
    checkpoints: list[CheckpointResponse]
    next_cursor: str | None


class GraphResponse(BaseModel):
    """A hosted graph: its nodes, edges and a Mermaid drawing."""

    name: str
    nodes: list[str]
    edges: list[dict[str, Any]]
    mermaid: str

    @classmethod
    def from_info(cls, g: GraphInfo) -> GraphResponse:
        return cls(name=g.name, nodes=g.nodes, edges=g.edges, mermaid=g.mermaid)


class GraphListResponse(BaseModel):
    graphs: list[GraphResponse]


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessResponse(BaseModel):
    status: Literal["ok"] = "ok"
    database: Literal["ok"] = "ok"


class ProblemResponse(BaseModel):
    """An RFC 9457 problem (``application/problem+json``); extra members carry context."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    model_config = ConfigDict(extra="allow")
