"""The data-driven path: catalog files reach the Active transformations whose input query
they match, as `Unused` transformation files.

Two ways in, both idempotent (an existing attachment is never duplicated nor changed):

- at registration, `attach_files` routes the new files through an in-memory `FileRouter` of
  the Active transformations' input queries (one dict/bisect walk per file, no SQL per query);
- `backfill_transformation` / `backfill_active` run one INSERT ... SELECT per transformation
  with the SQL form of its query, for files catalogued before it became Active. The input
  agent runs `backfill_active` as a safety net: it scans only files above each
  transformation's `input_watermark`.

Both skip, and record in `skipped_files`, a file that descends from the transformation's own
outputs (data cycles, see db.ancestry): by one set of ids per registered batch on the first
way, by an indexed NOT EXISTS on `file_ancestry` on the second.

On MariaDB a registration that read the Active set just before a transformation became
Active, and commits just after the agent's next scan moved that transformation's watermark
past the new ids, leaves its files unattached: the window is a few milliseconds per batch
(SQLite serializes writers, so it cannot happen there). The input agent repairs it by itself:
it scans each window again once registrations in flight then have had time to commit
(`rescan`), and when it starts, it re-checks the last ids below every watermark
(`recent_windows`), the windows its predecessor may not have re-checked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from metaprod.core.errors import NotFound
from metaprod.core.metaquery import MetaQuery, Schema
from metaprod.core.router import FileRouter
from metaprod.core.statuses import INPUT_TAKING_TRANSFORMATION_STATUSES, FileStatus
from metaprod.db import counters
from metaprod.db.ancestry import ANCESTRY, SKIPPED, record_skipped
from metaprod.db.models import MetadataField, Transformation, TransformationFile, utcnow
from metaprod.db.querysql import FILES, FieldInfo, bind_value, choose_driver, compile_ids, executemany, load_fields
from sqlalchemy import Insert, Select, Table, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

TRANSFORMATION_FILES: Table = TransformationFile.__table__  # type: ignore[assignment]
_ATTACH_COLUMNS = ("transformation_id", "file_id", "status", "error_count", "updated_at")

# One router per database URL, rebuilt only when the Active set or the schema changes: the
# version is the (id, updated_at) list of the Active transformations plus the field count,
# read with two indexed queries per call instead of re-parsing every query per batch.
# Ended transformations take new input too (and the production agent reopens them); Stopped
# ones keep it Unused for their restart.
INPUT_TAKING = [s.value for s in INPUT_TAKING_TRANSFORMATION_STATUSES]
_routers: dict[str, tuple[Any, FileRouter[int]]] = {}
_routers_lock = threading.Lock()


def _version(session: Session) -> tuple[Any, ...]:
    active = session.execute(
        select(Transformation.id, Transformation.updated_at)
        .where(Transformation.status.in_(INPUT_TAKING))
        .order_by(Transformation.id)
    ).all()
    fields = session.execute(select(func.count(), func.max(MetadataField.id))).one()
    return (tuple(tuple(row) for row in active), tuple(fields))


def active_router(*, session: Session) -> FileRouter[int]:
    """The router of the Active transformations' input queries (roots have none)."""
    key = session.connection().engine.url.render_as_string(hide_password=True)
    version = _version(session)
    with _routers_lock:
        cached = _routers.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    schema = _schema(load_fields(session))
    queries: dict[int, MetaQuery] = {}
    for tid, name, raw in session.execute(
        select(Transformation.id, Transformation.name, Transformation.input_query).where(
            Transformation.status.in_(INPUT_TAKING)
        )
    ):
        query = _parse(tid, name, raw, schema)
        if query is not None:
            queries[tid] = query
    router: FileRouter[int] = FileRouter(queries)
    router.route({})  # build the index now, not in a concurrent first route()
    with _routers_lock:
        _routers[key] = (version, router)
    return router


def _schema(fields: Mapping[str, FieldInfo]) -> Schema:
    return Schema({name: info.type for name, info in fields.items()})


def _parse(tid: int, name: str, raw: Any, schema: Schema) -> MetaQuery | None:
    # JSON columns keep a Python None as JSON null: a root has no input query either way.
    if raw is None:
        return None
    try:
        return MetaQuery.from_dict(raw, schema)
    except ValueError as exc:  # validated at creation; a bad stored query must not stop registration
        log.warning("transformation %s (%s): input query %r ignored: %s", tid, name, raw, exc)
        return None


def attach_files(
    *, session: Session, file_rows: Sequence[tuple[int, Mapping[str, Any]]], ancestry: AbstractSet[int] = frozenset()
) -> int:
    """Attach files `(file_id, metadata)` to every Active transformation whose input query
    they match, as Unused; attachments that exist already are skipped. One INSERT.
    `ancestry` is the files' ancestry (db.ancestry): the transformations in it skip them."""
    if not file_rows:
        return 0
    router = active_router(session=session)
    log.debug("routing %d new files through the router of %d transformations", len(file_rows), len(router))
    if not len(router):
        return 0
    unused = FileStatus.UNUSED.value
    now = bind_value(session, TRANSFORMATION_FILES.c.updated_at, utcnow())
    if not ancestry:
        rows = [(tid, fid, unused, 0, now) for fid, metadata in file_rows for tid in router.route(metadata)]
        return _attach(session, rows)
    rows = []
    skipped: list[tuple[int, int]] = []
    for fid, metadata in file_rows:
        taken, skip = router.route_split(metadata, ancestry)
        rows.extend((tid, fid, unused, 0, now) for tid in taken)
        skipped.extend((tid, fid) for tid in skip)
    record_skipped(session=session, pairs=skipped)
    return _attach(session, rows)


def _attach(session: Session, rows: list[tuple[Any, ...]]) -> int:
    """Insert attachment rows, one statement per transformation (in id order): an attachment
    that exists already is skipped, so only each statement's rowcount tells the counters how
    many files a transformation gained."""
    by_transformation: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_transformation.setdefault(row[0], []).append(row)
    attached = 0
    for tid, some in sorted(by_transformation.items()):
        n = executemany(session, TRANSFORMATION_FILES, _ATTACH_COLUMNS, some, ignore=True)
        counters.record(session, counters.FILE, tid, FileStatus.UNUSED.value, n)
        attached += n
    return attached


def backfill_transformation(*, session: Session, transformation_id: int) -> int:
    """Attach every catalog file matching the transformation's input query (whatever its
    status) that is not attached yet; moves its watermark to the newest file id."""
    t = session.get(Transformation, transformation_id)
    if t is None:
        raise NotFound(f"no transformation with id {transformation_id}")
    fields = load_fields(session)
    top = _top_file_id(session)
    attached = _backfill(session, t.id, t.name, t.input_query, fields, after_id=0, upto_id=top)
    _move_watermark(session, t.id, top)
    return attached


def backfill_active(
    *, session: Session, on_scan: Callable[[ScannedWindow], None] | None = None, max_ids: int = 0
) -> int:
    """For each Active transformation, attach the matching files above its watermark, then
    move the watermark: a cycle with no new file costs two tiny queries. With `max_ids`, at
    most that many catalog ids are scanned per transformation (a cycle's time stays bounded
    when a transformation starts over a catalog of millions); the window says it stopped
    short of the top (ScannedWindow.short), and the next call goes on from there."""
    top = _top_file_id(session)
    behind = session.execute(
        select(Transformation.id, Transformation.name, Transformation.input_query, Transformation.input_watermark)
        .where(Transformation.status.in_(INPUT_TAKING), Transformation.input_watermark < top)
        .order_by(Transformation.id)
    ).all()
    if not behind:
        return 0
    fields = load_fields(session)
    attached = 0
    for tid, name, raw, watermark in behind:
        upto = min(top, watermark + max_ids) if max_ids > 0 else top
        attached += _backfill(session, tid, name, raw, fields, after_id=watermark, upto_id=upto)
        _move_watermark(session, tid, upto)
        if on_scan is not None:
            on_scan(ScannedWindow(tid, watermark, upto, short=upto < top))
    return attached


@dataclass(frozen=True)
class ScannedWindow:
    """Catalog ids (after_id, upto_id] scanned for one transformation: a registration still
    in flight then may commit ids inside it later (the race of the module doc). `short`: the
    catalog had ids above upto_id, left for the next scan."""

    transformation_id: int
    after_id: int
    upto_id: int
    short: bool = False


def rescan(*, session: Session, windows: Sequence[ScannedWindow]) -> int:
    """Scan windows again (without moving watermarks): attaches what registrations that were
    in flight during the first scan committed since. Idempotent, like every backfill."""
    if not windows:
        return 0
    ids = sorted({w.transformation_id for w in windows})
    known = {
        tid: (name, raw)
        for tid, name, raw in session.execute(
            select(Transformation.id, Transformation.name, Transformation.input_query).where(
                Transformation.id.in_(ids), Transformation.status.in_(INPUT_TAKING)
            )
        )
    }
    fields = load_fields(session)
    attached = 0
    for w in windows:
        if w.transformation_id in known:
            name, raw = known[w.transformation_id]
            attached += _backfill(
                session, w.transformation_id, name, raw, fields, after_id=w.after_id, upto_id=w.upto_id
            )
    return attached


def recent_windows(*, session: Session, lookback_ids: int) -> list[ScannedWindow]:
    """The last `lookback_ids` catalog ids below each input-taking transformation's watermark:
    what a restarted input agent re-checks, having lost the windows its predecessor scanned."""
    rows = session.execute(
        select(Transformation.id, Transformation.input_watermark).where(
            Transformation.status.in_(INPUT_TAKING), Transformation.input_watermark > 0
        )
    )
    return [ScannedWindow(tid, max(0, mark - lookback_ids), mark) for tid, mark in rows]


def _top_file_id(session: Session) -> int:
    return int(session.scalar(select(func.max(FILES.c.id))) or 0)


def _backfill(
    session: Session, tid: int, name: str, raw: Any, fields: Mapping[str, FieldInfo], *, after_id: int, upto_id: int
) -> int:
    query = _parse(tid, name, raw, _schema(fields))
    if query is None:
        return 0
    driver = choose_driver(session, query, fields, id_span=upto_id - after_id)
    ids_select = compile_ids(query, fields, driver=driver, after_id=after_id, upto_id=upto_id, ordered=False)
    if ids_select is None:
        return 0
    ids = ids_select.subquery("ids")
    tf, a = TRANSFORMATION_FILES, ANCESTRY
    # Both probes are bounded by the window too (the same rows: ids are in it): MariaDB
    # materialises an uncorrelated form of them, which was every file of the transformation,
    # so each window of a large backfill cost more than the last (10 s, then 20 s at 1M).
    in_window = (tf.c.file_id > after_id, tf.c.file_id <= upto_id)
    already = exists().where(tf.c.transformation_id == tid, tf.c.file_id == ids.c.file_id, *in_window)
    # Data cycles: a file descending from this transformation's outputs is skipped, and recorded.
    descends = exists().where(
        a.c.file_id == ids.c.file_id, a.c.transformation_id == tid, a.c.file_id > after_id, a.c.file_id <= upto_id
    )
    rows = select(
        literal(tid, tf.c.transformation_id.type),
        ids.c.file_id,
        literal(FileStatus.UNUSED.value, tf.c.status.type),
        literal(0, tf.c.error_count.type),
        literal(utcnow(), tf.c.updated_at.type),
    ).where(~already, ~descends)
    skipped = select(literal(tid, SKIPPED.c.transformation_id.type), ids.c.file_id).where(descends)
    session.execute(_insert_ignore(SKIPPED, ["transformation_id", "file_id"], skipped))
    # IGNORE: a concurrent backfill of the same transformation may insert the same pairs.
    attached = int(session.execute(_insert_ignore(tf, list(_ATTACH_COLUMNS), rows)).rowcount)  # type: ignore[attr-defined]
    counters.record(session, counters.FILE, tid, FileStatus.UNUSED.value, attached)
    return attached


def _insert_ignore(table: Table, columns: list[str], rows: Select[Any]) -> Insert:
    stmt = insert(table).from_select(columns, rows)
    stmt = stmt.prefix_with("OR IGNORE", dialect="sqlite").prefix_with("IGNORE", dialect="mysql")
    return stmt.prefix_with("IGNORE", dialect="mariadb")


def _move_watermark(session: Session, tid: int, top: int) -> None:
    # updated_at is kept as it is: it versions the routing cache, which a watermark leaves valid.
    session.execute(
        update(Transformation)
        .where(Transformation.id == tid, Transformation.input_watermark < top)
        .values(input_watermark=top, updated_at=Transformation.updated_at)
    )
