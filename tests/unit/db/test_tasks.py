"""Task creation on a real database: roots, the three plugins, held-back partial groups,
and the assignment of every grouped file to its own task."""

from __future__ import annotations

from typing import Any

import pytest
from metaprod.core.auth import SYSTEM
from metaprod.db import catalog, productions, routing, tasks
from metaprod.db.models import Task, TaskInput, Transformation, TransformationFile
from metaprod.db.session import Database
from sqlalchemy import select, update


def setup(database: Database, transformation: dict[str, Any], n_files: int) -> int:
    spec = {
        "production": "p",
        "fields": {"datatype": "str", "run": "int"},
        "transformations": [
            {"name": "root", "tasks": 3, "command": "true", "output_query": {"datatype": "raw"}},
            {"name": "t", "parents": ["root"], "input_query": {"datatype": "raw"}, "command": "true", **transformation},
        ],
    }
    with database.session_scope() as session:
        productions.create_production(session=session, spec=spec, principal=SYSTEM)
        session.execute(update(Transformation).values(status="Active"))
        catalog.register_files(
            session=session,
            files=[
                catalog.FileInput(lfn=f"/f{i}", size=10 * (i % 3 + 1), metadata={"datatype": "raw", "run": i % 2})
                for i in range(n_files)
            ],
        )
        routing.backfill_active(session=session)
        return int(session.scalar(select(Transformation.id).where(Transformation.name == "t")) or 0)


def groups(database: Database, tid: int) -> list[list[str]]:
    with database.session_scope(readonly=True) as session:
        rows = session.execute(
            select(Task.task_index, TaskInput.position, catalog.CatalogFile.lfn)
            .join(TaskInput, TaskInput.task_id == Task.id)
            .join(catalog.CatalogFile, catalog.CatalogFile.id == TaskInput.file_id)
            .where(Task.transformation_id == tid)
            .order_by(Task.task_index, TaskInput.position)
        ).all()
        # Every grouped file is Assigned to the task that holds it.
        assigned = session.execute(
            select(TransformationFile.file_id, TransformationFile.status).where(
                TransformationFile.transformation_id == tid, TransformationFile.status != "Unused"
            )
        ).all()
        held = set(session.scalars(select(TaskInput.file_id).join(Task).where(Task.transformation_id == tid)))
        assert all(status == "Assigned" for _, status in assigned)
        assert {fid for fid, _ in assigned} == held and len(assigned) == len(rows)
    result: dict[int, list[str]] = {}
    for index, _, lfn in rows:
        result.setdefault(index, []).append(lfn)
    return list(result.values())


def cycle(database: Database, tid: int) -> tasks.TaskCreation | None:
    with database.session_scope() as session:
        return tasks.create_tasks(session=session, transformation_id=tid)


def complete_root(database: Database) -> None:
    with database.session_scope() as session:
        session.execute(update(Transformation).where(Transformation.name == "root").values(status="Completed"))


def test_standard_holds_back_the_partial_group_until_parents_complete(database: Database) -> None:
    tid = setup(database, {"group_size": 2}, 5)
    assert cycle(database, tid) == tasks.TaskCreation(tid, 2, 4)
    assert groups(database, tid) == [["/f0", "/f1"], ["/f2", "/f3"]]
    assert cycle(database, tid) == tasks.TaskCreation(tid, 0, 0)
    complete_root(database)
    assert cycle(database, tid) == tasks.TaskCreation(tid, 1, 1)
    assert groups(database, tid)[-1] == ["/f4"]


def test_by_metadata_and_by_size(database: Database) -> None:
    tid = setup(database, {"plugin": "by_metadata", "group_by": ["run"], "group_size": 2}, 6)
    cycle(database, tid)
    assert groups(database, tid) == [["/f0", "/f2"], ["/f1", "/f3"]]
    complete_root(database)
    cycle(database, tid)
    assert sorted(groups(database, tid)[2:]) == [["/f4"], ["/f5"]]


def test_by_size(database: Database) -> None:
    # sizes 10, 20, 30, 10, 20, 30: groups close before passing 40 bytes
    tid = setup(database, {"plugin": "by_size", "max_bytes": 40}, 6)
    complete_root(database)
    cycle(database, tid)
    assert groups(database, tid) == [["/f0", "/f1"], ["/f2", "/f3"], ["/f4"], ["/f5"]]


def test_root_task_count(database: Database) -> None:
    setup(database, {"group_size": 2}, 0)
    with database.session_scope(readonly=True) as session:
        root = session.scalar(select(Transformation.id).where(Transformation.name == "root"))
    assert root is not None
    assert cycle(database, root) == tasks.TaskCreation(root, 3, 0)
    assert cycle(database, root) == tasks.TaskCreation(root, 0, 0)


def test_a_window_per_cycle_says_more_and_the_next_cycle_continues_exactly(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most MAX_FILES_PER_CYCLE files a cycle: a full window that made tasks says more are
    due; the cycles together make exactly the groups of one big cycle, every grouped file
    Assigned (the UPDATE in chunks by id), no other file touched."""
    monkeypatch.setattr(tasks, "MAX_FILES_PER_CYCLE", 5)
    monkeypatch.setattr(tasks, "ASSIGN_CHUNK", 3)
    tid = setup(database, {"group_size": 2}, 11)
    assert cycle(database, tid) == tasks.TaskCreation(tid, 2, 4, more=True)  # /f4 waits for a partner
    assert cycle(database, tid) == tasks.TaskCreation(tid, 2, 4, more=True)
    assert cycle(database, tid) == tasks.TaskCreation(tid, 1, 2)  # 3 left: one pair, /f10 held back
    assert cycle(database, tid) == tasks.TaskCreation(tid, 0, 0)
    assert groups(database, tid) == [[f"/f{i}", f"/f{i + 1}"] for i in range(0, 10, 2)]
    with database.session_scope(readonly=True) as session:
        unused = session.scalars(
            select(catalog.CatalogFile.lfn)
            .join(TransformationFile, TransformationFile.file_id == catalog.CatalogFile.id)
            .where(TransformationFile.transformation_id == tid, TransformationFile.status == "Unused")
        ).all()
    assert unused == ["/f10"]
    complete_root(database)
    assert cycle(database, tid) == tasks.TaskCreation(tid, 1, 1)
    assert groups(database, tid)[-1] == ["/f10"]
