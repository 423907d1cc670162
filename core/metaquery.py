"""Metaqueries: conjunctions of per-key constraints on file metadata (the public contract).

    >>> q = MetaQuery.from_dict({"datatype": "raw", "run": {">=": 100, "<": 200}})
    >>> q.matches({"datatype": "raw", "run": 150})
    True
    >>> MetaQuery.from_dict({"run": [1, 2]}).intersect(MetaQuery.from_dict({"run": [2, 3]}))
    MetaQuery({'run': 2})

Semantics (docs/metaqueries.md): a bare value means `=`, a bare list `in`; `{}` matches
every file; a constrained key must be present with a value of the key's type (bool is never a
number, NaN never matches) that satisfies every condition, whatever the operator (`!=` and `nin`
included). Field types come from the `Schema`; without one, a key's literals decide: numbers
(the reals, int and float values alike) or strings, mixing both is an error. A key given no
literal at all (`{"run": {}}`, `{"run": {"nin": []}}`) only demands that the key be present.

Declared-type rules for literals: a str literal for an int/float field, or a number for a str
field, is a ValueError. For an int field a float literal is a numeric bound for `< <= > >=`
(`run > 2.5` is `run >= 3`); with `= != in nin` an integral float (`5.0`) is the integer 5 and any
other float (`run = 2.5`) is a ValueError, being certainly a mistake.

Equality and hash compare normal forms, so queries describing the same set of values are equal
(`{"run": {"in": [5, 6, 7]}}` == `{"run": {">=": 5, "<=": 7}}` for an int field), every
unsatisfiable query equals every other, and the int/float distinction of a numeric key is not
compared (so that a query equals its schema-less compact form). `q.to_dict()` is canonical:
equal queries of the same types give the same dict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metaprod.core import constraint_views as kv
from metaprod.core import constraints as kc
from metaprod.core import querystring
from metaprod.core.checks import Check, compile_check
from metaprod.core.constraints import KeyConstraint
from metaprod.core.errors import InvalidQuery
from metaprod.core.schema import Schema

__all__ = ["OPERATORS", "IntersectionReport", "MetaQuery", "Schema"]

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "nin")
_LIST_OPS = ("in", "nin")
_EQUALITY_OPS = ("=", "!=", "in", "nin")
_LISTS = (list, tuple, set, frozenset)
Atom = tuple[str, Any]  # (operator, literal or tuple of literals)


def _check_literal(key: str, op: str, v: Any, ftype: str | None) -> Any:
    where = f"key {key!r}, operator {op!r}"
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise InvalidQuery(f"{where}: literal {v!r} must be an int, a float or a str")
    if isinstance(v, float) and not math.isfinite(v):
        raise InvalidQuery(f"{where}: literal {v!r} must be a finite number")
    if ftype == "str" and not isinstance(v, str):
        raise InvalidQuery(f"{where}: literal {v!r} is a number, the field is str")
    if ftype in ("int", "float") and isinstance(v, str):
        raise InvalidQuery(f"{where}: literal {v!r} is a string, the field is {ftype}")
    if ftype == "int" and isinstance(v, float) and op in _EQUALITY_OPS:
        if not v.is_integer():
            raise InvalidQuery(f"{where}: literal {v!r} is not an integer, the field is int")
        return int(v)
    return v


def _key_atoms(key: Any, value: Any) -> list[tuple[Any, Any]]:
    """The (operator, literal) pairs of one entry of the dict form."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, _LISTS):
        return [("in", value)]
    return [("=", value)]


def _infer_kind(key: str, atoms: list[Atom]) -> str:
    lits = [x for op, v in atoms for x in (v if op in _LIST_OPS else (v,))]
    has_str = any(isinstance(x, str) for x in lits)
    if has_str and len(lits) > sum(isinstance(x, str) for x in lits):
        ops = sorted({op for op, _ in atoms})
        raise InvalidQuery(f"key {key!r}, operator(s) {', '.join(ops)}: mixes string and number literals")
    return kc.STR if has_str else kc.NUM if lits else kc.ANY


def _as_schema(schema: Schema | Mapping[str, Any] | None) -> Schema | None:
    # A plain {"run": "int"} mapping is accepted wherever a Schema is.
    return schema if schema is None or isinstance(schema, Schema) else Schema(schema)


def _merge_schemas(a: Schema | None, b: Schema | None) -> Schema | None:
    if a is None or a == b:
        return a if a is not None else b
    if b is None:
        return a
    return Schema({**b.to_dict(), **a.to_dict()})  # our declarations win


@dataclass(frozen=True)
class IntersectionReport:
    """Why two queries cannot hold for one file, or an example file for which both hold."""

    empty: bool
    key: str | None
    left_constraints: tuple[Atom, ...]
    right_constraints: tuple[Atom, ...]
    message: str
    witness: dict[str, Any] | None
    intersection: MetaQuery | None


class MetaQuery:
    """A conjunction of per-key constraints; build with `from_dict`, `from_string` or `parse`."""

    __slots__ = ("_atoms", "_checks", "_hash", "_norm", "_schema")

    def __init__(self, query: Mapping[str, Any] | str | None = None, schema: Schema | None = None) -> None:
        """`MetaQuery(query, schema)` is `MetaQuery.parse`: the dict or the compact string form."""
        built = MetaQuery.parse({} if query is None else query, schema)
        self._norm: dict[str, KeyConstraint] = built._norm
        self._atoms: dict[str, tuple[Atom, ...]] = built._atoms
        self._schema: Schema | None = built._schema
        self._checks: tuple[tuple[str, Check], ...] | None = None
        self._hash: int | None = None

    @classmethod
    def _make(
        cls, norm: dict[str, KeyConstraint], atoms: dict[str, tuple[Atom, ...]], schema: Schema | None
    ) -> MetaQuery:
        self = cls.__new__(cls)
        self._norm = dict(sorted(norm.items()))
        self._atoms = atoms
        self._schema = schema
        self._checks = None
        self._hash = None
        return self

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_atoms(
        cls, atoms: Iterable[tuple[Any, Any, Any]], schema: Schema | None = None, *, strict_fields: bool = True
    ) -> MetaQuery:
        """Build from `(key, operator, literal)` triples (a repeated key adds conditions).
        With `strict_fields=False` keys missing from the schema get their kind from literals."""
        schema = _as_schema(schema)
        per_key: dict[str, list[Atom]] = {}
        for key, op, value in atoms:
            if not isinstance(key, str) or not key:
                raise InvalidQuery(f"metaquery key {key!r} (operator {op!r}): keys must be non-empty strings")
            if not isinstance(op, str) or op not in OPERATORS:
                raise InvalidQuery(f"key {key!r}: unknown operator {op!r} (expected one of {' '.join(OPERATORS)})")
            ftype = schema.field_type(key) if schema is not None else None
            if schema is not None and ftype is None and strict_fields:
                raise InvalidQuery(f"key {key!r}, operator {op!r}: field {key!r} is not declared in the schema")
            if op in _LIST_OPS:
                if not isinstance(value, _LISTS):
                    raise InvalidQuery(f"key {key!r}, operator {op!r}: takes a list, not {value!r}")
                lit: Any = tuple(_check_literal(key, op, x, ftype) for x in value)
            elif isinstance(value, (*_LISTS, Mapping)):
                raise InvalidQuery(f"key {key!r}, operator {op!r}: takes a single value, not {value!r}")
            else:
                lit = _check_literal(key, op, value, ftype)
            per_key.setdefault(key, []).append((op, lit))
        norm: dict[str, KeyConstraint] = {}
        for key, key_atoms in per_key.items():
            ftype = schema.field_type(key) if schema is not None else None
            kind = ftype if ftype is not None else _infer_kind(key, key_atoms)
            norm[key] = kc.build(kind, key_atoms)
        return cls._make(norm, {k: tuple(v) for k, v in per_key.items()}, schema)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], schema: Schema | None = None, *, strict_fields: bool = True) -> MetaQuery:
        """Parse DIRAC's dict form, e.g. `{"run": {">=": 100, "<": 200}, "site": ["A", "B"]}`.
        `strict_fields=False` lets keys the schema lacks through (kind from their literals)."""
        if not isinstance(d, Mapping):
            raise InvalidQuery(f"a metaquery must be a dict, not {type(d).__name__}: {d!r}")
        schema = _as_schema(schema)
        atoms: list[tuple[Any, Any, Any]] = []
        for key, value in d.items():
            entry = _key_atoms(key, value)
            if not entry:
                if not isinstance(key, str) or not key:
                    raise InvalidQuery(f"metaquery key {key!r} (operator none): keys must be non-empty strings")
                if schema is not None and key not in schema and strict_fields:
                    raise InvalidQuery(f"key {key!r}, operator none: field {key!r} is not declared in the schema")
                # `{"run": {}}`: the key must be present; `nin []` says the same.
                entry = [("nin", ())]
            atoms.extend((key, op, v) for op, v in entry)
        return cls.from_atoms(atoms, schema, strict_fields=strict_fields)

    @classmethod
    def from_string(cls, s: str, schema: Schema | None = None, *, strict_fields: bool = True) -> MetaQuery:
        """Parse the compact form, e.g. `datatype=raw run>=100 run<200 site in CERN,IN2P3`."""
        schema = _as_schema(schema)
        return cls.from_atoms(querystring.parse(s, schema), schema, strict_fields=strict_fields)

    @classmethod
    def parse(
        cls, query: MetaQuery | Mapping[str, Any] | str, schema: Schema | None = None, *, strict_fields: bool = True
    ) -> MetaQuery:
        """Accept any user form: a MetaQuery, the dict form, or the compact string form."""
        if isinstance(query, MetaQuery):
            return query
        if isinstance(query, str):
            return cls.from_string(query, schema, strict_fields=strict_fields)
        return cls.from_dict(query, schema, strict_fields=strict_fields)

    # -- inspection ---------------------------------------------------------------------------
    @property
    def schema(self) -> Schema | None:
        return self._schema

    def keys(self) -> tuple[str, ...]:
        return tuple(self._norm)

    def constraint(self, key: str) -> KeyConstraint | None:
        """The normal form of the condition on `key` (None when the key is unconstrained)."""
        return self._norm.get(key)

    def constraints(self) -> Mapping[str, KeyConstraint]:
        return dict(self._norm)

    def atoms(self, key: str) -> tuple[Atom, ...]:
        """The conditions on `key` as written (for messages)."""
        return self._atoms.get(key, ())

    def is_empty(self) -> bool:
        """True when no file can match (the query is unsatisfiable)."""
        return any(c.empty for c in self._norm.values())

    # -- the algebra --------------------------------------------------------------------------
    def matches(self, metadata: Mapping[str, Any]) -> bool:
        checks = self._checks
        if checks is None:
            checks = self._checks = tuple((k, compile_check(c)) for k, c in self._norm.items())
        get = metadata.get
        # A plain loop: all() over a generator is measurably slower on this hot path.
        for key, check in checks:  # noqa: SIM110
            if not check(get(key)):  # a missing key gives None, which no check accepts
                return False
        return True

    def _intersection(self, other: MetaQuery) -> MetaQuery:
        norm = dict(self._norm)
        atoms = dict(self._atoms)
        for key, c in other._norm.items():
            norm[key] = kc.intersect(norm[key], c) if key in norm else c
            atoms[key] = atoms.get(key, ()) + other._atoms.get(key, ())
        return MetaQuery._make(norm, atoms, _merge_schemas(self._schema, other._schema))

    def intersect(self, other: MetaQuery) -> MetaQuery | None:
        """The query of the files matching both, or None when no file can match both."""
        result = self._intersection(other)
        return None if result.is_empty() else result

    def is_subset_of(self, other: MetaQuery) -> bool:
        """True when every file matching this query matches `other`."""
        if self.is_empty():
            return True
        for key, c in other._norm.items():
            mine = self._norm.get(key)
            if mine is None or not kc.is_subset(mine, c):
                return False  # (a key only `other` constrains may be missing from our files)
        return True

    def witness(self) -> dict[str, Any] | None:
        """An example metadata dict matching this query, or None when it is unsatisfiable."""
        if self.is_empty():
            return None
        return {key: kv.witness(c) for key, c in self._norm.items()}

    def explain_intersection(self, other: MetaQuery) -> IntersectionReport:
        """Whether both queries can hold for one file: a witness, or the key and clashing conditions."""
        inter = self._intersection(other)
        if not inter.is_empty():
            w = inter.witness()
            msg = f"the queries intersect, e.g. {w!r}"
            return IntersectionReport(False, None, (), (), msg, w, inter)
        key = next(k for k, c in inter._norm.items() if c.empty)
        left, right = self._atoms.get(key, ()), other._atoms.get(key, ())
        lkind = self._norm[key].kind if key in self._norm else kc.ANY
        rkind = other._norm[key].kind if key in other._norm else kc.ANY
        if kc.meet_kinds(lkind, rkind) is None:
            lt, rt = ("a string", "a number") if lkind == kc.STR else ("a number", "a string")
            msg = (
                f"key {key!r}: the left query needs {lt} ({describe(key, left)}), "
                f"the right query needs {rt} ({describe(key, right)})"
            )
            return IntersectionReport(True, key, left, right, msg, None, None)
        # A side that is unsatisfiable by itself is the clearer explanation.
        if key in self._norm and self._norm[key].empty:
            right = ()
        elif key in other._norm and other._norm[key].empty:
            left = ()
        left, right = _minimal_clash(lkind, left, rkind, right)
        if not right:
            msg = f"key {key!r}: the left query alone is unsatisfiable ({describe(key, left)})"
        elif not left:
            msg = f"key {key!r}: the right query alone is unsatisfiable ({describe(key, right)})"
        else:
            msg = f"key {key!r}: {describe(key, left)} (left) and {describe(key, right)} (right) cannot both hold"
        return IntersectionReport(True, key, left, right, msg, None, None)

    # -- output forms -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Canonical dict form: `from_dict(q.to_dict(), schema) == q`."""
        out: dict[str, Any] = {}
        for key, c in self._norm.items():
            atoms = kv.to_atoms(c)
            out[key] = atoms[0][1] if len(atoms) == 1 and atoms[0][0] == "=" else dict(atoms)
        return out

    def to_string(self) -> str:
        """Canonical compact form: `from_string(q.to_string()) == q`."""
        return " ".join(
            querystring.format_condition(key, op, v) for key, c in self._norm.items() for op, v in kv.to_atoms(c)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetaQuery):
            return NotImplemented
        if self.is_empty() or other.is_empty():
            return self.is_empty() and other.is_empty()
        return self._norm == other._norm

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(("empty",)) if self.is_empty() else hash(frozenset(self._norm.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"MetaQuery({self.to_dict()!r})"

    def __str__(self) -> str:
        return self.to_string()


def describe(key: str, atoms: Iterable[Atom]) -> str:
    """Conditions in compact form, e.g. `run>5 and run<3`."""
    return " and ".join(querystring.format_condition(key, op, v) for op, v in atoms) or "no condition"


def _minimal_clash(
    lkind: str, left: tuple[Atom, ...], rkind: str, right: tuple[Atom, ...]
) -> tuple[tuple[Atom, ...], tuple[Atom, ...]]:
    """Drop every condition not needed for the contradiction (a minimal unsatisfiable core)."""
    items = [(True, a) for a in left] + [(False, a) for a in right]

    def unsat(chosen: list[tuple[bool, Atom]]) -> bool:
        lc = kc.build(lkind, [a for side, a in chosen if side])
        rc = kc.build(rkind, [a for side, a in chosen if not side])
        return kc.intersect(lc, rc).empty

    if not unsat(items):  # cannot happen for consistent inputs; keep everything then
        return left, right
    i = 0
    while i < len(items):
        trial = items[:i] + items[i + 1 :]
        if unsat(trial):
            items = trial
        else:
            i += 1
    return tuple(a for side, a in items if side), tuple(a for side, a in items if not side)
