"""What `production list` reads: every listed production and its transformations in two
queries (their parents in a third: db.productions.parent_names), as plain named tuples.

A thousand productions list in one answer, so the per-row cost is the cost: no ORM objects
(building them costs more than the query), no SQLAlchemy Row attribute lookups in the
conversion (a quarter of a microsecond each, nineteen a transformation), and the JSON
columns as their stored text, which the listing writes out as text again (services convert
each distinct text once per listing instead of decoding and encoding every row's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from metaprod.core.errors import InvalidArgument
from metaprod.core.statuses import ProductionStatus
from metaprod.db.models import Production, Transformation
from metaprod.db.productions import IDS_PER_QUERY
from sqlalchemy import ColumnElement, Text, select, type_coerce
from sqlalchemy.orm import Session


class ListedProduction(NamedTuple):
    id: int
    name: str
    description: str
    status: str
    owner: str
    created_at: datetime
    updated_at: datetime
    namespace: str | None


class ListedTransformation(NamedTuple):
    id: int
    production_id: int
    name: str
    status: str
    plugin: str
    group_size: int | None
    task_count: int | None
    max_attempts: int
    backend: str
    command: str
    created_at: datetime
    max_runtime: int | None
    input_closed: bool
    max_bytes: int | None
    # The JSON columns' stored text (None when NULL).
    spec_json: str | None
    input_query_json: str | None
    output_query_json: str | None
    group_by_json: str | None


def _columns(fields: tuple[str, ...], model: Any) -> list[ColumnElement[Any]]:
    """The model's columns in the tuple's field order; `x_json` is column x as stored text."""
    return [
        type_coerce(getattr(model, f.removesuffix("_json")), Text) if f.endswith("_json") else getattr(model, f)
        for f in fields
    ]


_PRODUCTION_COLUMNS = _columns(ListedProduction._fields, Production)
_TRANSFORMATION_COLUMNS = _columns(ListedTransformation._fields, Transformation)


def list_productions(*, session: Session, status: str = "", include_cleaned: bool = False) -> list[ListedProduction]:
    """By id. Cleaned (deleted) productions only with `include_cleaned` or when asked by status."""
    stmt = select(*_PRODUCTION_COLUMNS).order_by(Production.id)
    if not (include_cleaned or status):
        stmt = stmt.where(Production.status != ProductionStatus.CLEANED.value)
    if status:
        if status not in {s.value for s in ProductionStatus}:
            choices = ", ".join(s.value for s in ProductionStatus)
            raise InvalidArgument(f"unknown status {status!r}: use one of {choices}")
        stmt = stmt.where(Production.status == status)
    return [ListedProduction._make(row) for row in session.execute(stmt)]


def transformations_by_production(
    *, session: Session, production_ids: list[int]
) -> dict[int, list[ListedTransformation]]:
    """The transformations of many productions (in id order), with one query."""
    result: dict[int, list[ListedTransformation]] = {}
    make = ListedTransformation._make
    for start in range(0, len(production_ids), IDS_PER_QUERY):
        some = production_ids[start : start + IDS_PER_QUERY]
        stmt = select(*_TRANSFORMATION_COLUMNS).where(Transformation.production_id.in_(some))
        for row in session.execute(stmt.order_by(Transformation.id)):
            t = make(row)
            result.setdefault(t.production_id, []).append(t)
    return result
