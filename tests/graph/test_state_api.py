"""get_state (live view vs record view), history, update_state, time travel, durability."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest

from app.checkpoint.memory import InMemorySaver
from app.graph import (
    END,
    START,
    CheckpointerRequiredError,
    Command,
    InvalidConfigError,
    InvalidUpdateError,
    StateGraph,
    StateSnapshot,
)
from tests.graph.graphs import (
    Calls,
    LogState,
    ask_then_log_graph,
    at,
    linear_graph,
    parallel_graph,
    thread,
)


def _head_id(graph: Any, config: dict[str, Any]) -> str:
    return str(graph.get_state(config).config["configurable"]["checkpoint_id"])


# --- get_state ----------------------------------------------------------------------------


def test_get_state_of_an_unknown_thread_is_an_empty_snapshot() -> None:
    graph = linear_graph(InMemorySaver(), Calls())

    state = graph.get_state(thread())

    assert isinstance(state, StateSnapshot)
    assert state.values == {}
    assert state.next == ()
    assert state.tasks == ()
    assert state.interrupts == ()
    assert state.metadata is None
    assert state.created_at is None


def test_get_state_without_a_checkpointer_raises() -> None:
    graph = linear_graph(None, Calls())

    with pytest.raises(CheckpointerRequiredError, match="checkpointer="):
        graph.get_state(thread())


def test_get_state_of_a_finished_thread() -> None:
    graph = linear_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)

    state = graph.get_state(config)

    assert state.values == {"log": ["a", "b", "c"]}
    assert state.next == ()
    assert state.tasks == ()
    assert state.interrupts == ()
    assert state.config["configurable"]["thread_id"] == config["configurable"]["thread_id"]
    assert isinstance(state.config["configurable"]["checkpoint_id"], str)
    assert state.metadata["source"] == "loop"
    assert datetime.fromisoformat(state.created_at).tzinfo is not None


def test_live_view_of_an_interrupted_step() -> None:
    graph = parallel_graph(InMemorySaver(), Calls())
    config = thread()
    qa, qb = graph.invoke({"log": []}, config)["__interrupt__"]

    state = graph.get_state(config)

    assert state.values == {"log": ["c"]}  # the finished sibling's write is included
    assert state.next == ("a", "b")  # only tasks that still have to run
    assert state.interrupts == (qa, qb)
    tasks = {t.name: t for t in state.tasks}
    assert [t.name for t in state.tasks] == ["a", "b", "c"]
    assert tasks["a"].interrupts == (qa,)
    assert tasks["b"].interrupts == (qb,)
    assert tasks["c"].interrupts == ()
    assert tasks["c"].result is not None
    assert all(t.error is None for t in state.tasks)


def test_live_view_lists_only_interrupts_still_waiting() -> None:
    graph = parallel_graph(InMemorySaver(), Calls())
    config = thread()
    qa, qb = graph.invoke({"log": []}, config)["__interrupt__"]

    graph.invoke(Command(resume={qa.id: "A"}), config)

    state = graph.get_state(config)
    assert state.interrupts == (qb,)
    assert state.next == ("b",)
    assert state.values == {"log": ["a=A", "c"]}


def test_record_view_shows_the_step_as_it_started() -> None:
    graph = parallel_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)
    head = _head_id(graph, config)

    record = graph.get_state(at(config, head))
    newest = next(iter(graph.get_state_history(config)))

    for snap in (record, newest):
        assert snap.config["configurable"]["checkpoint_id"] == head
        assert snap.values == {"log": []}
        assert snap.next == ("a", "b", "c")


def test_invoke_none_on_an_interrupted_thread_creates_no_checkpoint() -> None:
    graph = ask_then_log_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)
    head = _head_id(graph, config)
    count = len(list(graph.get_state_history(config)))

    graph.invoke(None, config)

    assert _head_id(graph, config) == head
    assert len(list(graph.get_state_history(config))) == count


# --- history ------------------------------------------------------------------------------


def test_history_is_newest_first_with_chained_parent_configs() -> None:
    graph = linear_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)

    history = list(graph.get_state_history(config))

    assert history[0].config == graph.get_state(config).config
    assert [h.next for h in history] == [(), ("c",), ("b",), ("a",)]
    assert [h.values["log"] for h in history] == [["a", "b", "c"], ["a", "b"], ["a"], []]
    for newer, older in itertools.pairwise(history):
        assert newer.parent_config == older.config
    assert history[-1].parent_config is None
    assert history[-1].metadata["source"] == "input"
    assert history[-1].metadata["step"] == -1
    assert all(h.metadata["source"] == "loop" for h in history[:-1])
    steps = [h.metadata["step"] for h in history]
    assert steps == sorted(steps, reverse=True) and len(set(steps)) == len(steps)
    ids = [h.config["configurable"]["checkpoint_id"] for h in history]
    assert ids == sorted(ids, reverse=True)


def test_history_limit_and_before() -> None:
    graph = linear_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)
    history = list(graph.get_state_history(config))

    assert list(graph.get_state_history(config, limit=2)) == history[:2]
    assert list(graph.get_state_history(config, before=history[1].config)) == history[2:]


def test_history_of_an_unknown_thread_is_empty() -> None:
    graph = linear_graph(InMemorySaver(), Calls())

    assert list(graph.get_state_history(thread())) == []


# --- update_state -------------------------------------------------------------------------


def test_update_state_saves_an_update_checkpoint_through_the_reducers() -> None:
    graph = linear_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)
    previous = graph.get_state(config).config

    new_config = graph.update_state(config, {"log": ["x"]}, as_node="c")

    state = graph.get_state(config)
    assert new_config["configurable"]["checkpoint_id"] == _head_id(graph, config)
    assert state.values == {"log": ["a", "b", "c", "x"]}
    assert state.metadata["source"] == "update"
    assert state.parent_config == previous
    assert state.next == ()


def test_update_state_as_node_schedules_that_nodes_successors() -> None:
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls)
    config = thread()
    graph.invoke({"log": []}, config)

    graph.update_state(config, {"log": ["x"]}, as_node="a")

    assert graph.get_state(config).next == ("b",)
    assert graph.invoke(None, config) == {"log": ["a", "b", "c", "x", "b", "c"]}
    assert (calls["a"], calls["b"], calls["c"]) == (1, 2, 2)


def test_update_state_defaults_to_the_node_that_last_wrote() -> None:
    graph = linear_graph(InMemorySaver(), Calls(), interrupt_before=["c"])
    config = thread()
    graph.invoke({"log": []}, config)

    graph.update_state(config, {"log": ["x"]})

    state = graph.get_state(config)
    assert state.values == {"log": ["a", "b", "x"]}
    assert state.next == ("c",)  # as if b had written it


def test_update_state_as_the_interrupted_node_answers_by_editing_state() -> None:
    calls = Calls()
    graph = ask_then_log_graph(InMemorySaver(), calls)
    config = thread()
    graph.invoke({"log": []}, config)

    graph.update_state(config, {"log": ["ask=edited"]}, as_node="ask")

    state = graph.get_state(config)
    assert state.next == ("after",)
    assert state.interrupts == ()
    assert graph.invoke(None, config) == {"log": ["before", "ask=edited", "after"]}
    assert calls["ask"] == 1


def test_update_state_as_end_cancels_the_pending_question() -> None:
    calls = Calls()
    graph = ask_then_log_graph(InMemorySaver(), calls)
    config = thread()
    graph.invoke({"log": []}, config)

    graph.update_state(config, None, as_node=END)

    state = graph.get_state(config)
    assert state.interrupts == ()
    assert state.next == ()
    assert state.values == {"log": ["before"]}
    assert graph.invoke(None, config) == {"log": ["before"]}
    assert calls["ask"] == 1


def test_update_state_as_end_keeps_finished_siblings_and_schedules_their_successors() -> None:
    calls = Calls()
    graph = parallel_graph(InMemorySaver(), calls)
    config = thread()
    graph.invoke({"log": []}, config)

    graph.update_state(config, None, as_node=END)

    state = graph.get_state(config)
    assert state.interrupts == ()
    assert state.values == {"log": ["c"]}
    assert state.next == ("join",)
    assert graph.invoke(None, config) == {"log": ["c", "join"]}
    assert (calls["a"], calls["b"], calls["c"]) == (1, 1, 1)


def test_update_state_with_an_unknown_key_is_rejected() -> None:
    graph = linear_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)
    count = len(list(graph.get_state_history(config)))

    with pytest.raises(InvalidUpdateError):
        graph.update_state(config, {"nope": 1}, as_node="a")

    assert len(list(graph.get_state_history(config))) == count


# --- time travel --------------------------------------------------------------------------


def test_replay_from_a_past_checkpoint_forks_the_thread() -> None:
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls)
    config = thread()
    graph.invoke({"log": []}, config)
    history = list(graph.get_state_history(config))
    old_final = history[0].config["configurable"]["checkpoint_id"]
    before_b = next(h for h in history if h.next == ("b",))
    fork_point = before_b.config["configurable"]["checkpoint_id"]

    result = graph.invoke(None, at(config, fork_point))

    assert result == {"log": ["a", "b", "c"]}
    assert (calls["a"], calls["b"], calls["c"]) == (1, 2, 2)
    new_history = list(graph.get_state_history(config))
    new_ids = [h.config["configurable"]["checkpoint_id"] for h in new_history]
    assert new_ids[0] != old_final
    assert old_final in new_ids  # the original branch is kept
    assert new_history[0].values == {"log": ["a", "b", "c"]}
    ancestors = []
    parent = new_history[0].parent_config
    by_id = {h.config["configurable"]["checkpoint_id"]: h for h in new_history}
    while parent is not None:
        pid = parent["configurable"]["checkpoint_id"]
        ancestors.append(pid)
        parent = by_id[pid].parent_config
    assert fork_point in ancestors
    assert old_final not in ancestors


def test_update_state_on_a_past_checkpoint_forks_with_edited_values() -> None:
    graph = linear_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)
    before_b = next(h for h in graph.get_state_history(config) if h.next == ("b",))

    fork = graph.update_state(before_b.config, {"log": ["edited"]}, as_node="a")
    result = graph.invoke(None, fork)

    assert result == {"log": ["a", "edited", "b", "c"]}
    assert graph.get_state(config).values == result


def test_unknown_checkpoint_id_is_a_config_error() -> None:
    graph = linear_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)
    missing = at(config, "ffffffff-ffff-ffff-ffff-ffffffffffff")

    with pytest.raises(InvalidConfigError):
        graph.get_state(missing)
    with pytest.raises(InvalidConfigError):
        graph.invoke(None, missing)


@pytest.mark.parametrize("config", [None, {}, {"configurable": {}}], ids=["none", "empty", "no_id"])
def test_missing_thread_id_with_a_checkpointer_is_a_config_error(config: Any) -> None:
    graph = linear_graph(InMemorySaver(), Calls())

    with pytest.raises(InvalidConfigError):
        graph.invoke({"log": []}, config)
    with pytest.raises(InvalidConfigError):
        graph.get_state(config)


def test_config_errors_are_value_errors() -> None:
    assert issubclass(InvalidConfigError, ValueError)


# --- durability ---------------------------------------------------------------------------


def test_durability_exit_saves_only_the_final_checkpoint_and_still_resumes() -> None:
    calls = Calls()
    graph = ask_then_log_graph(InMemorySaver(), calls)
    config = thread()

    paused = graph.invoke({"log": []}, config, durability="exit")

    assert paused["log"] == ["before"]
    assert len(list(graph.get_state_history(config))) == 1
    assert graph.get_state(config).next == ("ask",)

    done = graph.invoke(Command(resume="ok"), config, durability="exit")

    assert done == {"log": ["before", "ask=ok", "after"]}
    assert len(list(graph.get_state_history(config))) == 2
    assert calls["before"] == 1


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_sync_and_async_durability_save_every_checkpoint(durability: str) -> None:
    graph = linear_graph(InMemorySaver(), Calls())
    reference = thread()
    graph.invoke({"log": []}, reference)
    config = thread()

    assert graph.invoke({"log": []}, config, durability=durability) == {"log": ["a", "b", "c"]}

    expected = [h.next for h in graph.get_state_history(reference)]
    assert [h.next for h in graph.get_state_history(config)] == expected


def test_update_state_before_the_asking_node_gives_the_question_a_new_id() -> None:
    calls = Calls()
    graph = ask_then_log_graph(InMemorySaver(), calls)
    config = thread()
    (old,) = graph.invoke({"log": []}, config)["__interrupt__"]

    graph.update_state(config, {"log": ["x"]}, as_node="before")

    assert graph.get_state(config).next == ("ask",)
    (new,) = graph.invoke(None, config)["__interrupt__"]
    assert new.value == old.value
    assert new.id != old.id
    assert graph.invoke(Command(resume="ok"), config)["log"] == ["before", "x", "ask=ok", "after"]


def test_durability_exit_keeps_finished_siblings_across_a_partial_resume() -> None:
    calls = Calls()
    graph = parallel_graph(InMemorySaver(), calls)
    config = thread()
    qa, qb = graph.invoke({"log": []}, config, durability="exit")["__interrupt__"]

    partial = graph.invoke(Command(resume={qa.id: "A"}), config, durability="exit")
    assert partial["__interrupt__"] == (qb,)

    done = graph.invoke(Command(resume={qb.id: "B"}), config, durability="exit")

    assert done == {"log": ["a=A", "b=B", "c", "join"]}
    assert (calls["a"], calls["b"], calls["c"]) == (2, 3, 1)


def test_durability_exit_saves_a_failed_run_so_it_can_be_retried() -> None:
    calls = Calls()
    fail = [True]

    def flaky(state: LogState) -> dict[str, Any]:
        calls.hit("flaky")
        if fail[0]:
            raise RuntimeError("flaky")
        return {"log": ["flaky"]}

    def first(state: LogState) -> dict[str, Any]:
        calls.hit("first")
        return {"log": ["first"]}

    g = StateGraph(LogState)
    g.add_node("first", first)
    g.add_node("flaky", flaky)
    g.add_edge(START, "first")
    g.add_edge("first", "flaky")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    with pytest.raises(RuntimeError, match="flaky"):
        graph.invoke({"log": []}, config, durability="exit")
    assert graph.get_state(config).next == ("flaky",)
    fail[0] = False

    assert graph.invoke(None, config, durability="exit") == {"log": ["first", "flaky"]}
    assert (calls["first"], calls["flaky"]) == (1, 2)
