"""An attempt's whole process tree, found and ended without cgroups or root.

The job wrapper makes its process a child subreaper (``PR_SET_CHILD_SUBREAPER``): a process
of a command that detaches (``setsid``, a double fork) is reparented to the wrapper's
process, not to init, so it stays a descendant of the wrapper, found by walking the parent
links of ``/proc``. This works the same under the local pool, Slurm and Dask, since the
wrapper runs under each. Which descendants belong to an attempt: those of the command's
session (it starts as a session leader) and those carrying the attempt's environment (a
detached process keeps it), and everything below them; in a process that runs the job and
nothing else (``dedicated``), every descendant.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    sid: int
    zombie: bool


def _stat(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read()
    except OSError:  # gone, or ending mid-read
        return None
    # The command name may hold spaces and parentheses: the fields follow the last ")".
    fields = text[text.rfind(b")") + 2 :].split()
    return Proc(pid, int(fields[1]), int(fields[3]), fields[0] == b"Z")


def descendants(root: int) -> list[Proc]:
    """Every process below `root` (one pass over /proc), parents before children."""
    children: dict[int, list[Proc]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            proc = _stat(int(name))
            if proc is not None:
                children.setdefault(proc.ppid, []).append(proc)
    found: list[Proc] = []
    todo = [root]
    while todo:
        for proc in children.get(todo.pop(), ()):
            found.append(proc)
            todo.append(proc.pid)
    return found


def _has_environment(pid: int, marks: Iterable[bytes]) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            environ = fh.read().split(b"\0")
    except OSError:
        return False
    return all(mark in environ for mark in marks)


def attempt_processes(session: int, marks: tuple[bytes, ...], *, dedicated: bool) -> tuple[list[Proc], list[Proc]]:
    """The live processes of an attempt and the zombies among this process's children that
    are of it (or, `dedicated`, all of them): (live, zombies). `session` is the id of the
    command's session, `marks` the ``NAME=value`` entries of its environment that identify
    the attempt."""
    me = os.getpid()
    ours: set[int] = set()
    live: list[Proc] = []
    zombies: list[Proc] = []
    for proc in descendants(me):  # parents first: a process below one of ours is ours
        if not (
            dedicated
            or proc.ppid in ours
            or proc.sid == session
            or proc.pid == session
            or (not proc.zombie and _has_environment(proc.pid, marks))
        ):
            continue
        ours.add(proc.pid)
        if proc.zombie:
            if proc.ppid == me:
                zombies.append(proc)
        else:
            live.append(proc)
    return live, zombies


def end_attempt_processes(
    session: int, marks: tuple[bytes, ...], *, dedicated: bool, reap: bool, timeout: float = 5.0
) -> int:
    """SIGKILL every process of the attempt until none is left (a process forking meanwhile
    is caught by the next pass), reaping those that end as this process's children when
    `reap` (only the thread that reaps the command may: it must not lose the command's exit
    status to another waiter). Returns how many processes were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        live, zombies = attempt_processes(session, marks, dedicated=dedicated)
        if reap:
            for proc in zombies:
                if dedicated or proc.pid in killed or proc.pid == session:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(proc.pid, os.WNOHANG)
        if not live or time.monotonic() > deadline:
            return len(killed)
        for proc in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGKILL)
                killed.add(proc.pid)
        time.sleep(delay)
        delay = min(0.05, delay * 2)


def has_children() -> bool:
    """Whether this process has any child (alive or not): one system call, so the common case
    (a command that left nothing behind) costs no walk over /proc."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True
