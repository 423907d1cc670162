"""Validation of a production graph (DESIGN.md, "Production validation").

Errors reject the production, warnings are reported and accepted. Codes:

errors    duplicate_name, unknown_parent, cycle, root_without_input, unknown_field,
          unsatisfiable_query (a query no file can match), output_metadata_contradicts_output_query,
          bad_output_metadata (a value that is not an int/float/str of the field's type),
          empty_link (a declared parent whose outputs can never match the child's input);
warnings  undeclared_link (parent.output ∩ child.input non-empty without a declared link),
          coverage_gap (a file can match the child's input but no parent's output).

A transformation's outputs are described by its output query; without one, by its
`outputs[].metadata` maps (each one the pinned values of one kind of output); with neither they
are unknown and the checks that need them are skipped.

coverage_gap is exact (see coverage.py): it is reported only with a witness file that matches
the child's input and no parent's output, and no gap is missed (within the documented limits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metaprod.core.coverage import uncovered_witness
from metaprod.core.metaquery import MetaQuery, describe
from metaprod.core.schema import Schema


@dataclass(frozen=True)
class Finding:
    """One error or warning: a code, the transformations concerned, the key, and a message."""

    code: str
    transformations: tuple[str, ...]
    key: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "transformations": list(self.transformations),
            "key": self.key,
            "message": self.message,
        }


@dataclass
class ValidationResult:
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings do not count)."""
        return not self.errors

    def codes(self) -> set[str]:
        return {f.code for f in (*self.errors, *self.warnings)}

    def extend(self, other: ValidationResult) -> None:
        self.errors.extend(other.errors)
        self.warnings.extend(other.warnings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
        }


@dataclass(frozen=True)
class TransformationNode:
    """What the validator needs to know of one transformation."""

    name: str
    parents: tuple[str, ...] = ()
    input_query: MetaQuery | None = None
    output_query: MetaQuery | None = None
    # The outputs[].metadata maps (a single dict is taken as one map).
    output_metadata: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    tasks: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.output_metadata, Mapping):
            object.__setattr__(self, "output_metadata", (self.output_metadata,))
        else:
            object.__setattr__(self, "output_metadata", tuple(self.output_metadata))
        if isinstance(self.parents, str):
            object.__setattr__(self, "parents", (self.parents,))
        else:
            object.__setattr__(self, "parents", tuple(self.parents))


def _scalar_ok(v: Any, ftype: str | None) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        return False
    if ftype == "str":
        return isinstance(v, str)
    if ftype == "int":
        return isinstance(v, int)
    if ftype == "float":
        return isinstance(v, int | float)
    return True


def outputs_of(node: TransformationNode, schema: Schema | None = None) -> list[MetaQuery] | None:
    """The queries describing what `node` produces (see the module doc), None when unknown."""
    if node.output_query is not None:
        return [node.output_query]
    pinned = []
    for m in node.output_metadata:
        if not all(isinstance(k, str) and k and _scalar_ok(v, None) for k, v in m.items()):
            continue  # reported by the field checks
        try:
            pinned.append(MetaQuery.from_dict(m, schema, strict_fields=False))
        except ValueError:  # a value of the wrong type for its field: reported elsewhere
            pinned.append(MetaQuery.from_dict(m))
    return pinned or None


def validate_graph(nodes: Sequence[TransformationNode], schema: Schema | None = None) -> ValidationResult:
    """Check a production's transformations against each other and the schema."""
    res = ValidationResult()
    err, warn = res.errors.append, res.warnings.append
    by_name: dict[str, TransformationNode] = {}
    for n in nodes:
        if n.name not in by_name:
            by_name[n.name] = n
        elif not any(f.code == "duplicate_name" and f.transformations == (n.name,) for f in res.errors):
            err(Finding("duplicate_name", (n.name,), None, f"transformation name {n.name!r} is used more than once"))
    for n in by_name.values():
        _check_fields(n, schema, err)
        _check_queries(n, err)
    for n in by_name.values():
        for p in n.parents:
            if p not in by_name:
                err(
                    Finding(
                        "unknown_parent",
                        (n.name, p),
                        None,
                        f"transformation {n.name!r} declares parent {p!r}, which is not in the production",
                    )
                )
        if not n.parents and n.input_query is None and n.tasks is None:
            err(
                Finding(
                    "root_without_input",
                    (n.name,),
                    None,
                    f"transformation {n.name!r} has no parent, no input_query and no task count: "
                    "it would never run (give it `tasks: N` or an input query)",
                )
            )
    for cycle in _cycles(by_name):
        path = " -> ".join((*cycle, cycle[0]))
        err(Finding("cycle", tuple(cycle), None, f"the parent links form a cycle: {path}"))
    outs = {name: outputs_of(n, schema) for name, n in by_name.items()}
    for child in by_name.values():
        for p in dict.fromkeys(child.parents):
            if p in by_name and p != child.name:
                _check_link(by_name[p], outs[p], child, err)
    for child in by_name.values():
        if child.input_query is None or child.input_query.is_empty():
            continue
        for parent in by_name.values():
            po = outs[parent.name]
            if parent.name == child.name or parent.name in child.parents or not po:
                continue
            inter = next((r for q in po if not (r := q.explain_intersection(child.input_query)).empty), None)
            if inter is not None:
                warn(
                    Finding(
                        "undeclared_link",
                        (parent.name, child.name),
                        None,
                        f"files produced by {parent.name!r} can match the input query of {child.name!r}, "
                        f"which does not declare {parent.name!r} as a parent (e.g. {inter.witness!r})",
                    )
                )
        parents = [p for p in dict.fromkeys(child.parents) if p in by_name and p != child.name]
        unlinked = any(f.code == "empty_link" and f.transformations[1] == child.name for f in res.errors)
        if parents and all(outs[p] for p in parents) and not unlinked:
            covers = [q for p in parents for q in outs[p] or ()]
            gap = uncovered_witness(child.input_query, covers)
            if gap is not None:
                names = ", ".join(repr(p) for p in parents)
                warn(
                    Finding(
                        "coverage_gap",
                        (child.name, *parents),
                        None,
                        f"the input query of {child.name!r} is not covered by the outputs of its parents "
                        f"({names}): a file with metadata {gap!r} matches it but no parent output",
                    )
                )
    return res


def _check_fields(n: TransformationNode, schema: Schema | None, err: Any) -> None:
    for what, q in (("input query", n.input_query), ("output query", n.output_query)):
        for key in q.keys() if q is not None and schema is not None else ():
            if key not in schema:  # type: ignore[operator]
                err(
                    Finding(
                        "unknown_field",
                        (n.name,),
                        key,
                        f"transformation {n.name!r}: {what} key {key!r} is not a catalog field "
                        "(declare it under `fields`)",
                    )
                )
    for m in n.output_metadata:
        for key, v in m.items():
            ftype = schema.field_type(key) if schema is not None and isinstance(key, str) else None
            if schema is not None and ftype is None:
                err(
                    Finding(
                        "unknown_field",
                        (n.name,),
                        str(key),
                        f"transformation {n.name!r}: output metadata key {key!r} is not a catalog field "
                        "(declare it under `fields`)",
                    )
                )
            elif not _scalar_ok(v, ftype):
                want = f"a {ftype}" if ftype else "an int, a float or a str"
                err(
                    Finding(
                        "bad_output_metadata",
                        (n.name,),
                        str(key),
                        f"transformation {n.name!r}: output metadata {key}={v!r} is not {want}",
                    )
                )


def _check_queries(n: TransformationNode, err: Any) -> None:
    for what, q in (("input query", n.input_query), ("output query", n.output_query)):
        if q is not None and q.is_empty():
            why = q.explain_intersection(MetaQuery())
            err(
                Finding(
                    "unsatisfiable_query",
                    (n.name,),
                    why.key,
                    f"transformation {n.name!r}: no file can match its {what}: key {why.key!r}: "
                    f"{describe(why.key or '', why.left_constraints)}",
                )
            )
    oq = n.output_query
    if oq is None:
        return
    for m in n.output_metadata:
        for key, v in m.items():
            c = oq.constraint(key) if isinstance(key, str) else None
            if c is not None and not c.empty and not c.contains(v):
                err(
                    Finding(
                        "output_metadata_contradicts_output_query",
                        (n.name,),
                        key,
                        f"transformation {n.name!r}: output metadata {key}={v!r} contradicts its own "
                        f"output query ({describe(key, oq.atoms(key))}): every such output would fail",
                    )
                )


def _check_link(parent: TransformationNode, outs: list[MetaQuery] | None, child: TransformationNode, err: Any) -> None:
    cin = child.input_query
    if cin is None or not outs or cin.is_empty() or any(q.is_empty() for q in outs):
        return  # unknown, or already reported as an unsatisfiable query
    reports = [q.explain_intersection(cin) for q in outs]
    if any(not r.empty for r in reports):
        return
    r = reports[0]
    what = "output query" if parent.output_query is not None else "output metadata"
    pl = describe(r.key or "", r.left_constraints) if r.left_constraints else f"no {r.key!r}"
    cl = describe(r.key or "", r.right_constraints) if r.right_constraints else f"no {r.key!r}"
    err(
        Finding(
            "empty_link",
            (parent.name, child.name),
            r.key,
            f"transformation {child.name!r} declares parent {parent.name!r}, but no file can match both: "
            f"key {r.key!r}: {parent.name!r} {what} requires {pl}, {child.name!r} input query requires {cl}",
        )
    )


def _cycles(by_name: Mapping[str, TransformationNode]) -> list[list[str]]:
    """The cycles of the parent graph, one per strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in by_name[v].parents:
            if w not in by_name:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in by_name[v].parents:
                found.append(_cycle_path(comp, by_name))

    for v in by_name:
        if v not in index:
            visit(v)
    return found


def _cycle_path(comp: list[str], by_name: Mapping[str, TransformationNode]) -> list[str]:
    """One cycle through the component, in parent -> child order, starting from its first name."""
    members = set(comp)
    start = min(comp)
    path, seen = [start], {start}
    # Walk child -> parent links inside the component until the walk closes.
    while True:
        nxt = next(p for p in by_name[path[-1]].parents if p in members)
        if nxt in seen:
            path = path[path.index(nxt) :]
            break
        path.append(nxt)
        seen.add(nxt)
    return list(reversed(path))
