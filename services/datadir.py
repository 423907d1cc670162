"""The data directory is private: the directory and everything in it belong to the user alone
(directories 0700, files without group or other permissions, e.g. 0600).

The server-side processes (`up`, `serve`, `agents`) set the umask 0o077, so what they and their
jobs create (the SQLite database and its -wal/-shm, admin.token, logs, job directories,
outputs copied to the storage) is private from the start, and take group and other permissions
off whatever is already there when they start (a restore, a `chmod -R`, an older version).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
OPEN_BITS = 0o077  # group and other


def private_umask() -> None:
    """Files and directories this process (and its children) creates are the user's alone."""
    os.umask(PRIVATE_UMASK)


def make_private(path: Path, *, create: bool) -> int:
    """Make `path` (a directory, made when `create`) private, with everything below it.
    Symbolic links are not followed. Returns how many modes changed."""
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.is_dir():
        return 0
    started = time.monotonic()
    changed = _restrict(path)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            changed += _restrict(Path(root) / name)
    took = time.monotonic() - started
    if changed or took > 1.0:
        log.info("data directory %s made private (%d modes changed in %.1f s)", path, changed, took)
    return changed


def make_files_private(paths: Iterable[Path]) -> int:
    """The same for single files (e.g. a SQLite database outside the data directory)."""
    return sum(_restrict(path) for path in paths)


def _restrict(path: Path) -> int:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return 0
    if stat.S_ISLNK(mode) or not mode & OPEN_BITS:
        return 0
    try:
        os.chmod(path, stat.S_IMODE(mode) & ~OPEN_BITS)
    except OSError as exc:  # not ours (e.g. a shared storage mount): say so, go on
        log.warning("cannot make %s private: %s", path, exc.strerror or exc)
        return 0
    return 1
