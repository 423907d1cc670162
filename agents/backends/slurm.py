"""Run jobs on Slurm through its command-line tools (sbatch, squeue, sacct, scancel, sinfo).

Each job gets a small generated batch script next to its work (``<workdir>/.<key>.slurm.sh``) that
exports the job's extra environment and ``exec``s the argv: quoting is done once with
:func:`shlex.quote` instead of trusting ``--export``'s comma-separated syntax with arbitrary values.

Status is one bulk ``squeue --states=all`` call: slurmctld keeps finished jobs for ``MinJobAge``
seconds and squeue reports them with their raw wait status, which is all ``scontrol show job``
would add, without one call per job. Jobs slurmctld has purged are looked up with ``sacct`` when
accounting is configured; otherwise they are UNKNOWN.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from .base import (
    BackendError,
    ConfigTypes,
    JobBackend,
    JobSpec,
    JobState,
    JobStatus,
    check_config,
    option,
    signal_name,
    validate_spec,
)

log = logging.getLogger(__name__)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JOB_ID = re.compile(r"^\d+(_\d+)?$")
# Keeps command lines far below ARG_MAX even for thousands of ids.
_CHUNK = 500

_PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING"}
_RUNNING = {
    "RUNNING",
    "COMPLETING",  # the job's processes ended but the epilog/cleanup has not; outcome not final
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "RESIZING",
    "POWER_UP_NODE",
    "UPDATE_DB",
}
# Everything else that is final (FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, ...) fails.

# Options that map 1:1 to an sbatch flag; values are passed as given.
_SBATCH_FLAGS = {
    "partition": "--partition",
    "time": "--time",
    "mem": "--mem",
    "cpus_per_task": "--cpus-per-task",
    "account": "--account",
    "qos": "--qos",
}


class SlurmBackend(JobBackend):
    name: ClassVar[str] = "slurm"

    def __init__(
        self,
        *,
        defaults: Mapping[str, Any] | None = None,
        capacity: int | None = None,
        command_timeout: float = 60.0,
        capacity_ttl: float = 300.0,
        use_sacct: bool | None = None,
    ) -> None:
        """``defaults``: job options applied to every job (a job's own options win).
        ``use_sacct``: None probes once whether accounting is enabled."""
        self.defaults = dict(defaults or {})
        unknown = set(self.defaults) - {*_SBATCH_FLAGS, "extra_args"}
        if unknown:
            raise BackendError(f"slurm backend: unknown default option(s) {sorted(unknown)}")
        self._check_options(self.defaults)
        self._capacity_override = capacity
        self.command_timeout = command_timeout
        self.capacity_ttl = capacity_ttl
        self._use_sacct = use_sacct
        self._capacity_cache: tuple[float, int] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SlurmBackend:
        """Config keys: capacity, command_timeout, capacity_ttl, use_sacct, plus job options
        (partition, time, mem, cpus_per_task, account, qos, extra_args) given either at top level
        or under ``defaults``; they apply to every job unless the job's own options override them."""
        own: ConfigTypes = {
            "capacity": int,
            "command_timeout": (int, float),
            "capacity_ttl": (int, float),
            "use_sacct": bool,
            "defaults": Mapping,
        }
        job_options: ConfigTypes = {**dict.fromkeys(_SBATCH_FLAGS, (str, int)), "extra_args": (list, tuple)}
        check_config(cls.name, config, {**own, **job_options})
        defaults = dict(config.get("defaults") or {})
        defaults.update({k: v for k, v in config.items() if k not in own})
        kwargs = {k: v for k, v in config.items() if k in own and k != "defaults"}
        return cls(defaults=defaults, **kwargs)

    # --- JobBackend ------------------------------------------------------------------------------

    def submit(self, job: JobSpec) -> str:
        validate_spec(job)
        options = {**self.defaults, **job.options}
        self._check_options(options)
        script = job.workdir / f".{_safe_name(job.key)}.slurm.sh"
        try:
            script.write_text(self._render_script(job), encoding="utf-8")
            script.chmod(0o700)  # it holds the job's environment, which may carry tokens
        except OSError as exc:
            raise BackendError(f"slurm: cannot write batch script {script}: {exc}") from exc
        cmd = [
            "sbatch",
            "--parsable",
            f"--job-name={job.key}",
            f"--chdir={job.workdir.absolute()}",
            # '%' starts a filename pattern (%j, %x ...) in sbatch; '%%' is a literal percent.
            f"--output={str(job.log_path.absolute()).replace('%', '%%')}",
            "--open-mode=append",
        ]
        for name, flag in _SBATCH_FLAGS.items():
            if options.get(name) is not None:
                cmd.append(f"{flag}={options[name]}")
        cmd.extend(str(arg) for arg in options.get("extra_args") or ())
        cmd.append(str(script.absolute()))
        out = self._run(cmd).strip()
        # --parsable prints "jobid" or "jobid;cluster".
        job_id = out.splitlines()[-1].split(";")[0].strip() if out else ""
        if not _JOB_ID.match(job_id):
            raise BackendError(f"slurm: unexpected sbatch output {out!r}")
        return job_id

    def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        result: dict[str, JobStatus] = {}
        wanted = [i for i in dict.fromkeys(job_ids) if _JOB_ID.match(i)]
        for chunk in _chunks(wanted):
            result.update(self._squeue(chunk))
        missing = [i for i in wanted if i not in result]
        if missing and self._sacct_enabled():
            for chunk in _chunks(missing):
                result.update(self._sacct(chunk))
        for job_id in job_ids:
            if job_id not in result:
                result[job_id] = JobStatus(JobState.UNKNOWN, reason="slurm has no record of the job")
        return result

    def cancel(self, job_ids: Sequence[str]) -> None:
        wanted = [i for i in dict.fromkeys(job_ids) if _JOB_ID.match(i)]
        for chunk in _chunks(wanted):
            proc = self._run_raw(["scancel", *chunk])
            # scancel still cancels the valid ids when some are unknown or already finished.
            errors = [
                line
                for line in proc.stderr.splitlines()
                if line.strip() and "Invalid job id" not in line and "already completing" not in line
            ]
            if proc.returncode != 0 and errors:
                raise BackendError(f"slurm: scancel failed: {'; '.join(errors)}")

    def capacity(self) -> int:
        if self._capacity_override is not None:
            return self._capacity_override
        with self._lock:
            now = time.monotonic()
            if self._capacity_cache and now - self._capacity_cache[0] < self.capacity_ttl:
                return self._capacity_cache[1]
        cmd = ["sinfo", "--noheader", "--Node", "--format=%N|%c"]
        partition = self.defaults.get("partition")
        if partition:
            cmd.append(f"--partition={partition}")
        cpus_per_node: dict[str, int] = {}
        for line in self._run(cmd).splitlines():
            node, _, cpus = line.strip().partition("|")
            if node and cpus.isdigit():
                cpus_per_node[node] = int(cpus)  # a node in several partitions is listed per partition
        per_job = int(self.defaults.get("cpus_per_task") or 1)
        value = max(1, sum(cpus_per_node.values()) // per_job)
        with self._lock:
            self._capacity_cache = (time.monotonic(), value)
        return value

    def close(self) -> None:
        pass  # nothing held open; jobs belong to Slurm

    # --- internals -------------------------------------------------------------------------------

    @staticmethod
    def _check_options(options: Mapping[str, Any]) -> None:
        for name in _SBATCH_FLAGS:
            value = options.get(name)
            if value is not None and not isinstance(value, str | int):
                raise BackendError(f"slurm option {name!r} must be a string or int, got {value!r}")
        extra = option(options, "extra_args", (list, tuple))
        if extra is not None and not all(isinstance(a, str) for a in extra):
            raise BackendError("slurm option 'extra_args' must be a list of strings")

    @staticmethod
    def _render_script(job: JobSpec) -> str:
        lines = ["#!/bin/sh", f"# Generated by metaprod's slurm backend for job {job.key}."]
        for name, value in job.env.items():
            if not _ENV_NAME.match(name):
                raise BackendError(f"slurm: invalid environment variable name {name!r}")
            lines.append(f"export {name}={shlex.quote(value)}")
        lines.append("exec " + shlex.join(job.argv))
        return "\n".join(lines) + "\n"

    def _squeue(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        # --states=all includes finished jobs slurmctld still holds; exit_code is the raw wait status.
        proc = self._run_raw(
            [
                "squeue",
                "--noheader",
                "--states=all",
                "--Format=JobID:|,State:|,exit_code:|,Reason:|",
                f"--jobs={','.join(job_ids)}",
            ]
        )
        if proc.returncode != 0:
            # A single purged id makes squeue fail instead of printing nothing.
            if "Invalid job id" in proc.stderr:
                return {}
            raise BackendError(f"slurm: squeue failed: {proc.stderr.strip() or proc.stdout.strip()}")
        result: dict[str, JobStatus] = {}
        for line in proc.stdout.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) < 4 or parts[0] not in job_ids:
                continue
            raw = int(parts[2]) if parts[2].lstrip("-").isdigit() else None
            exit_code, how = _decode_wait_status(raw)
            result[parts[0]] = _map_state(parts[1], exit_code, how, parts[3])
        return result

    def _sacct(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        proc = self._run_raw(
            [
                "sacct",
                "--noheader",
                "--parsable2",
                "--allocations",
                "--format=JobIDRaw,State,ExitCode,Reason",
                f"--jobs={','.join(job_ids)}",
            ]
        )
        if proc.returncode != 0:
            log.warning("slurm: sacct failed: %s", proc.stderr.strip())
            return {}
        result: dict[str, JobStatus] = {}
        for line in proc.stdout.splitlines():
            parts = line.split("|")
            if len(parts) < 3 or parts[0] not in job_ids:
                continue
            code, _, sig = parts[2].partition(":")  # "N:S" = exit code : signal
            exit_code: int | None = int(code) if code.isdigit() else None
            how = ""
            if sig.isdigit() and int(sig):
                exit_code, how = -int(sig), f"killed by signal {signal_name(int(sig))}"
            elif exit_code:
                how = f"exit code {exit_code}"
            reason = parts[3] if len(parts) > 3 else ""
            result[parts[0]] = _map_state(parts[1].split()[0], exit_code, how, reason)
        return result

    def _sacct_enabled(self) -> bool:
        if self._use_sacct is None:
            proc = self._run_raw(["sacct", "--noheader", "--jobs=1"], check_missing=False)
            self._use_sacct = proc.returncode == 0 and "disabled" not in proc.stderr
        return self._use_sacct

    def _run(self, cmd: list[str]) -> str:
        proc = self._run_raw(cmd)
        if proc.returncode != 0:
            raise BackendError(f"slurm: {cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def _run_raw(self, cmd: list[str], check_missing: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.command_timeout, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError as exc:
            if not check_missing:
                return subprocess.CompletedProcess(cmd, 127, "", str(exc))
            raise BackendError(f"slurm: {cmd[0]} not found on PATH") from exc
        except subprocess.TimeoutExpired as exc:
            raise BackendError(f"slurm: {cmd[0]} timed out after {self.command_timeout}s") from exc


def _decode_wait_status(raw: int | None) -> tuple[int | None, str]:
    """squeue's exit_code is the waitpid() status of the batch script."""
    if raw is None:
        return None, ""
    if raw & 0x7F:
        sig = raw & 0x7F
        return -sig, f"killed by signal {signal_name(sig)}"
    code = (raw >> 8) & 0xFF
    return code, f"exit code {code}" if code else ""


def _map_state(slurm_state: str, exit_code: int | None, how: str, reason: str) -> JobStatus:
    state = slurm_state.upper().rstrip("+")
    if state in _PENDING:
        return JobStatus(JobState.PENDING, reason=_clean_reason(reason))
    if state in _RUNNING:
        return JobStatus(JobState.RUNNING)
    if state == "COMPLETED":
        return JobStatus(JobState.SUCCEEDED, exit_code if exit_code is not None else 0)
    details = ", ".join(p for p in (how, _clean_reason(reason)) if p)
    return JobStatus(JobState.FAILED, exit_code, f"{state}" + (f" ({details})" if details else ""))


def _clean_reason(reason: str) -> str:
    return "" if reason in ("None", "(null)", "") else reason


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])
