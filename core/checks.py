"""Compiled membership tests for `KeyConstraint`s.

`KeyConstraint.contains` is general and slow; matching millions of files calls for one small
closure per constraint, specialised on its shape, that takes the raw metadata value (None when
the key is missing, which no constraint accepts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from metaprod.core.constraints import ANY, INT, REAL_KINDS, STR, KeyConstraint

Check = Callable[[Any], bool]


def _never(v: Any) -> bool:
    return False


def _type_check(kind: str) -> Check:
    if kind == STR:
        return lambda v: type(v) is str or isinstance(v, str)
    if kind == INT:
        return lambda v: type(v) is int or (isinstance(v, int) and not isinstance(v, bool))
    if kind in REAL_KINDS:
        # `v == v` drops NaN; bool is an int subclass but never a number here.
        return lambda v: type(v) is int or (type(v) is float and v == v) or _other_real(v)
    return lambda v: type(v) is str or type(v) is int or (type(v) is float and v == v) or _other_any(v)


def _other_real(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and v == v)


def _other_any(v: Any) -> bool:
    return isinstance(v, str) or _other_real(v)


def compile_check(c: KeyConstraint) -> Check:
    """A predicate on a metadata value equivalent to `c.contains`, built for speed."""
    if c.empty:
        return _never
    typed = _type_check(c.kind)
    if c.kind == ANY:
        return typed
    if c.points is not None:
        pts = c.points
        # Type first: a list value is unhashable, and True == 1 must not hit the int 1.
        return lambda v: typed(v) and v in pts
    lo, hi, ex = c.lo, c.hi, c.excl
    if c.kind == STR and lo == "":
        lo = None
    lo_incl, hi_incl = c.lo_incl, c.hi_incl
    if lo is None and hi is None:
        if ex:
            return lambda v: typed(v) and v not in ex
        return typed
    if lo is not None and hi is not None:
        if lo_incl and hi_incl:
            base: Check = lambda v: typed(v) and lo <= v <= hi  # noqa: E731
        elif lo_incl:
            base = lambda v: typed(v) and lo <= v < hi  # noqa: E731
        elif hi_incl:
            base = lambda v: typed(v) and lo < v <= hi  # noqa: E731
        else:
            base = lambda v: typed(v) and lo < v < hi  # noqa: E731
    elif lo is not None:
        base = (lambda v: typed(v) and v >= lo) if lo_incl else (lambda v: typed(v) and v > lo)
    else:
        base = (lambda v: typed(v) and v <= hi) if hi_incl else (lambda v: typed(v) and v < hi)
    if not ex:
        return base
    return lambda v: base(v) and v not in ex
