"""Work units, throughput, ETA and history series of the dashboard (pure).

A transformation's work is counted in the unit its progress uses (core.progress): tasks of a
root with a declared task count, files of a child. Throughput is units done per minute over a
recent window; the ETA divides what is pending by it. History series come from samples that
are stored only when a transformation's counts changed, so a missing sample means "as before".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from metaprod.core.progress import TransformationProgress
from metaprod.core.statuses import FileStatus, TaskStatus, TransformationStatus


@dataclass(frozen=True)
class Units:
    done: int
    failed: int
    pending: int


def work_units(progress: TransformationProgress) -> Units:
    """(done, failed, pending) in the unit of the transformation's percent."""
    if progress.task_count:
        total = max(progress.task_count, sum(progress.tasks.values()))
        done = progress.tasks.get(TaskStatus.DONE, 0)
        failed = progress.tasks.get(TaskStatus.FAILED, 0) + progress.tasks.get(TaskStatus.KILLED, 0)
    else:
        total = sum(progress.files.values())
        done = progress.files.get(FileStatus.PROCESSED, 0)
        failed = progress.files.get(FileStatus.PROBLEMATIC, 0)
    if progress.status in (TransformationStatus.COMPLETED, TransformationStatus.CLEANED):
        return Units(done, failed, 0)
    return Units(done, failed, max(0, total - done - failed))


@dataclass(frozen=True)
class Point:
    time: datetime
    done: int
    failed: int
    pending: int
    queued_tasks: int = 0
    running_tasks: int = 0


def per_minute(earlier: Point | None, later: Point) -> float:
    """Units done per minute between two points (0 without an earlier one)."""
    if earlier is None:
        return 0.0
    minutes = (later.time - earlier.time).total_seconds() / 60.0
    if minutes <= 0:
        return 0.0
    return max(0.0, (later.done - earlier.done) / minutes)


def eta_seconds(pending: int, throughput_per_minute: float) -> float | None:
    """Seconds until the pending work is done at this throughput; None when nothing moves."""
    if pending <= 0:
        return 0.0
    if throughput_per_minute <= 0:
        return None
    return 60.0 * pending / throughput_per_minute


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "done"
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h {minutes % 60:02d} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def window_start(points: Sequence[Point], now: datetime, window: timedelta) -> Point | None:
    """The oldest point within `window` of `now`, else the newest before it (the state then)."""
    best: Point | None = None
    for point in points:
        if point.time >= now - window:
            return point if best is None or point.time - best.time < window else best
        best = point
    return best


def combine(series: Iterable[Sequence[Point]]) -> list[Point]:
    """The sum of several transformations' series at every time any of them has a point, each
    carried forward from its last point (samples are stored only when counts change)."""
    lists = [list(s) for s in series if s]
    times = sorted({p.time for s in lists for p in s})
    result: list[Point] = []
    positions = [0] * len(lists)
    current: list[Point | None] = [None] * len(lists)
    for time in times:
        for i, s in enumerate(lists):
            while positions[i] < len(s) and s[positions[i]].time <= time:
                current[i] = s[positions[i]]
                positions[i] += 1
        known = [p for p in current if p is not None]
        result.append(
            Point(
                time,
                sum(p.done for p in known),
                sum(p.failed for p in known),
                sum(p.pending for p in known),
                sum(p.queued_tasks for p in known),
                sum(p.running_tasks for p in known),
            )
        )
    return result


@dataclass(frozen=True)
class Rates:
    """Per-interval rates of a series: units done and failed per minute, and the backlog."""

    times: list[datetime]
    throughput: list[float]
    failures: list[float]
    backlog: list[float]


def rates(points: Sequence[Point], *, max_points: int = 240) -> Rates:
    """Throughput and failures per minute between consecutive (thinned) points, and the backlog
    (pending units) at each; at most `max_points` points."""
    if len(points) > max_points:
        step = len(points) / max_points
        thinned = [points[int(i * step)] for i in range(max_points)]
        points = [*thinned[:-1], points[-1]]
    out = Rates([], [], [], [])
    for earlier, later in pairwise(points):
        minutes = (later.time - earlier.time).total_seconds() / 60.0
        if minutes <= 0:
            continue
        out.times.append(later.time)
        out.throughput.append(max(0.0, (later.done - earlier.done) / minutes))
        out.failures.append(max(0.0, (later.failed - earlier.failed) / minutes))
        out.backlog.append(float(later.pending))
    return out
