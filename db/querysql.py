"""Metaqueries compiled to SQL over the typed `file_metadata` table.

`compile_ids(query, fields)` gives a SELECT of the ids of exactly the files that
`MetaQuery.matches` accepts, or None when no file can match (the caller then skips the
database). The plan is one `file_metadata` alias per constrained key, each restricted to its
`field_id` and to its own predicates on the typed column, joined on `file_id`: the optimizer
drives from one `(field_id, value_x, file_id)` index range and probes the other keys through
the primary key `(file_id, field_id)`, so the cost follows the most selective key. A key is
present exactly when its row exists, so `!=` and `nin` need no extra EXISTS: the join already
demands presence, as `matches` does.

Literals are normalized to the field's declared type first, so that the SQL comparison is
exact on both SQLite and MariaDB:

- an int field compared with a float literal uses integer bounds (`run > 2.5` is `run > 2`);
- a float field compared with an int beyond 2**53 uses the nearest floats on the right side;
- strings: MariaDB's `utf8mb4_bin` is a PAD SPACE collation (`'a' = 'a '`, and `'a'` sorts
  after `'a\\x01'`). Stored strings are therefore refused when they hold a character below
  U+0020 or end with a space (see `STRING_REFUSED`), and a query literal that holds one is
  replaced by the nearest storable string with the operator adjusted: for every storable `s`,
  `s < t` iff `s <= r` and `s > t` iff `s > r`, where `r` is `t` cut before its first control
  character and stripped of trailing spaces, and `s = t` never holds. Comparisons among
  storable strings agree with code-point order under both collations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from metaprod.core.metaquery import MetaQuery
from metaprod.db.models import CatalogFile, FileMetadataValue, MetadataField
from sqlalchemy import ColumnElement, Select, Table, exists, func, insert, select
from sqlalchemy.orm import Session

FILES: Table = CatalogFile.__table__  # type: ignore[assignment]
FILE_METADATA: Table = FileMetadataValue.__table__  # type: ignore[assignment]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
VALUE_COLUMN = {"int": "value_int", "float": "value_float", "str": "value_str"}
# A stored string (metadata value or LFN) may not hold these: see the module docstring.
ID_RANGE = "<file id range>"  # a compile_ids driver: scan files by id, probe every key
PROBE_CAP = 20_000
# Rows counted per key at most when every key holds PROBE_CAP or more (tens of milliseconds):
# keys larger than this still tie, and the first in rank order drives.
PROBE_CAP_MAX = 200_000
# Bulk INSERTs on SQLite: rows per statement, within the variable limit of every SQLite
# build since 3.32 (older builds allow 999 variables: not supported).
SQLITE_ROWS_PER_STATEMENT = 2_000
SQLITE_MAX_VARIABLES = 32_766  # index entries counted per key when choosing the driver
STRING_REFUSED = re.compile(r"[\x00-\x1f\ud800-\udfff]| \Z")


@dataclass(frozen=True, slots=True)
class FieldInfo:
    id: int
    type: str  # int | float | str


def load_fields(session: Session) -> dict[str, FieldInfo]:
    """The catalog schema with field ids: {name: FieldInfo}."""
    rows = session.execute(select(MetadataField.id, MetadataField.name, MetadataField.type))
    return {name: FieldInfo(fid, ftype) for fid, name, ftype in rows}


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """One constrained key: its field and its normalized predicates `(column, op, literal)`."""

    key: str
    info: FieldInfo
    predicates: list[Any]
    rank: int  # how selective its operators look: 0 (points) .. 3 (presence, exclusions)


def plan_keys(query: MetaQuery, fields: Mapping[str, FieldInfo]) -> list[KeyPlan] | None:
    """The per-key plans of a query, or None when no file can match."""
    if query.is_empty():
        return None
    plans: list[KeyPlan] = []
    for key, entry in query.to_dict().items():
        info = fields.get(key)
        constraint = query.constraint(key)
        if info is None or constraint is None:
            return None  # an undeclared field: no file has it
        predicates = key_predicates(constraint.kind, _atoms(entry), info)
        if predicates is None:
            return None
        plans.append(KeyPlan(key, info, predicates, _rank(entry)))
    return plans


def compile_ids(
    query: MetaQuery,
    fields: Mapping[str, FieldInfo],
    *,
    driver: str | None = None,
    after_id: int = 0,
    upto_id: int | None = None,
    limit: int = 0,
    ordered: bool = True,
) -> Select[int] | None:
    """SELECT (one column, `file_id`) of the ids of the matching files with
    `after_id < id <= upto_id`, in id order when `ordered`, at most `limit` (0: all); None
    when no file can match. The scan runs over the index range of the `driver` key (a key
    name; ID_RANGE: the files' id range; None: the key whose operators look most selective),
    every other key is an EXISTS probe on the primary key (file_id, field_id)."""
    plans = plan_keys(query, fields)
    if plans is None:
        return None
    if driver != ID_RANGE and plans:
        lead = next((p for p in plans if p.key == driver), None) or min(plans, key=lambda p: p.rank)
        first = FILE_METADATA.alias("m0")
        id_column = first.c.file_id
        stmt: Select[int] = select(id_column).where(first.c.field_id == lead.info.id, *_bind(first, lead.predicates))
        if upto_id is not None and _seeks_window(lead):
            # An id window under point values is a seek in (field_id, value, file_id), but
            # InnoDB's range estimates cannot tell it from the whole value (both ~100,000 rows
            # at 1M files): MariaDB then read the index of the value ('ref', 1M rows, 3 s per
            # 50,000-id window of a backfill) or the primary key. Forced, the range optimizer
            # only sees this index, and a range using more key parts than 'ref' replaces it.
            hint = f"FORCE INDEX ({_value_index(lead.info)})"
            stmt = stmt.with_hint(first, hint, dialect_name="mysql").with_hint(first, hint, dialect_name="mariadb")
        rest = [p for p in plans if p is not lead]
    else:
        id_column = FILES.c.id
        stmt = select(id_column.label("file_id"))
        rest = plans
    for i, plan in enumerate(rest, start=1):
        alias = FILE_METADATA.alias(f"m{i}")
        stmt = stmt.where(
            exists().where(
                alias.c.file_id == id_column, alias.c.field_id == plan.info.id, *_bind(alias, plan.predicates)
            )
        )
    if after_id:
        stmt = stmt.where(id_column > after_id)
    if upto_id is not None:
        stmt = stmt.where(id_column <= upto_id)
    if ordered:
        stmt = stmt.order_by(id_column)
    if limit:
        stmt = stmt.limit(limit)
    return stmt


def _seeks_window(plan: KeyPlan) -> bool:
    """Only point values (= / in) leave file_id ordered inside each value's index range."""
    return bool(plan.predicates) and all(op in ("=", "in") for _, op, _ in plan.predicates)


def _value_index(info: FieldInfo) -> str:
    return f"ix_file_metadata_{info.type}"  # (field_id, value_<type>, file_id): see db.models


def choose_driver(
    session: Session, query: MetaQuery, fields: Mapping[str, FieldInfo], *, id_span: int | None = None
) -> str | None:
    """The key whose index range holds the fewest rows, counted up to PROBE_CAP each (a few
    milliseconds), then up to PROBE_CAP_MAX if all of them reached it: without statistics no
    optimizer knows that `run` in a 1% range beats `datatype = raw`. `id_span` (the size of
    an id window to scan) competes too (ID_RANGE)."""
    plans = plan_keys(query, fields)
    if not plans:
        return None
    if len(plans) == 1 and id_span is None:
        return plans[0].key
    if id_span is not None and id_span <= PROBE_CAP:
        return ID_RANGE  # scanning the window costs less than probing the keys
    cap = PROBE_CAP
    while True:
        best, best_count = None, cap + 1
        if id_span is not None:
            best, best_count = ID_RANGE, id_span
        for plan in sorted(plans, key=lambda p: p.rank):
            m = FILE_METADATA.alias("p")
            window = select(m.c.file_id).where(m.c.field_id == plan.info.id, *_bind(m, plan.predicates)).limit(cap)
            count = int(session.scalar(select(func.count()).select_from(window.subquery())) or 0)
            if count < best_count:
                best, best_count = plan.key, count
        # Every key reached the cap: they are told apart by counting further. (At ten million
        # files, `run` in a 1% range holds 100,000 rows and `datatype = raw` 3.3 million: both
        # capped at 20,000, the tie went to the equality, and the find took 4.7 s.) Not for an
        # id window, whose keys are read within the window whatever their total.
        if id_span is not None or best_count < cap or cap >= PROBE_CAP_MAX:
            return best
        cap *= 10


def matching_ids(
    session: Session,
    query: MetaQuery,
    fields: Mapping[str, FieldInfo] | None = None,
    *,
    after_id: int = 0,
    limit: int = 0,
) -> list[int]:
    """Ids of the matching files in id order (no database access for an unsatisfiable query)."""
    if query.is_empty():
        return []
    fields = load_fields(session) if fields is None else fields
    driver = choose_driver(session, query, fields)
    stmt = compile_ids(query, fields, driver=driver, after_id=after_id, limit=limit)
    return [] if stmt is None else list(session.scalars(stmt))


# -- per-key predicates --------------------------------------------------------------------------
# Predicates are built against a placeholder column name and bound to an alias afterwards, so
# that normalization (pure Python) is separate from the SQL shape.
Predicate = tuple[str, str, Any]  # (column name, operator, literal)


def _atoms(entry: Any) -> list[tuple[str, Any]]:
    if isinstance(entry, Mapping):
        return list(entry.items())
    if isinstance(entry, list | tuple):
        return [("in", list(entry))]
    return [("=", entry)]


def _rank(entry: Any) -> int:
    ops = set(entry) if isinstance(entry, Mapping) else {"="}
    if ops & {"=", "in"}:
        return 0
    if ops & {"<", "<="} and ops & {">", ">="}:
        return 1
    if ops & {"<", "<=", ">", ">="}:
        return 2
    return 3  # presence, != and nin: a poor index range


def key_predicates(kind: str, atoms: Iterable[tuple[str, Any]], info: FieldInfo) -> list[Any] | None:
    """Predicates `(column, op, literal)` on the key's typed column, [] for mere presence, or
    None when no value of the field's type can satisfy them."""
    if kind == "any":
        return []
    if (kind == "str") != (info.type == "str") or (kind == "int" and info.type == "float"):
        return None  # the query's kind refuses every value of the field's type
    column = VALUE_COLUMN[info.type]
    out: list[Any] = []
    for op, literal in atoms:
        if op in ("in", "nin"):
            values = [v for v in (_equal_value(info.type, x) for x in literal) if v is not _NONE]
            if op == "in" and not values:
                return None
            if values:
                out.append((column, op, values))
            continue
        normalized = _normalize(info.type, op, literal)
        if normalized is _FALSE:
            return None
        if normalized is not _TRUE:
            out.append((column, *normalized))
    return out


_NONE = object()  # no storable value equals the literal
_FALSE = object()  # no storable value satisfies the atom
_TRUE = object()  # every storable value satisfies the atom


def _equal_value(ftype: str, v: Any) -> Any:
    """The storable value equal to literal `v`, or _NONE."""
    if ftype == "str":
        return v if not STRING_REFUSED.search(v) else _NONE
    if ftype == "int":
        if isinstance(v, float):
            v = int(v) if v.is_integer() else _NONE
        return v if v is _NONE or INT64_MIN <= v <= INT64_MAX else _NONE
    if isinstance(v, int):  # a float field
        try:
            f = float(v)
        except OverflowError:
            return _NONE
        return f if f == v else _NONE
    return v


def _normalize(ftype: str, op: str, v: Any) -> Any:
    """`(op, literal)` exact for the field's storable values, or _TRUE / _FALSE."""
    if op in ("=", "!="):
        eq = _equal_value(ftype, v)
        if eq is _NONE:
            return _FALSE if op == "=" else _TRUE
        return (op, eq)
    exact = _equal_value(ftype, v)
    if exact is not _NONE:
        return (op, exact)
    # `v` lies strictly between two storable values: below it is `<= floor`, above `> floor`
    # (or `>= ceil`).
    if ftype == "str":
        cut = re.search(r"[\x00-\x1f]", v)
        floor_s = (v[: cut.start()] if cut else v).rstrip(" ")
        return ("<=", floor_s) if op in ("<", "<=") else (">", floor_s)
    if ftype == "int":
        floor = math.floor(v)
        below = op in ("<", "<=")
        if floor > INT64_MAX:  # beyond every stored int
            return _TRUE if below else _FALSE
        if floor < INT64_MIN:
            return _FALSE if below else _TRUE
        return ("<=", floor) if below else (">", floor)
    low, high = _float_neighbours(v)
    if op in ("<", "<="):
        return _FALSE if low == -math.inf else ("<=", low)
    return _FALSE if high == math.inf else (">=", high)


def _float_neighbours(n: int) -> tuple[float, float]:
    """The floats just below and just above an int no float equals."""
    try:
        f = float(n)
    except OverflowError:
        f = math.inf if n > 0 else -math.inf
    if f < n:
        return f, math.nextafter(f, math.inf)
    return math.nextafter(f, -math.inf), f


def _bind(alias: Any, predicates: list[Any]) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for column_name, op, literal in predicates:
        column = alias.c[column_name]
        if op == "=":
            out.append(column == literal)
        elif op == "!=":
            out.append(column != literal)
        elif op == "<":
            out.append(column < literal)
        elif op == "<=":
            out.append(column <= literal)
        elif op == ">":
            out.append(column > literal)
        elif op == ">=":
            out.append(column >= literal)
        elif op == "in":
            out.append(column.in_(literal))
        elif op == "nin":
            out.append(column.not_in(literal))
        else:
            raise ValueError(f"unknown operator {op!r}")
    return out


# -- bulk writes ---------------------------------------------------------------------------------
# The catalog's bulk paths hand tuples straight to the driver's executemany (sqlite3 loops in C,
# mysqlclient folds the rows into multi-row INSERTs): per-row work in SQLAlchemy would cost as
# much as the database itself. Values must therefore already be in driver form (see bind_value).


def executemany(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], *, ignore: bool = False
) -> int:
    """INSERT `rows` (tuples in `columns` order) in bulk; with `ignore`, rows that collide
    with an existing key are skipped. Returns the number of rows inserted."""
    if not rows:
        return 0
    connection = session.connection()
    dialect = connection.dialect
    placeholder = {"qmark": "?", "format": "%s"}.get(dialect.paramstyle)
    if placeholder is None:  # another driver: let SQLAlchemy adapt the statement
        stmt = insert(table)
        if ignore:
            stmt = stmt.prefix_with("OR IGNORE" if dialect.name == "sqlite" else "IGNORE")
        result = connection.execute(stmt, [dict(zip(columns, row, strict=True)) for row in rows])
        return int(result.rowcount)
    quote = dialect.identifier_preparer.quote
    verb = "INSERT" if not ignore else "INSERT OR IGNORE" if dialect.name == "sqlite" else "INSERT IGNORE"
    head = f"{verb} INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) VALUES "
    row_marks = f"({', '.join([placeholder] * len(columns))})"
    if dialect.name != "sqlite":
        return int(connection.exec_driver_sql(head + row_marks, list(rows)).rowcount)
    # sqlite3 releases the GIL around every statement step: one row per step lets any busy
    # Python thread of the process (agents, other RPCs) stall the insert for a whole switch
    # interval per row. Multi-row VALUES make that one step per SQLITE_ROWS_PER_STATEMENT rows.
    per = max(1, min(SQLITE_ROWS_PER_STATEMENT, SQLITE_MAX_VARIABLES // len(columns)))
    full = len(rows) - len(rows) % per
    inserted = 0
    if full:
        batches = [tuple(chain.from_iterable(rows[i : i + per])) for i in range(0, full, per)]
        inserted += connection.exec_driver_sql(head + ", ".join([row_marks] * per), batches).rowcount
    if full < len(rows):
        rest = rows[full:]
        inserted += connection.exec_driver_sql(
            head + ", ".join([row_marks] * len(rest)), tuple(chain.from_iterable(rest))
        ).rowcount
    return int(inserted)


def bind_value(session: Session, column: ColumnElement[Any], value: Any) -> Any:
    """`value` as the driver receives it for `column` (e.g. a UTC datetime as SQLite text)."""
    dialect = session.connection().dialect
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    return value if processor is None else processor(value)
