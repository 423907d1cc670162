"""Routing files to the transformations whose input query they match, without testing every query.

`FileRouter({tid: MetaQuery}).route(metadata)` returns exactly the ids whose `matches` is true.
The queries are compiled into a decision tree of closures, built lazily after any add/remove:

- a *hash node* on a key where every query pins a few values (`datatype=raw`, `site in A,B`):
  one dict lookup per value type (int, float, str) picks the queries pinned to that value;
- an *interval node* on any other key: the sorted boundaries of all the queries' conditions on
  that key (bounds, pinned and excluded values) cut the value line into points and open gaps, on
  each of which every query is either satisfied or not, so one bisect picks the queries;
- each branch then indexes the remaining keys of its queries the same way, down to branches that
  just emit their ids; queries that do not constrain the node's key go down a *rest* branch (or
  join every branch when they are few); when the work allowance runs out (thousands of
  overlapping queries) a group becomes a *leaf* that runs the compiled per-key checks.

Value types are kept apart (an int key refuses 5.0, bool is never a number, NaN matches nothing),
so the tree is exact, not a pre-filter. Identical sub-groups share one subtree.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Generic, TypeVar

from metaprod.core.checks import Check, compile_check
from metaprod.core.constraints import INT, KeyConstraint
from metaprod.core.metaquery import MetaQuery
from metaprod.core.router_cuts import TYPES, accepts, cuts_of, sweep
from metaprod.core.router_leaf import MASK_LEAF_MIN, mask_leaf
from metaprod.core.router_nodes import Node, Visitor, hash_visitor, interval_visitor, pure_node

T = TypeVar("T", bound=Hashable)
# `others` (queries without the node's key) are copied into every branch when at most this many.
_JOIN_MIN, _JOIN_DIV = 2, 8  # max(_JOIN_MIN, len(indexed) // _JOIN_DIV)
_BUDGET = 500_000  # total size of the indexed groups before the builder falls back to leaves


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


class _Builder:
    """Builds the tree top-down. Each subtree gets an allowance of work (the total size of the
    groups it may index, shared among branches by size), so that a large or tangled set of
    queries degrades to leaves that check, instead of a huge index."""

    def __init__(self, items: list[tuple[Any, dict[str, KeyConstraint]]]) -> None:
        self.items = items
        self.keys = [frozenset(cs) for _, cs in items]
        self.checks: dict[tuple[int, str], Check] = {}
        self.memo: dict[tuple[frozenset[int], frozenset[str]], Node | None] = {}

    def build(self, group: frozenset[int], consumed: frozenset[str], allowance: float) -> Node | None:
        memo_key = (group, consumed)
        if memo_key not in self.memo:
            self.memo[memo_key] = self._build(group, consumed, allowance)
        return self.memo[memo_key]

    def _check(self, i: int, key: str) -> Check:
        check = self.checks.get((i, key))
        if check is None:
            check = self.checks[i, key] = compile_check(self.items[i][1][key])
        return check

    def _build(self, group: frozenset[int], consumed: frozenset[str], allowance: float) -> Node | None:
        if not group:
            return None
        counts: dict[str, int] = {}
        for i in group:
            for k in self.keys[i] - consumed:
                counts[k] = counts.get(k, 0) + 1
        if not counts:
            return pure_node(tuple(self.items[i][0] for i in sorted(group)))

        def hashable(k: str) -> bool:
            return all(self.items[i][1][k].points is not None for i in group if k in self.items[i][1])

        key = max(counts, key=lambda k: (counts[k], hashable(k), k))
        indexed = frozenset(i for i in group if key in self.items[i][1])
        others = group - indexed
        # A few queries that do not constrain the key join every branch (saving a call per
        # level); `rest` serves the files whose value finds no branch, and all of `others` when
        # they are too many to copy into every branch.
        joined = others if len(others) <= max(_JOIN_MIN, len(indexed) // _JOIN_DIV) else frozenset()
        hplan: dict[type, dict[Any, frozenset[int]]] = {}
        iplan: dict[type, tuple[list[Any], list[frozenset[int]]]] | None = {}
        if hashable(key):
            hplan = self._plan_hash(key, indexed)
            branch_groups = [g for table in hplan.values() for g in table.values()]
        else:
            iplan = self._plan_interval(key, indexed, allowance)
            if iplan is None:
                return self._leaf(sorted(group), consumed)
            distinct = {id(groups): groups for _, groups in iplan.values()}  # int, float may share
            branch_groups = [g for groups in distinct.values() for g in groups]
        cost = sum(len(g | joined) for g in branch_groups) + len(others)
        if cost > allowance:
            return self._leaf(sorted(group), consumed)
        share = (allowance - cost) / max(cost, 1)
        below = consumed | {key}
        rest = self.build(others, consumed, share * len(others))

        def sub(g: frozenset[int]) -> Node | None:
            return self.build(g | joined, below, share * len(g | joined))

        rest_visit = None if rest is None else rest.visit
        fallback, after = (rest_visit, None) if joined else (None, rest_visit)
        if hplan:
            tables = {t: {v: sub(g) for v, g in tb.items()} for t, tb in hplan.items()}
            return Node(hash_visitor(key, tables, fallback, after))
        assert iplan is not None
        built: dict[int, list[Node | None]] = {}
        itables: dict[type, tuple[list[Any], list[Node | None]]] = {}
        for t, (bounds, groups) in iplan.items():
            if id(groups) not in built:
                built[id(groups)] = [sub(g) for g in groups]
            itables[t] = (bounds, built[id(groups)])
        return Node(interval_visitor(key, itables, fallback, after))

    def _leaf(self, group: list[int], consumed: frozenset[str]) -> Node:
        if len(group) >= MASK_LEAF_MIN:
            rest = [{k: c for k, c in self.items[i][1].items() if k not in consumed} for i in group]
            visit = mask_leaf([self.items[i][0] for i in group], rest)
            if visit is not None:
                return Node(visit)
        return self._check_leaf(group, consumed)

    def _check_leaf(self, group: list[int], consumed: frozenset[str]) -> Node:
        always: list[Any] = []
        single: list[tuple[Any, str, Check]] = []
        multi: list[tuple[Any, tuple[tuple[str, Check], ...]]] = []
        for i in group:
            checks = tuple((k, self._check(i, k)) for k in sorted(self.keys[i] - consumed))
            if not checks:
                always.append(self.items[i][0])
            elif len(checks) == 1:
                single.append((self.items[i][0], *checks[0]))
            else:
                multi.append((self.items[i][0], checks))
        always_t, singles, multis = tuple(always), tuple(single), tuple(multi)

        def leaf(md: Mapping[str, Any], out: set[Any]) -> None:
            if always_t:
                out.update(always_t)
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

        return Node(leaf)

    def _plan_hash(self, key: str, group: frozenset[int]) -> dict[type, dict[Any, frozenset[int]]]:
        """Per value type, the queries pinned to each value."""
        plan: dict[type, dict[Any, frozenset[int]]] = {}
        for t in TYPES:
            buckets: dict[Any, set[int]] = {}
            for i in group:
                c = self.items[i][1][key]
                if accepts(c, t):
                    for p in _hashable_points(c, t):
                        buckets.setdefault(p, set()).add(i)
            if buckets:
                plan[t] = {v: frozenset(g) for v, g in buckets.items()}
        return plan

    def _plan_interval(
        self, key: str, group: frozenset[int], allowance: float
    ) -> dict[type, tuple[list[Any], list[frozenset[int]]]] | None:
        """Per value type, the sorted cuts and the queries holding each point and gap between
        (None when merely computing that would exceed the allowance)."""
        plan: dict[type, tuple[list[Any], list[frozenset[int]]]] = {}
        for t in TYPES:
            members = [(i, self.items[i][1][key]) for i in sorted(group)]
            members = [(i, c) for i, c in members if accepts(c, t) and not c.empty]
            if not members:
                continue
            if t is float and int in plan and all(self.items[i][1][key].kind != INT for i in group):
                plan[float] = plan[int]  # the same queries accept both number types: same cuts
                continue
            bounds = cuts_of([c for _, c in members])
            groups = sweep(bounds, members, allowance)
            if groups is None:
                return None
            plan[t] = (bounds, groups)
        return plan


_NONE: frozenset[Any] = frozenset()


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
        node = _Builder(items).build(frozenset(range(len(items))), frozenset(), _BUDGET)
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

    def route_split(self, metadata: Mapping[str, Any], exclude: AbstractSet[T]) -> tuple[set[T], AbstractSet[T]]:
        """`route`, split into the ids to take and those in `exclude` (the transformations in
        the file's ancestry: data cycles). Costs one `isdisjoint` when nothing is excluded."""
        if self._dirty:
            self._rebuild()
        out: set[T] = set()
        if self._root is not None:
            self._root(metadata, out)
        if out.isdisjoint(exclude):
            return out, _NONE
        return out - exclude, out & exclude

    def route_many(self, files: Iterable[Mapping[str, Any]]) -> list[set[T]]:
        """`route` for each file, in order."""
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
