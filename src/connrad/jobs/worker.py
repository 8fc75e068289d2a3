"""The worker loop: claims jobs, runs their handler, records the outcome.

Handlers are registered per job kind by the domains that own them. A handler that raises
has its job retried later; the error text recorded must not contain patient data.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from connrad.jobs import queue

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]


class Worker:
    def __init__(self, engine: Engine, handlers: dict[str, Handler], *, poll: float = 0.5):
        self.engine = engine
        self.handlers = handlers
        self.poll = poll
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._stop = threading.Event()

    def run_once(self, limit: int = 10) -> int:
        """Claim and run one batch; returns how many jobs were processed."""
        claimed = queue.claim(self.engine, self.name, list(self.handlers), limit)
        for job in claimed:
            try:
                self.handlers[job.kind](job.payload)
            except Exception as exc:
                log.warning("job %s (%s) failed: %s", job.id, job.kind, type(exc).__name__)
                queue.fail(self.engine, job, self.name, f"{type(exc).__name__}: {exc}")
            else:
                queue.complete(self.engine, job.id, self.name)
        return len(claimed)

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("worker loop error; retrying")
                busy = 0
            if not busy:
                self._stop.wait(self.poll)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="connrad-worker", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
