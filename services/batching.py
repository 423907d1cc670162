"""Group commit for the job wrappers' reports: reports arriving together are written in one
transaction. On SQLite every write transaction takes the database lock, so one transaction
per report would make thousands of small jobs queue behind each other; each caller still
waits until its own report is committed, so a report acknowledged is a report stored."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from metaprod.db.session import Database
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

# Largest batch of one transaction, and how long a lone item waits for company.
MAX_BATCH = 500
LINGER_SECONDS = 0.002


class GroupCommitter(Generic[Item, Result]):
    def __init__(self, database: Database, apply: Callable[[Session, Item], Result], *, name: str) -> None:
        self._database = database
        self._apply = apply
        self._queue: list[tuple[Item, Future[Result]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"group-commit-{name}", daemon=True)
        self._thread.start()

    def submit(self, item: Item) -> Result:
        """Write `item` in the next batch and return its result once the batch committed."""
        future: Future[Result] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the service is stopping")
            self._queue.append((item, future))
            self._cond.notify()
        return future.result()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
            # Let the reports that are on their way join this batch.
            threading.Event().wait(LINGER_SECONDS)
            with self._cond:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            self._write(batch)

    def _write(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        try:
            with self._database.session_scope() as session:
                results = [self._apply(session, item) for item, _ in batch]
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # One bad item must not fail its neighbours: write them one by one.
            for one in batch:
                self._write([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
