"""The job wrapper (`metaprod job run JOB_FILE`): what a batch job executes on a worker.

It runs the transformation's command by /bin/sh in an empty work directory of its own,
with the environment of DESIGN.md, heartbeats while it runs, stores the outputs through
fsspec and reports them (or the failure) over gRPC with the attempt's worker token. It
never touches the database: the services decide whether the report still counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

import fsspec
import grpc
from metaprod.agents.backends.base import CANCEL_FILE, PID_FILE
from metaprod.v1 import catalog_pb2, common_pb2
from metaprod.v1 import transformation_pb2 as tpb
from metaprod.v1 import transformation_pb2_grpc as tpb_grpc

SIDECAR = ".meta.json"
# Services may be restarting (crash recovery) or the claim not yet committed: keep trying.
RETRY_SECONDS = 300.0
RETRIED_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.DEADLINE_EXCEEDED}
T = TypeVar("T")


# One channel per services address for the life of the process: a pooled worker runs many
# jobs, each with its own token (sent as call metadata), over one connection.
_CHANNELS: dict[str, grpc.Channel] = {}
_CHANNELS_LOCK = threading.Lock()


def _channel(address: str) -> grpc.Channel:
    with _CHANNELS_LOCK:
        channel = _CHANNELS.get(address)
        if channel is None:
            channel = _CHANNELS[address] = grpc.insecure_channel(address)
        return channel


class Reporter:
    def __init__(self, address: str, token: str) -> None:
        self._stub = tpb_grpc.TransformationServiceStub(_channel(address))  # type: ignore[no-untyped-call]
        self._metadata = (("authorization", f"Bearer {token}"),)

    def call(self, fn: Callable[..., T], request: Any, *, retry_for: float = RETRY_SECONDS) -> T:
        deadline = time.monotonic() + retry_for
        delay = 0.05
        while True:
            try:
                return fn(request, metadata=self._metadata, timeout=30)
            except grpc.RpcError as exc:
                if exc.code() not in RETRIED_CODES or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(5.0, delay * 2)

    def heartbeat(self, task: int, attempt: int) -> bool:
        response: tpb.HeartbeatResponse = self.call(
            self._stub.Heartbeat, tpb.HeartbeatRequest(task=task, attempt=attempt)
        )
        return bool(response.proceed)

    def report(self, request: tpb.ReportTaskResultRequest) -> tpb.ReportTaskResultResponse:
        response: tpb.ReportTaskResultResponse = self.call(self._stub.ReportTaskResult, request)
        return response

    def close(self) -> None:
        """The channel is shared by the process's reporters and stays open."""


def _meta_value(key: str, value: Any) -> common_pb2.MetaValue:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"metadata {key!r}: {value!r} is not an int, float or str")
    if isinstance(value, int):
        return common_pb2.MetaValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.MetaValue(float_value=value)
    return common_pb2.MetaValue(str_value=value)


def _local_path(pfn: str) -> str:
    return pfn[len("file://") :] if pfn.startswith("file://") else pfn


def job_environment(job: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("METAPROD_TOKEN", "METAPROD_JOB_FILE")}
    env.update(
        METAPROD_TASK_ID=str(job["task_id"]),
        METAPROD_TASK_INDEX=str(job["task_index"]),
        METAPROD_ATTEMPT=str(job["attempt"]),
        METAPROD_INPUTS="\n".join(_local_path(i["pfn"] or i["lfn"]) for i in job["inputs"]),
        METAPROD_INPUT_LFNS="\n".join(i["lfn"] for i in job["inputs"]),
        METAPROD_TRANSFORMATION=job["transformation"],
        METAPROD_PRODUCTION=job["production"],
    )
    return env


def collect_outputs(job: dict[str, Any], workdir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Files matching each outputs[].glob (sidecars excluded), with their explicit metadata."""
    seen: set[Path] = set()
    for spec in job["outputs"]:
        matches = sorted(p for p in workdir.glob(spec["glob"]) if p.is_file() and not p.name.endswith(SIDECAR))
        if not matches:
            raise ValueError(f"missing output: no file matches {spec['glob']!r}")
        for path in matches:
            if path in seen:
                continue
            seen.add(path)
            metadata = dict(spec.get("metadata") or {})
            sidecar = path.with_name(path.name + SIDECAR)
            if sidecar.exists():
                try:
                    extra = json.loads(sidecar.read_text())
                except json.JSONDecodeError as exc:
                    raise ValueError(f"sidecar {sidecar.name} is not JSON: {exc}") from None
                if not isinstance(extra, dict):
                    raise ValueError(f"sidecar {sidecar.name} must hold a JSON object")
                metadata.update(extra)
            yield path, metadata


def store_outputs(job: dict[str, Any], workdir: Path) -> list[catalog_pb2.CatalogFile]:
    storage = str(job["storage"]).rstrip("/")
    fs, root = fsspec.core.url_to_fs(storage)
    files: list[catalog_pb2.CatalogFile] = []
    for path, metadata in collect_outputs(job, workdir):
        rel = path.relative_to(workdir).as_posix()
        lfn = job["lfn_prefix"] + rel
        # Each attempt stores apart: a superseded attempt can never overwrite a registered file.
        target = f"{root}{job['lfn_prefix']}a{job['attempt']}/{rel}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(path), target)
        data = path.read_bytes()
        files.append(
            catalog_pb2.CatalogFile(
                lfn=lfn,
                pfn=fs.unstrip_protocol(target) if storage.find("://") > 0 else target,
                size=len(data),
                checksum=f"adler32:{zlib.adler32(data):08x}",
                metadata={k: _meta_value(k, v) for k, v in metadata.items()},
            )
        )
    return files


def run_job_file(job_file: str, log_path: str | None = None) -> int:
    """Run one task attempt. Its messages and the command's stdout and stderr go to
    ``log_path`` (appended) when given, else to this process's stdout. While the command runs
    its pid (a process-group leader) is in ATTEMPT_DIR/command.pid; once ATTEMPT_DIR/cancelled
    exists the command is not started, or is killed, and nothing is reported (the backend's
    cancel contract, see metaprod.agents.backends.base.PID_FILE)."""
    if log_path is None:
        return _run(job_file, sys.stdout)
    with open(log_path, "a", buffering=1) as out:
        return _run(job_file, out)


def _run(job_file: str, out: TextIO) -> int:
    job = json.loads(Path(job_file).read_text())
    task, attempt = int(job["task_id"]), int(job["attempt"])
    attempt_dir = Path(job_file).resolve().parent
    workdir = attempt_dir / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    cancelled, pid_file = attempt_dir / CANCEL_FILE, attempt_dir / PID_FILE
    reporter = Reporter(job["address"], job["token"])
    if cancelled.exists():
        print(f"[metaprod] task {task} attempt {attempt} was cancelled; not starting", file=out, flush=True)
        return 0
    out.flush()
    proc = subprocess.Popen(
        ["/bin/sh", "-c", job["command"]],
        cwd=workdir,
        env=job_environment(job),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pid_file.write_text(str(proc.pid))
    if cancelled.exists():  # the backend may have looked for the pid before it was written
        _kill_group(proc.pid, signal.SIGTERM)
    superseded = threading.Event()
    finished = threading.Event()

    interval = float(job.get("heartbeat_interval", 5.0))

    def beat() -> None:
        # The first beat comes after at most a second: a job shorter than that costs the
        # services one write (its report), and a superseded attempt is still stopped early.
        wait = min(1.0, interval)
        while not finished.wait(wait):
            wait = interval
            try:
                if not reporter.heartbeat(task, attempt):
                    superseded.set()
                    _kill_group(proc.pid, signal.SIGKILL)
                    return
            except grpc.RpcError:
                continue

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    # Wait without reaping, so the pid (and its group id) cannot be reused while the
    # backend may still read it from the pid file.
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    pid_file.unlink(missing_ok=True)
    code = proc.wait()
    finished.set()
    thread.join(timeout=5)
    if superseded.is_set() or cancelled.exists():
        print(f"[metaprod] task {task} attempt {attempt} was superseded or cancelled; no report", file=out, flush=True)
        return 0
    request = tpb.ReportTaskResultRequest(task=task, attempt=attempt, exit_code=code)
    if code != 0:
        request.success, request.error = False, f"command exited with code {code}"
    else:
        try:
            request.outputs.extend(store_outputs(job, workdir))
            request.success = True
        except (ValueError, OSError) as exc:
            request.success, request.error = False, str(exc)
    sent = time.monotonic()
    outcome = reporter.report(request)
    print(
        f"[metaprod] task {task} attempt {attempt}: reported success={request.success} "
        f"accepted={outcome.accepted} in {1000 * (time.monotonic() - sent):.0f} ms {request.error}",
        file=out,
        flush=True,
    )
    return 0


def _kill_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m metaprod.agents.wrapper JOB_FILE", file=sys.stderr)
        return 2
    return run_job_file(args[0])


if __name__ == "__main__":
    raise SystemExit(main())
