"""Updates of many rows, each with values of its own, in one statement on every database.

A driver's executemany of an UPDATE is one statement per row on MariaDB (mysqlclient batches
INSERTs only): a round trip, a parse and a lock each. Instead a column gets the value of each
row by its key, as ``CASE WHEN key IN (...) THEN value ... ELSE commonest END``: rows that
share a value share a branch, so a batch whose rows mostly agree (the attempts of one job) is
one short statement, and one whose rows all differ is still one statement.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from typing import Any

from sqlalchemy import case, literal
from sqlalchemy.sql.elements import ColumnElement


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
