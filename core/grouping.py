"""Grouping plugins: how Unused files of a transformation become tasks (pure).

Every plugin takes the candidate files in catalog order and returns whole groups; a partial
group is returned only when `flush` is true (all parents Completed, or no parents at all).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Candidate:
    file_id: int
    size: int
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class GroupingParams:
    group_size: int | None = 1  # None: a whole bucket (or every file) is one task, once flushed
    group_by: tuple[str, ...] = ()
    max_bytes: int | None = None


Plugin = Callable[[Sequence[Candidate], GroupingParams, bool], list[list[int]]]


def standard(files: Sequence[Candidate], params: GroupingParams, flush: bool) -> list[list[int]]:
    """N files per task in catalog order."""
    return group_ids([f.file_id for f in files], params.group_size, flush)


def group_ids(ids: Sequence[int], group_size: int | None, flush: bool) -> list[list[int]]:
    """The standard plugin on bare ids (what it needs), for callers that have only those.
    Without a group size all the files form one group, which waits for the flush."""
    if group_size is None:
        return [list(ids)] if ids and flush else []
    size = max(1, group_size)
    groups = [list(ids[i : i + size]) for i in range(0, len(ids), size)]
    if groups and len(groups[-1]) < size and not flush:
        groups.pop()
    return groups


def by_metadata(files: Sequence[Candidate], params: GroupingParams, flush: bool) -> list[list[int]]:
    """Files sharing the values of `group_by` go together, `group_size` at a time (without
    a group size, a whole bucket is one task, made when the parents have ended)."""
    buckets: dict[tuple[Any, ...], list[Candidate]] = {}
    for f in files:
        buckets.setdefault(tuple(f.metadata.get(k) for k in params.group_by), []).append(f)
    groups: list[list[int]] = []
    for bucket in buckets.values():
        groups.extend(standard(bucket, params, flush))
    groups.sort(key=lambda g: g[0])
    return groups


def by_size(files: Sequence[Candidate], params: GroupingParams, flush: bool) -> list[list[int]]:
    """Consecutive files until adding one more would pass `max_bytes` (a file larger than
    the limit goes alone). The open last group waits for more files unless flushed."""
    limit = params.max_bytes or 0
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for f in files:
        if current and total + f.size > limit:
            groups.append(current)
            current, total = [], 0
        current.append(f.file_id)
        total += f.size
    if current and (flush or total >= limit):
        groups.append(current)
    return groups


PLUGINS: dict[str, Plugin] = {"standard": standard, "by_metadata": by_metadata, "by_size": by_size}


def group_files(plugin: str, files: Sequence[Candidate], params: GroupingParams, flush: bool) -> list[list[int]]:
    try:
        chosen = PLUGINS[plugin]
    except KeyError:
        raise ValueError(f"unknown grouping plugin {plugin!r}: use one of {', '.join(PLUGINS)}") from None
    return chosen(files, params, flush)


def needs_metadata(plugin: str) -> bool:
    return plugin == "by_metadata"
