"""Lineage of a catalogued file: every file it descends from and every file descending from it,
transitively, through the permanent provenance record (`file_inputs`, see db.models).

One recursive CTE per direction (SQLite and MariaDB both run WITH RECURSIVE), never a query
per generation. Provenance is acyclic (a file's inputs existed before it), yet the walk is
bounded by a depth guard all the same: a damaged record can never make it run away.
"""

from __future__ import annotations

from dataclasses import dataclass

from metaprod.core.errors import InvalidArgument, NotFound
from metaprod.core.limits import check_lfn_lookup
from metaprod.db.models import ProducedFileInput
from metaprod.db.querysql import FILES
from sqlalchemy import CTE, Table, func, literal, select
from sqlalchemy.orm import Session

FILE_INPUTS: Table = ProducedFileInput.__table__  # type: ignore[assignment]
MAX_DEPTH = 1000  # generations walked at most in each direction


@dataclass(frozen=True, slots=True)
class Lineage:
    lfn: str
    ancestors: tuple[str, ...]  # nearest generation first, then by LFN
    descendants: tuple[str, ...]
    truncated: bool = False  # the depth guard stopped a walk: there may be more


def lineage(*, session: Session, lfn: str, max_depth: int = MAX_DEPTH) -> Lineage:
    """The ancestors and descendants of `lfn`; NotFound when it is not catalogued. An input
    purged from the catalog since is left out (the walk does not go past it)."""
    if not 1 <= max_depth <= MAX_DEPTH:
        raise InvalidArgument(f"max_depth must be between 1 and {MAX_DEPTH}, not {max_depth}")
    check_lfn_lookup(lfn)
    row = session.execute(select(FILES.c.id, FILES.c.lfn).where(FILES.c.lfn == lfn)).first()
    # MariaDB's PAD SPACE collation would match "a " to "a": compare exactly here.
    if row is None or row.lfn != lfn:
        raise NotFound(f"no file {lfn!r} in the catalog")
    ancestors, deep_up = _walk(session, int(row.id), up=True, max_depth=max_depth)
    descendants, deep_down = _walk(session, int(row.id), up=False, max_depth=max_depth)
    return Lineage(lfn, ancestors, descendants, truncated=deep_up or deep_down)


def walk_cte(file_id: int, *, up: bool, max_depth: int) -> CTE:
    """(id, depth) of every file reached from `file_id` in one direction, depth >= 1.
    UNION (not UNION ALL) drops the repeats of an (id, depth) pair, so a file reached by many
    paths of one length costs one row: at most (files in the lineage) x (depth) rows."""
    fi = FILE_INPUTS.c
    start, follow = (fi.file_id, fi.input_file_id) if up else (fi.input_file_id, fi.file_id)
    seed = select(follow.label("id"), literal(1).label("depth")).where(start == file_id)
    walk = seed.cte("lineage_walk", recursive=True)
    step = (
        select(follow.label("id"), (walk.c.depth + 1).label("depth"))
        .join(walk, start == walk.c.id)
        .where(walk.c.depth < max_depth)
    )
    return walk.union(step)


def _walk(session: Session, file_id: int, *, up: bool, max_depth: int) -> tuple[tuple[str, ...], bool]:
    walk = walk_cte(file_id, up=up, max_depth=max_depth)
    nearest = (
        select(walk.c.id, func.min(walk.c.depth).label("depth"), func.max(walk.c.depth).label("deepest"))
        .group_by(walk.c.id)
        .subquery()
    )
    rows = session.execute(
        select(FILES.c.lfn, nearest.c.deepest)
        .join(nearest, nearest.c.id == FILES.c.id)
        .order_by(nearest.c.depth, FILES.c.lfn)
    ).all()
    return tuple(r.lfn for r in rows), any(r.deepest >= max_depth for r in rows)
