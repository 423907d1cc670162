"""An attempt's outputs on the worker: which files they are (regular files inside the work
directory, nothing else), their size limit, their checksum read in chunks, and the removal
of what was stored when the attempt does not succeed after all (docs/jobs.md)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from metaprod.core.outputs import glob_problem

CHUNK = 1 << 20


def collect(
    job: dict[str, Any], workdir: Path, sidecar_suffix: str, *, private: frozenset[str] = frozenset()
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Files matching each outputs[].glob (sidecars and the work directory's `private`
    entries excluded), with their explicit metadata.
    A glob that is absolute or climbs out, a match that is a symbolic link or lies under one
    (the file would be read from outside the work directory), is an error (ValueError)."""
    seen: set[Path] = set()
    if os.path.islink(workdir):  # made by an earlier attempt of the job: never follow it
        raise ValueError("the work directory is a symbolic link")
    real_workdir = os.path.realpath(workdir)
    for spec in job["outputs"]:
        pattern = str(spec["glob"])
        problem = glob_problem(pattern)
        if problem:
            raise ValueError(f"output glob {pattern!r}: {problem}")
        matches = []
        for path in sorted(workdir.glob(pattern)):
            if path.name.endswith(sidecar_suffix):
                continue
            rel = path.relative_to(workdir).as_posix()
            if rel.split("/", 1)[0] in private:
                continue
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode):
                raise ValueError(f"output {rel} is a symbolic link (an output must be a regular file)")
            if not stat.S_ISREG(mode):
                continue  # a directory (or a fifo, a socket): not a file to store
            if os.path.realpath(path) != os.path.join(real_workdir, *rel.split("/")):
                raise ValueError(f"output {rel} lies under a symbolic link (outside the work directory)")
            matches.append(path)
        if not matches:
            raise ValueError(f"missing output: no file matches {pattern!r}")
        for path in matches:
            if path in seen:
                continue
            seen.add(path)
            metadata = dict(spec.get("metadata") or {})
            sidecar = path.with_name(path.name + sidecar_suffix)
            if sidecar.is_symlink():
                raise ValueError(f"sidecar {sidecar.name} is a symbolic link")
            if sidecar.exists():
                if sidecar.stat().st_size > CHUNK:
                    raise ValueError(f"sidecar {sidecar.name} is larger than {CHUNK} bytes")
                try:
                    extra = json.loads(sidecar.read_text())
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise ValueError(f"sidecar {sidecar.name} is not JSON: {exc}") from None
                if not isinstance(extra, dict):
                    raise ValueError(f"sidecar {sidecar.name} must hold a JSON object")
                metadata.update(extra)
            yield path, metadata


def check_size(job: dict[str, Any], paths: Iterable[Path]) -> None:
    """The spec's max_output_bytes (the attempt's outputs together), when it has one."""
    limit = job.get("max_output_bytes")
    if not limit:
        return
    total = sum(os.lstat(path).st_size for path in paths)
    if total > int(limit):
        raise ValueError(f"outputs total {total} bytes, more than max_output_bytes {int(limit)}")


def adler32_of(path: Path) -> tuple[int, str]:
    """Size and ``adler32:xxxxxxxx`` of a file, read in chunks (never whole in memory)."""
    value, size = 1, 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            value = zlib.adler32(chunk, value)
            size += len(chunk)
    return size, f"adler32:{value:08x}"


def remove_stored(fs: Any, targets: Iterable[str], base: str) -> None:
    """Remove what an attempt stored (it failed after all) and its directories under `base`
    (the attempt's own, in storage) once empty: nothing of it stays in storage."""
    parents: set[str] = set()
    for target in targets:
        with contextlib.suppress(OSError):
            fs.rm_file(target)
        parent = target.rsplit("/", 1)[0]
        while parent.startswith(base):
            parents.add(parent)
            parent = parent.rsplit("/", 1)[0]
    for parent in sorted(parents, key=len, reverse=True):
        with contextlib.suppress(OSError):
            fs.rmdir(parent)


__all__ = ["adler32_of", "check_size", "collect", "remove_stored"]
