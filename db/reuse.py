"""Reuse by content (docs/jobs.md): signatures stored on the tasks as they are made, and tasks
that take the outputs of a Done task with the same signature, in any production, instead of
running. Set-based: one lookup per batch of tasks about to be submitted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metaprod.core.errors import DomainError
from metaprod.core.metaquery import MetaQuery
from metaprod.core.outputs import common_metadata, output_metadata
from metaprod.core.reuse import recipe, relative_output, reuse_enabled, task_signature
from metaprod.core.statuses import FileStatus, TaskStatus
from metaprod.db import catalog, counters
from metaprod.db.models import CatalogFile, Task, Transformation, TransformationFile, utcnow
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

LOOKUP_CHUNK = 5000  # ids per IN list


def transformation_recipe(t: Transformation) -> bytes:
    return recipe(
        t.command, (t.spec or {}).get("env"), list((t.output_metadata or {}).get("outputs") or []), t.output_query
    )


def signatures(session: Session, t: Transformation, groups: Sequence[Sequence[int]]) -> list[str | None]:
    """The signatures of new tasks of `t` taking these groups of file ids (in task order):
    the files' checksums are read in one query per few thousand files."""
    made = transformation_recipe(t)
    ids = sorted({fid for group in groups for fid in group})
    checksums: dict[int, str] = {}
    # Through the driver, placeholders written here: at 250,000 ids a cycle, SQLAlchemy's
    # expansion of IN lists cost more than the lookups themselves.
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        sql = f"SELECT id, checksum FROM files WHERE id IN ({', '.join([mark] * len(chunk))})"
        checksums.update(connection.exec_driver_sql(sql, tuple(chunk)).fetchall())
    return [task_signature(made, [checksums.get(fid, "") for fid in group]) for group in groups]


def root_signatures(t: Transformation, first_index: int, count: int) -> list[str | None]:
    made = transformation_recipe(t)
    return [task_signature(made, None, first_index + i) for i in range(count)]


def reuses(t: Transformation) -> bool:
    """Whether `t`'s tasks may take a Done task's outputs (roots opt in: docs/jobs.md)."""
    return reuse_enabled(t.spec or {}, t.input_query is None)


@dataclass(frozen=True)
class Candidate:
    task_id: int
    task_index: int
    transformation_id: int
    signature: str


def reuse_done(
    *,
    session: Session,
    candidates: Sequence[Candidate],
    transformations: Mapping[int, Transformation],
    namespaces: Mapping[int, str],
) -> list[int]:
    """The candidates (Created tasks about to be submitted) whose transformation reuses and
    whose signature is that of a Done task (any production) take its outputs instead of
    running: the same content (PFN, size, checksum) under their own LFNs, with their own
    metadata and `reused_from` provenance; they are Done with no attempt. Returns their ids.
    One query finds the Done tasks for the whole batch, one reads their outputs."""
    wanted = [c for c in candidates if reuses(transformations[c.transformation_id])]
    if not wanted:
        return []
    originals: dict[str, int] = {}
    sigs = sorted({c.signature for c in wanted})
    for start in range(0, len(sigs), LOOKUP_CHUNK):
        chunk = sigs[start : start + LOOKUP_CHUNK]
        for signature, first in session.execute(
            select(Task.signature, func.min(Task.id))
            .where(Task.signature.in_(chunk), Task.status == TaskStatus.DONE.value)
            .group_by(Task.signature)
        ):
            if signature is not None:
                originals[signature] = first
    wanted = [c for c in wanted if c.signature in originals and originals[c.signature] != c.task_id]
    if not wanted:
        return []
    # Imported here: finalize imports this module's neighbours (a cycle otherwise).
    from metaprod.db.finalize import _input_metadata

    original_ids = sorted({originals[c.signature] for c in wanted})
    outputs: dict[int, list[catalog.FileRecord]] = {tid: [] for tid in original_ids}
    produced: dict[int, int] = {
        fid: tid
        for fid, tid in session.execute(
            select(CatalogFile.id, CatalogFile.producer_task_id).where(CatalogFile.producer_task_id.in_(original_ids))
        )
        if tid is not None
    }
    if produced:
        for record in catalog.file_records(session=session, ids=list(produced)):
            outputs[produced[record.id]].append(record)
    input_md = _input_metadata(session, [c.task_id for c in wanted] + original_ids)
    schema = catalog.catalog_schema(session=session)
    reused: dict[int, int] = {}  # task id -> original task id
    for c in wanted:
        t = transformations[c.transformation_id]
        original = originals[c.signature]
        stored = outputs[original]
        if (t.output_metadata or {}).get("outputs") and not stored:
            continue  # its outputs left the catalog (purged): this one runs
        files = _reused_outputs(
            c, t, namespaces[t.production_id], stored, input_md.get(c.task_id, []), input_md.get(original, []), schema
        )
        if files is None:
            continue
        try:
            with session.begin_nested():
                if files:
                    catalog.register_files(session=session, files=files, producer=(c.task_id, 0))
        except DomainError:
            continue  # an LFN taken (say, by an import): this one runs, and says why if it fails
        reused[c.task_id] = original
    if not reused:
        return []
    ids = list(reused)
    now = utcnow()
    for start in range(0, len(ids), LOOKUP_CHUNK):
        some = ids[start : start + LOOKUP_CHUNK]
        for original in sorted({reused[i] for i in some}):
            same = [i for i in some if reused[i] == original]
            session.execute(
                update(Task)
                .where(Task.id.in_(same))
                .values(status=TaskStatus.DONE.value, reused_from=original, last_error=None, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            session.execute(
                update(CatalogFile)
                .where(CatalogFile.producer_task_id.in_(same))
                .values(reused_from=original)
                .execution_options(synchronize_session=False)
            )
    by_transformation: dict[int, list[int]] = {}
    for c in wanted:
        if c.task_id in reused:
            by_transformation.setdefault(c.transformation_id, []).append(c.task_id)
    from metaprod.db.jobs import held_by

    for transformation_id, done_ids in sorted(by_transformation.items()):
        # The candidates are Created tasks this claim holds (locked): their moves are known.
        counters.record_move(
            session, counters.TASK, transformation_id, TaskStatus.CREATED.value, TaskStatus.DONE.value, len(done_ids)
        )
        counters.record(session, counters.REUSED, transformation_id, counters.REUSED_STATUS, len(done_ids))
        processed = session.execute(
            update(TransformationFile)
            .where(held_by(transformation_id, done_ids))
            .values(status=FileStatus.PROCESSED.value, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        counters.record_move(
            session, counters.FILE, transformation_id, FileStatus.ASSIGNED.value, FileStatus.PROCESSED.value, processed
        )
    session.flush()
    return ids


def _reused_outputs(
    c: Candidate,
    t: Transformation,
    namespace: str,
    originals: Sequence[catalog.FileRecord],
    inputs: list[dict[str, Any]],
    original_inputs: list[dict[str, Any]],
    schema: Any,
) -> list[catalog.FileInput] | None:
    """The original outputs as this task's: its LFNs (the normal output rule), its metadata
    (inherited from its own inputs, then what the original had beyond its inheritance), the
    same PFN, size and checksum. None when one falls outside the output query."""
    prefix = f"/{namespace}/{t.name}/{c.task_index:06d}/"
    query = MetaQuery.from_dict(t.output_query, schema=schema) if t.output_query is not None else None
    inherited = common_metadata(original_inputs)
    files: list[catalog.FileInput] = []
    for f in sorted(originals, key=lambda r: r.lfn):
        explicit = {k: v for k, v in f.metadata.items() if k not in inherited or inherited[k] != v}
        md = output_metadata(inputs, explicit)
        if query is not None and not query.matches(md):
            return None
        files.append(
            catalog.FileInput(
                lfn=prefix + relative_output(f.lfn), pfn=f.pfn, size=f.size, checksum=f.checksum, metadata=md
            )
        )
    return files
