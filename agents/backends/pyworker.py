"""A persistent Python worker of the local backend's pool (``python -m
metaprod.agents.backends.pyworker``): it runs jobs' ``python_entry`` calls one at a time, so
the interpreter start and the imports (grpc, fsspec) are paid once per worker, not per job.

Protocol, one JSON object per line: the backend writes ``{"job", "entry", "args", "env",
"cwd", "log"}`` to the worker's stdin; the worker answers ``{"job", "code", "error"}`` on its
stdout. During a job the worker's file descriptors 1 and 2 point at the job's log (append),
its environment is the job's and its cwd the job's work directory, exactly as for a job run
as a subprocess. End of input (the backend closed or died) ends the worker after its job.
:class:`PoolWorker` is the backend's side of a worker.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

WORKER_ARGV = (sys.executable, "-m", "metaprod.agents.backends.pyworker")


def resolve(entry: str) -> Callable[..., Any]:
    module_name, _, attr = entry.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    return fn


def run_one(request: dict[str, Any], home: str) -> tuple[int, str]:
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    saved_env = dict(os.environ)
    code, error = 1, ""
    try:
        log_fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        try:
            result = resolve(request["entry"])(*request["args"])
            code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:  # the worker outlives any job
            traceback.print_exc()
            code, error = 1, f"{type(exc).__name__}: {exc}"
    except OSError as exc:
        code, error = 1, f"worker could not start the job: {exc}"
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            pass
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(home)
    return code, error


def main() -> int:
    # The protocol gets private descriptors; 0 becomes /dev/null and 1 the worker's stderr,
    # so nothing a job prints can corrupt a protocol line.
    reader = os.fdopen(os.dup(0), "rb")
    out_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    home = os.getcwd()
    preload = os.environ.get("METAPROD_WORKER_PRELOAD", "")
    for name in filter(None, preload.split(",")):
        importlib.import_module(name)
    for line in reader:
        request = json.loads(line)
        code, error = run_one(request, home)
        answer = json.dumps({"job": request["job"], "code": code, "error": error[:2000]}) + "\n"
        os.write(out_fd, answer.encode())
    return 0


class PoolWorker:
    """The backend's handle on one worker process (started at once, with a fresh interpreter):
    one job at a time."""

    def __init__(self, preload: Sequence[str] = ()) -> None:
        env = dict(os.environ, METAPROD_WORKER_PRELOAD=",".join(preload)) if preload else None
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            WORKER_ARGV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",
            env=env,
            start_new_session=True,  # off our process group: a Ctrl-C of the agents is not its
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buffer = b""
        self.job_id: str | None = None
        self.eof = False

    def send(self, request: Mapping[str, Any]) -> None:
        self.stdin.write(json.dumps(request).encode() + b"\n")
        self.stdin.flush()

    def read_answers(self) -> list[dict[str, Any]]:
        while not self.eof:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self.buffer += chunk
        answers: list[dict[str, Any]] = []
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            with contextlib.suppress(ValueError):
                answers.append(json.loads(line))
        return answers

    @property
    def dead(self) -> bool:
        return self.eof or self.proc.poll() is not None

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def close_input(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()

    def close(self) -> None:
        """Drop the pipes and reap the process (it has exited, or is about to: killed or at
        end of input)."""
        self.close_input()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
