"""Sampler agent: stores every transformation's counts (done, failed, pending, queued and
running tasks) at a fixed cadence, for the dashboard's history plots, and prunes old samples.

A sample is stored only when a transformation's counts changed since its previous one, so an
idle system adds nothing; the plots carry a value forward until the next sample. Samples live
in the database: a restart keeps the history, and several agent processes share one cadence
(the time of the last stored sample decides whether one is due)."""

from __future__ import annotations

from datetime import timedelta

from metaprod.agents.settings import AgentSettings
from metaprod.db import monitoring
from metaprod.db.models import utcnow
from sqlalchemy.orm import Session


class SamplerAgent:
    name = "sampler"
    wakes_on: frozenset[str] = frozenset()
    produces: frozenset[str] = frozenset()

    def __init__(self, settings: AgentSettings) -> None:
        self.every = timedelta(seconds=settings.sample_seconds)
        self.keep = timedelta(days=settings.sample_keep_days)
        self._last: dict[int, monitoring.SampleValues] | None = None

    def run_once(self, session: Session) -> str:
        now = utcnow()
        last = monitoring.last_sample_time(session=session)
        if last is not None and now - last < self.every:
            return "idle"
        if self._last is None:
            self._last = monitoring.latest_samples(session=session)
        current = monitoring.current_values(monitoring.overview(session=session))
        changed = [(pid, tid, values) for tid, (pid, values) in current.items() if self._last.get(tid) != values]
        stored = monitoring.store_samples(session=session, time=now, rows=changed)
        pruned = monitoring.prune_samples(session=session, before=now - self.keep)
        # Only after the commit would this be certain; a rolled-back cycle at worst stores a
        # transformation's unchanged values once more.
        self._last.update({tid: values for _, tid, values in changed})
        if not stored and not pruned:
            return "idle: nothing changed"
        return f"sampled {stored} transformations" + (f", pruned {pruned}" if pruned else "")
