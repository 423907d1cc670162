"""Run jobs as subprocesses inside dask ``distributed`` workers.

Either connects to an existing scheduler (``address``) or starts a private ``LocalCluster`` that the
backend owns and shuts down in :meth:`DaskBackend.close`. Each job is one dask task that runs the
argv with :mod:`subprocess` and returns its exit code. Dask forgets tasks whose client went away,
so everything we know lives in this process: after a restart all previous ids are UNKNOWN (and
with a remote scheduler the subprocesses of the old client keep running unsupervised).

Workers must be able to import ``metaprod`` (the task function is pickled by reference); with a
remote cluster the ``workdir``/``log_path`` are paths on the workers' file system.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from distributed import Client, Future, LocalCluster

from .base import (
    BackendError,
    JobBackend,
    JobSpec,
    JobState,
    JobStatus,
    check_config,
    merged_env,
    option,
    status_from_returncode,
    validate_spec,
)

log = logging.getLogger(__name__)

# --- worker side: these run inside the dask worker processes -----------------------------------

_worker_lock = threading.Lock()
_worker_running: dict[str, subprocess.Popen[bytes]] = {}
# Cancels are broadcast to every worker, so most entries concern jobs that never come here;
# bounded so a long-lived worker does not grow without limit.
_worker_cancelled: OrderedDict[str, None] = OrderedDict()
_CANCELLED_MEMORY = 10_000


def run_command(job_id: str, argv: Sequence[str], env: Mapping[str, str], workdir: str, log_path: str) -> int:
    """Task body: run ``argv`` in ``workdir`` with output appended to ``log_path``; return its
    exit code (negative: killed by that signal)."""
    with open(log_path, "ab") as log_file, _worker_lock:
        # Checked under the lock that _kill_jobs takes, so a cancel cannot slip in before Popen.
        if job_id in _worker_cancelled:
            return -signal.SIGTERM
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=workdir,
                env=merged_env(env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group, so cancel kills the whole tree
            )
        except OSError as exc:
            log_file.write(f"metaprod dask backend: job {job_id} failed to start: {exc}\n".encode())
            raise
        _worker_running[job_id] = proc
    try:
        return proc.wait()
    finally:
        with _worker_lock:
            _worker_running.pop(job_id, None)


def _kill_jobs(job_ids: Sequence[str]) -> list[str]:
    """Run on every worker by :meth:`DaskBackend.cancel`: SIGTERM the process groups of these jobs
    (dask's own cancel cannot stop a task that is already executing)."""
    killed: list[str] = []
    with _worker_lock:
        for job_id in job_ids:
            _worker_cancelled[job_id] = None
            proc = _worker_running.get(job_id)
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    killed.append(job_id)
                except ProcessLookupError:
                    pass
        while len(_worker_cancelled) > _CANCELLED_MEMORY:
            _worker_cancelled.popitem(last=False)
    return killed


def _running_jobs() -> list[str]:
    """Run on every worker by :meth:`DaskBackend.status`: the jobs whose subprocess is alive here."""
    with _worker_lock:
        return [job_id for job_id, proc in _worker_running.items() if proc.poll() is None]


# --- client side ---------------------------------------------------------------------------------


class DaskBackend(JobBackend):
    name: ClassVar[str] = "dask"

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int = 2,
        worker_resources: Mapping[str, float] | None = None,
        capacity: int | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        self._cluster: LocalCluster | None = None
        self._capacity = capacity
        self._lock = threading.Lock()
        self._futures: dict[str, Future[Any]] = {}
        # Final outcomes; the future is released as soon as we have one, freeing scheduler memory.
        self._finals: dict[str, JobStatus] = {}
        try:
            if address:
                self._client = Client(address, timeout=connect_timeout, set_as_default=False)  # type: ignore[no-untyped-call]
            else:
                self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=workers,
                    threads_per_worker=1,  # one job per worker process, like a batch slot
                    processes=True,
                    host="127.0.0.1",  # private cluster: nothing listens beyond this machine
                    # The scheduler serves HTTP (metrics, health) even without a dashboard, on 8787
                    # unless told otherwise: a random port avoids clashing with another cluster.
                    dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR,
                    resources=dict(worker_resources) if worker_resources else None,
                )
                self._client = Client(self._cluster, set_as_default=False)  # type: ignore[no-untyped-call]
        except Exception as exc:
            if self._cluster is not None:
                self._close_quietly(self._cluster)
            raise BackendError(f"dask backend: cannot start/connect ({address or 'LocalCluster'}): {exc}") from exc
        self._closed = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DaskBackend:
        check_config(
            cls.name,
            config,
            {
                "address": str,
                "workers": int,
                "worker_resources": Mapping,
                "capacity": int,
                "connect_timeout": (int, float),
            },
        )
        return cls(**dict(config))

    @property
    def client(self) -> Client:
        return self._client

    # --- JobBackend ------------------------------------------------------------------------------

    def submit(self, job: JobSpec) -> str:
        # With a remote cluster the paths live on the workers, so only check them locally.
        validate_spec(job, check_paths=self._cluster is not None)
        resources = option(job.options, "resources", Mapping)
        job_id = f"dask-{job.key}-{uuid.uuid4().hex[:12]}"
        try:
            future = self._client.submit(
                run_command,
                job_id,
                tuple(job.argv),
                dict(job.env),
                str(job.workdir),
                str(job.log_path),
                key=job_id,
                pure=False,
                retries=0,
                resources=dict(resources) if resources else None,
            )
        except Exception as exc:
            raise BackendError(f"dask backend: submit of {job.key} failed: {exc}") from exc
        with self._lock:
            self._futures[job_id] = future
        return job_id

    def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        result: dict[str, JobStatus] = {}
        with self._lock:
            futures = {i: self._futures[i] for i in job_ids if i in self._futures}
            for job_id in job_ids:
                if job_id in self._finals:
                    result[job_id] = self._finals[job_id]
                elif job_id not in futures:
                    result[job_id] = JobStatus(JobState.UNKNOWN, reason="no such job in this process")
        running_ids = self._running_ids() if any(f.status == "pending" for f in futures.values()) else set()
        finals: dict[str, JobStatus] = {}
        for job_id, future in futures.items():
            state = future.status
            if state == "pending":
                running = job_id in running_ids
                result[job_id] = JobStatus(JobState.RUNNING if running else JobState.PENDING)
            elif state == "finished":
                finals[job_id] = self._finished_status(future)
            elif state == "error":
                exc = future.exception(timeout=30)  # type: ignore[no-untyped-call]
                finals[job_id] = JobStatus(JobState.FAILED, reason=f"error: {type(exc).__name__}: {exc}")
            elif state == "cancelled":
                finals[job_id] = JobStatus(JobState.FAILED, reason="cancelled")
            else:  # "lost": the scheduler dropped the task (e.g. its data went with a dead worker)
                result[job_id] = JobStatus(JobState.UNKNOWN, reason=f"dask task {state}")
        with self._lock:
            for job_id, final in finals.items():
                self._finals[job_id] = final
                self._futures.pop(job_id, None)
        result.update(finals)
        return result

    def cancel(self, job_ids: Sequence[str]) -> None:
        with self._lock:
            futures = {i: self._futures.pop(i) for i in job_ids if i in self._futures}
            for job_id in futures:
                self._finals[job_id] = JobStatus(JobState.FAILED, reason="cancelled")
        if not futures:
            return
        try:
            # Cancel first so queued tasks never start, then kill the ones already executing.
            self._client.cancel(list(futures.values()))  # type: ignore[no-untyped-call]
            self._client.run(_kill_jobs, list(futures))
        except Exception as exc:
            raise BackendError(f"dask backend: cancel failed: {exc}") from exc

    def capacity(self) -> int:
        if self._capacity is not None:
            return self._capacity
        try:
            return max(1, sum(self._client.nthreads().values()))  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise BackendError(f"dask backend: cannot query workers: {exc}") from exc

    def close(self) -> None:
        """Disconnect; with an owned LocalCluster also kill its running jobs and shut it down.
        Jobs on a remote cluster keep running (dask releases their tasks, we lose track)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        with self._lock:
            open_ids = list(self._futures)
            self._futures.clear()
        if self._cluster is not None and open_ids:
            # Our private workers are about to die; their jobs would run on unsupervised (and
            # the nanny would wait for them before killing the worker), so stop them now.
            try:
                self._client.run(_kill_jobs, open_ids)
            except Exception:
                log.debug("dask backend: killing jobs at close failed", exc_info=True)
        self._close_quietly(self._client)
        if self._cluster is not None:
            self._close_quietly(self._cluster)

    # --- internals -------------------------------------------------------------------------------

    def _running_ids(self) -> set[str]:
        """Ids whose subprocess is alive on some worker. Asking the workers is exact, whereas the
        scheduler's "processing" also counts tasks merely queued on a worker (worker-saturation)."""
        try:
            per_worker = self._client.run(_running_jobs)
        except Exception:  # only refines PENDING vs RUNNING; never worth failing status() for
            log.debug("dask backend: asking workers for running jobs failed", exc_info=True)
            return set()
        return {job_id for ids in per_worker.values() for job_id in ids}

    @staticmethod
    def _finished_status(future: Future[Any]) -> JobStatus:
        try:
            returncode = future.result(timeout=30)
        except Exception as exc:  # result lost with its worker between finishing and our fetch
            return JobStatus(JobState.UNKNOWN, reason=f"result unavailable: {exc}")
        if not isinstance(returncode, int):
            return JobStatus(JobState.FAILED, reason=f"unexpected task result {returncode!r}")
        return status_from_returncode(returncode)

    @staticmethod
    def _close_quietly(obj: Client | LocalCluster) -> None:
        # Shutdown races inside distributed (workers noticing the scheduler is gone) surface as
        # warnings; they are expected here and must not fail callers running with -W error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                obj.close()
            except Exception:
                log.debug("dask backend: error while closing %r", obj, exc_info=True)
