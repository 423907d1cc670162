"""The operating system's isolation of a job's commands (docs/jobs.md, Isolation).

With bubblewrap (``bwrap``) a job's commands run in namespaces made for the job (a bundle:
attempts of one transformation of one owner) and gone with it (:class:`JobSandbox`):

- a mount namespace whose root is an empty read-only tmpfs holding only the system's
  programs and libraries (``SYSTEM_PATHS``, read-only, without ``SECRETS``), a fresh
  ``/dev``, a ``/proc`` of its own, a private ``/tmp``, the job's inputs (each file bound
  read-only at its own path, wherever it lives) and the job's directory (read-write: the
  attempts' work directories; its job file, holding the worker token, and its pid file
  covered), plus any ``writable`` paths the operator configured. The data directory
  (tokens, database, logs, storage), the other jobs' directories and the home directories
  are not there; where the data directory lies under a system path, a tmpfs covers it
  before the inputs and the job's directory are bound;
- a PID namespace: the commands see their own processes only (not the wrapper, whose
  environment holds the worker token). Its first process after bwrap's init is the runner
  (``RUNNER``), which runs one attempt's command at a time and, once it has ended, kills
  every other process of the namespace (``kill(-1)``), detached (``setsid``) ones included,
  before it reports the end: an attempt's processes end with it. A kill (timeout, cancel,
  superseded) ends the whole sandbox: the kernel kills everything in a PID namespace whose
  init ends, and the next attempt gets a new sandbox;
- IPC and UTS namespaces (cheap), a new session (no terminal to inject input into), no
  capabilities, and ``--die-with-parent``: the sandbox dies with the wrapper.

A command's environment is exactly the one the wrapper builds (``PATH``, ``HOME``,
``LANG``, the ``METAPROD_*`` job variables and the spec's ``env:``), handed to the runner
through a pipe: bwrap's own is ``PATH``, ``HOME`` and ``LANG``, nothing is put on a command
line (the process list would show it).

The wrapper itself (the worker token, gRPC) stays outside. A sandbox per attempt costs a
trivial task 4.4 ms of CPU (four times its whole cost); one per job is paid once per bundle
(bench/bench_pipeline.py prints the cost per task). The choice is the agents' ``sandbox``
setting: ``auto`` (bwrap where it works, else none, said in the job log), ``bwrap``
(required: an attempt fails where it does not work) or ``none``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MODES = ("auto", "bwrap", "none")
BWRAP = "/usr/bin/bwrap"
# What a command may use of the host, read-only: programs, libraries, configuration.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
# Never shown, even read-only, though under /etc.
SECRETS = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh", "/etc/munge")
NAMESPACES = ("--unshare-pid", "--unshare-ipc", "--unshare-uts")


@dataclass(frozen=True)
class Choice:
    """How this process runs commands: `program` is bwrap's path (None: no sandbox);
    `note` says why when it differs from what was asked, for the job log; `error`, when
    the sandbox is required and cannot be had (every attempt fails with it)."""

    program: str | None
    note: str = ""
    error: str = ""


def choose(mode: str) -> Choice:
    """The sandbox for `mode` on this machine (tried once per process: see `probe`)."""
    if mode == "none":
        return Choice(None)
    if mode not in MODES:
        return Choice(None, error=f"unknown sandbox {mode!r} (use one of {', '.join(MODES)})")
    program = shutil.which("bwrap") or (BWRAP if os.access(BWRAP, os.X_OK) else None)
    problem = "bwrap is not installed" if program is None else probe(program)
    if not problem:
        return Choice(program)
    if mode == "bwrap":
        return Choice(None, error=f"sandbox bwrap required but it does not work on this node: {problem}")
    return Choice(None, note=f"no sandbox: {problem}; commands run without isolation")


@functools.cache
def probe(program: str) -> str:
    """'' when `program` (bwrap) makes a sandbox here, else why not (no user namespaces,
    a container without the rights...)."""
    with tempfile.TemporaryDirectory(prefix="metaprod-sandbox-probe-") as scratch:
        argv = build_argv(program, ["/bin/sh", "-c", "true"], workdir=Path(scratch), inputs=(), hidden=())
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{program} failed to start: {exc}"
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        return f"{program} does not work here ({reason})"
    return ""


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def path_directories(path: str, hidden: Iterable[str]) -> list[str]:
    """The directories of a PATH that the commands should see besides the system paths (a
    user's own bin, a conda or virtual environment): absolute, existing, and neither inside
    nor holding a hidden path (the data directory stays invisible)."""
    hidden = [h for h in hidden if h]
    out = []
    for entry in path.split(":"):
        if not os.path.isabs(entry) or not os.path.isdir(entry):
            continue
        if any(_under(entry, h) or _under(h, entry) for h in hidden):
            continue
        out.append(os.path.normpath(entry))
    return out


def build_argv(
    program: str,
    inner: Sequence[str],
    *,
    workdir: Path,
    inputs: Iterable[str],
    hidden: Iterable[str],
    writable: Iterable[str] = (),
    masked: Iterable[str] = (),
    readable: Iterable[str] = (),
    system_paths: Sequence[str] = SYSTEM_PATHS,
) -> list[str]:
    """bwrap's argv running `inner` in `workdir` (read-write) with `inputs` (files,
    read-only), `readable` (more read-only paths: the runner's interpreter), `writable`
    (operator-given paths, read-write) and the system paths that exist here; the `hidden`
    paths (the data directory) covered by a tmpfs where they lie under a system path, the
    `masked` files of `workdir` replaced by an empty one. Later mounts go over earlier ones:
    the order matters."""
    argv = [program, *NAMESPACES, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    shown: list[str] = []
    for path in system_paths:
        if os.path.islink(path):  # /bin -> usr/bin on a merged /usr
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
            shown.append(path)
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for secret in SECRETS:
        if os.path.isdir(secret) and any(_under(secret, p) for p in shown):
            argv += ["--tmpfs", secret]
        elif os.path.exists(secret) and any(_under(secret, p) for p in shown):
            argv += ["--ro-bind", "/dev/null", secret]
    for path in hidden:
        if any(_under(path, p) for p in shown) and os.path.isdir(path):
            argv += ["--tmpfs", path]
    for path in dict.fromkeys([*readable, *inputs]):
        if os.path.isabs(path):
            argv += ["--ro-bind-try", path, path]
    for path in writable:
        argv += ["--bind-try", path, path]
    work = str(workdir)
    argv += ["--bind", work, work]
    for path in masked:
        argv += ["--ro-bind-try", "/dev/null", path]
    argv += ["--chdir", work, "--remount-ro", "/", *inner]
    return argv


# The runner: the sandbox's first process after bwrap's init (so pid 2), in Python with
# nothing but `os` and `time` imported (a few ms to start). It reads attempts from fd 3 (12
# digits of length, then cwd, command, start deadline, end mark and NAME=value pairs,
# NUL-separated), runs each command by /bin/sh in a session of its own with that environment
# (its stdout and stderr: the runner's, the job's output pipe), and once it has ended kills
# every other process of the namespace (kill(-1) spares only init and the caller) until none
# is left, then writes the attempt's end mark to the output pipe and its exit code on a line
# to fd 4. An attempt whose start deadline (time.monotonic(): one clock for the whole
# machine) has passed does not start: "skip". So the wrapper may hand over the next attempt
# while one runs (under a start lease, which the deadline keeps), and the runner goes on at
# once. End of input ends it, and so the sandbox. Its commands get descriptors 0, 1 and 2
# only: with the pipes, one could read the next attempt's request or forge the end of its
# own; the end mark is random, so no command can forge it in the output either.
RUNNER = r"""
import os, time
# The pipes are the runner's alone, and nothing else of bwrap's reaches a command.
os.closerange(5, 1 << 20)
os.set_inheritable(3, False)
os.set_inheritable(4, False)
def read(n):
    data = b""
    while len(data) < n:
        chunk = os.read(3, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
def write(fd, data):
    while data:
        data = data[os.write(fd, data):]
null = os.open("/dev/null", os.O_RDONLY)
while True:
    head = read(12)
    body = head and read(int(head))
    if not body:
        break
    cwd, command, deadline, nonce, *pairs = body.decode("utf-8", "surrogateescape").split("\0")
    mark = b"\0metaprod-end-" + nonce.encode() + b"\0"
    if deadline and time.monotonic() > float(deadline):
        write(1, mark)
        write(4, b"skip\n")
        continue
    env = dict(pair.split("=", 1) for pair in pairs)
    try:
        os.chdir(cwd)
        pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", command], env,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null, 0)], setsid=True)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    except OSError as exc:
        os.write(2, f"[metaprod] the command did not start: {exc}\n".encode())
        code = 127
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(-1, 9)
        except ProcessLookupError:
            break
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        time.sleep(0.0005)
    write(1, mark)
    write(4, b"%d\n" % code)
"""
# What the runner says of an attempt whose start deadline had passed: it did not start.
SKIPPED = "skip"


def end_mark(nonce: str) -> bytes:
    """What the runner writes to the output pipe once an attempt's processes are gone."""
    return b"\0metaprod-end-" + nonce.encode() + b"\0"


def runner_python() -> tuple[str, list[str]]:
    """The interpreter of the runner and what it needs shown besides the system paths: the
    system's python3 when there is one, else this process's (its installation read-only)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate, []
    real = os.path.realpath(sys.executable)
    return real, [sys.base_prefix, os.path.dirname(real)]


# Sandboxes closed and not reaped yet: (bwrap's pid, its pidfd, when to kill it if alive).
_CLOSED: list[tuple[int, int, float]] = []
_CLOSED_LOCK = threading.Lock()  # jobs may run in threads of one process (Dask)
CLOSE_GRACE = 10.0


def reap_closed(wait: bool = False) -> None:
    """Reap the closed sandboxes that have ended (all of them when `wait`); one still alive
    past its grace is killed."""
    with _CLOSED_LOCK:
        entries = list(_CLOSED)
    for entry in entries:
        pid, pidfd, deadline = entry
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, 9)
        if not wait and not select.select([pidfd], [], [], 0)[0]:
            continue
        with _CLOSED_LOCK:
            if entry not in _CLOSED:
                continue
            _CLOSED.remove(entry)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        os.close(pidfd)


class JobSandbox:
    """One sandbox for a job's attempts (a bundle: one transformation of one owner), so a
    trivial task does not pay for namespaces of its own: bwrap with the runner (RUNNER),
    the job's directory bound read-write (every attempt's work directory is in it; its
    job file, which holds the worker token, and its pid file covered), all the job's inputs
    read-only. Each attempt's processes end with it (the runner kills all but itself and
    init); a kill (timeout, cancel, superseded) ends the whole sandbox, and the next attempt
    gets a new one. The wrapper talks to the runner through two pipes, and reads the output
    pipe (the runner's stdout and stderr, and so its commands')."""

    def __init__(
        self,
        program: str,
        *,
        job_dir: Path,
        inputs: Sequence[str],
        hidden: Sequence[str],
        writable: Sequence[str],
        masked: Sequence[str],
        env: dict[str, str],
    ) -> None:
        self.program = program
        self.job_dir = job_dir
        self.inputs, self.hidden, self.writable, self.masked = inputs, hidden, writable, masked
        self.env = env  # the runner's own (the commands get theirs with each request)
        self.pid = 0  # bwrap's (0: not running)
        self.pidfd = self.requests = self.status = self.output = -1
        self._status_read = b""  # read from the status pipe, not yet taken
        # Read from the output pipe past an attempt's end mark: the next attempt's output.
        self.output_ahead = b""

    def start(self) -> int:
        """Start the sandbox when it is not running; its pid (bwrap's: a process-group leader)."""
        if self.pid:
            return self.pid
        reap_closed()
        python, needs = runner_python()
        needs = [*needs, *path_directories(self.env.get("PATH", ""), self.hidden)]
        argv = build_argv(
            self.program,
            [python, "-I", "-S", "-c", RUNNER],
            workdir=self.job_dir,
            inputs=self.inputs,
            hidden=self.hidden,
            writable=self.writable,
            masked=self.masked,
            readable=needs,
        )
        req_r, req_w = os.pipe()
        st_r, st_w = os.pipe()
        out_r, out_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        actions = [
            (os.POSIX_SPAWN_DUP2, null, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, out_w, 2),
            (os.POSIX_SPAWN_DUP2, req_r, 3),
            (os.POSIX_SPAWN_DUP2, st_w, 4),
        ]
        try:
            self.pid = os.posix_spawn(self.program, argv, self.env, file_actions=actions, setsid=True)
        finally:
            for fd in (req_r, st_w, out_w, null):
                os.close(fd)
        self.requests, self.status, self.output = req_w, st_r, out_r
        self.pidfd = os.pidfd_open(self.pid)
        return self.pid

    def run(self, workdir: Path, env: dict[str, str], command: str, *, deadline: float | None = None) -> bytes:
        """Hand an attempt's command to the runner (the sandbox is running), to start once
        the attempts handed before it have ended, and not after `deadline` (time.monotonic();
        None: whenever). Returns the mark that ends its output in the output pipe."""
        nonce = secrets.token_hex(16)
        fields = [str(workdir), command, "" if deadline is None else repr(deadline), nonce]
        fields += [f"{k}={v}" for k, v in env.items()]
        body = "\0".join(fields).encode("utf-8", "surrogateescape")
        data = b"%012d" % len(body) + body
        try:
            while data:
                data = data[os.write(self.requests, data) :]
        except BrokenPipeError:
            pass  # the sandbox died: wait() says so
        return end_mark(nonce)

    def has_ended(self) -> bool:
        """Whether an attempt's end was read already and not yet taken by `ended`: the
        status pipe need not be readable for it."""
        return b"\n" in self._status_read

    def ended(self) -> tuple[bool, int | None]:
        """After the status pipe or the sandbox's pidfd became readable: (True, exit code) when
        the runner reported the attempt's end, (True, None) when it did not start it (its
        start deadline had passed), else (False, -9): the sandbox is gone."""
        while b"\n" not in self._status_read:
            try:
                chunk = os.read(self.status, 64)
            except OSError:
                chunk = b""
            if not chunk:
                self.kill()
                return False, -9
            self._status_read += chunk
        line, self._status_read = self._status_read.split(b"\n", 1)
        if line.decode() == SKIPPED:
            return True, None
        return True, int(line)

    def kill(self) -> None:
        """End the sandbox and everything in it, and forget it (the next attempt starts one)."""
        if not self.pid:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, 9)
        os.waitpid(self.pid, 0)
        self._forget()

    def close(self) -> None:
        """No more attempts: the runner ends at the end of its input, and the sandbox with it.
        Its namespaces take milliseconds to go: the job need not wait for them (nothing of
        its attempts runs any more); the sandbox is reaped later (`reap_closed`)."""
        if not self.pid:
            return
        os.close(self.requests)
        self.requests = -1
        with _CLOSED_LOCK:
            _CLOSED.append((self.pid, self.pidfd, time.monotonic() + CLOSE_GRACE))
        self.pidfd = -1
        self._forget()

    def _forget(self) -> None:
        for fd in (self.pidfd, self.requests, self.status, self.output):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pid = 0
        self.pidfd = self.requests = self.status = self.output = -1
        self._status_read = self.output_ahead = b""


__all__ = [
    "BWRAP",
    "MODES",
    "RUNNER",
    "SKIPPED",
    "SYSTEM_PATHS",
    "Choice",
    "JobSandbox",
    "build_argv",
    "choose",
    "probe",
    "runner_python",
]
