"""Group commit: one thread writes what many threads submit, in shared transactions.

Each submitter waits for its own result, so nothing is acknowledged before its commit; the
commit's fsync is shared by everything that arrived while the previous batch was written.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class BatchWriter(Generic[Item, Result]):
    def __init__(
        self,
        name: str,
        write_batch: Callable[[list[Item]], list[Result]],
        on_error: Callable[[Item], Result],
        max_batch: int = 64,
    ) -> None:
        self.name = name
        self.write_batch = write_batch
        self.on_error = on_error
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, item: Item) -> Result:
        self._ensure_thread()
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future.result()

    def _ensure_thread(self) -> None:
        # Started lazily, so a forked or spawned worker process gets its own thread.
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            items = [item for item, _ in batch]
            try:
                results = self.write_batch(items)
            except Exception:  # never let the writer die with submitters waiting
                log.exception("%s: batch failed", self.name)
                results = [self.on_error(item) for item in items]
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)
