"""The closures a FileRouter's tree is made of (see router.py).

Each visitor takes the file's metadata and the set of ids found so far. Specialised variants
exist for branches that only emit fixed ids (`pure`), which the hot path can then add without a
call. `fallback` runs when the value finds no branch (missing key, another type, a value no
query pins), `after` runs always (the queries that do not constrain the node's key).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping
from typing import Any

Visitor = Callable[[Mapping[str, Any], set[Any]], None]
Kid = tuple[Any, ...] | Visitor  # a branch: fixed ids, or a visitor to call


def value_type(v: Any) -> type | None:
    """int, float or str for values some constraint may accept; None otherwise (bool, NaN, ...)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return int
    if isinstance(v, float):
        return float if v == v else None
    return str if isinstance(v, str) else None


class Node:
    """A built subtree: its visitor, and `pure`, the ids it emits when it checks nothing."""

    __slots__ = ("pure", "visit")

    def __init__(self, visit: Visitor, pure: tuple[Any, ...] | None = None) -> None:
        self.visit = visit
        self.pure = pure


def pure_node(ids: tuple[Any, ...]) -> Node:
    if len(ids) == 1:
        (one,) = ids
        return Node(lambda md, out: out.add(one), ids)
    return Node(lambda md, out: out.update(ids), ids)


def normalized(v: Any, t: type) -> Any:
    """`v` as a plain int/float/str for the lookup tables (None: no constraint accepts it)."""
    t2 = value_type(v) if v is not None else None
    if t2 is None or (t2 is t and t is not float):
        return None
    return t2(v)


def hash_visitor(
    key: str, tables: dict[type, dict[Any, Node | None]], fallback: Visitor | None, after: Visitor | None
) -> Visitor:
    nodes = {t: {v: n for v, n in tb.items() if n is not None} for t, tb in tables.items()}
    if all(n.pure is not None for tb in nodes.values() for n in tb.values()):
        pure = {t: {v: n.pure or () for v, n in tb.items()} for t, tb in nodes.items()}
        return _hash_pure(key, pure, fallback, after)
    return _hash_general(key, {t: {v: _kid(n) for v, n in tb.items()} for t, tb in nodes.items()}, fallback, after)


def interval_visitor(
    key: str,
    tables: dict[type, tuple[list[Any], list[Node | None]]],
    fallback: Visitor | None,
    after: Visitor | None,
) -> Visitor:
    if all(n is None or n.pure is not None for _, kids in tables.values() for n in kids):
        pure = {t: (b, [() if n is None else n.pure or () for n in kids]) for t, (b, kids) in tables.items()}
        return _interval_pure(key, pure, fallback, after)
    general = {t: (b, [_kid(n) for n in kids]) for t, (b, kids) in tables.items()}
    return _interval_general(key, general, fallback, after)


def _kid(n: Node | None) -> Kid:
    """How a general node holds a branch: the ids themselves when the branch checks nothing
    (no call needed to emit them), else its visitor."""
    if n is None:
        return ()
    return n.pure if n.pure is not None else n.visit


def _hash_pure(
    key: str, tables: dict[type, dict[Any, tuple[Any, ...]]], fallback: Visitor | None, after: Visitor | None
) -> Visitor:
    get_table = tables.get

    def hash_pure(md: Mapping[str, Any], out: set[Any]) -> None:
        v = md.get(key)
        t = type(v)
        table = get_table(t)
        if table is None:
            v = normalized(v, t)
            table = None if v is None else get_table(type(v))
        ids = None if table is None else table.get(v)
        if ids is not None:
            out.update(ids)
        elif fallback is not None:
            fallback(md, out)
        if after is not None:
            after(md, out)

    return hash_pure


def _hash_general(
    key: str, tables: dict[type, dict[Any, Kid]], fallback: Visitor | None, after: Visitor | None
) -> Visitor:
    get_table = tables.get

    def hash_node(md: Mapping[str, Any], out: set[Any]) -> None:
        v = md.get(key)
        t = type(v)
        table = get_table(t)
        if table is None:
            v = normalized(v, t)
            table = None if v is None else get_table(type(v))
        child = None if table is None else table.get(v)
        if child is not None:
            if type(child) is tuple:
                out.update(child)
            else:
                child(md, out)  # type: ignore[operator]
        elif fallback is not None:
            fallback(md, out)
        if after is not None:
            after(md, out)

    return hash_node


def _interval_pure(
    key: str,
    tables: dict[type, tuple[list[Any], list[tuple[Any, ...]]]],
    fallback: Visitor | None,
    after: Visitor | None,
) -> Visitor:
    get_table = tables.get

    def interval_pure(md: Mapping[str, Any], out: set[Any]) -> None:
        v = md.get(key)
        t = type(v)
        entry = get_table(t)
        if entry is None or (t is float and v != v):
            v = normalized(v, t)
            entry = None if v is None else get_table(type(v))
        if entry is not None:
            bounds, kids = entry
            i = bisect_left(bounds, v)
            ids = kids[2 * i + 1] if i < len(bounds) and bounds[i] == v else kids[2 * i]
            if ids:
                out.update(ids)
        elif fallback is not None:
            fallback(md, out)
        if after is not None:
            after(md, out)

    return interval_pure


def _interval_general(
    key: str,
    tables: dict[type, tuple[list[Any], list[Kid]]],
    fallback: Visitor | None,
    after: Visitor | None,
) -> Visitor:
    get_table = tables.get

    def interval_node(md: Mapping[str, Any], out: set[Any]) -> None:
        v = md.get(key)
        t = type(v)
        entry = get_table(t)
        if entry is None or (t is float and v != v):
            v = normalized(v, t)
            entry = None if v is None else get_table(type(v))
        if entry is not None:
            bounds, kids = entry
            i = bisect_left(bounds, v)
            child = kids[2 * i + 1] if i < len(bounds) and bounds[i] == v else kids[2 * i]
            if type(child) is tuple:
                if child:
                    out.update(child)
            else:
                child(md, out)  # type: ignore[operator]
        elif fallback is not None:
            fallback(md, out)
        if after is not None:
            after(md, out)

    return interval_node
