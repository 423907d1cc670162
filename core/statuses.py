"""Status machines of productions, transformations, files and tasks (DESIGN.md, Statuses)."""

from __future__ import annotations

from enum import StrEnum

from metaprod.core.errors import FailedPrecondition, InvalidArgument


class ProductionStatus(StrEnum):
    NEW = "New"
    ACTIVE = "Active"
    STOPPED = "Stopped"
    COMPLETED = "Completed"
    CLEANING = "Cleaning"
    CLEANED = "Cleaned"


class TransformationStatus(StrEnum):
    NEW = "New"
    ACTIVE = "Active"
    STOPPED = "Stopped"
    COMPLETED = "Completed"
    CLEANING = "Cleaning"
    CLEANED = "Cleaned"


class FileStatus(StrEnum):
    UNUSED = "Unused"
    ASSIGNED = "Assigned"
    PROCESSED = "Processed"
    PROBLEMATIC = "Problematic"


class TaskStatus(StrEnum):
    CREATED = "Created"
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    DONE = "Done"
    FAILED = "Failed"
    KILLED = "Killed"


TERMINAL_TASK_STATUSES = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.KILLED})
ACTIVE_TASK_STATUSES = frozenset({TaskStatus.CREATED, TaskStatus.SUBMITTED, TaskStatus.RUNNING})

_PRODUCTION_MOVES: dict[ProductionStatus, frozenset[ProductionStatus]] = {
    ProductionStatus.NEW: frozenset({ProductionStatus.ACTIVE, ProductionStatus.CLEANING}),
    ProductionStatus.ACTIVE: frozenset(
        {ProductionStatus.STOPPED, ProductionStatus.COMPLETED, ProductionStatus.CLEANING}
    ),
    ProductionStatus.STOPPED: frozenset(
        {ProductionStatus.ACTIVE, ProductionStatus.COMPLETED, ProductionStatus.CLEANING}
    ),
    ProductionStatus.COMPLETED: frozenset({ProductionStatus.CLEANING}),
    ProductionStatus.CLEANING: frozenset({ProductionStatus.CLEANED}),
    ProductionStatus.CLEANED: frozenset(),
}

_TRANSFORMATION_MOVES: dict[TransformationStatus, frozenset[TransformationStatus]] = {
    TransformationStatus.NEW: frozenset({TransformationStatus.ACTIVE, TransformationStatus.CLEANING}),
    TransformationStatus.ACTIVE: frozenset(
        {TransformationStatus.STOPPED, TransformationStatus.COMPLETED, TransformationStatus.CLEANING}
    ),
    TransformationStatus.STOPPED: frozenset(
        {TransformationStatus.ACTIVE, TransformationStatus.COMPLETED, TransformationStatus.CLEANING}
    ),
    # A Completed transformation can come back to life when its production is restarted
    # with new input (e.g. a reset of Problematic files).
    TransformationStatus.COMPLETED: frozenset({TransformationStatus.ACTIVE, TransformationStatus.CLEANING}),
    TransformationStatus.CLEANING: frozenset({TransformationStatus.CLEANED}),
    TransformationStatus.CLEANED: frozenset(),
}


def check_production_move(current: str, target: str) -> ProductionStatus:
    """Return the target status, or raise FailedPrecondition naming both statuses."""
    try:
        src, dst = ProductionStatus(current), ProductionStatus(target)
    except ValueError as exc:
        raise InvalidArgument(f"unknown production status: {exc}") from None
    if dst not in _PRODUCTION_MOVES[src]:
        raise FailedPrecondition(f"a production cannot go from {src} to {dst}")
    return dst


def check_transformation_move(current: str, target: str) -> TransformationStatus:
    try:
        src, dst = TransformationStatus(current), TransformationStatus(target)
    except ValueError as exc:
        raise InvalidArgument(f"unknown transformation status: {exc}") from None
    if src == dst:
        return dst
    if dst not in _TRANSFORMATION_MOVES[src]:
        raise FailedPrecondition(f"a transformation cannot go from {src} to {dst}")
    return dst


class AttemptStatus(StrEnum):
    """One job attempt of a task. Reported: the job's report waits for the finalize agent."""

    SUBMITTED = "Submitted"
    RUNNING = "Running"
    REPORTED = "Reported"
    DONE = "Done"
    FAILED = "Failed"
    LOST = "Lost"
    KILLED = "Killed"


LIVE_ATTEMPT_STATUSES = frozenset({AttemptStatus.SUBMITTED, AttemptStatus.RUNNING})
