"""Submit agent: claim due Created tasks within the back-pressure caps and hand them to
their backend. The claim, the submission and its record are one transaction: a job whose
claim did not commit can never report (its token is unknown), so nothing runs twice."""

from __future__ import annotations

import logging

from metaprod.agents.backends.base import BackendError
from metaprod.agents.jobs import BackendPool, prepare_job
from metaprod.agents.settings import AgentSettings
from metaprod.core.statuses import AttemptStatus
from metaprod.db import jobs
from metaprod.db.models import JobAttempt, Task
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class SubmitAgent:
    name = "submit"
    wakes_on = frozenset({"tasks", "production", "transformation", "done"})
    produces = frozenset({"submitted"})

    def __init__(self, settings: AgentSettings, backends: BackendPool) -> None:
        self.settings = settings
        self.backends = backends

    def _caps(self) -> dict[str, int]:
        caps = dict(self.settings.max_queued_per_backend)
        for name, backend in self.backends.started().items():
            caps.setdefault(name, 4 * backend.capacity())
        return caps

    def run_once(self, session: Session) -> str:
        claimed = jobs.claim_tasks(
            session=session,
            limit=self.settings.batch_size,
            max_queued_per_backend=self._caps(),
            max_queued_per_transformation=self.settings.max_queued_per_transformation,
        )
        submitted = failed = 0
        for job in claimed:
            try:
                spec = prepare_job(job, self.settings)
                backend_id = self.backends.get(job.backend).submit(spec)
            except (BackendError, OSError) as exc:
                log.warning("submission of task %s attempt %s failed: %s", job.task_id, job.attempt, exc)
                jobs.fail_attempt(
                    session=session,
                    task=session.get_one(Task, job.task_id),
                    attempt=session.get_one(JobAttempt, job.attempt_id),
                    reason=f"submission to backend {job.backend!r} failed: {exc}",
                    backoff_base=self.settings.retry_backoff_seconds,
                    status=AttemptStatus.FAILED,
                )
                failed += 1
                continue
            jobs.record_submission(
                session=session,
                attempt_id=job.attempt_id,
                backend_job_id=backend_id,
                workdir=str(spec.workdir),
                log_path=str(spec.log_path),
            )
            submitted += 1
        if not claimed:
            return "idle"
        return f"submitted {submitted} jobs" + (f", {failed} refused by their backend" if failed else "")
