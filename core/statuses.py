"""Status machines of productions, transformations, files and tasks (docs/lifecycle.md)."""

from __future__ import annotations

from enum import StrEnum

from metaprod.core.errors import FailedPrecondition, InvalidArgument


class ProductionStatus(StrEnum):
    NEW = "New"
    ACTIVE = "Active"
    STOPPED = "Stopped"
    COMPLETED = "Completed"
    PARTIAL = "Partial"
    FAILED = "Failed"
    CLEANING = "Cleaning"
    CLEANED = "Cleaned"


class TransformationStatus(StrEnum):
    NEW = "New"
    ACTIVE = "Active"
    STOPPED = "Stopped"
    COMPLETED = "Completed"
    PARTIAL = "Partial"
    FAILED = "Failed"
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
# Tasks a `retry` gives a fresh attempt budget.
RETRYABLE_TASK_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.KILLED})

# The outcomes: an ended production or transformation is one of these, and goes back to
# Active by itself when new work appears (new input, retry, reset, extend).
PRODUCTION_OUTCOMES = frozenset({ProductionStatus.COMPLETED, ProductionStatus.PARTIAL, ProductionStatus.FAILED})
TRANSFORMATION_OUTCOMES = frozenset(
    {TransformationStatus.COMPLETED, TransformationStatus.PARTIAL, TransformationStatus.FAILED}
)
# Transformations that take new input: running ones, and ended ones, which it reopens.
# Stopped ones take it too (it waits, Unused, for the restart); New ones scan the catalog when started.
INPUT_TAKING_TRANSFORMATION_STATUSES = frozenset(
    {TransformationStatus.ACTIVE, TransformationStatus.STOPPED} | TRANSFORMATION_OUTCOMES
)

_PRODUCTION_MOVES: dict[ProductionStatus, frozenset[ProductionStatus]] = {
    ProductionStatus.NEW: frozenset({ProductionStatus.ACTIVE, ProductionStatus.CLEANING}),
    ProductionStatus.ACTIVE: frozenset({ProductionStatus.STOPPED, ProductionStatus.CLEANING} | PRODUCTION_OUTCOMES),
    ProductionStatus.STOPPED: frozenset({ProductionStatus.ACTIVE, ProductionStatus.CLEANING}),
    **{
        outcome: frozenset({ProductionStatus.ACTIVE, ProductionStatus.STOPPED, ProductionStatus.CLEANING})
        for outcome in PRODUCTION_OUTCOMES
    },
    ProductionStatus.CLEANING: frozenset({ProductionStatus.CLEANED}),
    ProductionStatus.CLEANED: frozenset(),
}

_TRANSFORMATION_MOVES: dict[TransformationStatus, frozenset[TransformationStatus]] = {
    TransformationStatus.NEW: frozenset({TransformationStatus.ACTIVE, TransformationStatus.CLEANING}),
    TransformationStatus.ACTIVE: frozenset(
        {TransformationStatus.STOPPED, TransformationStatus.CLEANING} | TRANSFORMATION_OUTCOMES
    ),
    TransformationStatus.STOPPED: frozenset({TransformationStatus.ACTIVE, TransformationStatus.CLEANING}),
    **{
        outcome: frozenset({TransformationStatus.ACTIVE, TransformationStatus.STOPPED, TransformationStatus.CLEANING})
        for outcome in TRANSFORMATION_OUTCOMES
    },
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


def transformation_outcome(*, failures: bool, successes: bool) -> TransformationStatus:
    """How an ended transformation ended. `failures`: a file Problematic or a task Failed or
    Killed; `successes`: a file Processed or a task Done. A status never flatters: Completed
    only without failures (an empty step ended without failing), Failed when nothing succeeded."""
    if not failures:
        return TransformationStatus.COMPLETED
    return TransformationStatus.PARTIAL if successes else TransformationStatus.FAILED


def production_outcome(outcomes: list[str], *, any_task_done: bool) -> ProductionStatus:
    """Completed when every transformation is; Failed when nothing of it succeeded; else Partial."""
    if all(o == TransformationStatus.COMPLETED for o in outcomes):
        return ProductionStatus.COMPLETED
    return ProductionStatus.PARTIAL if any_task_done else ProductionStatus.FAILED


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
