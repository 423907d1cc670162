"""Updates of many rows, each with values of its own, in one statement on every database.

A driver's executemany of an UPDATE is one statement per row on MariaDB (mysqlclient batches
INSERTs only): a round trip, a parse and a lock each. Instead a column gets the value of each
row by its key, as ``CASE WHEN key IN (...) THEN value ... ELSE commonest END``: rows that
share a value share a branch, so a batch whose rows mostly agree (the attempts of one job) is
one short statement, and one whose rows all differ is still one statement.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Hashable, Mapping
from typing import Any

from sqlalchemy import Table, case, literal, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

# Rows per statement: a few thousand bound values at most, well within every database's limit.
CHUNK = 1000


def update_rows(
    session: Session,
    table: Table,
    keys: Collection[Any],
    *,
    own: Mapping[str, Mapping[Any, Any]] | None = None,
    match: Mapping[str, Mapping[Any, Any]] | None = None,
    **same: Any,
) -> None:
    """``UPDATE table`` of the rows whose primary key (a single column) is in `keys`, one
    statement per CHUNK rows: each column named in `own` set to the row's own value, those
    in `same` to one value or expression for all; a row is updated only where each column
    named in `match` holds the row's value there (say, the attempt a task is still on)."""
    (key,) = table.primary_key.columns
    ordered = list(keys)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        conditions: list[ColumnElement[bool]] = [key.in_(chunk)]
        conditions += [
            table.c[name] == row_values(table.c[name], key, {k: values[k] for k in chunk})
            for name, values in (match or {}).items()
        ]
        per_row = {
            name: row_values(table.c[name], key, {k: values[k] for k in chunk}) for name, values in (own or {}).items()
        }
        session.execute(
            update(table).where(*conditions).values(**same, **per_row).execution_options(synchronize_session=False)
        )


def row_values(column: ColumnElement[Any], key: ColumnElement[Any], values: Mapping[Any, Any]) -> ColumnElement[Any]:
    """The value `values[key]` of each row, typed as `column`, for ``UPDATE ... SET column =``
    of the rows whose keys are those of `values` (the statement's WHERE must select no other
    row: they would get the commonest value)."""
    if not values:
        raise ValueError("row_values needs at least one row")
    groups: dict[Hashable, tuple[Any, list[Any]]] = {}
    for row_key, value in values.items():
        groups.setdefault(_group_key(value), (value, []))[1].append(row_key)
    commonest, *others = sorted(groups.values(), key=lambda group: len(group[1]), reverse=True)
    if not others:
        return literal(commonest[0], column.type)
    return case(
        *[(key.in_(keys), literal(value, column.type)) for value, keys in others],
        else_=literal(commonest[0], column.type),
    )


def _group_key(value: Any) -> Hashable:
    if isinstance(value, dict | list):  # a JSON column's value
        return ("json", json.dumps(value, sort_keys=True, default=str))
    return (type(value).__name__, value)
