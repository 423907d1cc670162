"""The job wrapper (`metaprod job run JOB_FILE`): what a batch job executes on a worker.

A job is a bundle of one or more task attempts of one transformation, run one after the other.
Each attempt's command runs by /bin/sh in an empty work directory of its own, with the
environment of docs/jobs.md and its output in its own section of the job's log. A command starts
only under a start lease from the services (one call for all the attempts still to start, good
for a fraction of a second: see metaprod.services.leases), so none starts once a stop has
returned; an attempt is staged (its checkpoint restored, remote inputs fetched) before its lease
is asked for, so the lease covers only the command's start. While the bundle runs, one
heartbeat covers all its attempts not yet reported (the waiting ones as queued); the outputs are
stored through fsspec and each attempt's report (or failure) is sent over gRPC with the
bundle's worker token as soon as it is known, several at once when they pile up. The wrapper
never touches the database: the services decide whether a report still counts.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import fsspec
import grpc
from metaprod.agents import checkpoints, proctree, sandbox
from metaprod.agents import outputs as job_outputs
from metaprod.agents.backends.base import CANCEL_FILE, PID_FILE
from metaprod.agents.capture import DEFAULT_KEEP, Capture
from metaprod.agents.reporting import Reporter, ReportSender
from metaprod.core import joblog
from metaprod.core.checkpoints import CHECKPOINT_DIR
from metaprod.v1 import catalog_pb2, common_pb2
from metaprod.v1 import transformation_pb2 as tpb

SIDECAR = ".meta.json"
SHELL = "/bin/sh"
# The next attempt is handed to the sandbox's runner ahead when the last command took less
# than this (seconds), and the start lease has at least as long left.
HAND_OVER_BELOW = 0.05
# How long an attempt's capture waits for its end mark once the runner reported its end.
CAPTURE_LINGER = 10.0


@dataclass(frozen=True)
class HandedOver:
    """An attempt handed to the sandbox's runner ahead of its turn."""

    key: tuple[int, int]
    box_pid: int  # the sandbox that holds it
    mark: bytes  # the end of its output
    checkpoint: checkpoints.Checkpoint


# Run instead of the command when its checkpoint or inputs could not be staged.
STAGING_FAILED = 'echo "$METAPROD_STAGING_ERROR" >&2; exit 75'


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


# What a command gets of the environment of the process that launched it (docs/jobs.md).
PASSED = ("PATH", "HOME", "LANG")


def base_environment() -> dict[str, str]:
    """What every command starts from: PATH, HOME and LANG of this process, nothing else (its
    environment may hold the worker token, the database URL and other secrets of `up`)."""
    return {k: os.environ[k] for k in PASSED if k in os.environ}


def job_environment(job: dict[str, Any], task: dict[str, Any], base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    env.update({str(k): str(v) for k, v in (job.get("env") or {}).items()})
    env.update(
        METAPROD_TASK_ID=str(task["task_id"]),
        METAPROD_TASK_INDEX=str(task["task_index"]),
        METAPROD_ATTEMPT=str(task["attempt"]),
        METAPROD_INPUTS="\n".join(_local_path(i["pfn"] or i["lfn"]) for i in task["inputs"]),
        METAPROD_INPUT_LFNS="\n".join(i["lfn"] for i in task["inputs"]),
        METAPROD_TRANSFORMATION=job["transformation"],
        METAPROD_PRODUCTION=job["production"],
        METAPROD_CHECKPOINT_DIR=str(Path(task["workdir"]) / CHECKPOINT_DIR),
    )
    return env


def collect_outputs(job: dict[str, Any], workdir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Files matching each outputs[].glob (sidecars excluded), with their explicit metadata:
    regular files inside the work directory only (metaprod.agents.outputs)."""
    return job_outputs.collect(job, workdir, SIDECAR, private=checkpoints.PRIVATE)


def store_outputs(job: dict[str, Any], task: dict[str, Any], workdir: Path) -> list[catalog_pb2.CatalogFile]:
    if not job["outputs"]:
        return []
    storage = str(job["storage"]).rstrip("/")
    fs, root = fsspec.core.url_to_fs(storage)
    found = list(collect_outputs(job, workdir))
    job_outputs.check_size(job, [path for path, _ in found])
    files: list[catalog_pb2.CatalogFile] = []
    stored: list[str] = []
    base = f"{root}{task['lfn_prefix']}a{task['attempt']}"
    try:
        for path, metadata in found:
            rel = path.relative_to(workdir).as_posix()
            lfn = task["lfn_prefix"] + rel
            # Each attempt stores apart: a superseded attempt can never overwrite a registered file.
            target = f"{base}/{rel}"
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            stored.append(target)
            fs.put_file(str(path), target)
            size, checksum = job_outputs.adler32_of(path)
            files.append(
                catalog_pb2.CatalogFile(
                    lfn=lfn,
                    pfn=fs.unstrip_protocol(target) if storage.find("://") > 0 else target,
                    size=size,
                    checksum=checksum,
                    metadata={k: _meta_value(k, v) for k, v in metadata.items()},
                )
            )
    except OSError as exc:
        job_outputs.remove_stored(fs, stored, base)
        raise OSError(f"storing outputs failed: {exc.strerror or exc}") from None
    except BaseException:
        job_outputs.remove_stored(fs, stored, base)
        raise
    return files


def run_job_file(job_file: str, log_path: str | None = None) -> int:
    """Run the job's task attempts and report them; returns once every report was sent. The
    job's log (the commands' output and the wrapper's messages, a section per attempt: see
    metaprod.core.joblog) is ``log_path`` (appended) when given, else this process's stdout.
    While a command runs its pid (a process-group leader) is in JOB_DIR/command.pid (empty
    between commands); once JOB_DIR/cancelled exists no further command starts, the running
    one is killed and nothing more is reported (the backend's cancel contract, see
    metaprod.agents.backends.base.PID_FILE). Whatever ends an attempt's command, every
    process it left (detached ones too: see metaprod.agents.proctree) is killed with it."""
    job = json.loads(Path(job_file).read_text())
    job_dir = Path(job_file).resolve().parent
    proctree.become_subreaper()
    # Set up for this job alone (the backends set METAPROD_JOB_FILE for it): every process
    # below this one is then the running attempt's.
    own = os.environ.get("METAPROD_JOB_FILE")
    dedicated = own is not None and Path(own).resolve() == Path(job_file).resolve()
    path = Path(job_file).resolve()
    if log_path is None:
        _Bundle(job, job_dir, sys.stdout, dedicated=dedicated, job_file=path).run()
    else:
        with open(log_path, "a", buffering=1) as out:
            _Bundle(job, job_dir, out, dedicated=dedicated, job_file=path).run()
    return 0


Key = tuple[int, int]  # (task id, attempt)


class _Bundle:
    def __init__(
        self, job: dict[str, Any], job_dir: Path, out: TextIO, *, dedicated: bool = False, job_file: Path | None = None
    ) -> None:
        self.job = job
        self.job_file = job_file or job_dir / "job.json"
        self.out = out
        self.out_lock = threading.Lock()  # the report thread writes to the log too
        self.log_mid_line = False  # the log's last byte, a command's, ends no line
        self.reporter = Reporter(job["address"], job["token"], job.get("tls"))
        self.job_dir = job_dir
        self.cancelled, self.pid_file = job_dir / CANCEL_FILE, job_dir / PID_FILE
        self.interval = float(job.get("heartbeat_interval", 5.0))
        self.base_env = base_environment()
        self.sandbox = sandbox.choose(str(job.get("sandbox", "auto")))
        self.log_keep = int(job.get("log_keep_bytes") or DEFAULT_KEEP)
        self.capture: Capture | None = None  # the running command's output
        self.box = self._job_sandbox()  # None: commands run without a sandbox
        # What the heartbeat covers, and the attempts the services told us to drop.
        self.lock = threading.Lock()
        self.waiting: list[Key] = [(int(t["task_id"]), int(t["attempt"])) for t in job["tasks"]]
        self.current: tuple[Key, int] | None = None  # (attempt, pid of its command)
        self.superseded: set[Key] = set()
        self.withdrawn: set[Key] = set()  # given back to their tasks: never started
        # Held to start a command, and by a heartbeat while it is on its way: a queued beat may
        # withdraw an attempt (its transformation stopped), which must not start meanwhile.
        self.start_lock = threading.Lock()
        # Commands may start until then (time.monotonic()): the start lease.
        self.lease_until = 0.0
        self.finished = threading.Event()
        self.max_runtime = float(job.get("max_runtime") or 0)
        # This process runs this job and nothing else (a pool worker, a batch job): every
        # process below it belongs to the running attempt.
        self.dedicated = dedicated
        self.sender = ReportSender(self.reporter, self.say, self._drop_outputs)
        self.workdirs = WorkDirectories()
        self.checkpoint: checkpoints.Checkpoint | None = None  # the running attempt's
        # The commands' descriptors 0, 1 and 2, set up by run().
        self.spawn_actions: list[tuple[int, int, int]] = []
        # The next attempt, handed to the sandbox's runner while this one runs (_hand_over),
        # and how long the last attempt's command took (None: none ran yet).
        self.handed: HandedOver | None = None
        self.ran_for: float | None = None

    def say(self, line: str) -> None:
        with self.out_lock:
            # Our lines start lines of their own, so that `task log` finds them (and a header
            # is never taken for the end of the output before it).
            if self.log_mid_line:
                line = "\n" + line
                self.log_mid_line = False
            print(line, file=self.out, flush=True)

    def run(self) -> None:
        beat = threading.Thread(target=self._beat, daemon=True)
        beat.start()
        # One pid file for the whole job, rewritten in place: creating and removing a file
        # per command costs as much as the command on some file systems.
        pid_fd = os.open(self.pid_file, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        # What Python opens is close-on-exec: a command gets these three and nothing else of
        # ours (1 and 2: the pipe of its output, set by _spawn).
        self.spawn_actions = [(os.POSIX_SPAWN_DUP2, devnull, 0)]
        if self.sandbox.note:
            self.say(f"[metaprod] {self.sandbox.note}")
        last_ran = False
        try:
            if self.box is not None:
                self.box.start()  # it boots while the first start lease is asked for
            tasks = self.job["tasks"]
            for position, entry in enumerate(tasks):
                key = (int(entry["task_id"]), int(entry["attempt"]))
                with self.lock:
                    self.waiting.remove(key)
                last_ran = False
                if self.cancelled.exists():
                    self.say(joblog.tagged(*key, "not started: the job was cancelled"))
                    continue
                upcoming = tasks[position + 1] if position + 1 < len(tasks) else None
                request = self._run_task(entry, key, pid_fd, upcoming)
                last_ran = request is not None
                if request is not None:
                    self.sender.put(request)
        finally:
            if self.box is not None:
                if last_ran:
                    self.box.close()
                else:
                    # Its directory goes below: the sandbox (which may still be binding it,
                    # making mount points there) is gone first, so nothing makes them again.
                    self.box.kill()
            os.close(pid_fd)
            os.close(devnull)
            self.pid_file.unlink(missing_ok=True)
            self.finished.set()
            beat.join(timeout=5)
            self.sender.close()
        if not last_ran:
            # The job's directory is the scratch of its last attempt, removed when that one is
            # finalized; it will not be (withdrawn, superseded or cancelled): it goes now.
            shutil.rmtree(self.job_dir, ignore_errors=True)

    def _run_task(
        self, entry: dict[str, Any], key: Key, pid_fd: int, upcoming: dict[str, Any] | None = None
    ) -> tpb.ReportTaskResultRequest | None:
        task, attempt = key
        if self.sandbox.error:
            self.say(joblog.tagged(task, attempt, f"not started: {self.sandbox.error}"))
            return tpb.ReportTaskResultRequest(task=task, attempt=attempt, success=False, error=self.sandbox.error)
        workdir = Path(entry["workdir"])
        env = job_environment(self.job, entry, self.base_env)
        adopted = self._adopt(key, pid_fd)
        pid = adopted if adopted is not None else self._start(key, workdir, env, pid_fd, entry)
        if pid is None:
            return None
        capture = self.capture
        assert capture is not None
        if self.cancelled.exists():  # the backend may have looked for the pid before it was written
            _kill_group(pid, signal.SIGTERM)
        marks = tuple(f"{name}={env[name]}".encode() for name in ("METAPROD_TASK_ID", "METAPROD_ATTEMPT"))
        began = time.monotonic()
        if self.box is not None:
            if upcoming is not None:
                self._hand_over(upcoming)
            # In the job's sandbox: the runner reports the end once every process of the
            # attempt is gone; a kill (timeout, cancel, superseded) ends the sandbox.
            box = self.box
            timed_out = not (box.has_ended() or capture.wait((box.status, box.pidfd), self.max_runtime or None))
            if timed_out:
                self.box.kill()
            code: int | None = -9 if timed_out else self.box.ended()[1]
            if code is None:
                # Handed over ahead, its start deadline (the lease) ran out before its turn:
                # it never started; it starts now like any other, under a lease.
                capture.finish()
                self.box.output_ahead = capture.ahead
                self.capture = None
                pid = self._start(key, workdir, env, pid_fd, entry, prepared=True)
                if pid is None:
                    return None
                capture = self.capture
                assert capture is not None
                began = time.monotonic()
                timed_out = not capture.wait((box.status, box.pidfd), self.max_runtime or None)
                if timed_out:
                    self.box.kill()
                code = -9 if timed_out else self.box.ended()[1]
            with self.lock:
                self.current = None
            os.ftruncate(pid_fd, 0)
            code = -9 if code is None else code
        else:
            timed_out = not _ended_within(pid, self.max_runtime, capture)
        if self.box is None and timed_out:
            # The whole tree, detached processes too; the command itself is reaped below.
            proctree.end_attempt_processes(pid, marks, dedicated=self.dedicated, reap=False)
        if self.box is None:
            # Wait without reaping, so the pid (and its group id) cannot be reused while the
            # backend or the heartbeat may still signal it.
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            with self.lock:
                self.current = None
            os.ftruncate(pid_fd, 0)
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        # Its processes end with the attempt, however it ended. Mostly nothing is left: one
        # system call says so, without a walk over /proc.
        if self.box is None and proctree.has_children():
            left = proctree.end_attempt_processes(pid, marks, dedicated=self.dedicated, reap=True)
            if left:
                self.say(joblog.tagged(task, attempt, f"killed {left} processes the command left behind"))
        capture.finish()
        if self.box is not None:
            self.box.output_ahead = capture.ahead
        self.ran_for = time.monotonic() - began
        self._end_checkpoint(key)
        self.capture = None
        # In a sandbox, nothing of the attempt runs any more (0: no group to look for).
        self.workdirs.vacate(workdir, 0 if self.box is not None else pid)
        if key in self.superseded or self.cancelled.exists():
            self.say(joblog.tagged(task, attempt, "superseded or cancelled; no report"))
            return None
        request = tpb.ReportTaskResultRequest(task=task, attempt=attempt, exit_code=code)
        if timed_out:
            request.success, request.error = False, f"killed after max_runtime {self.max_runtime:g}s"
        elif code != 0:
            request.success, request.error = False, f"command exited with code {code}"
        else:
            try:
                request.outputs.extend(store_outputs(self.job, entry, workdir))
                request.success = True
            except (ValueError, OSError) as exc:
                request.success, request.error = False, str(exc)
        return request

    def _start(
        self,
        key: Key,
        workdir: Path,
        env: dict[str, str],
        pid_fd: int,
        entry: dict[str, Any],
        *,
        prepared: bool = False,
    ) -> int | None:
        """Start the attempt's command under the job's start lease, asking for one when it has
        run out; returns its pid, or None when it may not start. Stop means stop, even for
        attempts waiting in a bundle: a lease is granted only while their tasks are Submitted
        and their transformation Active, and a stop returns only once every lease granted
        before it has run out (metaprod.services.leases). Asking costs one read-only call for
        all the attempts still to start, at most once per lease (a fraction of a second), not
        one per attempt; a refusal tells which were withdrawn, so those do not ask again."""
        task, attempt = key
        with self.start_lock:
            staged = prepared or key not in self.superseded
        if staged and not prepared:  # else its directory, header and checkpoint are there
            # Staged before the lease is taken (the checkpoint restored, remote inputs fetched:
            # storage calls that may take long), so the lease covers only the command's start
            # and never runs out while an object store answers.
            self.workdirs.take(workdir)
            self.say(joblog.section_header(task, attempt))
            self.checkpoint = self._prepare(entry, workdir, env)
        asked = granted = False
        while True:
            with self.start_lock:
                if key in self.superseded:
                    why = "superseded or killed"
                    if key in self.withdrawn:
                        why = "withdrawn (its transformation was stopped)"
                    self.say(joblog.tagged(task, attempt, f"not started: {why}"))
                    self._unstage(workdir, staged)
                    return None
                if granted or time.monotonic() < self.lease_until:
                    pid = self._spawn(workdir, env)
                    os.pwrite(pid_fd, f"{pid}\n".encode(), 0)
                    with self.lock:
                        self.current = (key, pid)
                    return pid
            try:
                if not asked:
                    asked = True
                    self._ask_lease(key)
                else:
                    # The lease ran out before its answer came (the services are slow): this
                    # attempt alone, decided in a transaction (it is Running once granted).
                    answer = self.reporter.start(task, attempt)
                    self._note([key], [answer])
                    granted = answer.proceed
            except grpc.RpcError as exc:
                # Never reported: the monitor finds it lost and retries it.
                self.say(
                    joblog.tagged(task, attempt, f"not started: the services refused the start ({exc.code().name})")
                )
                self._unstage(workdir, staged)
                return None

    def _unstage(self, workdir: Path, staged: bool) -> None:
        """An attempt staged but not started leaves nothing: no checkpoint saved (its command
        changed nothing), its work directory and fetched inputs gone, as if never staged."""
        point, self.checkpoint = self.checkpoint, None
        if point is not None:
            point.ended = True
        if staged:
            shutil.rmtree(workdir, ignore_errors=True)

    def _prepare(self, entry: dict[str, Any], workdir: Path, env: dict[str, str]) -> checkpoints.Checkpoint | None:
        """Its checkpoint back in place and its remote inputs fetched, before the command
        starts (metaprod.agents.checkpoints)."""
        task, attempt = int(entry["task_id"]), int(entry["attempt"])
        point = checkpoints.Checkpoint(self.job.get("storage"), task, workdir)
        try:
            # A task's first attempt has nothing saved before it: no storage call.
            restored = point.restore() if attempt > 1 else point.make()
            pfns = [i["pfn"] or i["lfn"] for i in entry["inputs"]]
            if not all(checkpoints.is_local(p) for p in pfns):
                env["METAPROD_INPUTS"] = "\n".join(checkpoints.fetch_inputs(pfns, workdir))
        except (OSError, tarfile.TarError) as exc:
            # The attempt fails (and is retried) with the reason in its log, its command not run.
            reason = f"staging the checkpoint or inputs failed: {exc}"
            env["METAPROD_STAGING_ERROR"] = reason
            self.say(joblog.tagged(task, attempt, reason))
            return None
        if restored:
            self.say(joblog.tagged(task, attempt, f"checkpoint: {restored} files restored"))
        return point

    def _end_checkpoint(self, key: Key) -> None:
        """The command has ended, however: its checkpoint is saved (unless a newer attempt
        took over) and its directory left."""
        point, self.checkpoint = self.checkpoint, None
        if point is None:
            return
        if key not in self.superseded and point.save(final=True):
            self.say(joblog.tagged(*key, "checkpoint saved"))
        point.ended = True
        point.leave()

    def _ask_lease(self, key: Key) -> None:
        """One lease for this attempt and those still waiting (the answers mark the ones to
        drop), measured from before the call."""
        with self.lock:
            keys = [key, *self.waiting]
        sent = time.monotonic()
        answers, seconds = self.reporter.lease(keys)
        self._note(keys, answers)
        if seconds > 0:
            self.lease_until = sent + seconds

    def _note(self, keys: list[Key], answers: list[tpb.HeartbeatResponse]) -> None:
        """Remember the attempts the services told us to drop; kill the running one if so."""
        with self.lock:
            for key, answer in zip(keys, answers, strict=False):
                if answer.proceed:
                    continue
                self.superseded.add(key)
                if answer.withdrawn:
                    self.withdrawn.add(key)
                if self.current is not None and self.current[0] == key:
                    _kill_group(self.current[1], signal.SIGKILL)

    def _spawn(self, workdir: Path, env: dict[str, str]) -> int:
        """Start the attempt's command: ``/bin/sh -c COMMAND`` in a session of its own (so
        cancel kills its whole tree), in its work directory, reading /dev/null, writing to the
        job's log. posix_spawn costs 50 us less per command than subprocess (a twelfth of a
        trivial task's share of this process); as it takes no working directory, the wrapper
        moves there for the call (its threads use absolute paths only)."""
        command = self.job["command"] if "METAPROD_STAGING_ERROR" not in env else STAGING_FAILED
        if self.box is not None:
            pid = self.box.start()
            mark = self.box.run(workdir, env, command)
            self.capture = self._box_capture(mark)
            return pid
        program, argv = SHELL, [SHELL, "-c", command]
        read_fd, write_fd = os.pipe()
        actions = [*self.spawn_actions, (os.POSIX_SPAWN_DUP2, write_fd, 1), (os.POSIX_SPAWN_DUP2, write_fd, 2)]
        os.chdir(workdir)
        try:
            pid = os.posix_spawn(program, argv, env, file_actions=actions, setsid=True)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
            os.chdir(self.job_dir)
        self.capture = Capture(read_fd, self._write_log, head=self.log_keep, tail=self.log_keep)
        return pid

    def _box_capture(self, mark: bytes) -> Capture:
        """The capture of an attempt's output in the sandbox's output pipe: it ends at the
        attempt's end mark (the runner writes it once its processes are gone), and begins
        with what the previous attempt's capture read past its own."""
        assert self.box is not None
        ahead, self.box.output_ahead = self.box.output_ahead, b""
        return Capture(
            os.dup(self.box.output),
            self._write_log,
            head=self.log_keep,
            tail=self.log_keep,
            linger=CAPTURE_LINGER,
            mark=mark,
            ahead=ahead,
        )

    def _hand_over(self, entry: dict[str, Any]) -> None:
        """Hand the next attempt to the sandbox's runner now, while this one runs, so that it
        starts the moment this one ends (no round trip through the wrapper between two
        trivial commands): only when the commands of this job are short (the last took less
        than HAND_OVER_BELOW), the start lease has time left (the runner starts nothing after
        it) and nothing needs staging (a first attempt with inputs in place)."""
        assert self.box is not None
        key = (int(entry["task_id"]), int(entry["attempt"]))
        if self.ran_for is None or self.ran_for >= HAND_OVER_BELOW or key[1] != 1:
            return
        if not all(checkpoints.is_local(i["pfn"] or i["lfn"]) for i in entry["inputs"]):
            return
        workdir = Path(entry["workdir"])
        env = job_environment(self.job, entry, self.base_env)
        with self.start_lock:
            deadline = self.lease_until
            if key in self.superseded or deadline - time.monotonic() < HAND_OVER_BELOW or self.cancelled.exists():
                return
            self.workdirs.take(workdir)
            point = checkpoints.Checkpoint(self.job.get("storage"), key[0], workdir)
            try:
                point.make()
            except OSError:
                return  # staged the usual way when its turn comes
            mark = self.box.run(workdir, env, self.job["command"], deadline=deadline)
            self.handed = HandedOver(key, self.box.pid, mark, point)

    def _adopt(self, key: Key, pid_fd: int) -> int | None:
        """The attempt, handed over to the runner ahead (see _hand_over), becomes the running
        one: its pid (the sandbox's), or None when it was not handed over or the sandbox that
        held it is gone (killed: the attempt starts the usual way)."""
        handed, self.handed = self.handed, None
        if handed is None or handed.key != key:
            return None
        box = self.box
        assert box is not None
        if box.pid != handed.box_pid:
            return None
        if key in self.superseded:
            box.kill()  # it may have started: the sandbox goes with it, as for a running one
            return None
        self.say(joblog.section_header(*key))
        self.checkpoint = handed.checkpoint
        self.capture = self._box_capture(handed.mark)
        os.pwrite(pid_fd, f"{box.pid}\n".encode(), 0)
        with self.lock:
            self.current = (key, box.pid)
        return box.pid

    def _job_sandbox(self) -> sandbox.JobSandbox | None:
        """The job's sandbox (started with its first command), or None when commands run
        without one."""
        if self.sandbox.program is None:
            return None
        inputs = [_local_path(i["pfn"] or i["lfn"]) for t in self.job["tasks"] for i in t["inputs"]]
        return sandbox.JobSandbox(
            self.sandbox.program,
            job_dir=self.job_dir,
            inputs=inputs,
            hidden=(str(self.job.get("data_dir") or self.job_dir.parent.parent), str(self.job_dir.parent)),
            writable=[str(p) for p in self.job.get("sandbox_writable") or ()],
            # The job file holds the worker token; the pid file is the backend's to kill.
            masked=[str(self.job_file), str(self.pid_file)],
            env=self.base_env,
        )

    def _drop_outputs(self, request: tpb.ReportTaskResultRequest) -> None:
        """The report of an attempt that stored outputs did not count: they go."""
        fs, _ = fsspec.core.url_to_fs(str(self.job["storage"]).rstrip("/"))
        pfns = [fsspec.core.url_to_fs(f.pfn)[1] for f in request.outputs]
        job_outputs.remove_stored(fs, pfns, pfns[0].rsplit("/", 1)[0])
        self.say(joblog.tagged(request.task, request.attempt, f"removed its {len(pfns)} stored outputs"))

    def _write_log(self, data: bytes) -> None:
        with self.out_lock:
            self.out.flush()
            fd = self.out.fileno()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if data:
                self.log_mid_line = not data.endswith(b"\n")

    def _beat(self) -> None:
        # The first beat comes after at most a second: a job shorter than that costs the
        # services no write but its report, and a superseded attempt is still stopped early.
        wait = min(1.0, self.interval)
        while not self.finished.wait(wait):
            wait = self.interval
            # No command starts while the beat is on its way: one it withdraws never does.
            with self.start_lock:
                with self.lock:
                    current = self.current
                    beats = [tpb.HeartbeatRequest(task=t, attempt=a, queued=True) for t, a in self.waiting]
                if current is not None:
                    beats.insert(0, tpb.HeartbeatRequest(task=current[0][0], attempt=current[0][1], started=True))
                if not beats:
                    continue
                try:
                    answers = self.reporter.heartbeat(beats)
                except grpc.RpcError as exc:
                    if exc.code() is not grpc.StatusCode.UNAUTHENTICATED:
                        continue
                    # The job's token died with its attempts (all ended: lost, killed...):
                    # none of them is live any more, so none runs on.
                    answers = [tpb.HeartbeatResponse(proceed=False) for _ in beats]
                self._note([(beat.task, beat.attempt) for beat in beats], answers)
            point = self.checkpoint
            if point is not None:
                point.save()


class WorkDirectories:
    """Gives each attempt of a job its own empty work directory (but for an empty checkpoint
    directory), named for the attempt.

    When the previous attempt's command left its directory empty and nothing of it still
    runs, that directory is renamed for the next attempt instead of a new one being made: on
    ext4 a rename costs a tenth of making a directory and of removing it later, together a
    tenth of a trivial task's whole cost. A directory with anything in it, changed mode, or
    a process of its command still alive (it could write there later) is left as it is."""

    def __init__(self) -> None:
        self._vacated: tuple[Path, int] | None = None
        self._mode: int | None = None  # of the directories this job makes

    def take(self, workdir: Path) -> None:
        vacated, self._vacated = self._vacated, None
        if vacated is not None and self._reusable(*vacated):
            with contextlib.suppress(OSError):
                os.rename(vacated[0], workdir)
                return
        if workdir.is_symlink():  # left by an earlier attempt of the job: the directory is ours
            workdir.unlink()
        workdir.mkdir(parents=True, exist_ok=True)
        if self._mode is None:
            self._mode = os.lstat(workdir).st_mode

    def vacate(self, workdir: Path, pgid: int) -> None:
        """The attempt's command (the leader of process group `pgid`) has ended and been reaped."""
        self._vacated = (workdir, pgid)

    def _reusable(self, path: Path, pgid: int) -> bool:
        try:
            if pgid:
                os.killpg(pgid, 0)
                return False  # a process the command left behind is still alive
        except ProcessLookupError:
            pass
        except PermissionError:
            return False
        try:
            if os.lstat(path).st_mode != self._mode:  # not a directory (a symlink?), or chmod-ed
                return False
            with os.scandir(path) as entries:
                left = list(itertools.islice(entries, 2))
            if not left:
                return True
            # The attempt's checkpoint directory, left empty, is the next attempt's (no rmdir
            # and mkdir per attempt); one with anything in it makes the directory not reusable.
            (entry,) = left
            if entry.name != CHECKPOINT_DIR or not entry.is_dir(follow_symlinks=False):
                return False
            with os.scandir(entry.path) as inside:
                return next(inside, None) is None
        except (OSError, ValueError):
            return False


def _ended_within(pid: int, seconds: float, capture: Capture) -> bool:
    """Whether the process `pid` (our child, not reaped) ends within `seconds` (0: no limit),
    its output read meanwhile."""
    fd = os.pidfd_open(pid)
    try:
        return capture.wait(fd, seconds if seconds > 0 else None)
    finally:
        os.close(fd)


def _kill_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m metaprod.agents.wrapper JOB_FILE", file=sys.stderr)
        return 2
    terminate_with_descendants()
    return run_job_file(args[0])


def terminate_with_descendants() -> None:
    """In a process of its own (a batch job, a subprocess job), a backend cancels the job by
    signalling the wrapper (SIGTERM); its commands run in sessions of their own and would
    outlive it: they are killed first, every process below this one (it is a subreaper, so
    detached ones are found too)."""

    def ended(signum: int, _frame: object) -> None:
        proctree.become_subreaper()
        proctree.end_attempt_processes(0, (), dedicated=True, reap=False)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, ended)


if __name__ == "__main__":
    raise SystemExit(main())
