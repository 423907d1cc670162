"""The job-backend interface: run a prepared command for one task attempt on a batch system.

Agents prepare a job (work directory, wrapper command, environment) and hand it to a backend as a
:class:`JobSpec`; afterwards they only hold the returned backend job id and poll :meth:`status` in
bulk. Backends are deliberately stateless towards the database: anything they forget (restart,
purged records) is reported as :attr:`JobState.UNKNOWN` and the agent decides what "lost" means.
"""

from __future__ import annotations

import abc
import enum
import importlib
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


class BackendError(Exception):
    """A backend could not do what was asked (submission refused, batch command failed, ...)."""


class JobState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the backend has no record of the job (lost, or from a previous process)

    @property
    def is_final(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


@dataclass(frozen=True)
class JobSpec:
    key: str  # unique per task attempt, e.g. "t42-a1"; used as job name
    argv: tuple[str, ...]  # command to execute (the metaprod job wrapper)
    env: Mapping[str, str]  # extra environment merged over os.environ
    workdir: Path  # existing directory, cwd of the job
    log_path: Path  # stdout+stderr of the job go here (append)
    # Backend options from the transformation spec (slurm: partition, time, mem, cpus_per_task,
    # extra_args; dask: resources). Override the backend's configured defaults; keys a backend
    # does not use are ignored, so one spec can carry options for several backends.
    options: Mapping[str, Any] = field(default_factory=dict)
    # The same job as a Python call, ("module:function", args), for backends whose workers
    # are long-lived Python processes (the local pool, Dask): they call it in-process instead
    # of paying an interpreter start per job. Backends without Python workers (Slurm) run argv.
    # The call returns an exit code; see PID_FILE and CANCEL_FILE for the cancel contract.
    python_entry: tuple[str, tuple[str, ...]] | None = None


# The cancel contract of a python_entry run by a pooled worker: it writes the pid of its
# command (a process-group leader) to WORKDIR/PID_FILE while that command runs (the file is
# empty or absent otherwise), and never
# starts it, or stops it and does not report, once WORKDIR/CANCEL_FILE exists.
PID_FILE = "command.pid"
CANCEL_FILE = "cancelled"


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    exit_code: int | None = None
    reason: str = ""


class JobBackend(abc.ABC):
    name: ClassVar[str]
    # True when each agents process has a queue of its own (the local pool): its back-pressure
    # counts its own jobs. False for a batch system that every agents process shares.
    per_process_queue: ClassVar[bool] = False

    @abc.abstractmethod
    def submit(self, job: JobSpec) -> str:
        """Start (or queue) the job; return the backend job id. Raises BackendError on failure."""

    @abc.abstractmethod
    def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """Bulk status; ids the backend does not know map to UNKNOWN."""

    @abc.abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel the jobs; unknown or already finished ids are ignored."""

    @abc.abstractmethod
    def capacity(self) -> int:
        """How many jobs can run at once (default for the agents' back-pressure)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the backend's resources. Submitted jobs keep running unless documented."""

    def __enter__(self) -> JobBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- helpers shared by the implementations -----------------------------------------------------


def validate_spec(job: JobSpec, *, check_paths: bool = True) -> None:
    """Reject specs that can only fail, at submit time rather than as a puzzling job failure."""
    if not job.key:
        raise BackendError("job key is empty")
    if not job.argv:
        raise BackendError(f"job {job.key}: argv is empty")
    if check_paths:
        if not job.workdir.is_dir():
            raise BackendError(f"job {job.key}: workdir {job.workdir} is not a directory")
        if not job.log_path.parent.is_dir():
            raise BackendError(f"job {job.key}: log directory {job.log_path.parent} does not exist")


def merged_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def status_from_returncode(returncode: int) -> JobStatus:
    """Map a subprocess return code (negative = killed by that signal) to a final status."""
    if returncode == 0:
        return JobStatus(JobState.SUCCEEDED, 0)
    if returncode < 0:
        return JobStatus(JobState.FAILED, returncode, f"killed by signal {signal_name(-returncode)}")
    return JobStatus(JobState.FAILED, returncode, f"exit code {returncode}")


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def option(options: Mapping[str, Any], name: str, kind: type[Any] | tuple[type[Any], ...], default: Any = None) -> Any:
    """Typed lookup in a free-form options mapping, so a bad transformation spec fails clearly."""
    value = options.get(name, default)
    if value is None or isinstance(value, kind):
        return value
    kinds = kind if isinstance(kind, tuple) else (kind,)
    expected = " or ".join(k.__name__ for k in kinds)
    raise BackendError(f"option {name!r} must be {expected}, got {type(value).__name__}")


# --- registry --------------------------------------------------------------------------------

BackendFactory = Callable[[Mapping[str, Any]], JobBackend]

# Factories are imported lazily: "local" must not pay for importing distributed.
_REGISTRY: dict[str, str | BackendFactory] = {
    "local": "metaprod.agents.backends.local:LocalBackend",
    "slurm": "metaprod.agents.backends.slurm:SlurmBackend",
    "dask": "metaprod.agents.backends.dask:DaskBackend",
}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Add (or replace) a backend; the factory receives the backend's config mapping."""
    _REGISTRY[name] = factory


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def make_backend(name: str, config: Mapping[str, Any]) -> JobBackend:
    """Build the backend called ``name`` ("local", "slurm", "dask") from its config mapping."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise BackendError(f"unknown job backend {name!r}; known: {', '.join(backend_names())}") from None
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module_name), attr)
        backend: JobBackend = cls.from_config(config)
        return backend
    return target(config)


ConfigTypes = Mapping[str, type[Any] | tuple[type[Any], ...]]


def check_config(backend: str, config: Mapping[str, Any], allowed: ConfigTypes) -> None:
    """Typos and wrong types in deployment config must fail loudly, not silently use a default."""
    unknown = set(config) - set(allowed)
    if unknown:
        raise BackendError(f"{backend} backend: unknown config key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    for key, kind in allowed.items():
        try:
            option(config, key, kind)
        except BackendError as exc:
            raise BackendError(f"{backend} backend config: {exc}") from None


__all__ = [
    "CANCEL_FILE",
    "PID_FILE",
    "BackendError",
    "BackendFactory",
    "ConfigTypes",
    "JobBackend",
    "JobSpec",
    "JobState",
    "JobStatus",
    "backend_names",
    "check_config",
    "make_backend",
    "merged_env",
    "option",
    "register_backend",
    "signal_name",
    "status_from_returncode",
    "validate_spec",
]
