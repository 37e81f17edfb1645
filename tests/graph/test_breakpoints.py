"""Static breakpoints: interrupt_before / interrupt_after at compile time or per call."""

from __future__ import annotations

from app.checkpoint.memory import InMemorySaver
from app.graph import Command
from tests.graph.graphs import Calls, ask_then_log_graph, linear_graph, thread


def test_interrupt_before_pauses_without_an_interrupt_key() -> None:
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls, interrupt_before=["b"])
    config = thread()

    result = graph.invoke({"log": []}, config)

    assert result == {"log": ["a"]}
    assert calls["b"] == 0
    state = graph.get_state(config)
    assert state.next == ("b",)
    assert state.interrupts == ()


def test_invoke_none_continues_past_the_breakpoint() -> None:
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls, interrupt_before=["b"])
    config = thread()
    graph.invoke({"log": []}, config)

    result = graph.invoke(None, config)

    assert result == {"log": ["a", "b", "c"]}
    assert (calls["a"], calls["b"], calls["c"]) == (1, 1, 1)
    assert graph.get_state(config).next == ()


def test_interrupt_after_pauses_once_the_node_has_run() -> None:
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls, interrupt_after=["a"])
    config = thread()

    assert graph.invoke({"log": []}, config) == {"log": ["a"]}
    assert graph.get_state(config).next == ("b",)
    assert calls["b"] == 0

    assert graph.invoke(None, config) == {"log": ["a", "b", "c"]}
    assert calls["a"] == 1


def test_compile_time_breakpoints_apply_to_every_run() -> None:
    graph = linear_graph(InMemorySaver(), Calls(), interrupt_before=["c"])

    for _ in range(2):
        config = thread()
        assert graph.invoke({"log": []}, config) == {"log": ["a", "b"]}
        assert graph.get_state(config).next == ("c",)


def test_per_call_breakpoints_apply_to_that_call_only() -> None:
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls)
    config = thread()

    assert graph.invoke({"log": []}, config, interrupt_before=["b"]) == {"log": ["a"]}
    assert graph.get_state(config).next == ("b",)

    assert graph.invoke(None, config) == {"log": ["a", "b", "c"]}
    assert graph.invoke({"log": []}, thread()) == {"log": ["a", "b", "c"]}


def test_per_call_interrupt_after() -> None:
    graph = linear_graph(InMemorySaver(), Calls())
    config = thread()

    assert graph.invoke({"log": []}, config, interrupt_after=["b"]) == {"log": ["a", "b"]}
    assert graph.get_state(config).next == ("c",)


def test_star_pauses_before_every_node() -> None:
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls, interrupt_before="*")
    config = thread()

    assert graph.invoke({"log": []}, config) == {"log": []}
    seen_next = [graph.get_state(config).next]
    for _ in range(3):
        graph.invoke(None, config)
        seen_next.append(graph.get_state(config).next)

    assert seen_next == [("a",), ("b",), ("c",), ()]
    assert calls.trace == ["a", "b", "c"]


def test_star_pauses_after_every_node() -> None:
    graph = linear_graph(InMemorySaver(), Calls(), interrupt_after="*")
    config = thread()

    results = [graph.invoke({"log": []}, config)]
    results += [graph.invoke(None, config) for _ in range(2)]

    assert results == [{"log": ["a"]}, {"log": ["a", "b"]}, {"log": ["a", "b", "c"]}]


def test_command_resume_at_a_breakpoint_just_continues() -> None:
    graph = linear_graph(InMemorySaver(), Calls(), interrupt_before=["b"])
    config = thread()
    graph.invoke({"log": []}, config)

    assert graph.invoke(Command(resume="ignored"), config) == {"log": ["a", "b", "c"]}


def test_new_input_at_a_breakpoint_starts_a_new_run() -> None:
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls, interrupt_before=["b"])
    config = thread()
    graph.invoke({"log": ["x"]}, config)

    result = graph.invoke({"log": ["y"]}, config)

    assert result == {"log": ["x", "a", "y", "a"]}  # the paused step was dropped
    assert calls["a"] == 2
    assert calls["b"] == 0
    assert graph.get_state(config).next == ("b",)


def test_state_edited_at_a_breakpoint_is_seen_by_the_node() -> None:
    seen: list[list[str]] = []
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls, interrupt_before=["b"])
    config = thread()
    graph.invoke({"log": []}, config)

    graph.update_state(config, {"log": ["edited"]}, as_node="a")
    seen.append(graph.get_state(config).values["log"])
    result = graph.invoke(None, config)

    assert seen == [["a", "edited"]]
    assert result == {"log": ["a", "edited", "b", "c"]}
    assert calls["b"] == 1  # the breakpoint did not fire again


def test_a_breakpoint_before_an_asking_node_then_its_question() -> None:
    calls = Calls()
    graph = ask_then_log_graph(InMemorySaver(), calls)
    config = thread()

    assert graph.invoke({"log": []}, config, interrupt_before=["ask"]) == {"log": ["before"]}
    assert calls["ask"] == 0

    asked = graph.invoke(None, config)
    assert [i.value for i in asked["__interrupt__"]] == ["continue?"]

    assert graph.invoke(Command(resume="x"), config) == {"log": ["before", "ask=x", "after"]}


def test_a_breakpoint_after_an_asking_node_fires_once_it_is_answered() -> None:
    graph = ask_then_log_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config, interrupt_after=["ask"])

    paused = graph.invoke(Command(resume="y"), config, interrupt_after=["ask"])

    assert paused == {"log": ["before", "ask=y"]}
    assert graph.get_state(config).next == ("after",)
    assert graph.invoke(None, config) == {"log": ["before", "ask=y", "after"]}
