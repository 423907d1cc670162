"""A persistent Python worker of the local backend's pool (``python -m
metaprod.agents.backends.pyworker``): it runs jobs' ``python_entry`` calls one at a time, so
the interpreter start and the imports (grpc, fsspec) are paid once per worker, not per job.

Protocol, one JSON object per line: the backend writes ``{"job", "entry", "args", "env",
"cwd", "log"}`` to the worker's stdin; the worker answers ``{"job", "code", "error"}`` on its
stdout. During a job the worker's file descriptors 1 and 2 point at the job's log (append),
its environment is the job's and its cwd the job's work directory, exactly as for a job run
as a subprocess. End of input (the backend closed or died) ends the worker after its job.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any


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


if __name__ == "__main__":
    raise SystemExit(main())
