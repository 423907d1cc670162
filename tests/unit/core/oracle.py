"""Brute-force reference for metaquery tests: an independent evaluator of the dict form over
finite universes rich enough that every cell of the value line has a representative."""

from __future__ import annotations

import itertools
import math
from typing import Any

from hypothesis import strategies as st
from metaprod.core.metaquery import Schema

SCHEMA = Schema({"i": "int", "f": "float", "s": "str"})
KEYS = ("i", "f", "s")

INT_LITS = list(range(-3, 4))
INT_BOUND_LITS = [-0.5, 1.5, 2.5]  # float bounds an int field accepts for < <= > >=
NUM_LITS = [-1, -0.5, 0, 0.5, 1, 1.5, 2]
STR_LITS = ["", "\0", "a", "a\0", "ab", "b", "b\0", "é"]


def _midpoints(xs: list[float]) -> list[float]:
    xs = sorted(set(xs))
    return [(a + b) / 2 for a, b in itertools.pairwise(xs)] + [xs[0] - 1, xs[-1] + 1]


# Values of the right type, one in every cell (points, gaps between literals, beyond them).
INT_U: list[Any] = list(range(-6, 7))
NUM_U: list[Any] = sorted({float(x) for x in NUM_LITS} | set(_midpoints([float(x) for x in NUM_LITS])))
NUM_U += [int(x) for x in NUM_U if float(x).is_integer()]  # int values are numbers too
STR_U: list[Any] = sorted(set(STR_LITS) | {s + "\0" for s in STR_LITS} | {"zz"})
UNIVERSE = {
    "i": [*INT_U, 1.0, 2.0, "1", None, True, math.nan],
    "f": [*NUM_U, "0.5", None, True, math.nan],
    "s": [*STR_U, 0, 1.5, None, True],
}
KIND = {"i": "int", "f": "float", "s": "str"}


def type_ok(kind: str, v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if kind == "int":
        return isinstance(v, int)
    if kind in ("float", "num"):
        return isinstance(v, int) or (isinstance(v, float) and not math.isnan(v))
    if kind == "str":
        return isinstance(v, str)
    return isinstance(v, (int, str)) or (isinstance(v, float) and not math.isnan(v))


def atoms(spec: Any) -> list[tuple[str, Any]]:
    if isinstance(spec, dict):
        return list(spec.items())
    if isinstance(spec, list):
        return [("in", spec)]
    return [("=", spec)]


def atom_ok(op: str, lit: Any, v: Any) -> bool:
    if op == "=":
        return bool(v == lit)
    if op == "!=":
        return bool(v != lit)
    if op == "<":
        return bool(v < lit)
    if op == "<=":
        return bool(v <= lit)
    if op == ">":
        return bool(v > lit)
    if op == ">=":
        return bool(v >= lit)
    if op == "in":
        return any(v == x for x in lit)
    assert op == "nin"
    return all(v != x for x in lit)


def key_kind(key: str, spec: Any, schema: Schema | None) -> str:
    if schema is not None:
        return schema[key]
    lits = [x for op, lit in atoms(spec) for x in (lit if op in ("in", "nin") else [lit])]
    if not lits:
        return "any"
    return "str" if isinstance(lits[0], str) else "num"


def value_ok(key: str, spec: Any, v: Any, schema: Schema | None) -> bool:
    return type_ok(key_kind(key, spec, schema), v) and all(atom_ok(op, lit, v) for op, lit in atoms(spec))


def oracle_match(d: dict[str, Any], md: dict[str, Any], schema: Schema | None) -> bool:
    return all(k in md and value_ok(k, spec, md[k], schema) for k, spec in d.items())


def value_set(d: dict[str, Any], key: str, schema: Schema | None) -> frozenset[int]:
    """Indices into UNIVERSE[key] of the values satisfying d's conditions on key (all if absent)."""
    u = UNIVERSE[key]
    if key not in d:
        return frozenset(range(len(u)))
    return frozenset(j for j, v in enumerate(u) if value_ok(key, d[key], v, schema))


def oracle_empty(d: dict[str, Any], schema: Schema | None) -> bool:
    return any(not value_set(d, k, schema) for k in d)


def oracle_intersect_empty(a: dict[str, Any], b: dict[str, Any], schema: Schema | None) -> bool:
    return any(not (value_set(a, k, schema) & value_set(b, k, schema)) for k in set(a) | set(b))


def oracle_subset(a: dict[str, Any], b: dict[str, Any], schema: Schema | None) -> bool:
    if oracle_empty(a, schema):
        return True
    return all(k in a and value_set(a, k, schema) <= value_set(b, k, schema) for k in b)


# -- strategies -------------------------------------------------------------------------------
_SCALAR_OPS = ("=", "!=", "<", "<=", ">", ">=")
_CMP_OPS = ("<", "<=", ">", ">=")


def key_spec(lits: list[Any], extra_bounds: list[Any] | None = None) -> st.SearchStrategy[Any]:
    lit = st.sampled_from(lits)
    bound = st.sampled_from(lits + (extra_bounds or []))
    atom = st.one_of(
        st.tuples(st.sampled_from(("=", "!=")), lit),
        st.tuples(st.sampled_from(_CMP_OPS), bound),
        st.tuples(st.sampled_from(("in", "nin")), st.lists(lit, max_size=4)),
    )
    return st.one_of(
        lit,
        st.lists(lit, max_size=4),
        st.just({}),
        st.lists(atom, min_size=1, max_size=4).map(lambda xs: dict(xs)),
    )


typed_spec = {
    "i": key_spec(INT_LITS, INT_BOUND_LITS),
    "f": key_spec(NUM_LITS),
    "s": key_spec(STR_LITS),
}


@st.composite
def typed_queries(draw: st.DrawFn) -> dict[str, Any]:
    """Dict-form queries over the typed schema SCHEMA."""
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=3))
    return {k: draw(typed_spec[k]) for k in keys}


@st.composite
def schemaless_queries(draw: st.DrawFn) -> dict[str, Any]:
    """Dict-form queries without schema: `f` takes numbers, `s` strings."""
    keys = draw(st.lists(st.sampled_from(("f", "s")), unique=True, max_size=2))
    return {k: draw(typed_spec[k]) for k in keys}


@st.composite
def files(draw: st.DrawFn, keys: tuple[str, ...] = KEYS) -> dict[str, Any]:
    md: dict[str, Any] = {}
    for k in keys:
        if draw(st.booleans()) or draw(st.booleans()):
            md[k] = draw(st.sampled_from(UNIVERSE[k]))
    return md
