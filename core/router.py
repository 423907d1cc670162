"""Routing files to the transformations whose input query they match, without testing every query.

`FileRouter({tid: MetaQuery}).route(metadata)` returns exactly the ids whose `matches` is true.
The queries are compiled into a decision tree of closures, built lazily after any add/remove:

- a *hash node* on a key where every query pins a few values (`datatype=raw`, `site in A,B`):
  one dict lookup per value type (int, float, str) picks the queries pinned to that value;
- an *interval node* on any other key: the sorted boundaries of all the queries' conditions on
  that key (bounds, pinned and excluded values) cut the value line into points and open gaps, on
  each of which every query is either satisfied or not, so one bisect picks the queries;
- each branch then indexes the remaining keys of its queries the same way; queries that do not
  constrain the node's key go down a *rest* branch; small groups end in *leaves* that run the
  compiled per-key checks.

Value types are kept apart (an int key refuses 5.0, bool is never a number, NaN matches nothing),
so the tree is exact, not a pre-filter. Identical sub-groups share one subtree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from metaprod.core.checks import Check, compile_check
from metaprod.core.constraints import ANY, INT, REAL_KINDS, STR, KeyConstraint
from metaprod.core.metaquery import MetaQuery

T = TypeVar("T", bound=Hashable)
Visitor = Callable[[Mapping[str, Any], set[Any]], None]
_TYPES = (int, float, str)
_LEAF_SIZE = 1  # a group this small is checked directly rather than indexed
_MIN_SHARED = 2  # index a key only when at least this many queries of the group constrain it
_BUDGET = 400_000  # index entries (segments, buckets) before the builder falls back to leaves


def _value_type(v: Any) -> type | None:
    """int, float or str for values some constraint may accept; None otherwise (bool, NaN, ...)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return int
    if isinstance(v, float):
        return float if v == v else None
    return str if isinstance(v, str) else None


def _accepts(c: KeyConstraint, t: type) -> bool:
    if c.kind == ANY:
        return True
    if c.kind == STR:
        return t is str
    if c.kind == INT:
        return t is int
    return t is int or t is float


def _hashable_points(c: KeyConstraint, t: type) -> list[Any]:
    """The values of type `t` that `c` (a points constraint) holds, as dict keys for type `t`."""
    assert c.points is not None
    if t is str:
        return list(c.points)
    if t is int:
        return [int(p) for p in c.points if p == int(p)]
    out = []
    for p in c.points:
        try:
            if float(p) == p:
                out.append(float(p))
        except OverflowError:  # an int beyond the float range: no float equals it
            pass
    return out


class _Node:
    """A built subtree: its visitor, and `pure`, the ids it emits when it checks nothing."""

    __slots__ = ("pure", "visit")

    def __init__(self, visit: Visitor, pure: tuple[Any, ...] | None = None) -> None:
        self.visit = visit
        self.pure = pure


def _pure(ids: tuple[Any, ...]) -> _Node:
    if len(ids) == 1:
        (one,) = ids
        return _Node(lambda md, out: out.add(one), ids)
    return _Node(lambda md, out: out.update(ids), ids)


class _Builder:
    def __init__(self, items: list[tuple[Any, dict[str, KeyConstraint]]]) -> None:
        self.items = items
        self.memo: dict[tuple[frozenset[int], frozenset[str]], _Node | None] = {}
        self.budget = _BUDGET

    def build(self, group: frozenset[int], consumed: frozenset[str]) -> _Node | None:
        memo_key = (group, consumed)
        if memo_key not in self.memo:
            self.memo[memo_key] = self._build(group, consumed)
        return self.memo[memo_key]

    def _remaining(self, i: int, consumed: frozenset[str]) -> dict[str, KeyConstraint]:
        return {k: c for k, c in self.items[i][1].items() if k not in consumed}

    def _build(self, group: frozenset[int], consumed: frozenset[str]) -> _Node | None:
        if not group:
            return None
        counts: dict[str, int] = {}
        for i in group:
            for k in self._remaining(i, consumed):
                counts[k] = counts.get(k, 0) + 1
        if not counts:
            return _pure(tuple(self.items[i][0] for i in sorted(group)))
        if len(group) <= _LEAF_SIZE or max(counts.values()) < _MIN_SHARED or self.budget <= 0:
            return self._leaf(sorted(group), consumed)

        def hashable(k: str) -> bool:
            return all(self.items[i][1][k].points is not None for i in group if k in self.items[i][1])

        key = max(counts, key=lambda k: (counts[k], hashable(k), k))
        indexed = frozenset(i for i in group if key in self.items[i][1] and key not in consumed)
        rest = self.build(group - indexed, consumed)
        make = self._hash_node if hashable(key) else self._interval_node
        return _Node(make(key, indexed, consumed, None if rest is None else rest.visit))

    def _leaf(self, group: list[int], consumed: frozenset[str]) -> _Node:
        always = tuple(self.items[i][0] for i in group if not self._remaining(i, consumed))
        single: list[tuple[Any, str, Check]] = []
        multi: list[tuple[Any, tuple[tuple[str, Check], ...]]] = []
        for i in group:
            rem = self._remaining(i, consumed)
            checks = tuple((k, compile_check(c)) for k, c in sorted(rem.items()))
            if len(checks) == 1:
                single.append((self.items[i][0], *checks[0]))
            elif checks:
                multi.append((self.items[i][0], checks))
        singles, multis = tuple(single), tuple(multi)

        def leaf(md: Mapping[str, Any], out: set[Any]) -> None:
            if always:
                out.update(always)
            get = md.get
            for tid, k, check in singles:
                if check(get(k)):
                    out.add(tid)
            for tid, checks in multis:
                for k, check in checks:
                    if not check(get(k)):
                        break
                else:
                    out.add(tid)

        return _Node(leaf)

    def _hash_node(self, key: str, group: frozenset[int], consumed: frozenset[str], rest: Visitor | None) -> Visitor:
        below = consumed | {key}
        tables: dict[type, dict[Any, _Node]] = {}
        for t in _TYPES:
            buckets: dict[Any, set[int]] = {}
            for i in group:
                c = self.items[i][1][key]
                if _accepts(c, t):
                    for p in _hashable_points(c, t):
                        buckets.setdefault(p, set()).add(i)
            self.budget -= len(buckets)
            table = {v: child for v, g in buckets.items() if (child := self.build(frozenset(g), below))}
            if table:
                tables[t] = table
        if all(n.pure is not None for table in tables.values() for n in table.values()):
            return _hash_pure(key, {t: {v: n.pure for v, n in tb.items()} for t, tb in tables.items()}, rest)
        return _hash_general(key, {t: {v: n.visit for v, n in tb.items()} for t, tb in tables.items()}, rest)

    def _interval_node(
        self, key: str, group: frozenset[int], consumed: frozenset[str], rest: Visitor | None
    ) -> Visitor:
        below = consumed | {key}
        tables: dict[type, tuple[list[Any], list[_Node | None]]] = {}
        for t in _TYPES:
            members = [(i, self.items[i][1][key]) for i in sorted(group)]
            members = [(i, c) for i, c in members if _accepts(c, t) and not c.empty]
            if not members:
                continue
            if t is float and int in tables and all(self.items[i][1][key].kind != INT for i in group):
                tables[float] = tables[int]  # same queries accept both number types: same cuts
                continue
            cuts: set[Any] = set()
            for _, c in members:
                cuts.update(c.points or ())
                cuts.update(c.excl)
                cuts.update(x for x in (c.lo, c.hi) if x is not None and x != "")
            bounds = sorted(cuts)
            self.budget -= 2 * len(bounds) + 1
            kids: list[_Node | None] = []
            for j in range(2 * len(bounds) + 1):
                if j % 2:  # the point bounds[j // 2]
                    g = frozenset(i for i, c in members if _holds_point(c, bounds[j // 2]))
                else:  # the open gap between two consecutive bounds
                    below_b = bounds[j // 2 - 1] if j else None
                    above_b = bounds[j // 2] if j // 2 < len(bounds) else None
                    g = frozenset(i for i, c in members if _covers_gap(c, below_b, above_b))
                kids.append(self.build(g, below))
            tables[t] = (bounds, kids)
        if all(n is None or n.pure is not None for _, kids in tables.values() for n in kids):
            pure = {t: (b, [() if n is None else n.pure for n in kids]) for t, (b, kids) in tables.items()}
            return _interval_pure(key, pure, rest)  # type: ignore[arg-type]
        general = {t: (b, [None if n is None else n.visit for n in kids]) for t, (b, kids) in tables.items()}
        return _interval_general(key, general, rest)


def _normalized(v: Any, t: type) -> Any:
    """`v` as a plain int/float/str for the lookup tables (None: no constraint accepts it)."""
    t2 = _value_type(v) if v is not None else None
    if t2 is None or (t2 is t and t is not float):
        return None
    return t2(v)


def _hash_pure(key: str, tables: dict[type, dict[Any, tuple[Any, ...]]], rest: Visitor | None) -> Visitor:
    get_table = tables.get

    def hash_pure(md: Mapping[str, Any], out: set[Any]) -> None:
        v = md.get(key)
        t = type(v)
        table = get_table(t)
        if table is None:
            v = _normalized(v, t)
            table = None if v is None else get_table(type(v))
        if table is not None:
            ids = table.get(v)
            if ids:
                out.update(ids)
        if rest is not None:
            rest(md, out)

    return hash_pure


def _hash_general(key: str, tables: dict[type, dict[Any, Visitor]], rest: Visitor | None) -> Visitor:
    get_table = tables.get

    def hash_node(md: Mapping[str, Any], out: set[Any]) -> None:
        v = md.get(key)
        t = type(v)
        table = get_table(t)
        if table is None:
            v = _normalized(v, t)
            table = None if v is None else get_table(type(v))
        if table is not None:
            child = table.get(v)
            if child is not None:
                child(md, out)
        if rest is not None:
            rest(md, out)

    return hash_node


def _interval_pure(
    key: str, tables: dict[type, tuple[list[Any], list[tuple[Any, ...]]]], rest: Visitor | None
) -> Visitor:
    get_table = tables.get

    def interval_pure(md: Mapping[str, Any], out: set[Any]) -> None:
        v = md.get(key)
        t = type(v)
        entry = get_table(t)
        if entry is None or (t is float and v != v):
            v = _normalized(v, t)
            entry = None if v is None else get_table(type(v))
        if entry is not None:
            bounds, kids = entry
            i = bisect_left(bounds, v)
            ids = kids[2 * i + 1] if i < len(bounds) and bounds[i] == v else kids[2 * i]
            if ids:
                out.update(ids)
        if rest is not None:
            rest(md, out)

    return interval_pure


def _interval_general(
    key: str, tables: dict[type, tuple[list[Any], list[Visitor | None]]], rest: Visitor | None
) -> Visitor:
    get_table = tables.get

    def interval_node(md: Mapping[str, Any], out: set[Any]) -> None:
        v = md.get(key)
        t = type(v)
        entry = get_table(t)
        if entry is None or (t is float and v != v):
            v = _normalized(v, t)
            entry = None if v is None else get_table(type(v))
        if entry is not None:
            bounds, kids = entry
            i = bisect_left(bounds, v)
            child = kids[2 * i + 1] if i < len(bounds) and bounds[i] == v else kids[2 * i]
            if child is not None:
                child(md, out)
        if rest is not None:
            rest(md, out)

    return interval_node


def _holds_point(c: KeyConstraint, v: Any) -> bool:
    """Whether `c` holds the boundary value `v`, ignoring the value's Python type."""
    if c.kind == ANY:
        return True
    if c.points is not None:
        return v in c.points
    if c.lo is not None and not (v >= c.lo if c.lo_incl else v > c.lo):
        return False
    if c.hi is not None and not (v <= c.hi if c.hi_incl else v < c.hi):
        return False
    return v not in c.excl


def _covers_gap(c: KeyConstraint, a: Any, b: Any) -> bool:
    """Whether `c` holds every value strictly between the consecutive cuts `a` and `b`
    (None: unbounded). All of `c`'s own cuts are among the cuts, so it is all or nothing."""
    if c.kind == ANY:
        return True
    if c.points is not None:
        return False
    lo = None if c.lo == "" else c.lo
    if lo is not None and (a is None or a < lo):
        return False
    return c.hi is None or (b is not None and b <= c.hi)


class FileRouter(Generic[T]):
    """Index of `{transformation id: input query}`; `route(metadata)` gives the matching ids."""

    def __init__(self, queries: Mapping[T, MetaQuery] | None = None) -> None:
        self._queries: dict[T, MetaQuery] = dict(queries or {})
        self._root: Visitor | None = None
        self._dirty = True

    def add(self, tid: T, query: MetaQuery) -> None:
        """Add or replace a query; the index is rebuilt on the next `route`."""
        self._queries[tid] = query
        self._dirty = True

    def remove(self, tid: T) -> None:
        """Forget a query (KeyError when unknown)."""
        del self._queries[tid]
        self._dirty = True

    def __len__(self) -> int:
        return len(self._queries)

    def __contains__(self, tid: object) -> bool:
        return tid in self._queries

    def queries(self) -> dict[T, MetaQuery]:
        return dict(self._queries)

    def _rebuild(self) -> None:
        items = [(tid, dict(q.constraints())) for tid, q in self._queries.items() if not q.is_empty()]
        node = _Builder(items).build(frozenset(range(len(items))), frozenset())
        self._root = None if node is None else node.visit
        self._dirty = False

    def route(self, metadata: Mapping[str, Any]) -> set[T]:
        """The ids of exactly the queries that `metadata` matches."""
        if self._dirty:
            self._rebuild()
        out: set[T] = set()
        if self._root is not None:
            self._root(metadata, out)
        return out

    def route_many(self, files: Iterable[Mapping[str, Any]]) -> list[set[T]]:
        if self._dirty:
            self._rebuild()
        root = self._root
        results: list[set[T]] = []
        for md in files:
            out: set[T] = set()
            if root is not None:
                root(md, out)
            results.append(out)
        return results
