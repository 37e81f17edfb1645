"""A real worker process over the test graphs, for the process tests.

Run from the ``tests`` directory: ``python -m worker.worker_process --url URL [...]``. It goes
through `app.worker.run_worker`, the same composition ``hitl worker`` uses, with the test
graphs instead of the configured ones. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from app.config import Settings
from app.worker import run_worker

from .graphs import GRAPHS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings(
        database_url=args.url,
        worker_concurrency=args.concurrency,
        lease_seconds=args.lease,
        shutdown_grace_seconds=args.grace,
        poll_seconds=args.poll,
    )
    asyncio.run(run_worker(settings, GRAPHS))


if __name__ == "__main__":
    main()
