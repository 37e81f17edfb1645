"""The async surface: ainvoke/astream/aget_state/aupdate_state/arun, and real concurrency."""

from __future__ import annotations

import asyncio
import gc
import operator
import threading
from typing import Annotated, Any

from typing_extensions import TypedDict

from app.checkpoint.memory import InMemorySaver
from app.graph import START, Command, RunResult, Send, StateGraph, interrupt
from tests.graph.graphs import (
    Calls,
    LogState,
    ask_then_log_graph,
    linear_graph,
    parallel_graph,
    thread,
)

WAIT = 5.0


def _two_parallel(a: Any, b: Any, saver: Any = None) -> Any:
    g = StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    return g.compile(checkpointer=saver)


async def test_ainvoke_runs_async_nodes() -> None:
    async def first(state: LogState) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"log": ["first"]}

    async def second(state: LogState) -> dict[str, Any]:
        return {"log": ["second"]}

    g = StateGraph(LogState)
    g.add_node("first", first)
    g.add_node("second", second)
    g.add_edge(START, "first")
    g.add_edge("first", "second")

    assert await g.compile().ainvoke({"log": []}) == {"log": ["first", "second"]}


async def test_async_parallel_nodes_run_concurrently() -> None:
    a_in, b_in = asyncio.Event(), asyncio.Event()

    async def a(state: LogState) -> dict[str, Any]:
        a_in.set()
        async with asyncio.timeout(WAIT):
            await b_in.wait()  # only returns if b started while a is still running
        return {"log": ["a"]}

    async def b(state: LogState) -> dict[str, Any]:
        b_in.set()
        async with asyncio.timeout(WAIT):
            await a_in.wait()
        return {"log": ["b"]}

    assert await _two_parallel(a, b).ainvoke({"log": []}) == {"log": ["a", "b"]}


async def test_async_send_results_follow_send_order_not_completion_order() -> None:
    done = [asyncio.Event() for _ in range(4)]

    class S(TypedDict, total=False):
        out: Annotated[list[int], operator.add]

    async def worker(arg: int) -> dict[str, Any]:
        try:
            if arg + 1 < len(done):
                async with asyncio.timeout(WAIT):
                    await done[arg + 1].wait()
            return {"out": [arg]}
        finally:
            done[arg].set()

    g = StateGraph(S)
    g.add_node("worker", worker)
    g.add_conditional_edges(START, lambda s: [Send("worker", i) for i in range(4)])

    assert await g.compile().ainvoke({}) == {"out": [0, 1, 2, 3]}


async def test_sync_nodes_do_not_block_the_loop_under_ainvoke() -> None:
    barrier = threading.Barrier(2, timeout=WAIT)

    def a(state: LogState) -> dict[str, Any]:
        barrier.wait()
        return {"log": ["a"]}

    def b(state: LogState) -> dict[str, Any]:
        barrier.wait()
        return {"log": ["b"]}

    assert await _two_parallel(a, b).ainvoke({"log": []}) == {"log": ["a", "b"]}


async def test_sync_and_async_nodes_mix() -> None:
    def a(state: LogState) -> dict[str, Any]:
        return {"log": ["a"]}

    async def b(state: LogState) -> dict[str, Any]:
        return {"log": ["b"]}

    assert await _two_parallel(a, b).ainvoke({"log": []}) == {"log": ["a", "b"]}


async def test_async_interrupt_and_resume() -> None:
    calls = Calls()

    async def ask(state: LogState) -> dict[str, Any]:
        calls.hit("ask")
        await asyncio.sleep(0)
        return {"log": [f"ask={interrupt('q')}"]}

    g = StateGraph(LogState)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    paused = await graph.ainvoke({"log": []}, config)
    state = await graph.aget_state(config)

    assert paused["__interrupt__"] == state.interrupts
    assert [i.value for i in state.interrupts] == ["q"]
    assert await graph.ainvoke(Command(resume="yes"), config) == {"log": ["ask=yes"]}
    assert calls["ask"] == 2


async def test_async_parallel_interrupts_are_in_task_order() -> None:
    b_done = asyncio.Event()

    async def a(state: LogState) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            await b_done.wait()
        return {"log": [f"a={interrupt('qa')}"]}

    async def b(state: LogState) -> dict[str, Any]:
        try:
            return {"log": [f"b={interrupt('qb')}"]}
        finally:
            b_done.set()

    graph = _two_parallel(a, b, InMemorySaver())
    config = thread()

    result = await graph.ainvoke({"log": []}, config)

    assert [i.value for i in result["__interrupt__"]] == ["qa", "qb"]
    qa, qb = result["__interrupt__"]
    done = await graph.ainvoke(Command(resume={qa.id: "A", qb.id: "B"}), config)
    assert done == {"log": ["a=A", "b=B"]}


async def test_astream_modes() -> None:
    graph = linear_graph(InMemorySaver(), Calls())

    values = [c async for c in graph.astream({"log": []}, thread(), stream_mode="values")]
    updates = [c async for c in graph.astream({"log": []}, thread(), stream_mode="updates")]

    assert values == [{"log": []}, {"log": ["a"]}, {"log": ["a", "b"]}, {"log": ["a", "b", "c"]}]
    assert updates == [{"a": {"log": ["a"]}}, {"b": {"log": ["b"]}}, {"c": {"log": ["c"]}}]


async def test_astream_reports_interrupts() -> None:
    graph = parallel_graph(InMemorySaver(), Calls())
    config = thread()

    chunks = [c async for c in graph.astream({"log": []}, config, stream_mode="updates")]

    streamed = [i for c in chunks if "__interrupt__" in c for i in c["__interrupt__"]]
    pending = (await graph.aget_state(config)).interrupts
    assert sorted(i.id for i in streamed) == sorted(i.id for i in pending)


async def test_async_history_and_update_state() -> None:
    graph = linear_graph(InMemorySaver(), Calls())
    config = thread()
    await graph.ainvoke({"log": []}, config)

    history = [s async for s in graph.aget_state_history(config)]
    assert [h.values["log"] for h in history] == [["a", "b", "c"], ["a", "b"], ["a"], []]

    new_config = await graph.aupdate_state(config, {"log": ["x"]}, as_node="c")

    state = await graph.aget_state(config)
    head = state.config["configurable"]["checkpoint_id"]
    assert head == new_config["configurable"]["checkpoint_id"]
    assert state.values == {"log": ["a", "b", "c", "x"]}


async def test_sync_invoke_works_inside_a_running_loop() -> None:
    """A notebook or a sync helper called from async code; nothing may leak (no loop, no socket)."""
    graph = linear_graph(InMemorySaver(), Calls())
    config = thread()

    assert graph.invoke({"log": []}, config) == {"log": ["a", "b", "c"]}
    assert graph.get_state(config).next == ()
    gc.collect()  # an event loop left unclosed would warn here, inside this test


# --- arun: the service's entry point ------------------------------------------------------


async def test_arun_completed() -> None:
    graph = linear_graph(InMemorySaver(), Calls())
    config = thread()

    result = await graph.arun({"log": []}, config)

    assert isinstance(result, RunResult)
    assert result.status == "completed"
    assert result.values["log"] == ["a", "b", "c"]
    assert result.interrupts == ()
    assert result.next == ()
    assert (
        result.checkpoint_id
        == (await graph.aget_state(config)).config["configurable"]["checkpoint_id"]
    )


async def test_arun_interrupted_then_resumed() -> None:
    graph = parallel_graph(InMemorySaver(), Calls())
    config = thread()

    paused = await graph.arun({"log": []}, config)

    assert paused.status == "interrupted"
    assert isinstance(paused.interrupts, tuple)
    assert [i.value for i in paused.interrupts] == ["qa", "qb"]
    assert paused.next == ("a", "b")
    assert paused.values["log"] == ["c"]
    qa, qb = paused.interrupts

    done = await graph.arun(Command(resume={qa.id: "A", qb.id: "B"}), config)

    assert done.status == "completed"
    assert done.values["log"] == ["a=A", "b=B", "c", "join"]


async def test_arun_paused_at_a_breakpoint() -> None:
    graph = linear_graph(InMemorySaver(), Calls(), interrupt_before=["b"])
    config = thread()

    result = await graph.arun({"log": []}, config)

    assert result.status == "paused"
    assert result.interrupts == ()
    assert result.next == ("b",)
    assert (await graph.arun(None, config)).status == "completed"


async def test_arun_resumes_a_single_interrupt() -> None:
    graph = ask_then_log_graph(InMemorySaver(), Calls())
    config = thread()
    paused = await graph.arun({"log": []}, config)
    assert paused.status == "interrupted"

    done = await graph.arun(Command(resume="ok"), config)

    assert done.status == "completed"
    assert done.values["log"] == ["before", "ask=ok", "after"]


def test_sync_invoke_runs_async_parallel_nodes_concurrently() -> None:
    a_in, b_in = asyncio.Event(), asyncio.Event()

    async def a(state: LogState) -> dict[str, Any]:
        a_in.set()
        async with asyncio.timeout(WAIT):
            await b_in.wait()
        return {"log": ["a"]}

    async def b(state: LogState) -> dict[str, Any]:
        b_in.set()
        async with asyncio.timeout(WAIT):
            await a_in.wait()
        return {"log": ["b"]}

    assert _two_parallel(a, b).invoke({"log": []}) == {"log": ["a", "b"]}
