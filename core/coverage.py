"""Exact check that a query is covered by a union of queries (the coverage_gap warning).

A query Q is covered by P1..Pn when every file matching Q matches some Pi. Only a Pi whose keys
Q all constrains can help (Q's files may lack any other key, and the restriction of an uncovered
file to Q's keys stays uncovered), so the others are dropped first. Then Q minus P1 is split into
disjoint pieces, one per key k of P1: the files inside P1 on the keys before k and outside it on
k (interval complements, excluded points, values of the other type), and each piece is checked
against P2..Pn recursively. The first piece left with no cover yields a witness file.

Limits: a key typed int on one side and float on the other counts as not covered on that key
(float values are outside an int field), and the search gives up (reports covered) after
20,000 pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metaprod.core import constraint_views as kv
from metaprod.core import constraints as kc
from metaprod.core.constraints import KeyConstraint
from metaprod.core.metaquery import MetaQuery

_COVERAGE_BUDGET = 20_000


def uncovered_witness(query: MetaQuery, covers: Sequence[MetaQuery]) -> dict[str, Any] | None:
    """A metadata dict matching `query` and none of `covers`, or None when the covers' union
    holds every file matching `query` (or when the search budget runs out)."""
    if query.is_empty():
        return None
    keys = set(query.keys())
    usable = [dict(c.constraints()) for c in covers if not c.is_empty() and set(c.keys()) <= keys]
    budget = [_COVERAGE_BUDGET]
    try:
        return _uncovered(dict(query.constraints()), usable, budget)
    except _OutOfBudget:
        return None


class _OutOfBudget(Exception):
    pass


def _uncovered(
    region: dict[str, KeyConstraint], covers: list[dict[str, KeyConstraint]], budget: list[int]
) -> dict[str, Any] | None:
    budget[0] -= 1
    if budget[0] < 0:
        raise _OutOfBudget
    if not covers:
        return {k: kv.witness(c) for k, c in region.items()}
    cover, rest = covers[0], covers[1:]
    inside = {k: kc.intersect(region[k], c) for k, c in cover.items()}
    if any(c.empty for c in inside.values()):
        return _uncovered(region, rest, budget)
    # region minus cover = the disjoint union, over the cover's keys k1..km, of the files with
    # k1..k(j-1) inside the cover and kj outside it.
    acc = dict(region)
    for k, c in cover.items():
        for piece in _difference(region[k], c):
            w = _uncovered({**acc, k: piece}, rest, budget)
            if w is not None:
                return w
        acc[k] = inside[k]
    return None


def _difference(r: KeyConstraint, c: KeyConstraint) -> list[KeyConstraint]:
    """Constraints whose union is the values of `r` outside `c`."""
    if c.kind == kc.ANY:
        return []
    pieces: list[KeyConstraint] = []
    if r.kind == kc.ANY:
        other = kc.NUM if c.kind == kc.STR else kc.STR
        pieces.append(KeyConstraint(other))
        r = KeyConstraint(kc.STR if c.kind == kc.STR else kc.NUM)
    if kc.kind_class(r.kind) != kc.kind_class(c.kind):
        return [r]
    if c.kind == kc.INT and r.kind != kc.INT:
        return [*pieces, r]  # float values are outside an int set: keep the whole (see module doc)
    if r.kind == kc.INT and c.kind != kc.INT:
        c = kc.intersect(KeyConstraint(kc.INT), c)
    pieces.extend(kc.intersect(r, p) for p in kv.complement(c))
    return [p for p in pieces if not p.empty]
