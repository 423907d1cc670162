"""Checkpoints and staged inputs of a task attempt (docs/jobs.md), for the job wrapper.

`METAPROD_CHECKPOINT_DIR` is `<work directory>/.checkpoint`. Its content is saved as one tar
archive, `<storage>/checkpoints/<task id>/checkpoint.tar` (through fsspec: a directory, S3 ...),
at each heartbeat when it changed and when the attempt's command has ended, whatever the
outcome (a failure, `max_runtime`); an attempt lost with its node keeps what its last
heartbeat saved. The next attempt of the task gets it back, unpacked in the same place, before
its command starts. The finalize agent removes it when the task is Done (unless
`keep_checkpoints`), and `metaprod task show ID` lists it (metaprod.services.storage).

Inputs whose PFN is not a local path (`s3://...`) are fetched into `<work directory>/.inputs/`
before the command starts. Both directories are never outputs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tarfile
import threading
from collections.abc import Sequence
from pathlib import Path

import fsspec
from metaprod.core.checkpoints import ARCHIVE, CHECKPOINT_DIR, INPUTS_DIR, checkpoint_url, checkpoints_root

PRIVATE = frozenset({CHECKPOINT_DIR, INPUTS_DIR})  # work-directory entries that are never outputs
CHUNK = 1 << 20

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def is_local(pfn: str) -> bool:
    return pfn.startswith("file://") or "://" not in pfn


def fetch_inputs(pfns: Sequence[str], workdir: Path) -> list[str]:
    """The local paths of these inputs: local PFNs as they are, the others copied into
    `workdir/.inputs/<position>/<name>` (their names kept, their order too)."""
    paths = []
    for position, pfn in enumerate(pfns):
        if is_local(pfn):
            paths.append(pfn[len("file://") :] if pfn.startswith("file://") else pfn)
            continue
        fs, path = fsspec.core.url_to_fs(pfn)
        target = workdir / INPUTS_DIR / str(position) / (path.rstrip("/").rsplit("/", 1)[-1] or "input")
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(target))
        paths.append(str(target))
    return paths


class Checkpoint:
    """One attempt's checkpoint directory and its saved archive."""

    def __init__(self, storage: str | None, task_id: int, workdir: Path) -> None:
        # No storage (a job file without one): the directory is there, never saved.
        self.url = checkpoint_url(storage, task_id) if storage else None
        self.directory = workdir / CHECKPOINT_DIR
        self.scratch = workdir.parent / f".t{task_id}-{ARCHIVE}"  # built outside the work directory
        self._saved: Fingerprint = ()
        self._lock = threading.Lock()
        self.ended = False

    def make(self) -> int:
        """Make the (empty) checkpoint directory; returns 0, the number of files restored."""
        self.directory.mkdir(exist_ok=True)
        return 0

    def restore(self) -> int:
        """Make the checkpoint directory, with the last saved content if any; returns the
        number of files restored."""
        self.directory.mkdir(exist_ok=True)
        if self.url is None:
            return 0
        fs, root = fsspec.core.url_to_fs(self.url)
        archive = f"{root}/{ARCHIVE}"
        try:
            fs.get_file(archive, str(self.scratch))
        except FileNotFoundError:
            return 0
        try:
            with tarfile.open(self.scratch) as tar:
                tar.extractall(self.directory, filter="data")
                count = sum(1 for m in tar.getmembers() if m.isfile())
        finally:
            self.scratch.unlink(missing_ok=True)
        self._saved = self._fingerprint()
        return count

    def _fingerprint(self) -> Fingerprint:
        found = []
        for dirpath, _, names in os.walk(self.directory):
            for name in names:
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    st = os.lstat(path)
                    found.append((os.path.relpath(path, self.directory), st.st_size, st.st_mtime_ns))
        return tuple(sorted(found))

    def save(self, *, final: bool = False) -> bool:
        """Save the directory's content when it changed since it was saved or restored
        (`final`: the command has ended; no later save). Returns whether it saved."""
        with self._lock:
            if self.ended or self.url is None:
                return False
            self.ended = final
            try:
                current = self._fingerprint()
            except OSError:
                return False
            if current == self._saved:
                return False
            try:
                with tarfile.open(self.scratch, "w") as tar:
                    for rel, _, _ in current:
                        tar.add(self.directory / rel, arcname=rel, recursive=False)
                fs, root = fsspec.core.url_to_fs(self.url)
                fs.makedirs(root, exist_ok=True)
                # Written beside, then moved: a reader never sees half an archive.
                fs.put_file(str(self.scratch), f"{root}/{ARCHIVE}.part")
                fs.mv(f"{root}/{ARCHIVE}.part", f"{root}/{ARCHIVE}")
            except (OSError, tarfile.TarError) as exc:
                # Changing under our feet (the command writes): the next beat tries again.
                log.info("checkpoint of %s not saved: %s", self.url, exc)
                return False
            finally:
                self.scratch.unlink(missing_ok=True)
            self._saved = current
            return True

    def leave(self) -> None:
        """After the final save: fetched inputs go; an empty checkpoint directory stays for
        the next attempt that reuses the work directory (metaprod.agents.wrapper.WorkDirectories)."""
        inputs = self.directory.parent / INPUTS_DIR
        if os.path.lexists(inputs):
            shutil.rmtree(inputs, ignore_errors=True)


def remove_checkpoints(storage: str, task_ids: Sequence[int]) -> None:
    """The saved checkpoints of these (Done) tasks go: one listing finds those that have any
    (most have none), not a look-up per task."""
    if not task_ids:
        return
    fs, root = fsspec.core.url_to_fs(checkpoints_root(storage))
    fs.invalidate_cache(root)  # a listing cache (s3fs) would hide new ones
    try:
        saved = {str(p).rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)}
    except FileNotFoundError:
        return
    for task_id in task_ids:
        if str(task_id) in saved:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(f"{root}/{task_id}", recursive=True)
