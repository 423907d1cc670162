"""The value line of one metadata key, cut into segments by a set of queries' constraints.

Shared by the router's interval nodes and its mask leaves (router.py, router_leaf.py): the
sorted cuts (bounds, pinned and excluded values) of the constraints that accept a value type,
and, for each segment, the queries whose constraint holds all of it.
"""

from __future__ import annotations

from typing import Any

from metaprod.core.constraints import ANY, INT, STR, KeyConstraint

TYPES = (int, float, str)


def accepts(c: KeyConstraint, t: type) -> bool:
    """Whether some value of type `t` may satisfy `c` (types are kept apart: exact routing)."""
    if c.kind == ANY:
        return True
    if c.kind == STR:
        return t is str
    if c.kind == INT:
        return t is int
    return t is int or t is float


def cuts_of(constraints: list[KeyConstraint]) -> list[Any]:
    """The sorted points where any of `constraints` changes its answer."""
    cuts: set[Any] = set()
    for c in constraints:
        cuts.update(c.points or ())
        cuts.update(c.excl)
        cuts.update(x for x in (c.lo, c.hi) if x is not None and x != "")
    return sorted(cuts)


def sweep(bounds: list[Any], members: list[tuple[int, KeyConstraint]], allowance: float) -> list[frozenset[int]] | None:
    """The queries holding each segment of the value line cut at `bounds`: segment 2k+1 is the
    point bounds[k], segment 2k the open gap below it (2n: above the last). A sweep over the
    segments keeps the work proportional to the output (None once it exceeds `allowance`)."""
    n = len(bounds)
    pos = {b: k for k, b in enumerate(bounds)}
    starts: list[list[int]] = [[] for _ in range(2 * n + 2)]
    holes: dict[int, set[int]] = {}
    extra: dict[int, list[int]] = {}
    for i, c in members:
        if c.points is not None:
            for p in c.points:
                extra.setdefault(2 * pos[p] + 1, []).append(i)
            continue
        lo = None if c.kind == ANY or c.lo == "" else c.lo
        hi = None if c.kind == ANY else c.hi
        first = 0 if lo is None else 2 * pos[lo] + (1 if c.lo_incl else 2)
        last = 2 * n if hi is None else 2 * pos[hi] + (1 if c.hi_incl else 0)
        if first > last:
            continue
        starts[first].append(i)
        starts[last + 1].append(~i)  # removal marker
        for e in c.excl:
            holes.setdefault(2 * pos[e] + 1, set()).add(i)
    active: set[int] = set()
    groups: list[frozenset[int]] = []
    work = 0
    for j in range(2 * n + 1):
        for i in starts[j]:
            if i >= 0:
                active.add(i)
            else:
                active.discard(~i)
        g = active - holes[j] if j in holes else set(active)
        g.update(extra.get(j, ()))
        work += len(g)
        if work > allowance:
            return None
        groups.append(frozenset(g))
    return groups
