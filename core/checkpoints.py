"""Where a task's checkpoint lives and what `task show` says of it (pure: no I/O).

The job wrapper saves `METAPROD_CHECKPOINT_DIR` as one tar archive,
`<storage>/checkpoints/<task id>/checkpoint.tar` (metaprod.agents.checkpoints); the finalize
agent removes it once the task is Done unless its transformation has `keep_checkpoints`; the
services list it (metaprod.services.storage). This module is the layout all three share.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from metaprod.core.statuses import TaskStatus

CHECKPOINT_DIR = ".checkpoint"
INPUTS_DIR = ".inputs"
ARCHIVE = "checkpoint.tar"
CHECKPOINTS = "checkpoints"

SAVED = "saved"
REMOVED = "removed"
NONE = "none"
UNKNOWN = "unknown"


def checkpoints_root(storage: str) -> str:
    """The storage directory that holds every task's checkpoint directory."""
    return f"{storage.rstrip('/')}/{CHECKPOINTS}"


def checkpoint_url(storage: str, task_id: int) -> str:
    """Where a task's checkpoints are kept: a directory of the storage."""
    return f"{checkpoints_root(storage)}/{task_id}"


@dataclass(frozen=True, slots=True)
class CheckpointFile:
    path: str
    size: int
    modified: datetime | None


@dataclass(frozen=True, slots=True)
class CheckpointListing:
    """What the storage holds of one task's checkpoint: the archive (None: no archive) and the
    files in it; `error` when the storage could not be read."""

    location: str
    archive: CheckpointFile | None = None
    files: tuple[CheckpointFile, ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class CheckpointView:
    state: str
    location: str
    keep: bool
    archive: CheckpointFile | None
    files: tuple[CheckpointFile, ...]
    error: str


def checkpoint_view(listing: CheckpointListing, *, task_status: str, keep: bool) -> CheckpointView:
    """The state `task show` gives: saved (an archive is there), removed (none is, and the task
    is Done without keep_checkpoints: the finalize agent removes any it had), none, or unknown
    (the storage could not be read)."""
    if listing.error:
        state = UNKNOWN
    elif listing.archive is not None:
        state = SAVED
    elif task_status == TaskStatus.DONE.value and not keep:
        state = REMOVED
    else:
        state = NONE
    return CheckpointView(state, listing.location, keep, listing.archive, listing.files, listing.error)
