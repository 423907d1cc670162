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
    # Files matching its input that descend from its own outputs (data cycles): never taken,
    # so not part of its work either.
    skipped_files: int = 0
    # Done tasks that reused a Done task's outputs (reuse by content) instead of running.
    reused_tasks: int = 0
    percent: float = field(init=False)  # share of the work done
    failed_percent: float = field(init=False)  # share of the work that failed: never shown as done

    def __post_init__(self) -> None:
        done, failed = transformation_shares(self)
        object.__setattr__(self, "percent", done)
        object.__setattr__(self, "failed_percent", failed)


@dataclass(frozen=True)
class ProductionProgress:
    name: str
    status: str
    transformations: tuple[TransformationProgress, ...]
    percent: float = field(init=False)
    failed_percent: float = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.transformations)
        done = sum(t.percent for t in self.transformations)
        failed = sum(t.failed_percent for t in self.transformations)
        object.__setattr__(self, "percent", round(done / n, 2) if n else 0.0)
        object.__setattr__(self, "failed_percent", round(failed / n, 2) if n else 0.0)

    @property
    def skipped_files(self) -> int:
        return sum(t.skipped_files for t in self.transformations)


def complete_counts(counts: Mapping[str, int], keys: Sequence[str]) -> dict[str, int]:
    """Every status key present (0 when absent), as the --json contract asks."""
    return {key: int(counts.get(key, 0)) for key in keys}


def transformation_shares(progress: TransformationProgress) -> tuple[float, float]:
    """(done, failed) shares of the known work, in percent; the rest is pending.

    A root counts tasks against its declared count (Failed and Killed tasks failed); a child
    counts files (Processed done, Problematic failed). A Completed transformation is all done:
    it has no failure by definition.
    """
    if progress.status in (TransformationStatus.COMPLETED, TransformationStatus.CLEANED):
        return 100.0, 0.0
    if progress.task_count:
        total = max(progress.task_count, sum(progress.tasks.values()))
        done = progress.tasks.get(TaskStatus.DONE, 0)
        failed = progress.tasks.get(TaskStatus.FAILED, 0) + progress.tasks.get(TaskStatus.KILLED, 0)
    else:
        total = sum(progress.files.values())
        done = progress.files.get(FileStatus.PROCESSED, 0)
        failed = progress.files.get(FileStatus.PROBLEMATIC, 0)
    if total == 0:
        return 0.0, 0.0
    return round(100.0 * done / total, 2), round(100.0 * failed / total, 2)
