"""Production agent: moves transformations and productions to Completed, and cleans
productions being deleted."""

from __future__ import annotations

from metaprod.db.lifecycle import run_lifecycle
from sqlalchemy.orm import Session


class ProductionAgent:
    name = "production"
    wakes_on = frozenset({"done", "production", "transformation"})
    produces = frozenset({"completed"})
    # Completion is not latency-critical: batch the wakes of many finished tasks.
    min_gap = 0.5

    def run_once(self, session: Session) -> str:
        summary = run_lifecycle(session=session)
        if summary.transformations_completed or summary.productions_completed or summary.productions_cleaned:
            return str(summary)
        return "idle"
