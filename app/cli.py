"""The ``hitl`` command: run the service (serve, worker, migrate, graphs) and talk to it.

Composition only: parse arguments, read `Settings`, hand over to uvicorn, the worker, Alembic or
the HTTP API. Client commands (``threads``, ``interrupts``, ``resume``) speak HTTP to a running
service (``--url``, default ``HITL_PUBLIC_URL``) and print readable tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from app.client import HitlClient, HitlError, Thread, TransportError
from app.config import Settings, get_settings

console = Console()
err_console = Console(stderr=True)


# --- service commands ---------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.api.app import EMBEDDED_WORKER_ENV, create_app
    from app.api.http_protocol import HTTP_PROTOCOL
    from app.db.migrate import upgrade

    if settings.async_database_url.startswith("sqlite"):
        upgrade(settings.database_url)  # once, before any server process starts
    log_level = (args.log_level or settings.log_level).lower()
    if args.workers > 1:
        os.environ[EMBEDDED_WORKER_ENV] = "0" if args.no_worker else "1"
        uvicorn.run(
            "app.api.app:create_app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=log_level,
            http=HTTP_PROTOCOL,
        )
    else:
        app = create_app(settings, embedded_worker=not args.no_worker, freeze_heap=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level=log_level, http=HTTP_PROTOCOL)
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from app.worker import run_worker

    if args.concurrency:
        settings = settings.model_copy(update={"worker_concurrency": args.concurrency})
    return asyncio.run(run_worker(settings)) or 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.migrate import upgrade

    url = args.database_url or settings.database_url
    upgrade(url)
    console.print(f"[green]migrated[/green] {_redact(url)} to head")
    return 0


def cmd_graphs(args: argparse.Namespace, settings: Settings) -> int:
    from app.graphs.registry import GraphRegistry, parse_graphs

    registry = GraphRegistry.from_spec(settings.graphs)
    targets = {s.name: s.target for s in parse_graphs(settings.graphs)}
    table = Table(title="Registered graphs")
    for column in ("name", "target", "nodes"):
        table.add_column(column)
    for name in registry.names():
        info = registry.describe(name)
        nodes = [n for n in info.nodes if not n.startswith("__")]
        table.add_row(name, targets.get(name, ""), ", ".join(nodes))
    console.print(table)
    return 0


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        rest = f"{user}:***@{rest.split('@', 1)[1]}"
    return f"{scheme}{sep}{rest}"


# --- client commands ----------------------------------------------------------------------


def _client(args: argparse.Namespace, settings: Settings) -> HitlClient:
    return HitlClient(
        args.url or settings.public_url,
        api_key=args.api_key or os.environ.get("HITL_API_KEY"),
        timeout=args.timeout,
    )


def _parse_value(text: str) -> Any:
    """A JSON value when the text is one (``true``, ``{"a": 1}``), else the text as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _threads_table(threads: Sequence[Thread], title: str) -> Table:
    table = Table(title=title)
    for column in ("thread_id", "graph", "status", "waiting on", "updated"):
        table.add_column(column, overflow="fold")
    for t in threads:
        waiting = "; ".join(f"{i.id[:8]} {_short(i.value, 50)}" for i in t.interrupts)
        if t.error:
            kind, message = t.error.get("type", ""), t.error.get("message", "")
            waiting = f"[red]{_short(kind)}: {_short(message)}[/red]"
        table.add_row(t.thread_id, t.graph, str(t.status), waiting, t.updated_at.isoformat()[:19])
    return table


def _emit_json(data: Any) -> None:
    """Machine-readable output for scripts (``--json``): the API's own shapes, one document."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


def _print_thread(thread: Thread, as_json: bool = False) -> None:
    if as_json:
        _emit_json(thread.model_dump(mode="json"))
        return
    console.print(_threads_table([thread], f"Thread {thread.thread_id}"))
    if thread.values is not None:
        console.print_json(data=thread.values, default=str)


def cmd_threads_list(args: argparse.Namespace, settings: Settings) -> int:
    metadata = dict(item.partition("=")[::2] for item in args.metadata or [])
    with _client(args, settings) as client:
        page = client.list(
            status=args.status,
            graph=args.graph,
            metadata=metadata or None,
            limit=args.limit,
            cursor=args.cursor,
        )
    if args.json:
        _emit_json(
            {
                "threads": [t.model_dump(mode="json") for t in page.items],
                "next_cursor": page.next_cursor,
            }
        )
        return 0
    console.print(_threads_table(page.items, "Threads"))
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")
    return 0


def cmd_threads_get(args: argparse.Namespace, settings: Settings) -> int:
    with _client(args, settings) as client:
        _print_thread(client.get(args.thread_id), args.json)
    return 0


def cmd_threads_start(args: argparse.Namespace, settings: Settings) -> int:
    with _client(args, settings) as client:
        thread = client.start(
            args.graph, _parse_value(args.input), thread_id=args.thread_id, wait=args.wait
        )
    _print_thread(thread, args.json)
    return 0


def cmd_interrupts_list(args: argparse.Namespace, settings: Settings) -> int:
    with _client(args, settings) as client:
        page = client.interrupts(status=args.status, graph=args.graph, limit=args.limit)
    if args.json:
        _emit_json(
            {
                "interrupts": [i.model_dump(mode="json") for i in page.items],
                "next_cursor": page.next_cursor,
            }
        )
        return 0
    table = Table(title=f"Interrupts ({args.status})")
    for column in ("id", "thread_id", "graph", "node", "question", "created"):
        table.add_column(column, overflow="fold")
    for i in page.items:
        table.add_row(
            i.id, i.thread_id, i.graph, i.node, _short(i.value), i.created_at.isoformat()[:19]
        )
    console.print(table)
    return 0


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    value = _parse_value(args.value)
    with _client(args, settings) as client:
        if args.interrupt:
            thread = client.resume(
                args.thread_id,
                values={args.interrupt: value},
                answered_by=args.answered_by,
                wait=args.wait,
            )
        else:
            thread = client.resume(
                args.thread_id, value, answered_by=args.answered_by, wait=args.wait
            )
    _print_thread(thread, args.json)
    return 0


# --- parser ---------------------------------------------------------------------------------


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the service's base URL (default: HITL_PUBLIC_URL)")
    parser.add_argument("--api-key", help="API key (default: HITL_API_KEY)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hitl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the API with an embedded worker")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.add_argument("--no-worker", action="store_true", help="API only, no embedded worker")
    serve.add_argument("--log-level", help="uvicorn log level (default: HITL_LOG_LEVEL)")
    serve.set_defaults(handler=cmd_serve)

    worker = sub.add_parser("worker", help="run a worker (no HTTP)")
    worker.add_argument("--concurrency", type=int, help="runs at once (HITL_WORKER_CONCURRENCY)")
    worker.set_defaults(handler=cmd_worker)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--database-url", help="default: HITL_DATABASE_URL")
    migrate.set_defaults(handler=cmd_migrate)

    sub.add_parser("graphs", help="list the registered graphs").set_defaults(handler=cmd_graphs)

    threads = sub.add_parser("threads", help="threads of a running service")
    threads_sub = threads.add_subparsers(dest="threads_command", required=True, metavar="ACTION")
    t_list = threads_sub.add_parser("list", help="list threads, newest first")
    t_list.add_argument(
        "--status", choices=["queued", "running", "interrupted", "completed", "failed", "cancelled"]
    )
    t_list.add_argument("--graph")
    t_list.add_argument("--metadata", action="append", metavar="KEY=VALUE")
    t_list.add_argument("--limit", type=int, default=20)
    t_list.add_argument("--cursor", help="next page (printed under the table)")
    t_list.set_defaults(handler=cmd_threads_list)
    t_get = threads_sub.add_parser("get", help="show one thread")
    t_get.add_argument("thread_id")
    t_get.set_defaults(handler=cmd_threads_get)
    t_start = threads_sub.add_parser("start", help="start a thread")
    t_start.add_argument("graph")
    t_start.add_argument("--input", default="null", help="JSON input (default null)")
    t_start.add_argument("--thread-id")
    t_start.add_argument("--wait", action="store_true", help="answer once the run settled")
    t_start.set_defaults(handler=cmd_threads_start)

    interrupts = sub.add_parser("interrupts", help="the inbox of a running service")
    i_sub = interrupts.add_subparsers(dest="interrupts_command", required=True, metavar="ACTION")
    i_list = i_sub.add_parser("list", help="interrupts across all threads, newest first")
    i_list.add_argument(
        "--status", default="pending", choices=["pending", "answered", "expired", "cancelled"]
    )
    i_list.add_argument("--graph")
    i_list.add_argument("--limit", type=int, default=20)
    i_list.set_defaults(handler=cmd_interrupts_list)

    resume = sub.add_parser("resume", help="answer a waiting thread")
    resume.add_argument("thread_id")
    resume.add_argument("value", help="the answer: JSON, or plain text")
    resume.add_argument("--interrupt", help="the interrupt id (when several are pending)")
    resume.add_argument("--answered-by")
    resume.add_argument("--wait", action="store_true", help="answer once the run settled")
    resume.set_defaults(handler=cmd_resume)

    for client_parser in (t_list, t_get, t_start, i_list, resume):
        _client_options(client_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args, settings) or 0)
    except TransportError as exc:
        err_console.print(f"[red]cannot reach the service[/red]: {exc.detail}")
        return 2
    except HitlError as exc:
        err_console.print(f"[red]error {exc.status}[/red] {exc.code}: {exc.detail}")
        for item in exc.problem.get("errors") or []:
            err_console.print(f"  - {item.get('loc')}: {item.get('msg')}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
