"""Run jobs as subprocesses of this process, at most ``max_workers`` at a time.

Meant for development, tests and small single-machine productions. Jobs beyond ``max_workers`` wait
in an in-process FIFO (reported PENDING); a small daemon thread reaps finished jobs and starts
queued ones, so slots are refilled even if nobody polls :meth:`LocalBackend.status`. All state
lives in memory: ids embed the pid plus a uuid so that ids issued by a previous process are never
confused with ours and simply come back UNKNOWN.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .base import (
    BackendError,
    JobBackend,
    JobSpec,
    JobState,
    JobStatus,
    check_config,
    merged_env,
    signal_name,
    status_from_returncode,
    validate_spec,
)

log = logging.getLogger(__name__)


@dataclass
class _Job:
    spec: JobSpec
    proc: subprocess.Popen[bytes] | None = None
    final: JobStatus | None = None
    cancelled_at: float | None = None  # time.monotonic() of the SIGTERM, for the SIGKILL escalation
    sigkilled: bool = False


class LocalBackend(JobBackend):
    name: ClassVar[str] = "local"

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        kill_grace: float = 5.0,
        terminate_on_close: bool = False,
        poll_interval: float = 0.1,
    ) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1
        if self.max_workers < 1:
            raise BackendError(f"local backend: max_workers must be >= 1, got {self.max_workers}")
        self.kill_grace = kill_grace
        self.terminate_on_close = terminate_on_close
        self.poll_interval = poll_interval
        # One condition guards everything below; the thread sleeps on it between polls.
        self._cond = threading.Condition()
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[str] = deque()
        self._running: set[str] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="metaprod-local-backend", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LocalBackend:
        number = (int, float)
        check_config(
            cls.name,
            config,
            {"max_workers": int, "kill_grace": number, "terminate_on_close": bool, "poll_interval": number},
        )
        return cls(**dict(config))

    # --- JobBackend ------------------------------------------------------------------------------

    def submit(self, job: JobSpec) -> str:
        validate_spec(job)
        job_id = f"local-{os.getpid()}-{uuid.uuid4().hex}"
        with self._cond:
            if self._closed:
                raise BackendError("local backend is closed")
            self._jobs[job_id] = _Job(spec=job)
            self._queue.append(job_id)
            self._dispatch_locked()
            self._cond.notify_all()
        return job_id

    def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        with self._cond:
            # Reap inline so a caller sees a job as finished as soon as its process is gone.
            self._dispatch_locked()
            result: dict[str, JobStatus] = {}
            for job_id in job_ids:
                job = self._jobs.get(job_id)
                if job is None:
                    result[job_id] = JobStatus(JobState.UNKNOWN, reason="no such job in this process")
                elif job.final is not None:
                    result[job_id] = job.final
                elif job.proc is not None:
                    result[job_id] = JobStatus(JobState.RUNNING)
                else:
                    result[job_id] = JobStatus(JobState.PENDING)
            return result

    def cancel(self, job_ids: Sequence[str]) -> None:
        with self._cond:
            self._reap_locked()  # a job that already ended keeps its real outcome
            for job_id in job_ids:
                job = self._jobs.get(job_id)
                if job is None or job.final is not None or job.cancelled_at is not None:
                    continue
                if job.proc is None:
                    self._queue.remove(job_id)
                    job.final = JobStatus(JobState.FAILED, reason="cancelled before start")
                    continue
                job.cancelled_at = time.monotonic()
                self._signal(job, signal.SIGTERM)
            self._cond.notify_all()

    def capacity(self) -> int:
        return self.max_workers

    def close(self, terminate: bool | None = None) -> None:
        """Stop the dispatcher thread. Running jobs keep running unless ``terminate`` (default:
        the ``terminate_on_close`` setting) is true; queued jobs are dropped as FAILED."""
        terminate = self.terminate_on_close if terminate is None else terminate
        with self._cond:
            self._closed = True
            for job_id in self._queue:
                self._jobs[job_id].final = JobStatus(JobState.FAILED, reason="backend closed before start")
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join()
        # Idempotent, but a later close(terminate=True) still stops what an earlier close left.
        if terminate:
            self._terminate_all()

    # --- internals -------------------------------------------------------------------------------

    def _loop(self) -> None:
        with self._cond:
            while not self._closed:
                try:
                    self._dispatch_locked()
                except Exception:  # the thread must survive anything, or queued jobs never start
                    log.exception("local backend: dispatch failed")
                # Poll only while something runs: child exits do not wake a Condition.
                self._cond.wait(self.poll_interval if self._running else None)

    def _dispatch_locked(self) -> None:
        self._reap_locked()
        while self._queue and len(self._running) < self.max_workers and not self._closed:
            job_id = self._queue.popleft()
            self._start_locked(job_id, self._jobs[job_id])

    def _reap_locked(self) -> None:
        now = time.monotonic()
        for job_id in list(self._running):
            job = self._jobs[job_id]
            assert job.proc is not None
            returncode = job.proc.poll()
            if returncode is None:
                if job.cancelled_at is not None and not job.sigkilled and now - job.cancelled_at >= self.kill_grace:
                    job.sigkilled = True
                    self._signal(job, signal.SIGKILL)
                continue
            self._running.discard(job_id)
            status = status_from_returncode(returncode)
            if job.cancelled_at is not None:
                status = JobStatus(JobState.FAILED, returncode, f"cancelled ({status.reason or 'exit 0'})")
            job.final = status

    def _start_locked(self, job_id: str, job: _Job) -> None:
        spec = job.spec
        try:
            with open(spec.log_path, "ab") as log_file:
                # The child gets its own copy of the descriptor; ours closes with the block.
                job.proc = subprocess.Popen(
                    spec.argv,
                    cwd=spec.workdir,
                    env=merged_env(spec.env),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group, so cancel kills the whole tree
                )
        except OSError as exc:
            job.final = JobStatus(JobState.FAILED, reason=f"failed to start: {exc}")
            self._note_in_log(spec, f"metaprod local backend: job {spec.key} failed to start: {exc}\n")
            return
        self._running.add(job_id)

    @staticmethod
    def _note_in_log(spec: JobSpec, text: str) -> None:
        try:
            with open(spec.log_path, "a", encoding="utf-8") as fh:
                fh.write(text)
        except OSError:
            pass  # the status reason already carries the error

    @staticmethod
    def _signal(job: _Job, signum: int) -> None:
        assert job.proc is not None
        if job.proc.poll() is not None:
            return  # reaped: the pid (and so the group id) may already belong to someone else
        try:
            os.killpg(job.proc.pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            log.warning("local backend: cannot send %s to job %s: %s", signal_name(signum), job.spec.key, exc)

    def _terminate_all(self) -> None:
        with self._cond:
            running = [self._jobs[job_id] for job_id in self._running]
            now = time.monotonic()
            for job in running:
                if job.cancelled_at is None:
                    job.cancelled_at = now
                    self._signal(job, signal.SIGTERM)
        deadline = time.monotonic() + self.kill_grace
        for job in running:
            assert job.proc is not None
            try:
                job.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(job, signal.SIGKILL)
                job.proc.wait()
        with self._cond:
            self._reap_locked()
