"""The one runner every agent runs under: APScheduler (UTC, coalesce, one instance per
job), a heartbeat row per agent, wake-ups on new work, and a graceful stop on SIGTERM."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from metaprod.db import agents_status
from metaprod.db.session import Database
from metaprod.services.metrics import AGENT_CYCLE_SECONDS
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

BEAT_SECONDS = 1.0
DEFAULT_MIN_GAP = 0.05


class Agent(Protocol):
    name: str
    # The kinds of new work ("files", "tasks", "report", ...) that should wake this agent.
    wakes_on: frozenset[str]
    # What this agent's cycle makes, so the runner can wake the agents downstream at once.
    produces: frozenset[str]
    # An agent may also define `produced() -> frozenset[str]`: what its last cycle did make.

    def run_once(self, session: Session) -> str:
        """One cycle in one transaction; returns a short status line for the heartbeat."""
        ...


class AgentRunner:
    def __init__(self, database: Database, agents: Iterable[Agent], *, poll_seconds: float = 5.0) -> None:
        self.database = database
        self.agents = list(agents)
        self.poll_seconds = poll_seconds
        self._scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        self._stopping = threading.Event()
        # Wakes that arrived while the agent's cycle was running: it runs again right after.
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._last_beat: dict[str, tuple[float, str]] = {}
        self._last_end: dict[str, float] = {}
        # Cycles not yet counted in the agent's heartbeat row: (count, seconds).
        self._unbeaten: dict[str, tuple[int, float]] = {}

    def cycle(self, agent: Agent) -> str:
        """Run one cycle of one agent and record its heartbeat; never raises."""
        with self._pending_lock:
            self._pending.discard(agent.name)
        try:
            with self.database.session_scope() as session:
                started = time.perf_counter()
                status = agent.run_once(session)
                seconds = time.perf_counter() - started
                cycles = self._count_cycle(agent.name, seconds)
                if not status.startswith("idle"):
                    log.debug("agent %s: %s (%.3f s)", agent.name, status, seconds)
                # The heartbeat rides in the cycle's own transaction, at most once a second
                # (sooner when the agent turns idle or busy): a write per cycle would cost
                # as much as a busy agent's work.
                if self._beat_due(agent.name, status):
                    agents_status.beat(session=session, name=agent.name, status=status, cycles=cycles)
                    self._unbeaten.pop(agent.name, None)
        except Exception as exc:
            log.exception("agent %s cycle failed", agent.name)
            status = f"error: {type(exc).__name__}: {exc}"
            self._beat_apart(agent.name, status)
        else:
            if status and not status.startswith("idle"):
                # What this cycle made happen, when the agent says (a subset of `produces`):
                # waking agents for events that did not occur costs them idle cycles.
                produced = getattr(agent, "produced", None)
                self.wake(agent.produces if produced is None else produced())
            # Only after a commit: what a rolled-back cycle prepared must not be acted upon
            # (its next cycle starts afresh).
            after_commit = getattr(agent, "after_commit", None)
            if after_commit is not None:
                try:
                    after_commit(self.database)
                except Exception:
                    log.exception("agent %s post-commit step failed", agent.name)
        self._last_end[agent.name] = time.monotonic()
        with self._pending_lock:
            again = agent.name in self._pending
        if again:
            self._reschedule(agent.name)
        return status

    def _count_cycle(self, name: str, seconds: float) -> agents_status.Cycles:
        """Count a cycle (this process's histogram, and the heartbeat row's counters at the
        next beat); returns what the next beat adds."""
        AGENT_CYCLE_SECONDS.labels(name).observe(seconds)
        count, total = self._unbeaten.get(name, (0, 0.0))
        self._unbeaten[name] = (count + 1, total + seconds)
        return agents_status.Cycles(count + 1, total + seconds, seconds)

    def _beat_due(self, name: str, status: str) -> bool:
        now = time.monotonic()
        last = self._last_beat.get(name)
        if (
            last is not None
            and now - last[0] < BEAT_SECONDS
            and last[1].startswith("idle") == status.startswith("idle")
        ):
            return False
        self._last_beat[name] = (now, status)
        return True

    def _beat_apart(self, name: str, status: str) -> None:
        try:
            with self.database.session_scope() as session:
                agents_status.beat(session=session, name=name, status=status)
            self._last_beat[name] = (time.monotonic(), status)
        except Exception:
            log.exception("agent %s heartbeat failed", name)

    def run_all_once(self) -> dict[str, str]:
        """`--once`: one cycle of every agent in order (for tests and cron-style use)."""
        return {agent.name: self.cycle(agent) for agent in self.agents}

    def wake(self, kinds: Iterable[str]) -> None:
        """Run the agents interested in these kinds of work now instead of at their next poll."""
        if self._stopping.is_set() or not self._scheduler.running:
            return
        wanted = set(kinds)
        for agent in self.agents:
            if agent.wakes_on & wanted:
                with self._pending_lock:
                    self._pending.add(agent.name)
                self._reschedule(agent.name)

    def _reschedule(self, name: str) -> None:
        if self._stopping.is_set() or not self._scheduler.running:
            return
        job = self._scheduler.get_job(name)
        if job is None:
            return
        # Wakes closer together than an agent's `min_gap` coalesce into one cycle, so a burst
        # of reports is finalized as one batch instead of one transaction each.
        gap = getattr(job.args[0], "min_gap", DEFAULT_MIN_GAP)
        since = time.monotonic() - self._last_end.get(name, 0.0)
        delay = max(0.0, gap - since)
        job.modify(next_run_time=_now() + timedelta(seconds=delay))

    def start(self) -> None:
        for agent in self.agents:
            self._scheduler.add_job(
                self.cycle, "interval", args=[agent], seconds=self.poll_seconds, id=agent.name, next_run_time=_now()
            )
        self._scheduler.start()

    def stop(self, wait: bool = True) -> None:
        """Let running cycles finish, then stop; marks the heartbeats stopped."""
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
        try:
            with self.database.session_scope() as session:
                for agent in self.agents:
                    agents_status.beat(session=session, name=agent.name, status="stopped", stopped=True)
        except Exception:
            log.exception("could not record the agents' stop")

    def run_forever(self, stop: threading.Event, *, watch_seconds: float | None = None) -> None:
        """Run until `stop` is set. With `watch_seconds`, also look at the database's marks
        of new work that often (agents apart from the services get no in-process wake)."""
        self.start()
        previous: dict[str, object] | None = None
        try:
            while not stop.wait(watch_seconds or 0.5):
                if watch_seconds:
                    previous = self._watch(previous)
        finally:
            self.stop()

    def _watch(self, previous: dict[str, object] | None) -> dict[str, object] | None:
        try:
            with self.database.session_scope(readonly=True) as session:
                marks = agents_status.work_signature(session=session)
        except Exception:
            log.exception("could not read the marks of new work")
            return previous
        if previous is not None:
            self.wake(kind for kind, value in marks.items() if previous.get(kind) != value)
        return marks


def _now() -> datetime:
    return datetime.now(UTC)
