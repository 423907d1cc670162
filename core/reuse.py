"""Reuse by content (docs/jobs.md), pure: a task's *signature* is a hash of what its
transformation computes (command, `env`, `outputs` rules, `output_query`) and of what it
computes it from (its inputs' checksums in task order; for a root, its task index). Two tasks
with one signature make the same outputs: the second takes the first's instead of running."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def recipe(
    command: str, env: Mapping[str, Any] | None, outputs: Sequence[Any], output_query: Mapping[str, Any] | None
) -> bytes:
    """What a transformation computes, as canonical bytes (the common part of its tasks' signatures)."""
    return json.dumps(
        {"command": command, "env": dict(env or {}), "outputs": list(outputs), "output_query": output_query},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def task_signature(recipe_bytes: bytes, checksums: Sequence[str] | None, task_index: int | None = None) -> str | None:
    """The signature of a task with these inputs' checksums (None for a root, identified by
    its task index instead); None when an input has no checksum: such a task is never reused."""
    digest = hashlib.sha256(recipe_bytes)
    if checksums is None:
        digest.update(f"\nindex:{task_index}".encode())
    else:
        if not checksums or any(not c for c in checksums):
            return None
        digest.update(b"\ninputs:" + "\n".join(checksums).encode())
    return digest.hexdigest()


def reuse_enabled(spec: Mapping[str, Any], is_root: bool) -> bool:
    """`reuse:` of the transformation's spec; by default on for tasks with inputs, off for roots."""
    value = spec.get("reuse")
    return value if isinstance(value, bool) else not is_root


def relative_output(lfn: str) -> str:
    """The part of an output LFN after its task's prefix `/<namespace>/<transformation>/<index>/`."""
    parts = lfn.split("/", 4)
    if len(parts) != 5 or parts[0]:
        raise ValueError(f"{lfn!r} is not an output LFN")
    return parts[4]
