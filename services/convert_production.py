"""Conversions for the ProductionManager and TransformationService messages."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from metaprod.core.checkpoints import CheckpointFile, CheckpointView
from metaprod.core.progress import ProductionProgress
from metaprod.db import reports
from metaprod.db.events import HistoryEntry
from metaprod.db.listing import ListedProduction, ListedTransformation
from metaprod.db.models import JobAttempt, Production, Task, Transformation
from metaprod.db.recovery import RetryResult
from metaprod.db.task_detail import TaskDetail
from metaprod.db.transformations import FileRow, TaskRow
from metaprod.services.convert import timestamp
from metaprod.services.convert_catalog import file_input_from_pb
from metaprod.v1 import production_pb2, transformation_pb2
from sqlalchemy import Row


def _query_text(query: Mapping[str, object] | None) -> str:
    return "" if query is None else json.dumps(query, sort_keys=True)


def transformation_to_pb(
    t: Transformation | Row[Any], production: str, parents: list[str]
) -> transformation_pb2.Transformation:
    return transformation_pb2.Transformation(
        id=t.id,
        production=production,
        name=t.name,
        status=t.status,
        parents=parents,
        input_query=_query_text(t.input_query),
        output_query=_query_text(t.output_query),
        plugin=t.plugin,
        group_size=t.group_size or 0,
        tasks=t.task_count or 0,
        max_attempts=t.max_attempts,
        backend=t.backend,
        command=t.command,
        spec=json.dumps(t.spec, sort_keys=True),
        created_at=timestamp(t.created_at),
        group_by=list(t.group_by or ()),
        max_runtime=t.max_runtime or 0,
        input_closed=t.input_closed,
        max_bytes=t.max_bytes or 0,
    )


def event_to_pb(e: HistoryEntry) -> production_pb2.ProductionEvent:
    return production_pb2.ProductionEvent(
        time=timestamp(e.time), actor=e.actor, event=e.event, transformation=e.transformation, detail=e.detail
    )


def retry_result_to_pb(r: RetryResult) -> transformation_pb2.RetryResult:
    return transformation_pb2.RetryResult(tasks=r.tasks, files=r.files, skipped=list(r.skipped))


def production_to_pb(
    p: Production, transformations: Sequence[Transformation | Row[Any]], parents: Mapping[int, list[str]]
) -> production_pb2.Production:
    return production_pb2.Production(
        name=p.name,
        description=p.description,
        status=p.status,
        owner=p.owner,
        transformations=[transformation_to_pb(t, p.name, parents.get(t.id, [])) for t in transformations],
        created_at=timestamp(p.created_at),
        updated_at=timestamp(p.updated_at),
        namespace=p.namespace or p.name,
    )


class StoredJson:
    """Stored JSON text (a listing's `*_json` columns) as the messages write it: objects with
    sorted keys, "" for a missing query. One per listing: each distinct text (the queries and
    specs a template repeats across productions) is converted once."""

    def __init__(self) -> None:
        self._objects: dict[str | None, str] = {}
        self._queries: dict[str | None, str] = {}
        self._names: dict[str | None, tuple[str, ...]] = {}

    def spec(self, text: str | None) -> str:
        found = self._objects.get(text)
        if found is None:
            found = self._objects[text] = json.dumps(_decoded(text), sort_keys=True)
        return found

    def query(self, text: str | None) -> str:
        found = self._queries.get(text)
        if found is None:
            found = self._queries[text] = _query_text(_decoded(text))
        return found

    def names(self, text: str | None) -> tuple[str, ...]:
        found = self._names.get(text)
        if found is None:
            found = self._names[text] = tuple(_decoded(text) or ())
        return found


def _decoded(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def listing_to_pb(
    listed: Sequence[ListedProduction],
    transformations: Mapping[int, Sequence[ListedTransformation]],
    parents: Mapping[int, list[str]],
) -> production_pb2.ListProductionsResponse:
    """A listing (db.listing) as the messages production_to_pb writes, built in place (a
    message passed to a constructor is copied), each distinct JSON text converted once."""
    response = production_pb2.ListProductionsResponse()
    add_production = response.productions.add
    stored = StoredJson()
    for p in listed:
        message = add_production(
            name=p.name,
            description=p.description,
            status=p.status,
            owner=p.owner,
            created_at=timestamp(p.created_at),
            updated_at=timestamp(p.updated_at),
            namespace=p.namespace or p.name,
        )
        add = message.transformations.add
        for t in transformations.get(p.id, ()):
            add(
                id=t.id,
                production=p.name,
                name=t.name,
                status=t.status,
                parents=parents.get(t.id, ()),
                input_query=stored.query(t.input_query_json),
                output_query=stored.query(t.output_query_json),
                plugin=t.plugin,
                group_size=t.group_size or 0,
                tasks=t.task_count or 0,
                max_attempts=t.max_attempts,
                backend=t.backend,
                command=t.command,
                spec=stored.spec(t.spec_json),
                created_at=timestamp(t.created_at),
                group_by=stored.names(t.group_by_json),
                max_runtime=t.max_runtime or 0,
                input_closed=t.input_closed,
                max_bytes=t.max_bytes or 0,
            )
    return response


def progress_to_pb(progress: ProductionProgress) -> production_pb2.Progress:
    return production_pb2.Progress(
        name=progress.name,
        status=progress.status,
        percent=progress.percent,
        failed_percent=progress.failed_percent,
        skipped_files=progress.skipped_files,
        transformations=[
            production_pb2.TransformationProgress(
                name=t.name,
                status=t.status,
                files=t.files,
                tasks=t.tasks,
                percent=t.percent,
                failed_percent=t.failed_percent,
                skipped_files=t.skipped_files,
                reused_tasks=t.reused_tasks,
            )
            for t in progress.transformations
        ],
    )


def file_row_to_pb(row: FileRow) -> transformation_pb2.TransformationFile:
    return transformation_pb2.TransformationFile(
        lfn=row.lfn, status=row.status, task=row.task_id or 0, error_count=row.error_count
    )


def task_to_pb(task: Task, inputs: list[str], transformation: str = "") -> transformation_pb2.Task:
    return transformation_pb2.Task(
        id=task.id,
        index=task.task_index,
        status=task.status,
        attempt=task.attempt,
        inputs=inputs,
        backend_job_id=task.backend_job_id or "",
        last_error=task.last_error or "",
        created_at=timestamp(task.created_at),
        updated_at=timestamp(task.updated_at),
        transformation=transformation,
    )


def task_row_to_pb(row: TaskRow, transformation: str) -> transformation_pb2.Task:
    return task_to_pb(row.task, row.inputs, transformation)


def beat_from_pb(request: transformation_pb2.HeartbeatRequest) -> reports.Beat:
    return reports.Beat(task_id=request.task, attempt=request.attempt, queued=request.queued, started=request.started)


def report_from_pb(request: transformation_pb2.ReportTaskResultRequest) -> reports.AttemptReport:
    return reports.AttemptReport(
        task_id=request.task,
        attempt=request.attempt,
        success=request.success,
        error=request.error,
        exit_code=request.exit_code,
        outputs=tuple(file_input_from_pb(f) for f in request.outputs),
    )


def outcome_to_pb(outcome: reports.ReportOutcome) -> transformation_pb2.ReportTaskResultResponse:
    return transformation_pb2.ReportTaskResultResponse(accepted=outcome.accepted, status=outcome.status)


TaskPb = transformation_pb2.GetTaskResponse


def attempt_to_pb(a: JobAttempt) -> TaskPb.Attempt:
    return TaskPb.Attempt(
        attempt=a.attempt,
        status=a.status,
        backend=a.backend,
        backend_job_id=a.backend_job_id or "",
        exit_code=a.exit_code,
        error=a.error or "",
        submitted_at=timestamp(a.submitted_at),
        started_at=timestamp(a.started_at),
        heartbeat_at=timestamp(a.heartbeat_at),
        finished_at=timestamp(a.finished_at),
    )


def checkpoint_file_to_pb(f: CheckpointFile) -> TaskPb.CheckpointFile:
    return TaskPb.CheckpointFile(path=f.path, size=f.size, modified=timestamp(f.modified))


def checkpoint_to_pb(view: CheckpointView) -> TaskPb.Checkpoint:
    return TaskPb.Checkpoint(
        state=view.state,
        location=view.location,
        keep=view.keep,
        archive=checkpoint_file_to_pb(view.archive) if view.archive is not None else None,
        files=[checkpoint_file_to_pb(f) for f in view.files],
        error=view.error,
    )


def task_detail_to_pb(d: TaskDetail) -> transformation_pb2.GetTaskResponse:
    """All but the checkpoint, which the storage gives (checkpoint_to_pb)."""
    return transformation_pb2.GetTaskResponse(
        task=task_to_pb(d.task, d.inputs, d.transformation),
        production=d.production,
        reused_from=d.task.reused_from or 0,
        attempts=[attempt_to_pb(a) for a in d.attempts],
        outputs=d.outputs,
    )
