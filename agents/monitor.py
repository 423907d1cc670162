"""Monitor agent: cancels the jobs of killed tasks and detects lost jobs (missed
heartbeats, a backend that forgot the job or saw it end without a report); lost attempts
are retried with backoff up to max_attempts like any failure. It is also the backstop of
`max_runtime` for a wrapper that did not enforce it (dead, frozen, or unable to report): an
attempt running past it by more than the heartbeat timeout has its job cancelled and fails.
The scratch of the attempts it ends is disposed of like that of reported ones."""

from __future__ import annotations

import contextlib
import shutil
from collections import defaultdict
from datetime import datetime, timedelta

from metaprod.agents.backends.base import BackendError, JobState, JobStatus
from metaprod.agents.jobs import BackendPool
from metaprod.agents.settings import AgentSettings
from metaprod.core.statuses import AttemptStatus
from metaprod.db import jobs
from metaprod.db.jobs import LiveAttempt
from metaprod.db.models import utcnow
from metaprod.db.session import Database
from sqlalchemy.orm import Session


class MonitorAgent:
    name = "monitor"
    wakes_on = frozenset({"production", "transformation"})
    produces = frozenset({"tasks"})

    def __init__(self, settings: AgentSettings, backends: BackendPool) -> None:
        self.settings = settings
        self.backends = backends
        # When this monitor first saw each never-beaten attempt's job running: a job that
        # waited in its batch queue longer than the heartbeat timeout gets the whole timeout
        # for its first beat from its start, not from its submission.
        self._running_since: dict[int, datetime] = {}
        self._scratch: list[str] = []

    def run_once(self, session: Session) -> str:
        attempts = jobs.live_attempts(session=session)
        if not attempts:
            return "idle"
        statuses = self._backend_statuses(attempts)
        now = utcnow()
        live_ids = {a.attempt_id for a in attempts}
        self._running_since = {k: v for k, v in self._running_since.items() if k in live_ids}
        killed = lost = overdue = 0
        self._scratch = []
        for a in attempts:
            if a.task_killed:
                self._end(session, a, "killed: its transformation was stopped with --kill", AttemptStatus.KILLED)
                killed += 1
                continue
            if self._overdue(a, now):
                self._end(session, a, f"killed after max_runtime {a.max_runtime}s", AttemptStatus.FAILED)
                overdue += 1
                continue
            reason = self._lost_reason(a, statuses.get((a.backend, a.backend_job_id or "")), now)
            if reason:
                self._end(session, a, reason, AttemptStatus.LOST)
                lost += 1
        if not (killed or lost or overdue):
            return f"watching {len(attempts)} jobs"
        return f"watching {len(attempts)} jobs; {lost} lost, {killed} killed, {overdue} past max_runtime"

    def _end(self, session: Session, a: LiveAttempt, reason: str, status: AttemptStatus) -> None:
        self._cancel(a)
        if (
            jobs.end_attempt(
                session=session,
                attempt_id=a.attempt_id,
                reason=reason,
                backoff_base=self.settings.retry_backoff_seconds,
                status=status,
            )
            and a.scratch
        ):
            self._scratch.append(a.scratch)

    def after_commit(self, database: Database) -> None:
        # As the finalize agent does for reported attempts: once the cycle committed, without
        # holding the database. The job was cancelled: nothing of it needs its directory.
        scratch, self._scratch = self._scratch, []
        for workdir in scratch:
            shutil.rmtree(workdir, ignore_errors=True)

    def _overdue(self, a: LiveAttempt, now: datetime) -> bool:
        """Running past its max_runtime by more than the heartbeat timeout: its wrapper, which
        kills it at max_runtime and reports at once, did not."""
        if not a.max_runtime or a.started_at is None:
            return False
        return now - a.started_at > timedelta(seconds=a.max_runtime + self.settings.heartbeat_timeout)

    def _backend_statuses(self, attempts: list[LiveAttempt]) -> dict[tuple[str, str], JobStatus]:
        by_backend: dict[str, set[str]] = defaultdict(set)  # a bundle's attempts share a job
        for a in attempts:
            if a.backend_job_id:
                by_backend[a.backend].add(a.backend_job_id)
        result: dict[tuple[str, str], JobStatus] = {}
        for name, ids in by_backend.items():
            try:
                for job_id, status in self.backends.get(name).status(sorted(ids)).items():
                    result[(name, job_id)] = status
            except BackendError:
                continue  # the backend is unreachable: judge by heartbeats alone this cycle
        return result

    def _lost_reason(self, a: LiveAttempt, status: JobStatus | None, now: datetime) -> str | None:
        last_sign = a.heartbeat_at or a.submitted_at or now
        silent = now - last_sign
        timeout = timedelta(seconds=self.settings.heartbeat_timeout)
        if a.backend_job_id is None:
            # Submission is recorded after the claim commits; a job whose record never came
            # (its submitter died in between) is lost unless it shows signs of life.
            if silent > timedelta(seconds=self.settings.submit_grace_seconds):
                return "lost: its submission was never recorded (the submitting agent died)"
            return None
        if status is not None and status.state in (JobState.SUCCEEDED, JobState.FAILED):
            if silent > timedelta(seconds=self.settings.report_grace_seconds):
                detail = status.reason or status.state.value
                return f"lost: the job ended ({detail}) without reporting"
            return None
        if status is not None and status.state is JobState.PENDING:
            return None  # queued in the batch system: no heartbeat is due yet
        if a.heartbeat_at is None:
            silent = now - max(last_sign, self._running_since.setdefault(a.attempt_id, now))
        if silent > timeout:
            return f"lost: no heartbeat for {int(silent.total_seconds())} s (timeout {int(timeout.total_seconds())} s)"
        return None

    def _cancel(self, a: LiveAttempt) -> None:
        if not a.backend_job_id:
            return
        # Best effort: a stale attempt's report is refused anyway.
        with contextlib.suppress(BackendError):
            self.backends.get(a.backend).cancel([a.backend_job_id])
