"""Mask leaves: a group of queries too tangled to index as a tree, matched all at once.

When the router's work allowance runs out (thousands of overlapping queries), a group used to
become a leaf that ran every query's compiled checks: tens of microseconds per file at 5,000
transformations. A mask leaf numbers the group's queries 0..n-1 and, for each key, cuts the
value line at the constraints' bounds (router_cuts.sweep) and keeps, per segment, the bit mask of
the queries that hold it *or do not constrain the key*. A file's matches are then the AND of one
mask per key (one bisect each), decoded 16 bits at a time through small memo tables. Exact like
the rest of the router: value types are kept apart, a missing key or a value no constraint
accepts (bool, NaN, a list) leaves only the queries that do not constrain that key.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any

from metaprod.core.constraints import KeyConstraint
from metaprod.core.router_cuts import TYPES, accepts, cuts_of, sweep
from metaprod.core.router_nodes import Visitor, normalized

MASK_LEAF_MIN = 16  # below this many queries, running their checks is as cheap
_MASK_BUDGET = 4_000_000  # per leaf: segments x 64-bit words of mask kept (about 8 bytes each)
_MEMO_MAX = 4096  # decoded 16-bit words remembered per position
_KeyTable = tuple[str, int, dict[type, tuple[list[Any], list[int]]]]


def _key_table(key: str, constraints: Sequence[Mapping[str, KeyConstraint]], full: int) -> tuple[_KeyTable, int]:
    """One key's masks per value type, and their size in 64-bit words."""
    members = [(p, cs[key]) for p, cs in enumerate(constraints) if key in cs]
    free = full
    for p, _ in members:
        free &= ~(1 << p)
    words = full.bit_length() // 64 + 1
    per_type: dict[type, tuple[list[Any], list[int]]] = {}
    size = 0
    for t in TYPES:
        typed = [(p, c) for p, c in members if accepts(c, t) and not c.empty]
        if not typed:
            continue
        bounds = cuts_of([c for _, c in typed])
        groups = sweep(bounds, typed, float("inf"))
        assert groups is not None  # no allowance: never None
        masks = [free | sum(1 << p for p in g) for g in groups]
        per_type[t] = (bounds, masks)
        size += len(masks) * words
    return (key, free, per_type), size


def mask_leaf(ids: Sequence[Any], constraints: Sequence[Mapping[str, KeyConstraint]]) -> Visitor | None:
    """A visitor adding `ids[p]` for every p whose `constraints[p]` all hold (None: too big)."""
    n = len(ids)
    full = (1 << n) - 1
    keys = {k for cs in constraints for k in cs}
    # Keys constrained by the most queries first: they clear the most bits, so an empty mask
    # ends the file's visit early.
    ordered = sorted(keys, key=lambda k: (-sum(k in cs for cs in constraints), k))
    tables: list[_KeyTable] = []
    total = 0
    for key in ordered:
        table, size = _key_table(key, constraints, full)
        total += size
        if total > _MASK_BUDGET:
            return None
        tables.append(table)
    decode = _decoder(tuple(ids))

    def mask_visit(md: Mapping[str, Any], out: set[Any]) -> None:
        get = md.get
        mask = full
        for key, free, per_type in tables:
            v = get(key)
            t = type(v)
            entry = per_type.get(t)
            if entry is None or (t is float and v != v):
                v = normalized(v, t)
                entry = None if v is None else per_type.get(type(v))
            if entry is None:
                mask &= free
            else:
                bounds, masks = entry
                i = bisect_left(bounds, v)
                mask &= masks[2 * i + 1] if i < len(bounds) and bounds[i] == v else masks[2 * i]
            if not mask:
                return
        decode(mask, out)

    return mask_visit


def _decoder(ids: tuple[Any, ...]) -> Any:
    """mask -> the ids of its set bits, added to `out`: 16-bit words looked up in memo tables."""
    nwords = (len(ids) + 15) // 16
    nbytes = 2 * nwords
    little = sys.byteorder == "little"
    # memoryview.cast("H") reads native order: word j holds bits 16*j.. on little-endian hosts.
    offsets = [16 * j if little else 16 * (nwords - 1 - j) for j in range(nwords)]
    memos: list[dict[int, tuple[Any, ...]]] = [{} for _ in range(nwords)]

    def word_ids(j: int, w: int) -> tuple[Any, ...]:
        off = offsets[j]
        found = tuple(ids[off + b] for b in range(16) if w >> b & 1)
        if len(memos[j]) < _MEMO_MAX:
            memos[j][w] = found
        return found

    def decode(mask: int, out: set[Any]) -> None:
        words = memoryview(mask.to_bytes(nbytes, sys.byteorder)).cast("H")
        for j, w in enumerate(words):
            if w:
                found = memos[j].get(w)
                out.update(word_ids(j, w) if found is None else found)

    return decode
