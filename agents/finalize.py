"""Finalize agent: register the outputs of reported attempts (checked against the output
query, all at once, with provenance), mark inputs Processed, dispose of the scratch."""

from __future__ import annotations

import shutil

from metaprod.agents.settings import AgentSettings
from metaprod.db.jobs import finalize_reported
from sqlalchemy.orm import Session


class FinalizeAgent:
    name = "finalize"
    wakes_on = frozenset({"report"})
    produces = frozenset({"done", "files", "tasks"})

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings

    def run_once(self, session: Session) -> str:
        summary = finalize_reported(
            session=session, limit=self.settings.batch_size, backoff_base=self.settings.retry_backoff_seconds
        )
        session.flush()
        for workdir in summary.scratch:
            # The scratch holds nothing the catalog needs: outputs were stored by the wrapper.
            shutil.rmtree(workdir, ignore_errors=True)
        if not (summary.done or summary.failed):
            return "idle"
        return f"finalized {summary.done} tasks ({summary.outputs} outputs), {summary.failed} failed"
