"""A scriptable job backend for the agents' unit tests (the real backends have tests of their
own): it records what it was given, answers status from a dict, and can be made unreachable
or to refuse submissions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from metaprod.agents.backends.base import BackendError, JobSpec, JobState, JobStatus
from metaprod.agents.jobs import BackendPool


class FakeBackend:
    def __init__(self, capacity: int = 4, *, per_process_queue: bool = False) -> None:
        self.slots = capacity
        self.per_process_queue = per_process_queue  # True: like the local pool, else a batch system
        self.submitted: list[JobSpec] = []
        self.cancelled: list[str] = []
        # job id -> its state; a job not in it is RUNNING, unless `forget` (UNKNOWN).
        self.states: dict[str, JobStatus] = {}
        self.unreachable = False
        self.refuse: str | None = None  # a submission refused with this reason

    def capacity(self) -> int:
        return self.slots

    def submit(self, spec: JobSpec) -> str:
        if self.refuse is not None:
            raise BackendError(self.refuse)
        self.submitted.append(spec)
        return f"job-{len(self.submitted)}"

    def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        if self.unreachable:
            raise BackendError("connection refused")
        return {job_id: self.states.get(job_id, JobStatus(JobState.RUNNING)) for job_id in job_ids}

    def cancel(self, job_ids: Sequence[str]) -> None:
        if self.unreachable:
            raise BackendError("connection refused")
        self.cancelled.extend(job_ids)


class FakePool:
    """A BackendPool whose every backend name is the one fake."""

    def __init__(self, backend: FakeBackend | None = None) -> None:
        self.backend = backend or FakeBackend()

    def get(self, name: str) -> Any:
        if name == "nowhere":
            raise BackendError(f"unknown backend {name!r}")
        return self.backend

    def started(self) -> dict[str, Any]:
        return {"local": self.backend}

    def as_pool(self) -> BackendPool:
        return cast(BackendPool, self)
