"""Run jobs on this machine, at most ``max_workers`` at a time.

Meant for development, tests and single-machine productions. Two ways to run a job:

- ``mode: "pool"`` (the default): a job with a ``python_entry`` (the metaprod job wrapper) is
  called in one of up to ``max_workers`` persistent Python worker processes
  (:mod:`.pyworker`, started on demand with a fresh interpreter, never forked from this
  threaded process), so a job costs no interpreter start and no grpc import. A job without a
  ``python_entry`` runs as a subprocess, as below.
- ``mode: "subprocess"``: every job runs its ``argv`` as a subprocess of this process.

Either way the job's stdout and stderr are appended to its ``log_path``, its environment is
this process's plus ``JobSpec.env`` and its cwd the job's ``workdir``. Jobs beyond
``max_workers`` wait in an in-process FIFO (reported PENDING); a daemon thread reaps finished
jobs and starts queued ones, woken at once by a worker's answer (subprocesses are polled every
``poll_interval``), so slots are refilled even if nobody polls :meth:`LocalBackend.status`.

Cancel sends SIGTERM to the job's process group, then SIGKILL after ``kill_grace``. A pooled
job's group is its command's: the entry records the command's pid in ``WORKDIR/command.pid``
and stops (without reporting) once ``WORKDIR/cancelled`` exists (see :data:`.base.PID_FILE`);
a pooled job still running after the grace also loses its worker (killed and replaced).

All state lives in memory: ids embed the pid plus a uuid so that ids issued by a previous
process are never confused with ours and simply come back UNKNOWN.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
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
    CANCEL_FILE,
    PID_FILE,
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
from .pyworker import PoolWorker

log = logging.getLogger(__name__)

MODES = ("pool", "subprocess")


@dataclass
class _Job:
    spec: JobSpec
    proc: subprocess.Popen[bytes] | None = None  # run as a subprocess
    worker: PoolWorker | None = None  # run in a pool worker
    final: JobStatus | None = None
    cancelled_at: float | None = None  # time.monotonic() of the SIGTERM, for the SIGKILL escalation
    sigkilled: bool = False

    @property
    def started(self) -> bool:
        return self.proc is not None or self.worker is not None


class LocalBackend(JobBackend):
    name: ClassVar[str] = "local"
    per_process_queue: ClassVar[bool] = True

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        kill_grace: float = 5.0,
        terminate_on_close: bool = False,
        poll_interval: float = 0.1,
        mode: str = "pool",
    ) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1
        if self.max_workers < 1:
            raise BackendError(f"local backend: max_workers must be >= 1, got {self.max_workers}")
        if mode not in MODES:
            raise BackendError(f"local backend: mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.kill_grace = kill_grace
        self.terminate_on_close = terminate_on_close
        self.poll_interval = poll_interval
        # One lock guards everything below; the thread sleeps in select() between events.
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[str] = deque()
        self._running: set[str] = set()
        self._workers: list[PoolWorker] = []
        self._preload: tuple[str, ...] = ()
        self._dead_workers: list[PoolWorker] = []  # their pipes are closed by the thread only
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._loop, name="metaprod-local-backend", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LocalBackend:
        number = (int, float)
        check_config(
            cls.name,
            config,
            {
                "max_workers": int,
                "kill_grace": number,
                "terminate_on_close": bool,
                "poll_interval": number,
                "mode": str,
            },
        )
        return cls(**dict(config))

    # --- JobBackend ------------------------------------------------------------------------------

    def submit(self, job: JobSpec) -> str:
        validate_spec(job)
        job_id = f"local-{os.getpid()}-{uuid.uuid4().hex}"
        with self._lock:
            if self._closed:
                raise BackendError("local backend is closed")
            self._jobs[job_id] = _Job(spec=job)
            self._queue.append(job_id)
            self._dispatch_locked()
        self._wake()
        return job_id

    def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        with self._lock:
            # Reap inline so a caller sees a job as finished as soon as it is.
            self._dispatch_locked()
            result: dict[str, JobStatus] = {}
            for job_id in job_ids:
                job = self._jobs.get(job_id)
                if job is None:
                    result[job_id] = JobStatus(JobState.UNKNOWN, reason="no such job in this process")
                elif job.final is not None:
                    result[job_id] = job.final
                elif job.started:
                    result[job_id] = JobStatus(JobState.RUNNING)
                else:
                    result[job_id] = JobStatus(JobState.PENDING)
            return result

    def cancel(self, job_ids: Sequence[str]) -> None:
        with self._lock:
            self._reap_locked()  # a job that already ended keeps its real outcome
            for job_id in job_ids:
                job = self._jobs.get(job_id)
                if job is None or job.final is not None or job.cancelled_at is not None:
                    continue
                if not job.started:
                    self._queue.remove(job_id)
                    job.final = JobStatus(JobState.FAILED, reason="cancelled before start")
                    continue
                job.cancelled_at = time.monotonic()
                if job.worker is not None:
                    # Tell the entry first: it checks the mark after recording its command.
                    with contextlib.suppress(OSError):
                        (job.spec.workdir / CANCEL_FILE).touch()
                self._signal(job, signal.SIGTERM)
        self._wake()

    def capacity(self) -> int:
        return self.max_workers

    def warm(self, preload: Sequence[str] = ()) -> None:
        """Start the pool's workers now, each importing the modules `preload` names, so that
        the first jobs wait neither for an interpreter nor for imports. Workers started later
        (to replace one that died) import them too."""
        with self._lock:
            self._preload = tuple(preload)
            if self.mode != "pool" or self._closed:
                return
            while len(self._workers) < self.max_workers:
                self._workers.append(PoolWorker(self._preload))
        self._wake()  # the dispatcher thread watches the new workers' pipes

    def close(self, terminate: bool | None = None) -> None:
        """Stop the dispatcher thread. Running jobs keep running unless ``terminate`` (default:
        the ``terminate_on_close`` setting) is true; queued jobs are dropped as FAILED. Pool
        workers exit once their current job is done."""
        terminate = self.terminate_on_close if terminate is None else terminate
        with self._lock:
            self._closed = True
            for job_id in self._queue:
                self._jobs[job_id].final = JobStatus(JobState.FAILED, reason="backend closed before start")
            self._queue.clear()
        self._wake()
        self._thread.join()
        # Idempotent, but a later close(terminate=True) still stops what an earlier close left.
        if terminate:
            self._terminate_all()
        with self._lock:
            for worker in self._workers:
                worker.close_input()  # end of input: the worker exits after its job
            if terminate:
                # Nothing of ours runs any more: reap the workers and drop their pipes.
                for worker in [*self._workers, *self._dead_workers]:
                    try:
                        worker.proc.wait(timeout=self.kill_grace)
                    except subprocess.TimeoutExpired:
                        worker.kill()
                        worker.proc.wait()
                    worker.close()
                self._workers.clear()
                self._dead_workers.clear()

    # --- internals -------------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                try:
                    self._dispatch_locked()
                except Exception:  # the thread must survive anything, or queued jobs never start
                    log.exception("local backend: dispatch failed")
                for worker in self._dead_workers:
                    worker.close()
                self._dead_workers.clear()
                fds = [w.fd for w in self._workers]
                # Subprocess exits and the kill escalation have no descriptor to wait on: poll.
                timed = any(
                    self._jobs[j].proc is not None or self._jobs[j].cancelled_at is not None for j in self._running
                )
            try:
                ready, _, _ = select.select([self._wake_r, *fds], [], [], self.poll_interval if timed else None)
            except OSError:
                time.sleep(self.poll_interval)
                continue
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass

    def _dispatch_locked(self) -> None:
        self._reap_locked()
        while self._queue and len(self._running) < self.max_workers and not self._closed:
            job_id = self._queue.popleft()
            self._start_locked(job_id, self._jobs[job_id])

    def _reap_locked(self) -> None:
        self._read_workers_locked()
        now = time.monotonic()
        for job_id in list(self._running):
            job = self._jobs[job_id]
            if job.final is not None:
                self._running.discard(job_id)
                continue
            escalate = job.cancelled_at is not None and not job.sigkilled and now - job.cancelled_at >= self.kill_grace
            if job.worker is not None:
                if escalate:
                    job.sigkilled = True
                    self._signal(job, signal.SIGKILL)
                    job.worker.kill()  # its entry ignored the cancel: the worker goes too
                continue
            assert job.proc is not None
            returncode = job.proc.poll()
            if returncode is None:
                if escalate:
                    job.sigkilled = True
                    self._signal(job, signal.SIGKILL)
                continue
            self._running.discard(job_id)
            self._finish(job, status_from_returncode(returncode))

    def _finish(self, job: _Job, status: JobStatus) -> None:
        if job.cancelled_at is not None:
            status = JobStatus(JobState.FAILED, status.exit_code, f"cancelled ({status.reason or 'exit 0'})")
        job.final = status

    def _read_workers_locked(self) -> None:
        for worker in list(self._workers):
            for answer in worker.read_answers():
                job = self._jobs.get(str(answer.get("job")))
                if job is None or job.worker is not worker or job.final is not None:
                    continue
                code = int(answer.get("code", 1))
                status = status_from_returncode(code)
                if answer.get("error"):
                    status = JobStatus(status.state, code, str(answer["error"]))
                self._finish(job, status)
                self._running.discard(worker.job_id or "")
                worker.job_id = None
            if worker.dead:
                self._workers.remove(worker)
                self._dead_workers.append(worker)
                job = self._jobs.get(worker.job_id or "")
                if job is not None and job.final is not None:
                    continue
                if job is not None:
                    returncode = worker.proc.poll()
                    detail = "" if returncode is None else f" ({status_from_returncode(returncode).reason})"
                    self._finish(job, JobStatus(JobState.FAILED, None, f"pool worker exited{detail}"))
                    self._running.discard(worker.job_id or "")
                    self._wake()  # let the thread drop the worker's pipe

    def _start_locked(self, job_id: str, job: _Job) -> None:
        if self.mode == "pool" and job.spec.python_entry is not None:
            self._start_pooled_locked(job_id, job)
        else:
            self._start_subprocess_locked(job_id, job)

    def _start_pooled_locked(self, job_id: str, job: _Job) -> None:
        spec = job.spec
        assert spec.python_entry is not None
        entry, args = spec.python_entry
        request = {
            "job": job_id,
            "entry": entry,
            "args": list(args),
            "env": merged_env(spec.env),
            "cwd": str(spec.workdir),
            "log": str(spec.log_path),
        }
        error: Exception | None = None
        for _ in range(2):  # an idle worker may have died since its last job: retry on a new one
            try:
                worker = next((w for w in self._workers if w.job_id is None and not w.dead), None)
                if worker is None:
                    worker = PoolWorker(self._preload)
                    self._workers.append(worker)
                worker.send(request)
            except OSError as exc:
                error = exc
                continue
            worker.job_id = job_id
            job.worker = worker
            self._running.add(job_id)
            return
        job.final = JobStatus(JobState.FAILED, reason=f"failed to start: {error}")
        self._note_in_log(spec, f"metaprod local backend: job {spec.key} failed to start in a worker: {error}\n")

    def _start_subprocess_locked(self, job_id: str, job: _Job) -> None:
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
        if job.proc is not None:
            if job.proc.poll() is not None:
                return  # reaped: the pid (and so the group id) may already belong to someone else
            pgid = job.proc.pid
        else:
            # A pooled job: its command's group, while the entry says the command runs.
            try:
                pgid = int((job.spec.workdir / PID_FILE).read_text().strip())
            except (OSError, ValueError):
                return  # not started yet (the cancel mark stops it) or already finished
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            log.warning("local backend: cannot send %s to job %s: %s", signal_name(signum), job.spec.key, exc)

    def _terminate_all(self) -> None:
        with self._lock:
            self._reap_locked()
            running = [self._jobs[job_id] for job_id in self._running]
        self.cancel([job_id for job_id, job in self._jobs.items() if job in running])
        deadline = time.monotonic() + self.kill_grace
        for job in running:
            if job.proc is not None:
                try:
                    job.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self._signal(job, signal.SIGKILL)
                    job.proc.wait()
        # Pooled jobs answer through their worker once their command is gone.
        while time.monotonic() < deadline:
            with self._lock:
                self._reap_locked()
                if not any(job.worker is not None and job.final is None for job in running):
                    break
                fds = [w.fd for w in self._workers]
            with contextlib.suppress(OSError):
                select.select(fds, [], [], min(0.05, max(0.0, deadline - time.monotonic())))
        with self._lock:
            for job in running:
                if job.worker is not None and job.final is None:
                    self._signal(job, signal.SIGKILL)
                    job.worker.kill()
            for worker in self._workers:
                if worker.job_id is not None and self._jobs[worker.job_id].final is None:
                    worker.kill()
        for job in running:
            if job.worker is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    job.worker.proc.wait(timeout=self.kill_grace if job.final is None else 0)
        with self._lock:
            self._reap_locked()
