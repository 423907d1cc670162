"""The dashboard's productions page without the all-productions summary: every production's
own attributes (what the filters, the counts by status and the owners read) in one query, and
the progress of the page's rows only, from the counters of their transformations.

The summary (db.monitoring.overview) reads every counter row: tens of thousands at 1,000
productions. A page shows at most a few hundred productions, so when the summary is not at
hand (a fresh dashboard, or one that only serves pages), the page reads a fraction of that."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from metaprod.core.progress import ProductionProgress
from metaprod.core.statuses import ProductionStatus
from metaprod.db import counters
from metaprod.db.models import Production, Transformation
from metaprod.db.monitoring import PRODUCTION_COLUMNS, ProductionRow, transformation_progress
from metaprod.db.productions import IDS_PER_QUERY
from sqlalchemy import select
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class ProductionInfo:
    id: int
    name: str
    status: str
    owner: str
    description: str
    created_at: datetime
    updated_at: datetime


class _Filtered(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def owner(self) -> str: ...


R = TypeVar("R", bound=_Filtered)


def filter_productions(
    rows: Iterable[R], *, status: str = "", owner: str = "", name: str = "", include_cleaned: bool = False
) -> list[R]:
    """The productions page's filters: Cleaned hidden unless asked (or filtered on)."""
    wanted = name.lower()
    return [
        r
        for r in rows
        if (status == r.status if status else include_cleaned or r.status != ProductionStatus.CLEANED.value)
        and (not owner or r.owner == owner)
        and (not wanted or wanted in r.name.lower())
    ]


def production_infos(*, session: Session) -> list[ProductionInfo]:
    """Every production (Cleaned ones too), by id."""
    rows = session.execute(select(*PRODUCTION_COLUMNS).order_by(Production.id))
    return [ProductionInfo(*row) for row in rows]


def with_progress(*, session: Session, infos: Sequence[ProductionInfo]) -> list[ProductionRow]:
    """These productions with their progress, as the summary has them (db.monitoring.overview),
    from the counters of their transformations only."""
    by_production: dict[int, list[tuple[int, str, str, int | None, bool]]] = {}
    ids = [p.id for p in infos]
    for start in range(0, len(ids), IDS_PER_QUERY):
        for tid, pid, name, status, task_count, is_root in session.execute(
            select(
                Transformation.id,
                Transformation.production_id,
                Transformation.name,
                Transformation.status,
                Transformation.task_count,
                Transformation.input_query.is_(None),
            )
            .where(Transformation.production_id.in_(ids[start : start + IDS_PER_QUERY]))
            .order_by(Transformation.id)
        ):
            by_production.setdefault(pid, []).append((tid, name, status, task_count, is_root))
    tids = [t[0] for ts in by_production.values() for t in ts]
    counted: dict[int, dict[str, dict[str, int]]] = {}
    for start in range(0, len(tids), IDS_PER_QUERY):
        counted.update(counters.counts(session, tids[start : start + IDS_PER_QUERY]))
    rows = []
    for p in infos:
        transformations = by_production.get(p.id, [])
        progress = [
            transformation_progress(name, status, task_count, is_root, counted.get(tid, {}))
            for tid, name, status, task_count, is_root in transformations
        ]
        rows.append(
            ProductionRow(
                id=p.id,
                name=p.name,
                status=p.status,
                owner=p.owner,
                description=p.description,
                created_at=p.created_at,
                updated_at=p.updated_at,
                progress=ProductionProgress(p.name, p.status, tuple(progress)),
                transformation_ids=tuple(t[0] for t in transformations),
            )
        )
    return rows
