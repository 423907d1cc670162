"""The CLI's output: the pinned --json shapes (docs/cli.md) and the rich tables for people."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from metaprod.clients import types as t
from metaprod.core.statuses import FileStatus, TaskStatus
from rich.table import Table
from rich.text import Text

FILE_STATUSES: tuple[str, ...] = tuple(s.value for s in FileStatus)
TASK_STATUSES: tuple[str, ...] = tuple(s.value for s in TaskStatus)


# --- JSON shapes -------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    """The same instant in UTC (a naive time is taken as UTC, as the server stores it)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with its zone: 2024-05-01T12:00:00+00:00."""
    return _utc(value).isoformat() if value is not None else None


def status_counts(counts: Mapping[str, int], pinned: Sequence[str]) -> dict[str, int]:
    """Every pinned status key (0 when absent), then any other status the server reported."""
    out = {status: int(counts.get(status, 0)) for status in pinned}
    out.update({k: int(v) for k, v in sorted(counts.items()) if k not in out})
    return out


def provenance_json(p: t.Provenance | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "production": p.production,
        "transformation": p.transformation,
        "task": p.task,
        "attempt": p.attempt,
        "inputs": list(p.inputs),
        "reused_from": p.reused_from,
    }


def file_json(f: t.CatalogFile) -> dict[str, Any]:
    return {
        "lfn": f.lfn,
        "pfn": f.pfn,
        "size": f.size,
        "checksum": f.checksum,
        "metadata": dict(f.metadata),
        "created_at": iso(f.created_at),
        "provenance": provenance_json(f.provenance),
        "owner": f.owner or None,
    }


def field_json(f: t.Field) -> dict[str, Any]:
    return {"name": f.name, "type": f.type}


def finding_json(f: t.Finding) -> dict[str, Any]:
    return {"code": f.code, "transformations": list(f.transformations), "key": f.key, "message": f.message}


def transformation_json(tr: t.Transformation) -> dict[str, Any]:
    return {
        "id": tr.id,
        "production": tr.production,
        "name": tr.name,
        "status": tr.status,
        "parents": list(tr.parents),
        "input_query": tr.input_query,
        "output_query": tr.output_query,
        "plugin": tr.plugin,
        "group_size": tr.group_size or None,
        "group_by": list(tr.group_by),
        "max_bytes": tr.max_bytes or None,
        "tasks": tr.tasks,
        "max_attempts": tr.max_attempts,
        "max_runtime": tr.max_runtime or None,
        "input_closed": tr.input_closed,
        "backend": tr.backend,
        "command": tr.command,
        "spec": tr.spec,
        "created_at": iso(tr.created_at),
    }


def grouping_text(tr: t.Transformation) -> str:
    """How files become tasks, in a user's words."""
    if not tr.input_query:
        return "-"
    size = f"{tr.group_size} files a task" if tr.group_size else "one task"
    if tr.plugin == "by_metadata":
        return f"by_metadata ({size} per bucket of {', '.join(tr.group_by)})"
    if tr.plugin == "by_size":
        return f"by_size (up to {tr.max_bytes} bytes a task)"
    return f"standard ({size if tr.group_size else 'all files in one task'})"


def input_state(tr: t.Transformation) -> str:
    if tr.input_query is None:
        return f"{tr.tasks} tasks" if tr.tasks else "-"
    if tr.parents:
        return "from " + ", ".join(tr.parents) + " (ends when they end)"
    return "catalog, closed" if tr.input_closed else "catalog, open (close it to let it end)"


def transformation_detail_json(d: t.TransformationDetail) -> dict[str, Any]:
    out = transformation_json(d.transformation)
    out["task_count"] = out.pop("tasks")
    out["files"] = status_counts(d.files, FILE_STATUSES)
    out["tasks"] = status_counts(d.tasks, TASK_STATUSES)
    return out


def production_json(p: t.Production) -> dict[str, Any]:
    return {
        "name": p.name,
        "status": p.status,
        "description": p.description,
        "owner": p.owner,
        "transformations": [transformation_json(tr) for tr in p.transformations],
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "namespace": p.namespace or p.name,
    }


def progress_json(p: t.Progress) -> dict[str, Any]:
    return {
        "name": p.name,
        "status": p.status,
        "percent": p.percent,
        "failed_percent": p.failed_percent,
        "skipped_files": p.skipped_files,
        "transformations": [
            {
                "name": tp.name,
                "status": tp.status,
                "percent": tp.percent,
                "failed_percent": tp.failed_percent,
                "files": status_counts(tp.files, FILE_STATUSES),
                "tasks": status_counts(tp.tasks, TASK_STATUSES),
                "skipped_files": tp.skipped_files,
                "reused": tp.reused_tasks,
            }
            for tp in p.transformations
        ],
    }


def event_json(e: t.ProductionEvent) -> dict[str, Any]:
    return {
        "time": iso(e.time),
        "actor": e.actor,
        "event": e.event,
        "transformation": e.transformation,
        "detail": e.detail,
    }


def history_table(name: str, entries: Sequence[t.ProductionEvent]) -> Table:
    rows = ((iso(e.time), e.actor, e.event, e.transformation or "-", e.detail) for e in entries)
    return table(f"History of {name}", ("Time (UTC)", "Actor", "Event", "Transformation", "Detail"), rows)


def token_json(tok: t.Token) -> dict[str, Any]:
    return {
        "id": tok.id,
        "name": tok.name,
        "role": tok.role,
        "owner": tok.owner,
        "created_at": iso(tok.created_at),
        "revoked": tok.revoked,
        "expires_at": iso(tok.expires_at),
        "expired": tok.expires_at is not None and tok.expires_at <= datetime.now(UTC),
    }


def agent_json(a: t.Agent) -> dict[str, Any]:
    return {
        "name": a.name,
        "host": a.host,
        "pid": a.pid,
        "alive": a.alive,
        "started_at": iso(a.started_at),
        "last_beat": iso(a.last_beat),
        "last_status": a.last_status,
    }


def identity_json(i: t.Identity) -> dict[str, Any]:
    return {"name": i.name, "role": i.role, "owner": i.owner}


# --- text --------------------------------------------------------------------------------


def when(value: datetime | None) -> str:
    """ISO 8601 in UTC, to the second, with its zone: 2024-05-01T12:00:00Z."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    seconds = max(0, int(((now or datetime.now(UTC)) - value).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def query_text(query: Mapping[str, Any] | None) -> str:
    if query is None:
        return "-"
    return json.dumps(query, ensure_ascii=False)


def metadata_text(metadata: Mapping[str, t.MetaScalar]) -> str:
    return " ".join(f"{k}={v}" for k, v in metadata.items())


def file_line(f: t.CatalogFile) -> str:
    return f"{f.lfn}\t{metadata_text(f.metadata)}" if f.metadata else f.lfn


# --- tables ------------------------------------------------------------------------------


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    tab = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        tab.add_column(column, overflow="fold")
    for row in rows:
        tab.add_row(*("" if cell is None else str(cell) for cell in row))
    return tab


def key_values(title: str | None, pairs: Iterable[tuple[str, object]]) -> Table:
    tab = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
    tab.add_column(style="bold")
    tab.add_column(overflow="fold")
    for key, value in pairs:
        tab.add_row(key, "" if value is None else str(value))
    return tab


def file_table(f: t.CatalogFile) -> Table:
    pairs: list[tuple[str, object]] = [
        ("lfn", f.lfn),
        ("pfn", f.pfn or "-"),
        ("size", f.size),
        ("checksum", f.checksum or "-"),
        ("created", when(f.created_at)),
        ("owner", f.owner or "- (admin only)"),
    ]
    pairs.append(("metadata", "" if f.metadata else "-"))
    pairs += [(f"  {k}", v) for k, v in f.metadata.items()]
    p = f.provenance
    if p is None:
        pairs.append(("provenance", "- (imported)"))
    else:
        made = f"attempt {p.attempt}" if p.reused_from is None else f"reused from task {p.reused_from}"
        pairs.append(("provenance", f"{p.production}/{p.transformation} task {p.task} {made}"))
        pairs += [("  input", lfn) for lfn in p.inputs]
    return key_values(None, pairs)


def findings_table(title: str, items: Sequence[t.Finding]) -> Table:
    return table(
        title,
        ("Code", "Transformations", "Key", "Message"),
        ((f.code, ", ".join(f.transformations), f.key or "", f.message) for f in items),
    )


def transformations_table(title: str | None, items: Iterable[t.Transformation]) -> Table:
    rows = (
        (
            tr.production,
            tr.name,
            tr.status,
            ", ".join(tr.parents) or "-",
            query_text(tr.input_query) if tr.input_query is not None else f"{tr.tasks} tasks",
            tr.plugin or "-",
            tr.group_size or "-",
            tr.backend or "-",
        )
        for tr in items
    )
    return table(title, ("Production", "Name", "Status", "Parents", "Input", "Plugin", "Group", "Backend"), rows)


def productions_table(items: Iterable[t.Production]) -> Table:
    rows = ((p.name, p.status, p.owner, len(p.transformations), when(p.created_at), p.description) for p in items)
    return table(None, ("Name", "Status", "Owner", "Transformations", "Created", "Description"), rows)


def tasks_summary(tasks: Mapping[str, int]) -> str:
    """Non-zero task counts, e.g. "running 2, done 5" ("-" when there is none)."""
    order = {status: i for i, status in enumerate(TASK_STATUSES)}
    parts = [f"{k.lower()} {v}" for k, v in sorted(tasks.items(), key=lambda kv: order.get(kv[0], 99)) if v]
    return ", ".join(parts) or "-"


def progress_summary(done: float, failed: float) -> str:
    """Done, failed and pending shares apart: a failure is never shown as progress."""
    pending = max(0.0, 100.0 - done - failed)
    return f"{done:.1f}% done, {failed:.1f}% failed, {pending:.1f}% pending"


def progress_table(p: t.Progress) -> Table:
    # Skipped: files descending from the transformation's own outputs (data cycles), when any.
    skipped = ("Skipped",) if any(tp.skipped_files for tp in p.transformations) else ()
    # Reused: Done tasks that took a Done task's outputs instead of running (reuse by content).
    reused = ("Reused",) if any(tp.reused_tasks for tp in p.transformations) else ()
    columns = ["Transformation", "Status", *FILE_STATUSES, *skipped, "Tasks", *reused, "Done %", "Failed %"]
    rows = (
        (
            tp.name,
            status_text(tp.status),
            *(tp.files.get(s, 0) for s in FILE_STATUSES),
            *((tp.skipped_files,) if skipped else ()),
            tasks_summary(tp.tasks),
            *((tp.reused_tasks,) if reused else ()),
            f"{tp.percent:.1f}",
            f"{tp.failed_percent:.1f}",
        )
        for tp in p.transformations
    )
    tab = table(f"{p.name}: {p.status}, {progress_summary(p.percent, p.failed_percent)}", columns, rows)
    for index in (*range(2, 2 + len(FILE_STATUSES) + len(skipped)), len(columns) - 2, len(columns) - 1):
        tab.columns[index].justify = "right"
    return tab


# Colours of statuses: an outcome that is not a success never looks like one.
STATUS_STYLES = {
    "Completed": "green",
    "Partial": "yellow",
    "Failed": "bold red",
    "Active": "cyan",
    "Stopped": "magenta",
    "Cleaning": "dim",
    "Cleaned": "dim",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def counts_table(title: str, counts: Mapping[str, int], pinned: Sequence[str]) -> Table:
    tab = table(title, ("Status", "Count"), status_counts(counts, pinned).items())
    tab.columns[1].justify = "right"
    return tab


def skipped_note(count: int) -> str:
    return (
        f"{count} matching file{'s' if count != 1 else ''} skipped: "
        f"{'they descend' if count != 1 else 'it descends'} from this transformation's own outputs (data cycles)"
    )


def tokens_table(items: Iterable[t.Token]) -> Table:
    now = datetime.now(UTC)
    rows = (
        (
            k.name,
            k.role,
            k.owner,
            when(k.created_at),
            "never" if k.expires_at is None else when(k.expires_at) + (" (expired)" if k.expires_at <= now else ""),
            "yes" if k.revoked else "no",
        )
        for k in items
    )
    return table(None, ("Name", "Role", "Owner", "Created", "Expires", "Revoked"), rows)


def agents_table(items: Iterable[t.Agent]) -> Table:
    rows = (
        (a.name, a.host, a.pid, "yes" if a.alive else "NO", ago(a.last_beat), when(a.started_at), a.last_status)
        for a in items
    )
    return table("Agents", ("Name", "Host", "PID", "Alive", "Last beat", "Started", "Last status"), rows)


def fields_table(items: Iterable[t.Field]) -> Table:
    return table(None, ("Field", "Type"), ((f.name, f.type) for f in items))
