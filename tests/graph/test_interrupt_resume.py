"""Dynamic interrupts: pausing, resuming, strict answers (D1-D5) and interrupt ids."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

from app.checkpoint.memory import InMemorySaver
from app.graph import (
    END,
    START,
    CheckpointerRequiredError,
    Command,
    GraphError,
    GraphInterrupt,
    Interrupt,
    InvalidResumeError,
    StateGraph,
    interrupt,
)
from tests.graph.graphs import (
    ID_RE,
    Calls,
    LogState,
    approval_graph,
    ask_then_log_graph,
    fanout_graph,
    frozen,
    ids,
    linear_graph,
    parallel_graph,
    thread,
    two_questions_graph,
)

# --- D1 / D2: the seed's promises ---------------------------------------------------------


def test_seed_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    calls = Calls()
    app = approval_graph(InMemorySaver(), calls)
    config = thread()

    result = app.invoke(None, config)

    assert set(result) == {"__interrupt__"}
    (pending,) = result["__interrupt__"]
    assert isinstance(result["__interrupt__"], tuple)
    assert isinstance(pending, Interrupt)
    assert pending.value == "Do you approve this action?"
    assert ID_RE.match(pending.id)

    assert app.invoke("Yes, I approve.", config) == {"approval": "Yes, I approve."}
    assert calls["ask_for_approval"] == 2


def test_invoke_none_on_new_thread_starts_with_empty_input() -> None:
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls)

    assert graph.invoke(None, thread()) == {"log": ["a", "b", "c"]}
    assert calls.trace == ["a", "b", "c"]


def test_plain_value_resumes_the_single_pending_interrupt() -> None:
    calls = Calls()
    graph = ask_then_log_graph(InMemorySaver(), calls)
    config = thread()
    graph.invoke({"log": []}, config)

    assert graph.invoke("yes", config) == {"log": ["before", "ask=yes", "after"]}
    assert calls["before"] == 1
    assert calls["ask"] == 2


def test_plain_dict_value_is_an_answer_when_one_interrupt_is_pending() -> None:
    graph = ask_then_log_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)

    result = graph.invoke({"log": ["x"]}, config)

    assert result == {"log": ["before", "ask={'log': ['x']}", "after"]}


def test_plain_value_with_several_pending_is_ambiguous_and_changes_nothing() -> None:
    graph = parallel_graph(InMemorySaver(), Calls())
    config = thread()
    first = graph.invoke({"log": []}, config)
    before = frozen(graph, config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke("yes", config)

    assert err.value.reason == "ambiguous"
    assert set(err.value.pending_ids) == set(ids(first["__interrupt__"]))
    assert frozen(graph, config) == before


def test_plain_value_on_a_finished_thread_starts_a_new_run() -> None:
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls)
    config = thread()
    graph.invoke({"log": ["x"]}, config)

    result = graph.invoke({"log": ["y"]}, config)

    assert result == {"log": ["x", "a", "b", "c", "y", "a", "b", "c"]}
    assert calls["a"] == 2


# --- resuming one interrupt ---------------------------------------------------------------


def test_command_resume_reruns_the_node_from_its_top() -> None:
    calls = Calls()
    graph = ask_then_log_graph(InMemorySaver(), calls)
    config = thread()

    paused = graph.invoke({"log": []}, config)
    assert paused["log"] == ["before"]
    assert [i.value for i in paused["__interrupt__"]] == ["continue?"]

    done = graph.invoke(Command(resume="go"), config)

    assert done == {"log": ["before", "ask=go", "after"]}
    assert "__interrupt__" not in done
    assert (calls["before"], calls["ask"], calls["after"]) == (1, 2, 1)


@pytest.mark.parametrize("answer", [False, "", 0, [], {"approve": True}])
def test_falsy_and_dict_answers_are_delivered_as_sent(answer: Any) -> None:
    received: list[Any] = []

    def ask(state: LogState) -> dict[str, Any]:
        received.append(interrupt("q"))
        return {"log": ["done"]}

    g = StateGraph(LogState)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()
    graph.invoke({"log": []}, config)

    assert graph.invoke(Command(resume=answer), config) == {"log": ["done"]}
    assert received == [answer]
    assert type(received[0]) is type(answer)


# --- several interrupts in one node -------------------------------------------------------


def test_two_interrupts_in_one_node_are_answered_one_at_a_time_by_order() -> None:
    calls = Calls()
    graph = two_questions_graph(InMemorySaver(), calls)
    config = thread()

    first = graph.invoke({}, config)
    (q1,) = first["__interrupt__"]
    assert q1.value == "name?"

    second = graph.invoke(Command(resume="bob"), config)
    (q2,) = second["__interrupt__"]
    assert q2.value == "age?"
    assert q2.id != q1.id
    assert ID_RE.match(q2.id)
    assert "name" not in second  # the node has not finished: nothing of it is written

    assert graph.invoke(Command(resume="42"), config) == {"name": "bob", "age": "42"}
    assert calls["form"] == 3  # first run + one re-run per answer, always from the top
    assert calls["form:after_name"] == 2
    assert calls["form:after_age"] == 1


def test_a_resume_value_is_never_reused_for_a_later_question() -> None:
    """langgraph#8837: after resume answers q1, invoke(None) must not answer q2 with it."""
    calls = Calls()
    graph = two_questions_graph(InMemorySaver(), calls)
    config = thread()
    graph.invoke({}, config)
    (q2,) = graph.invoke(Command(resume="bob"), config)["__interrupt__"]

    again = graph.invoke(None, config)

    assert again["__interrupt__"] == (q2,)
    assert "age" not in again
    assert calls["form:after_age"] == 0
    assert graph.get_state(config).interrupts == (q2,)
    assert graph.invoke(Command(resume="42"), config) == {"name": "bob", "age": "42"}


def test_the_answered_first_id_is_not_pending_any_more() -> None:
    calls = Calls()
    graph = two_questions_graph(InMemorySaver(), calls)
    config = thread()
    (q1,) = graph.invoke({}, config)["__interrupt__"]
    (q2,) = graph.invoke(Command(resume={q1.id: "bob"}), config)["__interrupt__"]
    before = frozen(graph, config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(Command(resume={q1.id: "carol"}), config)

    assert err.value.reason == "not_pending"
    assert q1.id in err.value.interrupt_ids
    assert frozen(graph, config) == before
    assert graph.invoke(Command(resume={q2.id: "7"}), config) == {"name": "bob", "age": "7"}


def test_asking_in_a_loop_matches_answers_by_call_order() -> None:
    class S(TypedDict, total=False):
        n: int

    asked: list[str] = []

    def ask(state: S) -> dict[str, Any]:
        prompt = "number?"
        while True:
            asked.append(prompt)
            raw = interrupt(prompt)
            if isinstance(raw, int):
                return {"n": raw}
            prompt = f"{raw!r} is not a number; number?"

    g = StateGraph(S)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()
    graph.invoke({}, config)

    retry = graph.invoke(Command(resume="ten"), config)
    assert [i.value for i in retry["__interrupt__"]] == ["'ten' is not a number; number?"]
    assert graph.invoke(Command(resume=10), config) == {"n": 10}


# --- parallel interrupts ------------------------------------------------------------------


def test_parallel_nodes_interrupt_with_distinct_ids_in_task_order() -> None:
    calls = Calls()
    graph = parallel_graph(InMemorySaver(), calls)
    config = thread()

    result = graph.invoke({"log": []}, config)

    pending = result["__interrupt__"]
    assert isinstance(pending, tuple)
    assert [i.value for i in pending] == ["qa", "qb"]
    assert len(set(ids(pending))) == 2
    assert all(ID_RE.match(i) for i in ids(pending))
    assert result["log"] == ["c"]  # the finished sibling's write is visible
    state = graph.get_state(config)
    assert state.next == ("a", "b")
    assert state.interrupts == pending


def test_interrupts_are_reported_in_task_order_not_completion_order() -> None:
    b_done = threading.Event()

    def a(state: LogState) -> dict[str, Any]:
        assert b_done.wait(5), "a and b did not run concurrently"
        return {"log": [f"a={interrupt('qa')}"]}

    def b(state: LogState) -> dict[str, Any]:
        try:
            return {"log": [f"b={interrupt('qb')}"]}
        finally:
            b_done.set()

    g = StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    result = graph.invoke({"log": []}, config)

    assert [i.value for i in result["__interrupt__"]] == ["qa", "qb"]
    assert [i.value for i in graph.get_state(config).interrupts] == ["qa", "qb"]


def test_resume_all_parallel_interrupts_by_map() -> None:
    calls = Calls()
    graph = parallel_graph(InMemorySaver(), calls)
    config = thread()
    qa, qb = graph.invoke({"log": []}, config)["__interrupt__"]

    result = graph.invoke(Command(resume={qa.id: "A", qb.id: "B"}), config)

    assert result == {"log": ["a=A", "b=B", "c", "join"]}  # applied in task order
    assert (calls["a"], calls["b"], calls["c"], calls["join"]) == (2, 2, 1, 1)


def test_resume_some_parallel_interrupts_by_map() -> None:
    calls = Calls()
    graph = parallel_graph(InMemorySaver(), calls)
    config = thread()
    qa, qb = graph.invoke({"log": []}, config)["__interrupt__"]

    partial = graph.invoke(Command(resume={qa.id: "A"}), config)

    assert partial["__interrupt__"] == (qb,)  # b asked again, with the same id
    assert graph.get_state(config).interrupts == (qb,)
    assert graph.get_state(config).next == ("b",)
    assert calls["c"] == 1

    done = graph.invoke(Command(resume="B"), config)  # one pending: a scalar is fine

    assert done == {"log": ["a=A", "b=B", "c", "join"]}
    assert (calls["a"], calls["b"], calls["c"]) == (2, 3, 1)


def test_send_fanout_interrupts_have_distinct_ids_and_next_repeats_the_node() -> None:
    graph = fanout_graph(InMemorySaver(), Calls())
    config = thread()

    result = graph.invoke({"items": ["x", "y", "z"]}, config)

    pending = result["__interrupt__"]
    assert [i.value for i in pending] == [{"review": "x"}, {"review": "y"}, {"review": "z"}]
    assert len(set(ids(pending))) == 3
    state = graph.get_state(config)
    assert state.next == ("review", "review", "review")
    assert state.interrupts == pending


def test_send_fanout_resumed_in_parts_does_not_rerun_finished_sends() -> None:
    calls = Calls()
    graph = fanout_graph(InMemorySaver(), calls)
    config = thread()
    qx, qy, qz = graph.invoke({"items": ["x", "y", "z"]}, config)["__interrupt__"]

    partial = graph.invoke(Command(resume={qx.id: "ok", qz.id: "ok"}), config)
    assert partial["__interrupt__"] == (qy,)
    assert graph.get_state(config).next == ("review",)

    done = graph.invoke(Command(resume={qy.id: "fine"}), config)

    assert done["results"] == ["x=ok", "y=fine", "z=ok", "collected"]  # Send order
    assert (calls["review:x"], calls["review:y"], calls["review:z"]) == (2, 3, 2)
    assert calls["collect"] == 1


# --- strict resume (D3): rejected answers write nothing -----------------------------------


def test_scalar_resume_with_several_pending_is_ambiguous_and_writes_nothing() -> None:
    calls = Calls()
    graph = parallel_graph(InMemorySaver(), calls)
    config = thread()
    qa, qb = graph.invoke({"log": []}, config)["__interrupt__"]
    before = frozen(graph, config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(Command(resume="yes"), config)

    assert err.value.reason == "ambiguous"
    assert set(err.value.pending_ids) == {qa.id, qb.id}
    assert qa.id in str(err.value) and qb.id in str(err.value)
    assert frozen(graph, config) == before
    assert (calls["a"], calls["b"], calls["c"]) == (1, 1, 1)


def test_unknown_interrupt_id_is_rejected_and_writes_nothing() -> None:
    calls = Calls()
    graph = parallel_graph(InMemorySaver(), calls)
    config = thread()
    qa, qb = graph.invoke({"log": []}, config)["__interrupt__"]
    before = frozen(graph, config)
    unknown = "0123456789abcdef" * 2

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(Command(resume={qa.id: "A", unknown: "?"}), config)

    assert err.value.reason == "not_pending"
    assert unknown in err.value.interrupt_ids
    assert set(err.value.pending_ids) == {qa.id, qb.id}
    assert frozen(graph, config) == before
    assert calls["a"] == 1  # the valid entry was not applied either


def test_already_answered_parallel_id_is_rejected_and_writes_nothing() -> None:
    graph = parallel_graph(InMemorySaver(), Calls())
    config = thread()
    qa, qb = graph.invoke({"log": []}, config)["__interrupt__"]
    graph.invoke(Command(resume={qa.id: "A"}), config)
    before = frozen(graph, config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(Command(resume={qa.id: "again"}), config)

    assert err.value.reason == "not_pending"
    assert list(err.value.pending_ids) == [qb.id]
    assert frozen(graph, config) == before


def test_empty_resume_map_is_rejected_and_writes_nothing() -> None:
    graph = parallel_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)
    before = frozen(graph, config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(Command(resume={}), config)

    assert err.value.reason == "empty_map"
    assert frozen(graph, config) == before


@pytest.mark.parametrize("command", [Command(), Command(resume=None)], ids=["bare", "none"])
def test_command_without_an_answer_is_rejected_and_writes_nothing(command: Command[Any]) -> None:
    calls = Calls()
    graph = ask_then_log_graph(InMemorySaver(), calls)
    config = thread()
    graph.invoke({"log": []}, config)
    before = frozen(graph, config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(command, config)

    assert err.value.reason == "empty_command"
    assert frozen(graph, config) == before
    assert calls["ask"] == 1


def test_resume_errors_are_value_errors_of_the_engine() -> None:
    assert issubclass(InvalidResumeError, GraphError)
    assert issubclass(InvalidResumeError, ValueError)


# --- Command(update=...) as input ---------------------------------------------------------


class TopicState(TypedDict, total=False):
    topic: str
    answer: str


def _topic_graph(seen: list[str | None]) -> Any:
    def ask(state: TopicState) -> dict[str, Any]:
        seen.append(state.get("topic"))
        answer = interrupt("q")
        return {"answer": f"{state['topic']}:{answer}"}

    g = StateGraph(TopicState)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g.compile(checkpointer=InMemorySaver())


def test_command_update_is_applied_before_the_resumed_node_runs() -> None:
    seen: list[str | None] = []
    graph = _topic_graph(seen)
    config = thread()
    graph.invoke({"topic": "old"}, config)

    result = graph.invoke(Command(update={"topic": "new"}, resume="yes"), config)

    assert result == {"topic": "new", "answer": "new:yes"}
    assert seen == ["old", "new"]


def test_command_update_without_resume_reruns_the_pending_task_with_the_same_id() -> None:
    seen: list[str | None] = []
    graph = _topic_graph(seen)
    config = thread()
    (q,) = graph.invoke({"topic": "old"}, config)["__interrupt__"]

    result = graph.invoke(Command(update={"topic": "new"}), config)

    assert result["topic"] == "new"
    assert result["__interrupt__"] == (q,)
    assert seen == ["old", "new"]
    assert graph.invoke(Command(resume="yes"), config)["answer"] == "new:yes"


# --- interrupt ids ------------------------------------------------------------------------


def test_interrupt_ids_are_stable_across_reruns_of_the_same_checkpoint() -> None:
    calls = Calls()
    graph = approval_graph(InMemorySaver(), calls)
    config = thread()
    (first,) = graph.invoke({}, config)["__interrupt__"]

    (second,) = graph.invoke(None, config)["__interrupt__"]
    (third,) = graph.invoke(None, config)["__interrupt__"]

    assert ID_RE.match(first.id)
    assert first == second == third
    assert graph.get_state(config).interrupts == (first,)
    assert calls["ask_for_approval"] == 3


def test_interrupt_ids_differ_between_threads() -> None:
    graph = approval_graph(InMemorySaver())

    found = {graph.invoke({}, thread())["__interrupt__"][0].id for _ in range(3)}

    assert len(found) == 3


def test_interrupt_ids_differ_when_a_node_asks_again_in_a_later_step() -> None:
    class S(TypedDict, total=False):
        answer: str

    def ask(state: S) -> dict[str, Any]:
        return {"answer": interrupt("ok?")}

    g = StateGraph(S)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_conditional_edges("ask", lambda s: END if s["answer"] == "ok" else "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()
    (q1,) = graph.invoke({}, config)["__interrupt__"]

    (q2,) = graph.invoke(Command(resume="no"), config)["__interrupt__"]

    assert q2.value == "ok?"
    assert q2.id != q1.id
    assert graph.invoke(Command(resume="ok"), config) == {"answer": "ok"}


# --- the Interrupt type -------------------------------------------------------------------


def test_interrupt_repr_shows_value_and_id_only() -> None:
    item = Interrupt(value="Do you approve this action?", id="9f" * 16)

    assert repr(item) == f"Interrupt(value='Do you approve this action?', id='{'9f' * 16}')"
    assert "timeout" in repr(Interrupt(value="q", id="9f" * 16, timeout=5.0))


def test_interrupt_is_frozen_and_compared_by_fields() -> None:
    item = Interrupt(value="q", id="ab" * 16)

    assert item == Interrupt(value="q", id="ab" * 16)
    assert item != Interrupt(value="q", id="cd" * 16)
    with pytest.raises(AttributeError):
        item.value = "other"  # type: ignore[misc]


def test_timeout_and_default_are_recorded_on_the_interrupt() -> None:
    def ask(state: LogState) -> dict[str, Any]:
        return {"log": [interrupt("q", timeout=30, default="no")]}

    g = StateGraph(LogState)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    (pending,) = graph.invoke({"log": []}, config)["__interrupt__"]

    assert pending.timeout == 30
    assert pending.default == "no"
    assert graph.get_state(config).interrupts == (pending,)
    assert graph.invoke(Command(resume="yes"), config) == {"log": ["yes"]}


# --- answer schemas -----------------------------------------------------------------------


class Decision(BaseModel):
    approve: bool
    note: str = ""


DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"approve": {"type": "boolean"}, "note": {"type": "string"}},
    "required": ["approve"],
}


def _schema_graph(schema: Any, received: list[Any]) -> Any:
    class S(TypedDict, total=False):
        approved: bool

    def decide(state: S) -> dict[str, Any]:
        answer = interrupt("approve?", schema=schema)
        received.append(answer)
        approve = answer.approve if isinstance(answer, Decision) else answer["approve"]
        return {"approved": approve}

    g = StateGraph(S)
    g.add_node("decide", decide)
    g.add_edge(START, "decide")
    return g.compile(checkpointer=InMemorySaver())


def test_pydantic_schema_gives_the_node_a_model_instance() -> None:
    received: list[Any] = []
    graph = _schema_graph(Decision, received)
    config = thread()
    (pending,) = graph.invoke({}, config)["__interrupt__"]
    assert pending.schema is not None

    result = graph.invoke(Command(resume={"approve": True, "note": "fine"}), config)

    assert result == {"approved": True}
    assert received == [Decision(approve=True, note="fine")]
    assert isinstance(received[0], Decision)


def test_json_schema_dict_validates_the_answer() -> None:
    received: list[Any] = []
    graph = _schema_graph(DECISION_SCHEMA, received)
    config = thread()
    (pending,) = graph.invoke({}, config)["__interrupt__"]
    assert pending.schema == DECISION_SCHEMA

    assert graph.invoke(Command(resume={"approve": False}), config) == {"approved": False}
    assert received == [{"approve": False}]


@pytest.mark.parametrize("schema", [Decision, DECISION_SCHEMA], ids=["pydantic", "jsonschema"])
def test_invalid_answer_is_rejected_and_writes_nothing(schema: Any) -> None:
    received: list[Any] = []
    graph = _schema_graph(schema, received)
    config = thread()
    (pending,) = graph.invoke({}, config)["__interrupt__"]
    before = frozen(graph, config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(Command(resume={"note": "no approve key"}), config)

    assert err.value.reason == "invalid_answer"
    assert isinstance(err.value.errors, list) and err.value.errors
    assert all(isinstance(e, dict) for e in err.value.errors)
    assert frozen(graph, config) == before
    assert received == []
    assert graph.invoke(Command(resume={pending.id: {"approve": True}}), config) == {
        "approved": True
    }


def test_invalid_answer_in_a_map_is_rejected_and_writes_nothing() -> None:
    graph = _schema_graph(DECISION_SCHEMA, [])
    config = thread()
    (pending,) = graph.invoke({}, config)["__interrupt__"]
    before = frozen(graph, config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(Command(resume={pending.id: {"approve": "maybe"}}), config)

    assert err.value.reason == "invalid_answer"
    assert frozen(graph, config) == before


# --- D4: no checkpointer, D5: GraphInterrupt is not an Exception --------------------------


def test_interrupt_without_a_checkpointer_raises_a_helpful_error() -> None:
    graph = approval_graph(saver=None)

    with pytest.raises(CheckpointerRequiredError) as err:
        graph.invoke({}, thread())

    assert "checkpointer=" in str(err.value)
    assert isinstance(err.value, GraphError)
    assert isinstance(err.value, RuntimeError)


def test_resume_without_a_checkpointer_raises() -> None:
    graph = approval_graph(saver=None)

    with pytest.raises(CheckpointerRequiredError):
        graph.invoke(Command(resume="yes"), thread())


def test_graph_without_interrupts_runs_without_a_checkpointer() -> None:
    graph = linear_graph(None, Calls())

    assert graph.invoke({"log": []}) == {"log": ["a", "b", "c"]}


def test_interrupt_outside_a_running_graph_raises() -> None:
    with pytest.raises((GraphError, RuntimeError), match="interrupt"):
        interrupt("nobody is listening")


def test_graph_interrupt_is_not_an_exception() -> None:
    assert issubclass(GraphInterrupt, BaseException)
    assert not issubclass(GraphInterrupt, Exception)


def test_except_exception_in_a_node_cannot_swallow_the_pause() -> None:
    calls = Calls()

    def careful(state: LogState) -> dict[str, Any]:
        try:
            answer = interrupt("q")
        except Exception:
            calls.hit("swallowed")
            answer = "fallback"
        return {"log": [answer]}

    g = StateGraph(LogState)
    g.add_node("careful", careful)
    g.add_edge(START, "careful")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    result = graph.invoke({"log": []}, config)

    assert [i.value for i in result["__interrupt__"]] == ["q"]
    assert calls["swallowed"] == 0
    assert graph.invoke(Command(resume="real"), config) == {"log": ["real"]}


# --- more resume edges --------------------------------------------------------------------


def test_a_dict_whose_keys_are_not_lowercase_hex_ids_is_a_plain_answer() -> None:
    received: list[Any] = []

    def ask(state: LogState) -> dict[str, Any]:
        received.append(interrupt("q"))
        return {"log": ["done"]}

    g = StateGraph(LogState)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()
    (pending,) = graph.invoke({"log": []}, config)["__interrupt__"]
    upper = {pending.id.upper(): "x"}
    mixed = {pending.id: "x", "note": "y"}

    graph.invoke(Command(resume=upper), config)
    graph.invoke({"log": []}, config)
    graph.invoke(Command(resume=mixed), config)

    assert received == [upper, mixed]


def test_a_plain_value_answer_is_validated_against_the_schema() -> None:
    graph = _schema_graph(DECISION_SCHEMA, [])
    config = thread()
    graph.invoke({}, config)
    before = frozen(graph, config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke("not an object", config)

    assert err.value.reason == "invalid_answer"
    assert frozen(graph, config) == before


def test_interrupt_default_none_differs_from_no_default() -> None:
    def ask(state: LogState) -> dict[str, Any]:
        first = interrupt("no default")
        second = interrupt("default none", default=None)
        return {"log": [str(first), str(second)]}

    g = StateGraph(LogState)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    (no_default,) = graph.invoke({"log": []}, config)["__interrupt__"]
    (default_none,) = graph.invoke(Command(resume="a"), config)["__interrupt__"]

    assert repr(no_default) == f"Interrupt(value='no default', id='{no_default.id}')"
    assert default_none.default is None
    assert "default=None" in repr(default_none)


def test_threads_are_isolated() -> None:
    calls = Calls()
    graph = ask_then_log_graph(InMemorySaver(), calls)
    one, two = thread(), thread()
    (q1,) = graph.invoke({"log": ["1"]}, one)["__interrupt__"]
    (q2,) = graph.invoke({"log": ["2"]}, two)["__interrupt__"]

    assert graph.invoke(Command(resume="x"), one)["log"] == ["1", "before", "ask=x", "after"]

    assert graph.get_state(two).interrupts == (q2,)
    assert graph.invoke(Command(resume={q2.id: "y"}), two)["log"] == [
        "2",
        "before",
        "ask=y",
        "after",
    ]
    with pytest.raises(InvalidResumeError):
        graph.invoke(Command(resume={q1.id: "z"}), two)


def test_another_compiled_instance_on_the_same_saver_sees_the_same_ids() -> None:
    """As a worker in another process would: same graph, same storage, same pending ids."""
    saver = InMemorySaver()
    calls = Calls()
    first = two_questions_graph(saver, calls)
    second = two_questions_graph(saver, calls)
    config = thread()
    (q1,) = first.invoke({}, config)["__interrupt__"]

    assert second.get_state(config).interrupts == (q1,)
    (q2,) = second.invoke(Command(resume={q1.id: "bob"}), config)["__interrupt__"]
    assert first.invoke(None, config)["__interrupt__"] == (q2,)
    assert first.invoke(Command(resume={q2.id: "9"}), config) == {"name": "bob", "age": "9"}


def test_command_resume_on_a_finished_thread_changes_nothing() -> None:
    calls = Calls()
    graph = ask_then_log_graph(InMemorySaver(), calls)
    config = thread()
    graph.invoke({"log": []}, config)
    done = graph.invoke(Command(resume="x"), config)

    assert graph.invoke(Command(resume="again"), config) == done
    assert calls["ask"] == 2


def test_an_old_id_on_a_finished_thread_is_rejected() -> None:
    graph = ask_then_log_graph(InMemorySaver(), Calls())
    config = thread()
    (pending,) = graph.invoke({"log": []}, config)["__interrupt__"]
    graph.invoke(Command(resume={pending.id: "x"}), config)
    before = frozen(graph, config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(Command(resume={pending.id: "twice"}), config)

    assert err.value.reason in {"not_pending", "nothing_pending"}
    assert frozen(graph, config) == before


def test_resume_with_the_snapshot_config_of_the_interrupted_head() -> None:
    """Services keep `get_state().config` (it names the head checkpoint) and resume with it."""
    calls = Calls()
    graph = parallel_graph(InMemorySaver(), calls)
    config = thread()
    qa, qb = graph.invoke({"log": []}, config)["__interrupt__"]
    snapshot_config = graph.get_state(config).config

    partial = graph.invoke(Command(resume={qa.id: "A"}), snapshot_config)
    assert partial["__interrupt__"] == (qb,)

    done = graph.invoke(Command(resume={qb.id: "B"}), graph.get_state(config).config)

    assert done == {"log": ["a=A", "b=B", "c", "join"]}
    assert (calls["a"], calls["b"], calls["c"]) == (2, 3, 1)


def test_a_model_instance_is_a_valid_answer_to_a_pydantic_schema() -> None:
    received: list[Any] = []
    graph = _schema_graph(Decision, received)
    config = thread()
    graph.invoke({}, config)

    result = graph.invoke(Command(resume=Decision(approve=True, note="typed")), config)

    assert result == {"approved": True}
    assert received == [Decision(approve=True, note="typed")]


def test_a_map_with_one_invalid_answer_applies_none_of_them() -> None:
    calls = Calls()

    def make(name: str) -> Any:
        def node(state: LogState) -> dict[str, Any]:
            calls.hit(name)
            answer = interrupt(f"{name}?", schema=Decision)
            return {"log": [f"{name}={answer.approve}"]}

        return node

    g = StateGraph(LogState)
    g.add_node("a", make("a"))
    g.add_node("b", make("b"))
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()
    qa, qb = graph.invoke({"log": []}, config)["__interrupt__"]
    before = frozen(graph, config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(Command(resume={qa.id: {"approve": True}, qb.id: {"approve": "?"}}), config)

    assert err.value.reason == "invalid_answer"
    assert qb.id in err.value.interrupt_ids
    assert qa.id not in err.value.interrupt_ids
    assert frozen(graph, config) == before
    assert (calls["a"], calls["b"]) == (1, 1)
