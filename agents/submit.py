"""Submit agent: claim due Created tasks within the back-pressure caps and hand them to
their backend, in two steps so that no database lock is held while jobs are launched:

1. `run_once` claims the tasks (new attempts with their worker tokens) in the cycle's
   transaction and splits them into jobs: attempts of one transformation share a job (a
   bundle, with one worker token) when there are more of them than their backend runs at once;
2. `after_commit` writes the job files, submits to the backends, and records the backend
   job ids (or the refusals) in one short transaction.

A crash between the two leaves attempts without a backend id: the monitor declares them lost
after `submit_grace_seconds` without a sign of life and they are retried. A job launched whose
record never committed still holds a valid token for the live attempt, so its report counts
once; any other attempt's report is refused. Nothing runs to completion twice."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import replace

from metaprod.agents.backends.base import BackendError, JobState
from metaprod.agents.jobs import BackendPool, job_layout, plan_bundles, prepare_job
from metaprod.agents.settings import AgentSettings
from metaprod.core.statuses import AttemptStatus
from metaprod.db import jobs
from metaprod.db.models import JobAttempt, Task
from metaprod.db.session import Database
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class SubmitAgent:
    name = "submit"
    wakes_on = frozenset({"tasks", "production", "transformation", "done"})
    # Tasks that reuse a Done task's outputs are Done at once, with new files.
    produces = frozenset({"submitted", "files", "done"})

    # Under load, fewer and larger cycles: each has a fixed cost (a transaction, a few queries).
    min_gap = 0.1

    def __init__(self, settings: AgentSettings, backends: BackendPool) -> None:
        self.settings = settings
        self.backends = backends
        self._bundles: list[list[jobs.ClaimedJob]] = []
        self._own = OwnQueues()
        self._reused = False

    def produced(self) -> frozenset[str]:
        return self.produces if self._reused else frozenset({"submitted"})

    def _caps(self) -> Mapping[str, int]:
        return _Caps(self.settings.max_queued_per_backend, self.backends, self._own)

    def run_once(self, session: Session) -> str:
        reused: list[int] = []
        claimed = jobs.claim_tasks(
            session=session,
            limit=self.settings.batch_size,
            max_queued_per_backend=self._caps(),
            max_queued_per_transformation=self.settings.max_queued_per_transformation,
            own_queued=self._own.queued(self.backends),
            reused=reused,
        )
        bundles = plan_bundles(claimed, self._capacity, self.settings.max_bundle)
        plans = []
        for bundle in bundles:
            layout = job_layout(bundle, self.settings)
            plans.append(
                [
                    jobs.PlannedAttempt(job.attempt_id, scratch, str(layout.log))
                    for job, scratch in zip(bundle, layout.scratch, strict=True)
                ]
            )
        # Recorded before any job can run, so every attempt's scratch and log are found.
        secrets = jobs.record_job_plans(session=session, plans=plans)
        self._bundles = [
            bundle if secret is None else [replace(job, secret=secret) for job in bundle]
            for bundle, secret in zip(bundles, secrets, strict=True)
        ]
        self._reused = bool(reused)
        if reused and not claimed:
            return f"reused the outputs of Done tasks for {len(reused)} tasks"
        return f"claimed {len(claimed)} tasks in {len(bundles)} jobs" if claimed else "idle"

    def _capacity(self, backend: str) -> int:
        try:
            return self.backends.get(backend).capacity()
        except BackendError:
            return 1  # an unknown backend: its submission fails and says why

    def after_commit(self, database: Database) -> None:
        bundles, self._bundles = self._bundles, []
        if not bundles:
            return
        records: list[jobs.Submission] = []
        refused: list[tuple[jobs.ClaimedJob, str]] = []
        for bundle in bundles:
            first = bundle[0]
            try:
                spec = prepare_job(bundle, self.settings)
                backend_id = self.backends.get(first.backend).submit(spec)
            except (BackendError, OSError) as exc:
                log.warning("submission of task %s attempt %s failed: %s", first.task_id, first.attempt, exc)
                refused.extend((job, f"submission to backend {job.backend!r} failed: {exc}") for job in bundle)
                continue
            records.extend(jobs.Submission(job.attempt_id, backend_id) for job in bundle)
            self._own.submitted(self.backends, first.backend, backend_id, len(bundle))
        with database.session_scope() as session:
            jobs.record_submissions(session=session, submissions=records)
            for job, reason in refused:
                jobs.fail_attempt(
                    session=session,
                    task=session.get_one(Task, job.task_id),
                    attempt=session.get_one(JobAttempt, job.attempt_id),
                    reason=reason,
                    backoff_base=self.settings.retry_backoff_seconds,
                    status=AttemptStatus.FAILED,
                    actor="submit",
                )


# A queue shorter than what runs between two submit cycles starves the backend (a local pool
# finishes a trivial task every few ms); queued jobs cost a backend nothing while they wait.
MIN_DEFAULT_CAP = 400
# A queue of this process's own (the local pool) holds this many seconds of its recent pace:
# enough to never starve it, little enough that other agents processes get the rest.
OWN_QUEUE_SECONDS = 2.0
_PACE_WINDOW = 2.0
_MIN_SPAN = 0.05


class OwnQueues:
    """The attempts this process queued in backends with a per-process queue (the local pool),
    and the pace at which they end: with several agents processes on one database, each caps
    its own queue by what it runs, so that the first to claim does not take all the work."""

    def __init__(self) -> None:
        self._jobs: dict[str, dict[str, int]] = {}  # backend -> {job id: attempts}
        self._ended: deque[tuple[float, str, int]] = deque()  # (monotonic time, backend, attempts)
        # When each backend's queue last went from empty to busy: the pace is measured since
        # then (at most _PACE_WINDOW), so that it is known after one cycle, not after the window.
        self._busy_since: dict[str, float] = {}

    def submitted(self, backends: BackendPool, backend: str, job_id: str, attempts: int) -> None:
        if backends.get(backend).per_process_queue:
            jobs_of = self._jobs.setdefault(backend, {})
            if not jobs_of:
                self._busy_since[backend] = time.monotonic()
                self._ended = deque(e for e in self._ended if e[1] != backend)
            jobs_of[job_id] = attempts

    def queued(self, backends: BackendPool) -> Mapping[str, int]:
        """Attempts still queued or running per backend with a per-process queue (ended jobs
        are moved to the pace); a name is in it when its backend has such a queue."""
        now = time.monotonic()
        out = _OwnCounts(backends)
        for name, jobs_of in self._jobs.items():
            if jobs_of:
                try:
                    statuses = backends.get(name).status(list(jobs_of))
                except BackendError:
                    statuses = {}  # unknown for now: still counted as queued
                for job_id, status in statuses.items():
                    if status.state.is_final or status.state is JobState.UNKNOWN:
                        self._ended.append((now, name, jobs_of.pop(job_id)))
            out.counts[name] = sum(jobs_of.values())
        while self._ended and self._ended[0][0] < now - _PACE_WINDOW:
            self._ended.popleft()
        return out

    def pace(self, backend: str) -> float:
        """Attempts per second that ended in this backend lately (since it last became busy)."""
        since = self._busy_since.get(backend)
        if since is None:
            return 0.0
        span = max(min(_PACE_WINDOW, time.monotonic() - since), _MIN_SPAN)
        return sum(n for _, name, n in self._ended if name == backend) / span


class _OwnCounts(Mapping[str, int]):
    """This process's queued attempts by backend name, for the backends with a per-process
    queue (0 before it submitted any); other names are not in it (the backend is made on first
    lookup, like the caps')."""

    def __init__(self, backends: BackendPool) -> None:
        self._backends = backends
        self.counts: dict[str, int] = {}

    def __getitem__(self, name: str) -> int:
        try:
            backend = self._backends.get(name)
        except BackendError:
            raise KeyError(name) from None
        if not backend.per_process_queue:
            raise KeyError(name)
        return self.counts.get(name, 0)

    def __iter__(self) -> Iterator[str]:
        return iter(name for name, b in self._backends.started().items() if b.per_process_queue)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Caps(Mapping[str, int]):
    """Queue caps per backend: the configured ones, else max(4 x the backend's capacity,
    MIN_DEFAULT_CAP) (the backend is made on first lookup, so even the first batch is capped);
    for a per-process queue, max(4 x capacity, OWN_QUEUE_SECONDS of its recent pace)."""

    def __init__(self, configured: Mapping[str, int], backends: BackendPool, own: OwnQueues) -> None:
        self._configured = configured
        self._backends = backends
        self._own = own

    def __getitem__(self, name: str) -> int:
        if name in self._configured:
            return self._configured[name]
        try:
            backend = self._backends.get(name)
        except BackendError:
            return 0  # an unknown backend: its submission fails and says why
        if backend.per_process_queue:
            return max(4 * backend.capacity(), math.ceil(OWN_QUEUE_SECONDS * self._own.pace(name)))
        return max(4 * backend.capacity(), MIN_DEFAULT_CAP)

    def __iter__(self) -> Iterator[str]:
        return iter(self._backends.started())

    def __len__(self) -> int:
        return len(self._backends.started())
