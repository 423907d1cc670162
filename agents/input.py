"""Input agent: attach catalog files that match an Active transformation's input query.

Registration already attaches new files at once through the file router; this cycle is the
safety net and the back-fill: it scans files above each transformation's watermark, so a
transformation started after its files were catalogued gets them too."""

from __future__ import annotations

from metaprod.db.routing import backfill_active
from sqlalchemy.orm import Session


class InputAgent:
    name = "input"
    wakes_on = frozenset({"production", "transformation"})
    produces = frozenset({"files"})

    def run_once(self, session: Session) -> str:
        attached = backfill_active(session=session)
        return f"attached {attached} files" if attached else "idle"
