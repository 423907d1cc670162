"""Metadata of a task's outputs (docs/jobs.md, outputs and their metadata), pure.

An output's metadata is: the keys whose value is the same on all the task's inputs, then
`outputs[].metadata`, then the sidecar `<output>.meta.json`, later winning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def common_metadata(inputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    if not inputs:
        return {}
    first, *rest = inputs
    return {k: v for k, v in first.items() if all(k in other and other[k] == v for other in rest)}


def output_metadata(inputs: Sequence[Mapping[str, Any]], *layers: Mapping[str, Any]) -> dict[str, Any]:
    merged = common_metadata(inputs)
    for layer in layers:
        merged.update(layer)
    return merged


def backoff_seconds(attempt: int, base: float, cap: float = 300.0) -> float:
    """Delay before attempt `attempt + 1`: base, 2*base, 4*base ... capped."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))


def glob_problem(pattern: str) -> str:
    """Why an outputs[].glob may not be used ('' when it may): outputs are files inside the
    work directory, so a glob is relative and never climbs out with `..`."""
    if pattern.startswith(("/", "\\")) or (len(pattern) > 1 and pattern[1] == ":"):
        return "is absolute (outputs are files inside the work directory)"
    if ".." in pattern.replace("\\", "/").split("/"):
        return "climbs out of the work directory with '..'"
    return ""
