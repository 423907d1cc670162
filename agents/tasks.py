"""Task agent: group Unused files into tasks, create root task counts, and flush partial
groups once all parents are Completed."""

from __future__ import annotations

from metaprod.db import tasks
from sqlalchemy.orm import Session


class TaskAgent:
    name = "tasks"
    wakes_on = frozenset({"files", "production", "transformation", "completed"})
    produces = frozenset({"tasks"})

    def run_once(self, session: Session) -> str:
        created = files = 0
        for transformation_id in tasks.transformations_needing_tasks(session=session):
            result = tasks.create_tasks(session=session, transformation_id=transformation_id)
            if result is not None:
                created += result.tasks
                files += result.files
        return f"created {created} tasks over {files} files" if created else "idle"
