"""Validation of a production graph (docs/spec.md, "Validation").

Errors reject the production, warnings are reported and accepted. Codes:

errors    duplicate_name, unknown_parent, cycle, root_without_input, unknown_field,
          unsatisfiable_query (a query no file can match), output_metadata_contradicts_output_query,
          bad_output_metadata (a value that is not an int/float/str of the field's type),
          empty_link (a declared parent whose outputs can never match the child's input);
warnings  undeclared_link (parent.output ∩ child.input non-empty without a declared link),
          coverage_gap (a file can match the child's input but no parent's output),
          own_outputs (the output query of a transformation, or of one of its descendants,
          intersects its input query: data cycles, those files will be skipped).

A transformation's outputs are described by its output query; without one, by its
`outputs[].metadata` maps (each one the pinned values of one kind of output); with neither they
are unknown and the checks that need them are skipped.

coverage_gap is exact (see coverage.py): it is reported only with a witness file that matches
the child's input and no parent's output, and no gap is missed (within the documented limits).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metaprod.core.constraints import KeyConstraint, intersect
from metaprod.core.coverage import uncovered_witness
from metaprod.core.limits import WARNINGS_LISTED_PER_KIND, clip
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
    # Warnings found but not listed, per code (see `summarise`).
    omitted: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings do not count)."""
        return not self.errors

    def codes(self) -> set[str]:
        return {f.code for f in (*self.errors, *self.warnings)}

    def extend(self, other: ValidationResult) -> None:
        self.errors.extend(other.errors)
        self.warnings.extend(other.warnings)
        for code, n in other.omitted.items():
            self.omitted[code] = self.omitted.get(code, 0) + n

    def summarise(self, listed: int = WARNINGS_LISTED_PER_KIND) -> None:
        """At most `listed` warnings of each code; a code with more gets, after its examples,
        one summary warning that counts them all (key "summary"). When any code is cut the
        warnings are grouped by code, in order of first appearance."""
        by_code: dict[str, list[Finding]] = {}
        for w in self.warnings:
            by_code.setdefault(w.code, []).append(w)
        for code in self.omitted:
            by_code.setdefault(code, [])
        totals = {code: len(ws) + self.omitted.get(code, 0) for code, ws in by_code.items()}
        if all(n <= listed for n in totals.values()):
            return
        out: list[Finding] = []
        for code, ws in by_code.items():
            out.extend(ws[:listed])
            if totals[code] > listed:
                shown = min(listed, len(ws))
                msg = f"{totals[code]} {code} warnings in all; the first {shown} are listed"
                out.append(Finding(code, (), SUMMARY_KEY, msg))
        self.warnings = out
        self.omitted = {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
        }


SUMMARY_KEY = "summary"


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


class _Findings:
    """Collects findings; `err`/`warn` keep the checks below short. Past WARNINGS_LISTED_PER_KIND
    warnings of a code are only counted (their messages, which need a witness, are not built)."""

    def __init__(self) -> None:
        self.res = ValidationResult()
        self.listed: dict[str, int] = {}

    def err(self, code: str, names: tuple[str, ...], key: str | None, message: str) -> None:
        self.res.errors.append(Finding(code, names, key, clip(message)))

    def room_left(self, code: str) -> int:
        return max(0, WARNINGS_LISTED_PER_KIND - self.listed.get(code, 0))

    def omit(self, code: str, n: int) -> None:
        if n > 0:
            self.res.omitted[code] = self.res.omitted.get(code, 0) + n

    def room(self, code: str) -> bool:
        """Whether the next warning of `code` is listed; when not, it is counted here."""
        if self.listed.get(code, 0) < WARNINGS_LISTED_PER_KIND:
            return True
        self.res.omitted[code] = self.res.omitted.get(code, 0) + 1
        return False

    def warn(self, code: str, names: tuple[str, ...], key: str | None, message: str | Callable[[], str]) -> None:
        if not self.room(code):
            return
        n = self.listed.get(code, 0)
        self.listed[code] = n + 1
        self.res.warnings.append(Finding(code, names, key, clip(message if isinstance(message, str) else message())))


Projection = tuple[tuple[str, KeyConstraint], ...] | None  # None: an unsatisfiable query


class _Meets:
    """Whether an output query and an input query can hold for one file, decided on the keys
    they share (a key only one of them constrains cannot empty a satisfiable conjunction) and
    cached on those keys' constraints: a production's queries repeat, its pairs need not."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Projection, MetaQuery], bool] = {}

    @staticmethod
    def project(q: MetaQuery, keys: tuple[str, ...]) -> Projection:
        if q.is_empty():
            return None
        return tuple((k, c) for k in keys if (c := q.constraint(k)) is not None)

    def __call__(self, proj: Projection, cin: MetaQuery) -> bool:
        if proj is None:
            return False
        hit = self._cache.get((proj, cin))
        if hit is None:
            hit = all(_can_meet(c, cin.constraint(k)) for k, c in proj)  # type: ignore[arg-type]
            self._cache[(proj, cin)] = hit
        return hit


def _can_meet(a: KeyConstraint, b: KeyConstraint) -> bool:
    """Whether one value can satisfy both constraints. Of one kind, with a point set on a side
    (an output's `step: 3`, an input's `datatype: sim`): a point the other side contains, which
    is what their intersection keeps, without building it (a 200-step chain decides 40,000
    pairs: two thirds of its validation time went to normalising intersections)."""
    if a.kind == b.kind and not a.empty and not b.empty:
        if a.points is not None:
            return any(b.contains(v) for v in a.points)
        if b.points is not None:
            return any(a.contains(v) for v in b.points)
    return not intersect(a, b).empty


def _meeting(
    cin: MetaQuery, outs: Mapping[str, list[MetaQuery] | None], meets: _Meets, groups: dict[Any, Any]
) -> set[str]:
    """The names of the transformations whose outputs can match `cin`. Transformations whose
    outputs project alike onto `cin`'s keys are decided once (`groups` caches the grouping per
    key set)."""
    keys = cin.keys()
    grouped = groups.get(keys)
    if grouped is None:
        grouped = {}
        for name, qs in outs.items():
            if qs:
                grouped.setdefault(tuple(meets.project(q, keys) for q in qs), []).append(name)
        groups[keys] = grouped
    hits: set[str] = set()
    for projections, names in grouped.items():
        if any(meets(p, cin) for p in projections):
            hits.update(names)
    return hits


def validate_graph(
    nodes: Sequence[TransformationNode], schema: Schema | None = None, *, summarise: bool = True
) -> ValidationResult:
    """Check a production's transformations against each other and the schema. Warnings are
    summarised (`ValidationResult.summarise`) unless the caller does it with its own."""
    f = _Findings()
    by_name: dict[str, TransformationNode] = {}
    for n in nodes:
        if n.name not in by_name:
            by_name[n.name] = n
        elif not any(x.code == "duplicate_name" and x.transformations == (n.name,) for x in f.res.errors):
            f.err("duplicate_name", (n.name,), None, f"transformation name {n.name!r} is used more than once")
    for n in by_name.values():
        _check_fields(f, n, schema)
        _check_queries(f, n)
        for p in n.parents:
            if p not in by_name:
                msg = f"transformation {n.name!r} declares parent {p!r}, which is not in the production"
                f.err("unknown_parent", (n.name, p), None, msg)
        if not n.parents and n.input_query is None and n.tasks is None:
            msg = (
                f"transformation {n.name!r} has no parent, no input_query and no task count: it would "
                "never run (give it `tasks: N` or an input query)"
            )
            f.err("root_without_input", (n.name,), None, msg)
    for cycle in _cycles(by_name):
        f.err("cycle", tuple(cycle), None, f"the parent links form a cycle: {' -> '.join((*cycle, cycle[0]))}")
    outs = {name: outputs_of(n, schema) for name, n in by_name.items()}
    children = _children(by_name)
    below = _descendants(children)
    order = {name: i for i, name in enumerate(by_name)}
    meets, groups = _Meets(), {}  # type: ignore[var-annotated]
    for child in by_name.values():
        parents = [p for p in dict.fromkeys(child.parents) if p in by_name and p != child.name]
        linked = all([_check_link(f, by_name[p], outs[p], child) for p in parents])  # check every one
        if child.input_query is None or child.input_query.is_empty():
            continue
        hits = _meeting(child.input_query, outs, meets, groups)
        _check_undeclared(f, child, child.input_query, outs, hits, below[child.name], order)
        _check_own_outputs(f, child, child.input_query, outs, hits, below[child.name], children)
        if parents and linked and all(outs[p] for p in parents):
            gap = uncovered_witness(child.input_query, [q for p in parents for q in outs[p] or ()])
            if gap is not None:
                msg = (
                    f"the input query of {child.name!r} is not covered by the outputs of its parents "
                    f"({', '.join(map(repr, parents))}): a file with metadata {gap!r} matches it "
                    "but no parent output"
                )
                f.warn("coverage_gap", (child.name, *parents), None, msg)
    if summarise:
        f.res.summarise()
    return f.res


def _check_fields(f: _Findings, n: TransformationNode, schema: Schema | None) -> None:
    queries = (("input query", n.input_query), ("output query", n.output_query))
    for what, q in queries if schema is not None else ():
        for key in q.keys() if q is not None else ():
            if key not in schema:  # type: ignore[operator]
                msg = f"transformation {n.name!r}: {what} key {key!r} is not a catalog field"
                f.err("unknown_field", (n.name,), key, msg + " (declare it under `fields`)")
    for m in n.output_metadata:
        for key, v in m.items():
            ftype = schema.field_type(key) if schema is not None and isinstance(key, str) else None
            if schema is not None and ftype is None:
                msg = (
                    f"transformation {n.name!r}: output metadata key {key!r} is not a catalog field "
                    "(declare it under `fields`)"
                )
                f.err("unknown_field", (n.name,), str(key), msg)
            elif not _scalar_ok(v, ftype):
                want = f"a {ftype}" if ftype else "an int, a float or a str"
                msg = f"transformation {n.name!r}: output metadata {key}={v!r} is not {want}"
                f.err("bad_output_metadata", (n.name,), str(key), msg)


def _check_queries(f: _Findings, n: TransformationNode) -> None:
    for what, q in (("input query", n.input_query), ("output query", n.output_query)):
        if q is not None and q.is_empty():
            why = q.explain_intersection(MetaQuery())
            msg = (
                f"transformation {n.name!r}: no file can match its {what}: key {why.key!r}: "
                f"{describe(why.key or '', why.left_constraints)}"
            )
            f.err("unsatisfiable_query", (n.name,), why.key, msg)
    oq = n.output_query
    for m in n.output_metadata if oq is not None else ():
        for key, v in m.items():
            c = oq.constraint(key) if oq is not None and isinstance(key, str) else None
            if oq is not None and c is not None and not c.empty and not c.contains(v):
                msg = (
                    f"transformation {n.name!r}: output metadata {key}={v!r} contradicts its own output "
                    f"query ({describe(key, oq.atoms(key))}): every such output would fail"
                )
                f.err("output_metadata_contradicts_output_query", (n.name,), key, msg)


def _check_link(
    f: _Findings, parent: TransformationNode, outs: list[MetaQuery] | None, child: TransformationNode
) -> bool:
    """Report a declared link that no file can follow; False when reported."""
    cin = child.input_query
    if cin is None or not outs or cin.is_empty() or any(q.is_empty() for q in outs):
        return True  # unknown, or already reported as an unsatisfiable query
    reports = [q.explain_intersection(cin) for q in outs]
    if any(not r.empty for r in reports):
        return True
    r = reports[0]
    what = "output query" if parent.output_query is not None else "output metadata"
    pl = describe(r.key or "", r.left_constraints) if r.left_constraints else f"no {r.key!r}"
    cl = describe(r.key or "", r.right_constraints) if r.right_constraints else f"no {r.key!r}"
    msg = (
        f"transformation {child.name!r} declares parent {parent.name!r}, but no file can match both: "
        f"key {r.key!r}: {parent.name!r} {what} requires {pl}, {child.name!r} input query requires {cl}"
    )
    f.err("empty_link", (parent.name, child.name), r.key, msg)
    return False


def _check_undeclared(
    f: _Findings,
    child: TransformationNode,
    cin: MetaQuery,
    outs: Mapping[str, list[MetaQuery] | None],
    hits: set[str],
    descendants: set[str],
    order: Mapping[str, int],
) -> None:
    """Warn for every other transformation whose outputs the child would consume undeclared
    (its descendants' outputs are skipped: `_check_own_outputs` warns for them). `hits`: the
    transformations whose outputs can match the child's input."""
    others = hits - descendants - {child.name, *child.parents}
    room = f.room_left("undeclared_link")
    listed = heapq.nsmallest(room, others, key=order.__getitem__) if others and room else []
    f.omit("undeclared_link", len(others) - len(listed))
    for other in listed:
        hit = next(r for q in outs[other] or () if not (r := q.explain_intersection(cin)).empty)
        msg = (
            f"files produced by {other!r} can match the input query of {child.name!r}, which "
            f"does not declare {other!r} as a parent (e.g. {hit.witness!r})"
        )
        f.warn("undeclared_link", (other, child.name), None, msg)


def _check_own_outputs(
    f: _Findings,
    t: TransformationNode,
    cin: MetaQuery,
    outs: Mapping[str, list[MetaQuery] | None],
    hits: set[str],
    descendants: set[str],
    children: Mapping[str, list[str]],
) -> None:
    """Data cycles: warn when the outputs of `t`, or of one of its descendants, can match its
    own input query. Those files descend from its outputs, so `t` skips them at run time."""
    found = hits & descendants
    if t.name in hits:
        found.add(t.name)
    room = f.room_left("own_outputs")
    if len(found) > room:
        f.omit("own_outputs", len(found) - room)
    if not room or not found:
        return
    # The listed ones: itself first, then its descendants nearest first.
    names = [name for name in (t.name, *_nearest_first(t.name, children)) if name in found][:room]
    keys = sorted(cin.keys())
    for name in names:
        query, report = next((q, r) for q in outs[name] or () if not (r := q.explain_intersection(cin)).empty)
        shared = [k for k in keys if k in set(query.keys())]
        whose = "its outputs" if name == t.name else f"the outputs of its descendant {name!r}"
        msg = (
            f"transformation {t.name!r} would take its own outputs: {whose} can match its input query "
            f"on {', '.join(map(repr, keys))} (e.g. {report.witness!r}); they will be skipped"
        )
        f.warn("own_outputs", (t.name,) if name == t.name else (t.name, name), (shared or keys)[0], msg)


def _children(by_name: Mapping[str, TransformationNode]) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {name: [] for name in by_name}
    for n in by_name.values():
        for p in dict.fromkeys(n.parents):
            if p in children and p != n.name:
                children[p].append(n.name)
    return children


def _nearest_first(name: str, children: Mapping[str, list[str]]) -> list[str]:
    """The descendants of `name` through the declared parent links, nearest first."""
    seen, queue = {name}, deque(children[name])
    found: list[str] = []
    while queue:
        c = queue.popleft()
        if c not in seen:
            seen.add(c)
            found.append(c)
            queue.extend(children[c])
    return found


def _descendants(children: Mapping[str, list[str]]) -> dict[str, set[str]]:
    """Every transformation's descendants as a set: unions in reverse topological order (set
    operations in C), and a walk for the transformations on or above a cycle."""
    indegree = dict.fromkeys(children, 0)
    for kids in children.values():
        for c in kids:
            indegree[c] += 1
    queue = deque(name for name, d in indegree.items() if d == 0)
    topo: list[str] = []
    while queue:
        n = queue.popleft()
        topo.append(n)
        for c in children[n]:
            indegree[c] -= 1
            if indegree[c] == 0:
                queue.append(c)
    out: dict[str, set[str]] = {}
    if len(topo) == len(children):
        for n in reversed(topo):
            below: set[str] = set(children[n])
            for c in children[n]:
                below |= out[c]
            out[n] = below
        return out
    return {name: set(_nearest_first(name, children)) for name in children}


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
