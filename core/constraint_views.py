"""What can be read off a per-key normal form: a witness value, the canonical literal form,
and the complement (split from constraints.py, which builds and combines the normal forms).

Witnesses are exact except in one corner of the reals: an open interval between two adjacent
floats (say `> 1.0 and < 1.0000000000000002`) is non-empty as a set of reals but holds no Python
number, so its "witness" is the nearest float, which does not satisfy it.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from metaprod.core.constraints import (
    ANY,
    FLOAT,
    INT,
    NUM,
    NUMERIC_KINDS,
    STR,
    KeyConstraint,
    build,
    full,
    is_int_value,
)

#  Above this magnitude not every integer is a float: keep such values as they are.
_EXACT_FLOAT_INT = 2**53


def witness(c: KeyConstraint) -> Any:
    """A value satisfying `c` (None when `c` is empty): the least one when `c` has a least
    element, else a simple one (an integer or a midpoint)."""
    v = _witness(c)
    if c.kind in NUMERIC_KINDS and v is not None:
        shown = canonical_number(c.kind, v)
        return shown if c.contains(shown) else v
    return v


def _witness(c: KeyConstraint) -> Any:
    if c.empty:
        return None
    if c.kind == ANY:
        return 0
    if c.points is not None:
        return min(c.points)
    if c.kind == STR:
        return c.lo
    if c.kind == INT:
        if c.lo is not None:
            return c.lo
        if c.hi is not None:
            return c.hi
        return next(v for i in range(len(c.excl) + 1) for v in (i, -i) if v not in c.excl)
    return _real_witness(c)


def _real_witness(c: KeyConstraint) -> Any:
    lo, hi, ex = c.lo, c.hi, c.excl
    if lo is not None and c.lo_incl:
        return lo
    if hi is not None and c.hi_incl:
        return hi
    n = len(ex) + 1
    if lo is None and hi is None:
        cands: list[Any] = [float(i) for i in range(n)]
        anchor, step = 0.0, math.inf
    elif lo is None:
        cands, anchor, step = [hi - 1 - i for i in range(n)], _float(hi), -math.inf
    elif hi is None:
        cands, anchor, step = [lo + 1 + i for i in range(n)], _float(lo), math.inf
    else:
        # n distinct points inside (lo, hi) when the interval is not tiny.
        cands, anchor, step = [lo + (hi - lo) * (i + 1) / (n + 1) for i in range(n)], _float(lo), math.inf
    # Near huge or tiny magnitudes the arithmetic above may round onto an end: fall back on the
    # floats right next to the anchor, n of which cannot all be excluded.
    for _ in range(n):
        anchor = math.nextafter(anchor, step)
        cands.append(anchor)
    for v in cands:
        if c.contains(v):
            return _tidy(v)
    # Only when (lo, hi) holds no float at all (two adjacent floats): no exact witness exists.
    return cands[0]


def _float(v: Any) -> float:
    try:
        return float(v)
    except OverflowError:  # an int beyond the float range
        return math.copysign(sys.float_info.max, v)


def _tidy(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) <= _EXACT_FLOAT_INT else v


def canonical_number(kind: str, v: Any) -> Any:
    """How a number of this kind is shown: floats for float keys, ints when integral otherwise."""
    if kind == FLOAT:
        return float(v) if is_int_value(v) and abs(v) <= _EXACT_FLOAT_INT else v
    if kind == NUM:
        return _tidy(v)
    return v


def to_atoms(c: KeyConstraint) -> list[tuple[str, Any]]:
    """Canonical `(operator, literal)` list: at most one atom per operator, sorted lists."""
    if c.empty:
        return [("in", [])]
    num = c.kind in NUMERIC_KINDS

    def lit(v: Any) -> Any:
        return canonical_number(c.kind, v) if num else v

    if c.points is not None:
        pts = sorted(c.points)
        return [("=", lit(pts[0]))] if len(pts) == 1 else [("in", [lit(p) for p in pts])]
    out: list[tuple[str, Any]] = []
    if c.kind == STR:
        if c.lo:
            out.append((">", c.lo[:-1]) if c.lo.endswith("\0") else (">=", c.lo))
        if c.hi is not None:
            out.append(("<=", c.hi[:-1]) if c.hi.endswith("\0") else ("<", c.hi))
    else:
        if c.lo is not None:
            out.append((">=" if c.lo_incl else ">", lit(c.lo)))
        if c.hi is not None:
            out.append(("<=" if c.hi_incl else "<", lit(c.hi)))
    if len(c.excl) == 1:
        out.append(("!=", lit(next(iter(c.excl)))))
    elif c.excl:
        out.append(("nin", [lit(e) for e in sorted(c.excl)]))
    if not out and c.kind == STR and c.lo == "":
        out.append((">=", ""))  # every string (but only strings, where no schema says so)
    elif not out:
        out.append(("nin", []))  # the whole domain: the key only has to be present
    return out


def complement(c: KeyConstraint) -> list[KeyConstraint]:
    """Disjoint constraints of the same kind whose union is the kind's values outside `c`
    (used by the exact subset-of-union check). Values of other types are not included."""
    if c.empty:
        return [full(c.kind)]
    if c.kind == ANY:
        return []
    if c.points is not None:
        return [build(c.kind, [("nin", c.points)])]
    atoms: list[tuple[str, Any]] = []
    if c.lo is not None and c.lo != "":
        atoms.append(("<" if c.lo_incl else "<=", c.lo))
    if c.hi is not None:
        atoms.append((">" if c.hi_incl else ">=", c.hi))
    pieces = [build(c.kind, [atom]) for atom in atoms]
    pieces.extend(KeyConstraint(c.kind, points=frozenset((e,))) for e in sorted(c.excl))
    return [p for p in pieces if not p.empty]
