"""The worker: claims runs, executes them under a heartbeated lease, drains on SIGTERM."""

from app.worker.entry import run_worker
from app.worker.worker import Worker, default_worker_id

__all__ = ["Worker", "default_worker_id", "run_worker"]
