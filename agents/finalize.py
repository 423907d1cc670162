"""Finalize agent: register the outputs of reported attempts (checked against the output
query, all at once, with provenance), mark inputs Processed, dispose of the scratch."""

from __future__ import annotations

import logging
import shutil

from metaprod.agents.checkpoints import remove_checkpoints
from metaprod.agents.settings import AgentSettings
from metaprod.db.finalize import finalize_reported
from metaprod.db.session import Database
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class FinalizeAgent:
    name = "finalize"
    wakes_on = frozenset({"report"})
    produces = frozenset({"done", "files", "tasks"})

    # Under load, fewer and larger cycles: each has a fixed cost (a transaction, a few queries).
    min_gap = 0.1

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self._scratch: list[str] = []
        self._checkpoints: list[int] = []

    def run_once(self, session: Session) -> str:
        summary = finalize_reported(
            session=session, limit=self.settings.batch_size, backoff_base=self.settings.retry_backoff_seconds
        )
        session.flush()
        self._scratch = summary.scratch
        self._checkpoints = summary.checkpoints
        if not (summary.done or summary.failed):
            return "idle"
        return f"finalized {summary.done} tasks ({summary.outputs} outputs), {summary.failed} failed"

    def after_commit(self, database: Database) -> None:
        # Once the cycle committed, and without holding the database: the scratch holds
        # nothing the catalog needs (the wrapper stored the outputs).
        scratch, self._scratch = self._scratch, []
        for workdir in scratch:
            shutil.rmtree(workdir, ignore_errors=True)
        done, self._checkpoints = self._checkpoints, []
        try:
            remove_checkpoints(self.settings.storage, done)
        except OSError as exc:  # kept: they cost space, not correctness
            log.warning("saved checkpoints of %d Done tasks not removed: %s", len(done), exc)
