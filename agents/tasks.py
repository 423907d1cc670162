"""Task agent: group Unused files into tasks, create root task counts, and flush partial
groups once all parents are Completed."""

from __future__ import annotations

from metaprod.db import tasks
from sqlalchemy.orm import Session


class TaskAgent:
    """Roots get at most `tasks.ROOT_TASKS_PER_CYCLE` new tasks per cycle, and a transformation
    at most `tasks.MAX_FILES_PER_CYCLE` files grouped; while one is still short (or has more
    Unused files), the cycle says so and its own "tasks_due" wakes the next cycle at once (a
    cycle per batch, every other transformation served in each)."""

    name = "tasks"
    wakes_on = frozenset({"files", "production", "transformation", "completed", "tasks_due"})
    produces = frozenset({"tasks", "tasks_due"})

    def __init__(self) -> None:
        self._more = False

    def produced(self) -> frozenset[str]:
        return self.produces if self._more else frozenset({"tasks"})

    def run_once(self, session: Session) -> str:
        created = files = held = 0
        more = self._more = False
        for transformation_id in tasks.transformations_needing_tasks(session=session):
            result = tasks.create_tasks(session=session, transformation_id=transformation_id)
            if result is None:
                held += 1
                continue
            created += result.tasks
            files += result.files
            more = more or result.more
        # A transformation another transaction holds (on MariaDB: the submit agent's claim,
        # woken by the same `production start`, or another agents process) is tried again at
        # once, not at the next poll: that skip delayed a production's first tasks by seconds.
        self._more = more or held > 0
        if not created:
            return f"{held} transformations held elsewhere: trying again" if held else "idle"
        return f"created {created} tasks over {files} files" + (" (more due)" if self._more else "")
