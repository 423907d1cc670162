"""Per-key normal form of metaquery constraints.

A metaquery is a conjunction of per-key constraints; this module holds the algebra of one key.
Every constraint is reduced to a canonical `KeyConstraint`, so that two constraints describing
the same set of values compare equal, emptiness is decided by construction and intersection,
subset and witness are exact:

- a finite set of values is held as `points` (bounds and exclusions folded in);
- otherwise an interval `lo .. hi` (each end open or closed, or absent) minus the finite set
  `excl` of excluded values lying strictly inside it.

Domains ("kinds"): `int` (Python ints, bool excluded), `float` and `num` (the reals: int or float
values; `float` comes from a schema, `num` from literals of a schema-less query), `str` (ordered
by code point) and `any` (a key constrained without any literal: present with a str or number).

Exactness rests on three facts: integer bounds are closed (`> 2.5` is `>= 3`); a string has an
immediate successor `s + "\\0"` (nothing lies strictly between), so string bounds are kept as
`[lo, hi)` and `[s, s + "\\0" * k)` is recognised as the finite set `{s, s+"\\0", ...}`; and an
interval of reals with distinct ends is infinite, so finitely many exclusions never empty it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

INT, FLOAT, NUM, STR, ANY = "int", "float", "num", "str", "any"
NUMERIC_KINDS = frozenset({INT, FLOAT, NUM})
REAL_KINDS = frozenset({FLOAT, NUM})


def kind_class(kind: str) -> str:
    """The type class compared by equality: the int/float distinction of a numeric key is not."""
    return NUM if kind in NUMERIC_KINDS else kind


def meet_kinds(a: str, b: str) -> str | None:
    """The kind of values both kinds accept, or None when they share none (str vs number)."""
    if a == b:
        return a
    if a == ANY:
        return b
    if b == ANY:
        return a
    if a in NUMERIC_KINDS and b in NUMERIC_KINDS:
        return INT if INT in (a, b) else FLOAT
    return None


def is_int_value(v: object) -> bool:
    return type(v) is int or (isinstance(v, int) and not isinstance(v, bool))


def is_real_value(v: object) -> bool:
    # NaN is a float but equals nothing, not even itself: it never satisfies a constraint.
    return is_int_value(v) or (isinstance(v, float) and v == v)


def accepts_type(kind: str, v: object) -> bool:
    if kind == STR:
        return isinstance(v, str)
    if kind == INT:
        return is_int_value(v)
    if kind in REAL_KINDS:
        return is_real_value(v)
    return isinstance(v, str) or is_real_value(v)


@dataclass(frozen=True, slots=True, eq=False)
class KeyConstraint:
    """Canonical constraint on one key; build it with `build()` or `intersect()`."""

    kind: str
    empty: bool = False
    points: frozenset[Any] | None = None
    lo: Any = None
    lo_incl: bool = True
    hi: Any = None
    hi_incl: bool = True
    excl: frozenset[Any] = frozenset()

    def signature(self) -> tuple[Any, ...]:
        if self.empty:
            return (kind_class(self.kind), True)
        return (kind_class(self.kind), False, self.points, self.lo, self.lo_incl, self.hi, self.hi_incl, self.excl)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyConstraint) and self.signature() == other.signature()

    def __hash__(self) -> int:
        return hash(self.signature())

    @property
    def is_full(self) -> bool:
        """True when every value of the kind satisfies the constraint."""
        return (
            not self.empty
            and self.points is None
            and self.hi is None
            and not self.excl
            and (self.lo is None or self.lo == "")
        )

    def contains(self, v: object) -> bool:
        if self.empty or not accepts_type(self.kind, v):
            return False
        if self.points is not None:
            return v in self.points
        lo, hi = self.lo, self.hi
        if lo is not None and not (v >= lo if self.lo_incl else v > lo):  # type: ignore[operator]
            return False
        if hi is not None and not (v <= hi if self.hi_incl else v < hi):  # type: ignore[operator]
            return False
        return v not in self.excl


def empty(kind: str) -> KeyConstraint:
    return KeyConstraint(kind, empty=True)


def full(kind: str) -> KeyConstraint:
    """Every value of the kind (the key only has to be present)."""
    return build(kind, ())


class _Acc:
    """Accumulates raw conditions (tightest bounds, intersected in-sets, all exclusions)."""

    __slots__ = ("excl", "hi", "hi_incl", "lo", "lo_incl", "points")

    def __init__(self) -> None:
        self.points: set[Any] | None = None
        self.lo: Any = None
        self.lo_incl = True
        self.hi: Any = None
        self.hi_incl = True
        self.excl: set[Any] = set()

    def restrict(self, values: Iterable[Any]) -> None:
        vals = set(values)
        self.points = vals if self.points is None else self.points & vals

    def lower(self, v: Any, incl: bool) -> None:
        if self.lo is None or v > self.lo or (v == self.lo and not incl):
            self.lo, self.lo_incl = v, incl

    def upper(self, v: Any, incl: bool) -> None:
        if self.hi is None or v < self.hi or (v == self.hi and not incl):
            self.hi, self.hi_incl = v, incl

    def add(self, op: str, v: Any) -> None:
        if op == "=":
            self.restrict((v,))
        elif op == "in":
            self.restrict(v)
        elif op == "!=":
            self.excl.add(v)
        elif op == "nin":
            self.excl.update(v)
        elif op in (">", ">="):
            self.lower(v, op == ">=")
        elif op in ("<", "<="):
            self.upper(v, op == "<=")
        else:  # callers validate operators; this guards the invariant
            raise ValueError(f"unknown operator {op!r}")

    def absorb(self, c: KeyConstraint) -> None:
        if c.points is not None:
            self.restrict(c.points)
        if c.lo is not None:
            self.lower(c.lo, c.lo_incl)
        if c.hi is not None:
            self.upper(c.hi, c.hi_incl)
        self.excl.update(c.excl)

    def normalize(self, kind: str) -> KeyConstraint:
        if kind == ANY:
            # An `any` key carries no literal; only an empty in-list can restrict it.
            return empty(ANY) if self.points is not None and not self.points else KeyConstraint(ANY)
        if kind == INT:
            return _norm_int(self)
        if kind == STR:
            return _norm_str(self)
        return _norm_real(kind, self)


def _in_bounds(a: _Acc, v: Any) -> bool:
    if a.lo is not None and not (v >= a.lo if a.lo_incl else v > a.lo):
        return False
    return a.hi is None or (v <= a.hi if a.hi_incl else v < a.hi)


def _integral(v: Any) -> bool:
    return is_int_value(v) or (isinstance(v, float) and v.is_integer())


def _norm_int(a: _Acc) -> KeyConstraint:
    # Closed integer bounds: `> 2.5` and `>= 3` and `> 2` all become `>= 3`.
    lo = None if a.lo is None else (math.ceil(a.lo) if a.lo_incl else math.floor(a.lo) + 1)
    hi = None if a.hi is None else (math.floor(a.hi) if a.hi_incl else math.ceil(a.hi) - 1)
    ex = {int(e) for e in a.excl if _integral(e)}
    inside = _Acc()
    inside.lo, inside.hi = lo, hi
    if a.points is not None:
        return int_points({int(p) for p in a.points if _integral(p) and _in_bounds(inside, p)} - ex)
    while lo is not None and lo in ex:  # each step consumes one exclusion: bounded
        lo += 1
    while hi is not None and hi in ex:
        hi -= 1
    if lo is not None and hi is not None:
        if lo > hi:
            return empty(INT)
        holes = {e for e in ex if lo < e < hi}
        n = hi - lo + 1 - len(holes)
        if n <= 2 or n <= len(holes):
            return int_points(set(range(lo, hi + 1)) - holes)
        return KeyConstraint(INT, lo=lo, hi=hi, excl=frozenset(holes))
    inside.lo, inside.hi = lo, hi
    return KeyConstraint(INT, lo=lo, hi=hi, excl=frozenset(e for e in ex if _in_bounds(inside, e)))


def int_points(pts: set[int]) -> KeyConstraint:
    """Canonical form of a finite set of integers: explicit points when they are few or sparse,
    else the closed range minus its holes (so `in [5,6,7,8]` equals `>= 5 and <= 8`)."""
    if not pts:
        return empty(INT)
    lo, hi, n = min(pts), max(pts), len(pts)
    if n <= 2 or n <= hi - lo + 1 - n:
        return KeyConstraint(INT, points=frozenset(pts))
    return KeyConstraint(INT, lo=lo, hi=hi, excl=frozenset(set(range(lo, hi + 1)) - pts))


def _norm_real(kind: str, a: _Acc) -> KeyConstraint:
    if a.points is not None:
        pts = frozenset(p for p in a.points if _in_bounds(a, p) and p not in a.excl)
        return KeyConstraint(kind, points=pts) if pts else empty(kind)
    lo, lo_incl, hi, hi_incl = a.lo, a.lo_incl, a.hi, a.hi_incl
    if lo is not None and hi is not None:
        if lo > hi or (lo == hi and not (lo_incl and hi_incl)):
            return empty(kind)
        if lo == hi:
            return empty(kind) if lo in a.excl else KeyConstraint(kind, points=frozenset((lo,)))
    # An excluded closed end just opens that end; the interval stays infinite.
    lo_incl = lo is None or (lo_incl and lo not in a.excl)
    hi_incl = hi is None or (hi_incl and hi not in a.excl)
    ex = frozenset(e for e in a.excl if (lo is None or e > lo) and (hi is None or e < hi))
    return KeyConstraint(kind, lo=lo, lo_incl=lo_incl, hi=hi, hi_incl=hi_incl, excl=ex)


def _norm_str(a: _Acc) -> KeyConstraint:
    # Strings are kept as [lo, hi): `> s` is `>= s+"\0"` and `<= s` is `< s+"\0"`.
    lo: str = "" if a.lo is None else (a.lo if a.lo_incl else a.lo + "\0")
    hi: str | None = None if a.hi is None else (a.hi + "\0" if a.hi_incl else a.hi)
    ex = a.excl
    if a.points is not None:
        pts = frozenset(p for p in a.points if p >= lo and (hi is None or p < hi) and p not in ex)
        return KeyConstraint(STR, points=pts) if pts else empty(STR)
    while lo in ex:  # bounded by the number of exclusions
        lo += "\0"
    if hi is not None:
        while hi.endswith("\0") and hi[:-1] in ex and hi[:-1] >= lo:
            hi = hi[:-1]
        if hi <= lo:
            return empty(STR)
        rest = hi[len(lo) :] if hi.startswith(lo) else None
        if rest is not None and not rest.strip("\0"):
            # [s, s + "\0"*k) holds exactly s, s+"\0", ..., s+"\0"*(k-1).
            pts = frozenset(lo + "\0" * j for j in range(len(rest))) - ex
            return KeyConstraint(STR, points=pts)
    exs = frozenset(e for e in ex if e > lo and (hi is None or e < hi))
    return KeyConstraint(STR, lo=lo, lo_incl=True, hi=hi, hi_incl=False, excl=exs)


def build(kind: str, atoms: Iterable[tuple[str, Any]]) -> KeyConstraint:
    """Normal form of the conjunction of `(operator, literal)` atoms over one kind."""
    acc = _Acc()
    for op, value in atoms:
        acc.add(op, value)
    return acc.normalize(kind)


def intersect(a: KeyConstraint, b: KeyConstraint) -> KeyConstraint:
    kind = meet_kinds(a.kind, b.kind)
    if kind is None:
        return empty(a.kind)
    if a.empty or b.empty:
        return empty(kind)
    if a.kind == ANY:
        return b
    if b.kind == ANY:
        return a
    acc = _Acc()
    acc.absorb(a)
    acc.absorb(b)
    return acc.normalize(kind)


def _lower_within(a: KeyConstraint, b: KeyConstraint) -> bool:
    if b.lo is None or b.lo == "":
        return True
    if a.lo is None:
        return False
    return bool(a.lo > b.lo or (a.lo == b.lo and (b.lo_incl or not a.lo_incl)))


def _upper_within(a: KeyConstraint, b: KeyConstraint) -> bool:
    if b.hi is None:
        return True
    if a.hi is None:
        return False
    return bool(a.hi < b.hi or (a.hi == b.hi and (b.hi_incl or not a.hi_incl)))


def is_subset(a: KeyConstraint, b: KeyConstraint) -> bool:
    """Every value satisfying `a` satisfies `b`."""
    if a.empty:
        return True
    if b.empty:
        return False
    if b.kind == ANY:
        return True
    if a.kind == ANY or kind_class(a.kind) != kind_class(b.kind):
        return False
    if b.kind == INT and a.kind != INT:
        return False  # a non-empty real set holds float values, which an int key refuses
    if a.kind == INT and b.kind != INT:
        acc = _Acc()
        acc.absorb(b)
        b = acc.normalize(INT)
        if b.empty:
            return False
    if a.points is not None:
        return all(b.contains(p) for p in a.points)
    if b.points is not None:
        # `a` is an interval: infinite unless it is an int range with both ends.
        if a.kind != INT or a.lo is None or a.hi is None or a.hi - a.lo + 1 - len(a.excl) > len(b.points):
            return False
        return all(v in b.points for v in range(a.lo, a.hi + 1) if v not in a.excl)
    if not (_lower_within(a, b) and _upper_within(a, b)):
        return False
    return not any(a.contains(e) for e in b.excl)
