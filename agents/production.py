"""Production agent: ends transformations and productions with their outcome, reopens them
when new work appears, and cleans productions being deleted."""

from __future__ import annotations

from metaprod.agents.disposal import Disposer
from metaprod.agents.settings import AgentSettings
from metaprod.db.lifecycle import run_lifecycle
from sqlalchemy.orm import Session


class ProductionAgent:
    name = "production"
    wakes_on = frozenset({"done", "production", "transformation"})
    produces = frozenset({"completed"})
    # Batch the wakes of many finished tasks, but not for long: a child's partial group
    # waits for its parents' completion, and so does everyone watching a production.
    min_gap = 0.1

    def __init__(self, settings: AgentSettings) -> None:
        # Removes a deleted production's logs, scratch and purged outputs (db.cleaning).
        self.dispose = Disposer(settings)

    def run_once(self, session: Session) -> str:
        summary = run_lifecycle(session=session, dispose=self.dispose)
        return "idle" if summary.idle else str(summary)
