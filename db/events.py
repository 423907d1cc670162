"""The history of productions: every change of state, by a person or an agent, as one row
(`production history`). Recorded in the transaction that makes the change, so a change and
its event land together or not at all."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from metaprod.core.auth import Principal
from metaprod.db.models import Production, ProductionEvent, Transformation, utcnow
from metaprod.db.querysql import bind_value, executemany
from sqlalchemy import select
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

DETAIL_MAX = 2000
EVENT_COLUMNS = ("production_id", "time", "actor", "event", "transformation", "detail")


def actor_of(principal: Principal) -> str:
    """A person is named by the owner of the token used; the system's own moves by `agent:<name>`."""
    return principal.owner


def agent_actor(name: str) -> str:
    return f"agent:{name}"


@dataclass(frozen=True)
class Event:
    production_id: int
    event: str
    transformation: str = ""
    detail: str = ""


def record(
    *, session: Session, actor: str, production_id: int, event: str, transformation: str = "", detail: str = ""
) -> None:
    record_many(session=session, actor=actor, events=[Event(production_id, event, transformation, detail)])


def record_many(*, session: Session, actor: str, events: Iterable[Event]) -> int:
    """Many events in one statement (an agent cycle that ends many transformations)."""
    now = bind_value(session, ProductionEvent.__table__.c.time, utcnow())  # type: ignore[attr-defined]
    rows = [(e.production_id, now, actor[:160], e.event, e.transformation, e.detail[:DETAIL_MAX]) for e in events]
    if rows and log.isEnabledFor(logging.INFO):
        _log_events(session, rows)
    if rows:
        executemany(session, ProductionEvent.__table__, EVENT_COLUMNS, rows)  # type: ignore[arg-type]
    return len(rows)


def _log_events(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """One log line per change of state, with its actor (`up.log`); the same rows feed
    `production history` and the dashboard."""
    ids = {row[0] for row in rows}
    names = dict(session.execute(select(Production.id, Production.name).where(Production.id.in_(ids))).all())
    for row in rows:
        log.info(
            "event production=%s%s %s by %s%s",
            names.get(row[0], row[0]),
            f" transformation={row[4]}" if row[4] else "",
            row[3],
            row[2],
            f": {row[5][:300]}" if row[5] else "",
        )


def transformation_events(
    *, session: Session, transformation_ids: Iterable[int], event: str, detail: str = ""
) -> list[Event]:
    """One event per transformation, naming it, with one query for the names."""
    ids = list(transformation_ids)
    if not ids:
        return []
    rows = session.execute(
        select(Transformation.production_id, Transformation.name).where(Transformation.id.in_(ids))
    ).all()
    return [Event(pid, event, name, detail) for pid, name in rows]


@dataclass(frozen=True)
class HistoryEntry:
    time: datetime
    actor: str
    event: str
    transformation: str
    detail: str


def history(*, session: Session, production: Production, limit: int = 100_000) -> list[HistoryEntry]:
    rows = session.execute(
        select(
            ProductionEvent.time,
            ProductionEvent.actor,
            ProductionEvent.event,
            ProductionEvent.transformation,
            ProductionEvent.detail,
        )
        .where(ProductionEvent.production_id == production.id)
        .order_by(ProductionEvent.id)
        .limit(limit)
    )
    return [HistoryEntry(*row) for row in rows]
