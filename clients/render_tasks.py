"""The CLI's output of tasks and their files (`transformation files`, `transformation tasks`,
`task show`): the pinned --json shapes (docs/cli.md) and the rich tables for people."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from metaprod.clients import types as t
from metaprod.clients.render import iso, key_values, table, when
from rich.table import Table

# --- JSON shapes -------------------------------------------------------------------------


def tfile_json(f: t.TransformationFile) -> dict[str, Any]:
    return {"lfn": f.lfn, "status": f.status, "task": f.task or None, "error_count": f.error_count}


def task_json(task: t.Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "transformation": task.transformation,
        "index": task.index,
        "status": task.status,
        "attempt": task.attempt,
        "inputs": list(task.inputs),
        "backend_job_id": task.backend_job_id,
        "last_error": task.last_error,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
    }


def checkpoint_file_json(f: t.CheckpointFile) -> dict[str, Any]:
    return {"path": f.path, "size": f.size, "modified": iso(f.modified)}


def task_detail_json(d: t.TaskDetail) -> dict[str, Any]:
    c = d.checkpoint
    return {
        **task_json(d.task),
        "production": d.production,
        "reused_from": d.reused_from,
        "attempts": [
            {
                "attempt": a.attempt,
                "status": a.status,
                "backend": a.backend,
                "backend_job_id": a.backend_job_id,
                "exit_code": a.exit_code,
                "error": a.error,
                "submitted_at": iso(a.submitted_at),
                "started_at": iso(a.started_at),
                "heartbeat_at": iso(a.heartbeat_at),
                "finished_at": iso(a.finished_at),
            }
            for a in d.attempts
        ],
        "outputs": list(d.outputs),
        "checkpoint": {
            "state": c.state,
            "location": c.location,
            "keep": c.keep,
            "archive": checkpoint_file_json(c.archive) if c.archive else None,
            "files": [checkpoint_file_json(f) for f in c.files],
            "error": c.error,
        },
    }


# --- Tables ------------------------------------------------------------------------------


def tfiles_table(items: Iterable[t.TransformationFile]) -> Table:
    rows = ((f.lfn, f.status, f.task or "-", f.error_count) for f in items)
    return table(None, ("LFN", "Status", "Task", "Errors"), rows)


def tasks_table(items: Iterable[t.Task]) -> Table:
    rows = (
        (k.id, k.index, k.status, k.attempt, len(k.inputs), k.backend_job_id or "-", when(k.updated_at), k.last_error)
        for k in items
    )
    return table(None, ("ID", "Index", "Status", "Attempt", "Inputs", "Job", "Updated", "Last error"), rows)


def task_detail_tables(d: t.TaskDetail) -> list[Table]:
    """`task show`: the task, its attempts, then its checkpoint."""
    k, c = d.task, d.checkpoint
    pairs: list[tuple[str, object]] = [
        ("task", k.id),
        ("transformation", f"{d.production}/{k.transformation} (index {k.index})"),
        ("status", k.status),
        ("attempts", k.attempt),
        ("last error", k.last_error or "-"),
        ("created", when(k.created_at)),
        ("updated", when(k.updated_at)),
    ]
    if d.reused_from is not None:
        pairs.append(("reused from", f"task {d.reused_from} (not run: same command and inputs)"))
    pairs += [("input", lfn) for lfn in k.inputs] or [("inputs", "-")]
    pairs += [("output", lfn) for lfn in d.outputs] or [("outputs", "-")]
    attempts = table(
        "Attempts",
        ("#", "Status", "Exit", "Backend", "Job", "Started", "Finished", "Error"),
        (
            (
                a.attempt,
                a.status,
                "-" if a.exit_code is None else a.exit_code,
                a.backend,
                a.backend_job_id or "-",
                when(a.started_at),
                when(a.finished_at),
                a.error or "-",
            )
            for a in d.attempts
        ),
    )
    state = {"saved": "saved" + (" (kept once Done)" if c.keep else ""), "removed": "removed (the task is Done)"}
    where = c.archive.path if c.archive else c.location or "-"
    lines = [("checkpoint", state.get(c.state, c.state)), ("where", where)]
    if c.archive:
        lines.append(("archive", f"{c.archive.size} bytes, saved {when(c.archive.modified)}"))
    if c.error:
        lines.append(("error", c.error))
    files = table(None, ("File", "Size", "Modified"), ((f.path, f.size, when(f.modified)) for f in c.files))
    return [key_values(None, pairs), attempts, key_values(None, lines), *([files] if c.files else [])]
