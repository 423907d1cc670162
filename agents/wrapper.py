"""The job wrapper (`metaprod job run JOB_FILE`): what a batch job executes on a worker.

A job is a bundle of one or more task attempts of one transformation, run one after the other.
Each attempt's command runs by /bin/sh in an empty work directory of its own, with the
environment of DESIGN.md and its output in its own section of the job's log. While the bundle runs, one
heartbeat covers all its attempts not yet reported (the waiting ones as queued); the outputs are
stored through fsspec and each attempt's report (or failure) is sent over gRPC with the bundle's
worker token as soon as it is known, several at once when they pile up. The wrapper never
touches the database: the services decide whether a report still counts.
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
from metaprod.core import joblog
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

    def heartbeat(self, beats: list[tpb.HeartbeatRequest]) -> list[bool]:
        """One beat for the given attempts; for each, whether it is still the live one."""
        response: tpb.BundleHeartbeatResponse = self.call(
            self._stub.BundleHeartbeat, tpb.BundleHeartbeatRequest(attempts=beats), retry_for=0.0
        )
        return [a.proceed for a in response.attempts]

    def report(self, results: list[tpb.ReportTaskResultRequest]) -> list[tpb.ReportTaskResultResponse]:
        response: tpb.ReportBundleResultsResponse = self.call(
            self._stub.ReportBundleResults, tpb.ReportBundleResultsRequest(results=results)
        )
        return list(response.outcomes)

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


def base_environment() -> dict[str, str]:
    """This process's environment without the wrapper's secrets: what every command starts from."""
    return {k: v for k, v in os.environ.items() if k not in ("METAPROD_TOKEN", "METAPROD_JOB_FILE")}


def job_environment(job: dict[str, Any], task: dict[str, Any], base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    env.update(
        METAPROD_TASK_ID=str(task["task_id"]),
        METAPROD_TASK_INDEX=str(task["task_index"]),
        METAPROD_ATTEMPT=str(task["attempt"]),
        METAPROD_INPUTS="\n".join(_local_path(i["pfn"] or i["lfn"]) for i in task["inputs"]),
        METAPROD_INPUT_LFNS="\n".join(i["lfn"] for i in task["inputs"]),
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


def store_outputs(job: dict[str, Any], task: dict[str, Any], workdir: Path) -> list[catalog_pb2.CatalogFile]:
    if not job["outputs"]:
        return []
    storage = str(job["storage"]).rstrip("/")
    fs, root = fsspec.core.url_to_fs(storage)
    files: list[catalog_pb2.CatalogFile] = []
    for path, metadata in collect_outputs(job, workdir):
        rel = path.relative_to(workdir).as_posix()
        lfn = task["lfn_prefix"] + rel
        # Each attempt stores apart: a superseded attempt can never overwrite a registered file.
        target = f"{root}{task['lfn_prefix']}a{task['attempt']}/{rel}"
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
    """Run the job's task attempts and report them. The job's log (the commands' output and
    the wrapper's messages, a section per attempt: see metaprod.core.joblog) is ``log_path``
    (appended) when given, else this process's stdout. While a command runs its pid (a
    process-group leader) is in JOB_DIR/command.pid (empty between commands); once
    JOB_DIR/cancelled exists no further command starts, the running one is killed and nothing
    more is reported (the backend's cancel contract, see metaprod.agents.backends.base.PID_FILE)."""
    job = json.loads(Path(job_file).read_text())
    job_dir = Path(job_file).resolve().parent
    if log_path is None:
        _Bundle(job, job_dir, sys.stdout).run()
    else:
        with open(log_path, "a", buffering=1) as out:
            _Bundle(job, job_dir, out).run()
    return 0


Key = tuple[int, int]  # (task id, attempt)


class _Bundle:
    def __init__(self, job: dict[str, Any], job_dir: Path, out: TextIO) -> None:
        self.job = job
        self.out = out
        self.out_lock = threading.Lock()  # the report thread writes to the log too
        self.reporter = Reporter(job["address"], job["token"])
        self.cancelled, self.pid_file = job_dir / CANCEL_FILE, job_dir / PID_FILE
        self.interval = float(job.get("heartbeat_interval", 5.0))
        self.base_env = base_environment()
        # What the heartbeat covers, and the attempts the services told us to drop.
        self.lock = threading.Lock()
        self.waiting: list[Key] = [(int(t["task_id"]), int(t["attempt"])) for t in job["tasks"]]
        self.current: tuple[Key, int] | None = None  # (attempt, pid of its command)
        self.superseded: set[Key] = set()
        self.finished = threading.Event()
        self.sender = _ReportSender(self.reporter, self.say)

    def say(self, line: str) -> None:
        with self.out_lock:
            print(line, file=self.out, flush=True)

    def run(self) -> None:
        beat = threading.Thread(target=self._beat, daemon=True)
        beat.start()
        # One pid file for the whole job, rewritten in place: creating and removing a file
        # per command costs as much as the command on some file systems.
        pid_fd = os.open(self.pid_file, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for entry in self.job["tasks"]:
                key = (int(entry["task_id"]), int(entry["attempt"]))
                with self.lock:
                    self.waiting.remove(key)
                if self.cancelled.exists():
                    self.say(joblog.tagged(*key, "not started: the job was cancelled"))
                    continue
                request = self._run_task(entry, key, pid_fd)
                if request is not None:
                    self.sender.put(request)
        finally:
            os.close(pid_fd)
            self.pid_file.unlink(missing_ok=True)
            self.finished.set()
            beat.join(timeout=5)
            self.sender.close()

    def _run_task(self, entry: dict[str, Any], key: Key, pid_fd: int) -> tpb.ReportTaskResultRequest | None:
        task, attempt = key
        if key in self.superseded:
            self.say(joblog.tagged(task, attempt, "not started: superseded"))
            return None
        workdir = Path(entry["workdir"])
        workdir.mkdir(parents=True, exist_ok=True)
        self.say(joblog.section_header(task, attempt))
        proc = subprocess.Popen(
            ["/bin/sh", "-c", self.job["command"]],
            cwd=workdir,
            env=job_environment(self.job, entry, self.base_env),
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        os.pwrite(pid_fd, f"{proc.pid}\n".encode(), 0)
        with self.lock:
            self.current = (key, proc.pid)
        if self.cancelled.exists():  # the backend may have looked for the pid before it was written
            _kill_group(proc.pid, signal.SIGTERM)
        # Wait without reaping, so the pid (and its group id) cannot be reused while the
        # backend or the heartbeat may still signal it.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        with self.lock:
            self.current = None
        os.ftruncate(pid_fd, 0)
        code = proc.wait()
        if key in self.superseded or self.cancelled.exists():
            self.say(joblog.tagged(task, attempt, "superseded or cancelled; no report"))
            return None
        request = tpb.ReportTaskResultRequest(task=task, attempt=attempt, exit_code=code)
        if code != 0:
            request.success, request.error = False, f"command exited with code {code}"
        else:
            try:
                request.outputs.extend(store_outputs(self.job, entry, workdir))
                request.success = True
            except (ValueError, OSError) as exc:
                request.success, request.error = False, str(exc)
        return request

    def _beat(self) -> None:
        # The first beat comes after at most a second: a job shorter than that costs the
        # services no write but its report, and a superseded attempt is still stopped early.
        wait = min(1.0, self.interval)
        while not self.finished.wait(wait):
            wait = self.interval
            with self.lock:
                current = self.current
                beats = [tpb.HeartbeatRequest(task=t, attempt=a, queued=True) for t, a in self.waiting]
            if current is not None:
                beats.insert(0, tpb.HeartbeatRequest(task=current[0][0], attempt=current[0][1]))
            if not beats:
                continue
            try:
                proceed = self.reporter.heartbeat(beats)
            except grpc.RpcError:
                continue
            with self.lock:
                for beat, ok in zip(beats, proceed, strict=False):
                    key = (beat.task, beat.attempt)
                    if ok:
                        continue
                    self.superseded.add(key)
                    if self.current is not None and self.current[0] == key:
                        _kill_group(self.current[1], signal.SIGKILL)


class _ReportSender:
    """Sends the bundle's reports from a thread of its own, so the next command starts at
    once: those waiting go in one call, at most LINGER_SECONDS after the oldest was handed
    over (sooner once BATCH are waiting or the job ends): a report per call would cost the
    services a call and a transaction per trivial task. :meth:`close` waits until all were
    sent."""

    LINGER_SECONDS = 0.1
    BATCH = 32

    def __init__(self, reporter: Reporter, say: Callable[[str], None]) -> None:
        self._reporter = reporter
        self._say = say
        self._pending: list[tpb.ReportTaskResultRequest] = []
        self._oldest = 0.0
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="metaprod-reports", daemon=True)
        self._thread.start()

    def put(self, request: tpb.ReportTaskResultRequest) -> None:
        with self._cond:
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append(request)
            if len(self._pending) in (1, self.BATCH):  # start the linger, or end it early
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closing:
                    if len(self._pending) >= self.BATCH:
                        break
                    if self._pending:
                        left = self._oldest + self.LINGER_SECONDS - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    else:
                        self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            sent = time.monotonic()
            try:
                outcomes = self._reporter.report(batch)
                lines = [
                    f"reported success={request.success} accepted={outcome.accepted} "
                    f"in {1000 * (time.monotonic() - sent):.0f} ms {request.error}"
                    for request, outcome in zip(batch, outcomes, strict=True)
                ]
            except grpc.RpcError as exc:
                lines = [f"report failed: {exc.code().name}: {exc.details()}"] * len(batch)
            for request, line in zip(batch, lines, strict=True):
                self._say(joblog.tagged(request.task, request.attempt, line))


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
