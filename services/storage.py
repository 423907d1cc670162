"""What the storage holds of a task's checkpoint, for `task show` (metaprod.core.checkpoints
gives the layout). Read through fsspec, so a directory or an object store (s3://) alike.

The services and the agents may both import this module (the agents' layer sits above the
services'); the job wrapper writes the archives (metaprod.agents.checkpoints)."""

from __future__ import annotations

import logging
import tarfile
from datetime import UTC, datetime
from typing import Any

import fsspec
from metaprod.core.checkpoints import ARCHIVE, CheckpointFile, CheckpointListing, checkpoint_url

log = logging.getLogger(__name__)

# An archive holds at most this many files worth listing: `task show` stays one screen and
# one message, however many small files a command left.
MAX_FILES = 1000


def list_checkpoint(storage: str, task_id: int) -> CheckpointListing:
    """The saved checkpoint of a task: the archive (its URL, size, time) and the files in it.
    A storage that cannot be read is reported in `error`, never raised: the task's record is
    worth showing without it."""
    location = checkpoint_url(storage, task_id)
    try:
        fs, root = fsspec.core.url_to_fs(location)
        archive = f"{root}/{ARCHIVE}"
        fs.invalidate_cache(root)  # a listing cache (s3fs) would hide a newer archive
        try:
            info = fs.info(archive)
        except FileNotFoundError:
            return CheckpointListing(location)
        saved = CheckpointFile(fs.unstrip_protocol(archive), int(info.get("size") or 0), _modified(fs, archive, info))
        with fs.open(archive, "rb") as fh, tarfile.open(fileobj=fh) as tar:
            members = [m for m in tar.getmembers() if m.isfile()][:MAX_FILES]
        files = tuple(CheckpointFile(m.name, m.size, datetime.fromtimestamp(m.mtime, UTC)) for m in members)
        return CheckpointListing(location, saved, files)
    except Exception as exc:  # any storage back end's own errors (botocore, OSError, a bad archive)
        log.info("checkpoint of task %s not listed: %s", task_id, exc)
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        return CheckpointListing(location, error=f"storage not readable: {first}")


def _modified(fs: Any, path: str, info: dict[str, Any]) -> datetime | None:
    value = info.get("LastModified") or info.get("mtime")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        found: datetime = fs.modified(path)
    except (NotImplementedError, OSError, AttributeError):
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)
