"""Progress arithmetic of transformations and productions (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from metaprod.core.statuses import FileStatus, TaskStatus, TransformationStatus

FILE_KEYS = tuple(s.value for s in FileStatus)
TASK_KEYS = tuple(s.value for s in TaskStatus)


@dataclass(frozen=True)
class TransformationProgress:
    name: str
    status: str
    files: dict[str, int]
    tasks: dict[str, int]
    task_count: int | None = None  # the declared task count of a root
    percent: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "percent", transformation_percent(self))


@dataclass(frozen=True)
class ProductionProgress:
    name: str
    status: str
    transformations: tuple[TransformationProgress, ...]
    percent: float = field(init=False)

    def __post_init__(self) -> None:
        parts = [t.percent for t in self.transformations]
        object.__setattr__(self, "percent", round(sum(parts) / len(parts), 2) if parts else 0.0)


def complete_counts(counts: Mapping[str, int], keys: Sequence[str]) -> dict[str, int]:
    """Every status key present (0 when absent), as the --json contract asks."""
    return {key: int(counts.get(key, 0)) for key in keys}


def transformation_percent(progress: TransformationProgress) -> float:
    """Share of the known work that reached a terminal state.

    A root counts tasks against its declared count; a child counts files, Problematic ones
    included (they are finished, though not successfully). A Completed transformation is 100.
    """
    if progress.status in (TransformationStatus.COMPLETED, TransformationStatus.CLEANED):
        return 100.0
    if progress.task_count:
        finished = progress.tasks.get(TaskStatus.DONE, 0) + progress.tasks.get(TaskStatus.FAILED, 0)
        return round(100.0 * min(finished, progress.task_count) / progress.task_count, 2)
    total = sum(progress.files.values())
    if total == 0:
        return 0.0
    finished = progress.files.get(FileStatus.PROCESSED, 0) + progress.files.get(FileStatus.PROBLEMATIC, 0)
    return round(100.0 * finished / total, 2)
