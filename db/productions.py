"""Production use cases: create from a validated spec, add transformations, start, stop,
delete, list, and progress. Shared by the ProductionManager servicer and the agents."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metaprod.core.auth import Principal, ensure_can_read, ensure_can_write, ensure_owns
from metaprod.core.errors import AlreadyExists, FailedPrecondition, NotFound
from metaprod.core.metaquery import MetaQuery, Schema
from metaprod.core.progress import (
    FILE_KEYS,
    TASK_KEYS,
    ProductionProgress,
    TransformationProgress,
    complete_counts,
)
from metaprod.core.spec import ProductionSpec, TransformationSpec, parse_spec, validate_spec
from metaprod.core.specload import check_plain_spec, load_spec_text
from metaprod.core.statuses import (
    ACTIVE_TASK_STATUSES,
    PRODUCTION_OUTCOMES,
    FileStatus,
    ProductionStatus,
    TaskStatus,
    TransformationStatus,
    check_production_move,
)
from metaprod.core.validation import Finding, ValidationResult
from metaprod.db import ancestry, catalog, counters, events, namespaces
from metaprod.db.models import Production, Task, Transformation, TransformationFile, TransformationLink
from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Created:
    production: Production
    warnings: tuple[Finding, ...]


def load_spec(text: str | Mapping[str, Any]) -> dict[str, Any]:
    """Parse a spec given as YAML/JSON text (or already as a mapping) into a dict, within the
    size, nesting and alias limits of core/limits.py."""
    if isinstance(text, Mapping):
        data = dict(text)
        check_plain_spec(data)
        return data
    return load_spec_text(text)


def validate(*, session: Session, spec: Mapping[str, Any]) -> ValidationResult:
    return validate_spec(dict(spec), existing_schema=catalog.catalog_schema(session=session))


def create_production(*, session: Session, spec: Mapping[str, Any], principal: Principal) -> Created:
    ensure_can_write(principal)
    parsed = parse_spec(dict(spec), existing_schema=catalog.catalog_schema(session=session))
    if session.scalar(select(Production.id).where(Production.live_name == parsed.name)) is not None:
        raise AlreadyExists(f"a production named {parsed.name!r} exists")
    for field_name, field_type in parsed.fields.items():
        catalog.add_field(session=session, name=field_name, type=field_type)
    production = Production(
        name=parsed.name,
        live_name=parsed.name,
        description=parsed.description,
        namespace=namespaces.choose_namespace(session=session, name=parsed.name),
        status=ProductionStatus.NEW.value,
        owner=principal.owner,
        spec=json.loads(json.dumps(dict(spec))),
    )
    session.add(production)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # Lost a race with a concurrent create of the same name (MariaDB, READ COMMITTED).
        raise AlreadyExists(f"a production named {parsed.name!r} exists") from None
    _store_transformations(session, production, parsed, parsed.transformations)
    events.record(
        session=session,
        actor=events.actor_of(principal),
        production_id=production.id,
        event="created",
        detail=f"{len(parsed.transformations)} transformations",
    )
    return Created(production, parsed.warnings)


def add_transformation(
    *, session: Session, production_name: str, transformation: Mapping[str, Any], principal: Principal
) -> tuple[Transformation, tuple[Finding, ...]]:
    production = get_production(session=session, name=production_name)
    ensure_owns(principal, production.owner, f"production {production.name!r}")
    if production.status in (ProductionStatus.CLEANING, ProductionStatus.CLEANED):
        raise FailedPrecondition(f"production {production.name!r} is {production.status}")
    spec = dict(production.spec)
    spec["transformations"] = [*(spec.get("transformations") or []), dict(transformation)]
    parsed = parse_spec(spec, existing_schema=catalog.catalog_schema(session=session))
    production.spec = json.loads(json.dumps(spec))
    (created,) = _store_transformations(session, production, parsed, parsed.transformations[-1:])
    if production.status != ProductionStatus.NEW:
        # A new step of a running (or ended) production runs at once, and reopens it.
        created.status = TransformationStatus.ACTIVE.value
        if production.status in PRODUCTION_OUTCOMES:
            production.status = ProductionStatus.ACTIVE.value
    events.record(
        session=session,
        actor=events.actor_of(principal),
        production_id=production.id,
        event="transformation_added",
        transformation=created.name,
    )
    session.flush()
    return created, parsed.warnings


def _store_transformations(
    session: Session, production: Production, parsed: ProductionSpec, specs: Sequence[TransformationSpec]
) -> list[Transformation]:
    """The typed spec is what is stored: its defaults are the only ones."""
    existing = {
        t.name: t for t in session.scalars(select(Transformation).where(Transformation.production_id == production.id))
    }
    raw = {str(e.get("name")): e for e in production.spec.get("transformations") or [] if isinstance(e, Mapping)}
    created: list[Transformation] = []
    for ts in specs:
        t = Transformation(
            production_id=production.id,
            name=ts.name,
            status=TransformationStatus.NEW.value,
            spec=json.loads(json.dumps(raw.get(ts.name, {}))),
            input_query=None if ts.input_query is None else ts.input_query.to_dict(),
            output_query=None if ts.output_query is None else ts.output_query.to_dict(),
            output_metadata={"outputs": [{"glob": o.glob, "metadata": dict(o.metadata)} for o in ts.outputs]},
            plugin=ts.plugin,
            group_size=ts.group_size,
            group_by=list(ts.group_by) or None,
            max_bytes=ts.max_bytes,
            task_count=ts.tasks if ts.input_query is None else None,
            max_attempts=ts.max_attempts,
            max_runtime=ts.max_runtime,
            backend=ts.backend,
            command=ts.command,
        )
        session.add(t)
        existing[t.name] = t
        created.append(t)
    session.flush()
    for ts, t in zip(specs, created, strict=True):
        for parent_name in ts.parents:
            parent = existing[parent_name]
            session.add(
                TransformationLink(
                    child_id=t.id, parent_id=parent.id, intersection=_intersection(parent, t, parsed.schema)
                )
            )
    session.flush()
    return created


def parent_list(entry: Mapping[str, Any]) -> list[str]:
    """Declared parent names as a list without repeats (a spec may name one parent as a string)."""
    parents = entry.get("parents") or []
    return list(dict.fromkeys([parents] if isinstance(parents, str) else [str(p) for p in parents]))


def _intersection(parent: Transformation, child: Transformation, schema: Schema) -> dict[str, Any] | None:
    out = MetaQuery.from_dict(parent.output_query or {}, schema=schema)
    inp = MetaQuery.from_dict(child.input_query or {}, schema=schema)
    both = out.intersect(inp)
    return None if both is None else both.to_dict()


def get_production(*, session: Session, name: str) -> Production:
    """The live production of that name or, once deleted, the newest Cleaned one (its record
    and history stay readable; a new production may take the name)."""
    production = session.scalar(select(Production).where(Production.live_name == name))
    if production is None:
        production = session.scalar(
            select(Production)
            .where(Production.name == name, Production.status == ProductionStatus.CLEANED.value)
            .order_by(Production.id.desc())
            .limit(1)
        )
    if production is None:
        raise NotFound(f"no production named {name!r}")
    return production


def transformations_of(*, session: Session, production: Production) -> list[Transformation]:
    return list(
        session.scalars(
            select(Transformation).where(Transformation.production_id == production.id).order_by(Transformation.id)
        )
    )


# Ids bound per IN list: within SQLite's variable limit however many productions are listed.
IDS_PER_QUERY = 10_000


def parents_by_child(*, session: Session, production: Production) -> dict[int, list[str]]:
    ids = list(session.scalars(select(Transformation.id).where(Transformation.production_id == production.id)))
    return parent_names(session=session, transformation_ids=ids)


def parent_names(*, session: Session, transformation_ids: list[int]) -> dict[int, list[str]]:
    """Declared parent names of many transformations, with one query."""
    result: dict[int, list[str]] = {}
    if not transformation_ids:
        return result
    parent = select(Transformation.id, Transformation.name).subquery()
    for start in range(0, len(transformation_ids), IDS_PER_QUERY):
        rows = session.execute(
            select(TransformationLink.child_id, parent.c.name)
            .join(parent, parent.c.id == TransformationLink.parent_id)
            .where(TransformationLink.child_id.in_(transformation_ids[start : start + IDS_PER_QUERY]))
            .order_by(parent.c.id)
        )
        for child_id, name in rows:
            result.setdefault(child_id, []).append(name)
    return result


# What a person's move of a production is called in its history.
MOVE_EVENTS = {
    ProductionStatus.ACTIVE: "started",
    ProductionStatus.STOPPED: "stopped",
    ProductionStatus.CLEANING: "deleted",
}


def set_production_status(
    *, session: Session, name: str, target: ProductionStatus, principal: Principal, kill: bool = False
) -> Production:
    """Move a production and its transformations; `kill` also kills the running tasks."""
    production = get_production(session=session, name=name)
    ensure_owns(principal, production.owner, f"production {production.name!r}")
    previous = production.status
    check_production_move(production.status, target)
    production.status = target.value
    ids = select(Transformation.id).where(Transformation.production_id == production.id)
    # Ended transformations stay ended on start and stop: they reopen by themselves when work
    # appears for them, and a stop has nothing of theirs to stop.
    movable: dict[ProductionStatus, tuple[TransformationStatus, ...]] = {
        ProductionStatus.ACTIVE: (TransformationStatus.NEW, TransformationStatus.STOPPED),
        ProductionStatus.STOPPED: (TransformationStatus.ACTIVE, TransformationStatus.NEW),
        ProductionStatus.CLEANING: tuple(s for s in TransformationStatus if s != TransformationStatus.CLEANED),
    }
    if target in movable:
        session.execute(
            update(Transformation)
            .where(Transformation.id.in_(ids), Transformation.status.in_([s.value for s in movable[target]]))
            .values(status=TransformationStatus(target.value).value)
        )
    killed = 0
    if kill or target == ProductionStatus.CLEANING:
        killed = kill_tasks(session=session, transformation_ids=ids)
    detail = f"from {previous}" + (f"; {killed} tasks killed" if killed else "")
    events.record(
        session=session,
        actor=events.actor_of(principal),
        production_id=production.id,
        event=MOVE_EVENTS.get(target, target.value.lower()),
        detail=detail,
    )
    session.flush()
    return production


def kill_tasks(*, session: Session, transformation_ids: Any) -> int:
    """Mark unfinished tasks Killed and give their files back (Unused) for a later restart.

    The monitor agent cancels the backend jobs of Killed tasks; a late report of a killed
    attempt is refused because the task is no longer Submitted/Running.
    """
    # An Assigned file is held by exactly one unfinished task of its transformation, and every
    # unfinished task of these transformations is being killed: all their Assigned files go back.
    assigned = and_(
        TransformationFile.transformation_id.in_(transformation_ids),
        TransformationFile.status == FileStatus.ASSIGNED.value,
    )
    counters.count_moves(session, counters.FILE, assigned, FileStatus.UNUSED.value)
    session.execute(
        update(TransformationFile)
        .where(assigned)
        .values(status=FileStatus.UNUSED.value)
        .execution_options(synchronize_session=False)
    )
    unfinished = and_(
        Task.transformation_id.in_(transformation_ids),
        Task.status.in_([s.value for s in ACTIVE_TASK_STATUSES]),
    )
    counters.count_moves(session, counters.TASK, unfinished, TaskStatus.KILLED.value)
    killed = session.execute(
        update(Task)
        .where(unfinished)
        .values(status=TaskStatus.KILLED.value)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return int(killed)


def production_progress(*, session: Session, name: str, principal: Principal) -> ProductionProgress:
    ensure_can_read(principal)
    production = get_production(session=session, name=name)
    transformations = transformations_of(session=session, production=production)
    ids = [t.id for t in transformations]
    # The status counters (db.counters): a few rows per transformation, never a scan.
    counted = counters.counts(session, ids)
    files = {tid: c.get(counters.FILE, {}) for tid, c in counted.items()}
    tasks = {tid: c.get(counters.TASK, {}) for tid, c in counted.items()}
    reused = {tid: c.get(counters.REUSED, {}).get(counters.REUSED_STATUS, 0) for tid, c in counted.items()}
    skipped = ancestry.skipped_counts(session=session, transformation_ids=ids)
    return ProductionProgress(
        name=production.name,
        status=production.status,
        transformations=tuple(
            TransformationProgress(
                name=t.name,
                status=t.status,
                files=complete_counts(files.get(t.id, {}), FILE_KEYS),
                tasks=complete_counts(tasks.get(t.id, {}), TASK_KEYS),
                task_count=t.task_count if t.input_query is None else None,
                skipped_files=skipped.get(t.id, 0),
                reused_tasks=reused.get(t.id, 0),
            )
            for t in transformations
        ),
    )


def production_names(*, session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Production.id, Production.name).where(Production.id.in_(ids))).all())  # type: ignore[arg-type]
