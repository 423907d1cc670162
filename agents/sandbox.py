"""The operating system's isolation of a job's commands (docs/jobs.md, Isolation).

With bubblewrap (``bwrap``) each attempt's command runs in namespaces of its own, made for
it and gone with it:

- a mount namespace whose root is an empty tmpfs holding only the system's programs and
  libraries (``SYSTEM_PATHS``, read-only), a fresh ``/dev``, a ``/proc`` of its own, a
  private ``/tmp``, the attempt's inputs (each file bound read-only at its own path, wherever
  it lives) and its work directory (read-write), plus any ``writable`` paths the operator
  configured. The data directory (tokens, database, logs, storage), the other attempts'
  directories and the home directories are simply not there; where the data directory lies
  under a system path, a tmpfs covers it before the inputs and the work directory are bound;
- a PID namespace: the command sees its own processes only (not the wrapper, whose
  environment holds the worker token), and when its first process (bwrap's init) ends, the
  kernel kills every process left in it, detached (``setsid``) ones included;
- IPC and UTS namespaces (cheap), a new session (no terminal to inject input into), no
  capabilities, and ``--die-with-parent``: the sandbox dies with the wrapper.

Its environment is exactly the job environment the wrapper builds (``PATH``, ``HOME``,
``LANG``, the ``METAPROD_*`` job variables and the spec's ``env:``): it is bwrap's whole
environment, which bwrap hands on as it is. That is what ``--clearenv`` and one
``--setenv`` per variable would do, without putting the values in the process list.

The wrapper itself (the worker token, gRPC) stays outside. One bwrap per attempt costs a
few milliseconds (bench/bench_pipeline.py prints it); the choice is the agents' ``sandbox``
setting: ``auto`` (bwrap where it works, else none, said in the job log), ``bwrap``
(required: an attempt fails where it does not work) or ``none``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
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
        argv = build_argv(program, command="true", workdir=Path(scratch), inputs=(), hidden=(), writable=())
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


def build_argv(
    program: str,
    *,
    command: str,
    workdir: Path,
    inputs: Iterable[str],
    hidden: Iterable[str],
    writable: Iterable[str] = (),
    shell: str = "/bin/sh",
    system_paths: Sequence[str] = SYSTEM_PATHS,
) -> list[str]:
    """bwrap's argv running ``shell -c command`` in `workdir` (read-write) with `inputs`
    (files, read-only), `writable` (operator-given paths, read-write) and the system paths
    that exist here; the `hidden` paths (the data directory) covered by a tmpfs where they
    lie under a system path. Later mounts go over earlier ones: the order matters."""
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
    for path in dict.fromkeys(inputs):
        if os.path.isabs(path):
            argv += ["--ro-bind-try", path, path]
    for path in writable:
        argv += ["--bind-try", path, path]
    work = str(workdir)
    argv += ["--bind", work, work, "--chdir", work, "--remount-ro", "/", shell, "-c", command]
    return argv


__all__ = ["BWRAP", "MODES", "SYSTEM_PATHS", "Choice", "build_argv", "choose", "probe"]
