"""Production specs (the YAML of `metaprod production create -f spec.yaml`, docs/spec.md).

`validate_spec(spec, existing_schema)` checks the plain structure (what `yaml.safe_load` gives)
and then the production graph, returning every finding; `parse_spec` returns the typed
`ProductionSpec` or raises `SpecError` carrying the findings. Structural problems have the code
`malformed_spec` (with the setting and the reason in the message); a field that the spec
declares with another type than the catalog has is `field_type_conflict`. The spec's `fields`
extend `existing_schema`; queries are parsed against the result (dict or compact string form).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metaprod.core.errors import InvalidArgument
from metaprod.core.limits import (
    MAX_COMMAND_BYTES,
    MAX_DESCRIPTION_CHARS,
    MAX_TASKS_PER_ROOT,
    MAX_TRANSFORMATIONS,
    NAME,
    NAME_RULE,
    shown,
    text_problem,
)
from metaprod.core.metaquery import MetaQuery
from metaprod.core.outputs import glob_problem
from metaprod.core.schema import Schema
from metaprod.core.validation import Finding, TransformationNode, ValidationResult, validate_graph

PLUGINS = ("standard", "by_metadata", "by_size")
BACKENDS = ("local", "slurm", "dask")
DEFAULT_MAX_ATTEMPTS = 3
_TOP_KEYS = ("production", "description", "fields", "transformations")
# The settings of a transformation (docs/spec.md); anything else is a typo.
_DATA_KEYS = ("name", "command", "tasks", "parents", "input_query", "output_query", "outputs")
_RUN_KEYS = (
    "group_size",
    "plugin",
    "group_by",
    "max_bytes",
    "max_attempts",
    "max_runtime",
    "backend",
    "options",
    "env",
    "max_output_bytes",
    "reuse",
    "keep_checkpoints",
)
_TRANSFORMATION_KEYS = _DATA_KEYS + _RUN_KEYS
_OUTPUT_KEYS = ("glob", "metadata")
Scalar = int | float | str


@dataclass(frozen=True)
class OutputSpec:
    glob: str
    metadata: dict[str, Scalar] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class TransformationSpec:
    name: str
    command: str
    parents: tuple[str, ...] = ()
    tasks: int | None = None
    input_query: MetaQuery | None = None
    output_query: MetaQuery | None = None
    outputs: tuple[OutputSpec, ...] = ()
    # None: by_metadata's whole bucket is one task (its default); standard's default is 1.
    group_size: int | None = 1
    plugin: str = "standard"
    group_by: tuple[str, ...] = ()
    max_bytes: int | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_runtime: int | None = None  # seconds; None: no limit
    backend: str = "local"
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    # Added to the environment of the commands (docs/jobs.md).
    env: dict[str, str] = field(default_factory=dict, hash=False)
    max_output_bytes: int | None = None  # an attempt's outputs together; None: no limit
    # Reuse by content (docs/jobs.md): None is the default, on for tasks with inputs, off for roots.
    reuse: bool | None = None
    keep_checkpoints: bool = False

    def node(self) -> TransformationNode:
        return TransformationNode(
            self.name,
            self.parents,
            self.input_query,
            self.output_query,
            tuple(o.metadata for o in self.outputs),
            self.tasks,
        )


@dataclass(frozen=True)
class ProductionSpec:
    name: str
    transformations: tuple[TransformationSpec, ...]
    description: str = ""
    fields: Schema = field(default_factory=Schema)  # the spec's own `fields`
    schema: Schema = field(default_factory=Schema)  # the existing schema extended by them
    warnings: tuple[Finding, ...] = ()

    def transformation(self, name: str) -> TransformationSpec:
        for t in self.transformations:
            if t.name == name:
                return t
        raise KeyError(name)


class SpecError(InvalidArgument, ValueError):
    """A spec with errors; `findings` holds them (and `result` the warnings too)."""

    def __init__(self, result: ValidationResult) -> None:
        first = "; ".join(f.message for f in result.errors[:3])
        more = f" (and {len(result.errors) - 3} more)" if len(result.errors) > 3 else ""
        super().__init__(f"invalid production spec: {first}{more}", details=result.errors)
        self.findings = tuple(result.errors)
        self.result = result


# The database keeps names in 128 characters and counts in 32-bit integers.
MAX_NAME = 128
MAX_INT = 2**31 - 1
MAX_BYTES = 2**63 - 1
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _Reader:
    """Reads one spec, collecting findings instead of stopping at the first problem."""

    def __init__(self, existing: Schema | None) -> None:
        self.res = ValidationResult()
        self.existing = existing if existing is not None else Schema()
        self.schema = self.existing
        self.bad_input: set[str] = set()  # transformations whose input query did not parse

    def bad(self, where: tuple[str, ...], message: str) -> None:
        self.res.errors.append(Finding("malformed_spec", where, None, message))

    def positive_int(
        self, where: tuple[str, ...], d: Mapping[str, Any], key: str, prefix: str, top: int = MAX_INT
    ) -> int | None:
        v = d.get(key)
        if v is None:
            return None
        if not _is_int(v) or v < 1 or v > top:
            self.bad(where, f"{prefix}{key} must be a positive integer up to {top}, not {shown(v)}")
            return None
        return int(v)

    def choice(
        self, where: tuple[str, ...], d: Mapping[str, Any], key: str, allowed: tuple[str, ...], prefix: str
    ) -> str:
        v = d.get(key, allowed[0])
        if v not in allowed:
            self.bad(where, f"{prefix}unknown {key} {shown(v)} (use one of {', '.join(allowed)})")
            return allowed[0]
        return str(v)

    def fields(self, spec: Mapping[str, Any]) -> Schema:
        raw = spec.get("fields") or {}
        if not isinstance(raw, Mapping):
            self.bad((), f"fields must be a map of field name to type, not {shown(raw)}")
            return Schema()
        good: dict[str, str] = {}
        for name, ftype in raw.items():
            try:
                good.update(Schema({name: ftype}).to_dict())
            except ValueError as e:
                self.bad((), f"fields: {e}")
        own = Schema(good)
        for name, ours, theirs in self.existing.conflicts(own):
            self.res.errors.append(
                Finding(
                    "field_type_conflict",
                    (),
                    name,
                    f"field {shown(name)} is declared {ours} in the catalog, the spec declares it {theirs}",
                )
            )
        self.schema = self.existing.merged({k: v for k, v in own.items() if k not in self.existing})
        return own

    def query(self, where: tuple[str, ...], t: Mapping[str, Any], key: str, prefix: str) -> MetaQuery | None:
        raw = t.get(key)
        if raw is None:
            return None
        if not isinstance(raw, Mapping | str):
            self.bad(where, f"{prefix}{key} must be a query (a map or a string), not {shown(raw)}")
        else:
            try:
                # Unknown fields are let through here and reported as unknown_field by the graph checks.
                return MetaQuery.parse(raw, self.schema, strict_fields=False)
            except ValueError as e:
                self.bad(where, f"{prefix}{key}: {e}")
        if key == "input_query":
            self.bad_input.add(where[0])
        return None

    def outputs(self, where: tuple[str, ...], t: Mapping[str, Any], prefix: str) -> tuple[OutputSpec, ...]:
        raw = t.get("outputs") or []
        if not isinstance(raw, list):
            self.bad(where, f"{prefix}outputs must be a list of {{glob, metadata}}, not {shown(raw)}")
            return ()
        out = []
        for i, o in enumerate(raw):
            p = f"{prefix}outputs[{i}]: "
            if not isinstance(o, Mapping):
                self.bad(where, f"{p}must be a map with glob and metadata, not {shown(o)}")
                continue
            for k in o:
                if k not in _OUTPUT_KEYS:
                    self.bad(where, f"{p}unknown setting {shown(k)} (use glob, metadata)")
            glob, md = o.get("glob"), o.get("metadata") or {}
            if not isinstance(glob, str) or not glob:
                self.bad(where, f"{p}glob must be a non-empty string, not {shown(glob)}")
                continue
            if problem := glob_problem(glob):
                self.bad(where, f"{p}glob {glob!r} {problem}")
                continue
            if not isinstance(md, Mapping) or not all(isinstance(k, str) and k for k in md):
                self.bad(where, f"{p}metadata must be a map of field name to value, not {shown(md)}")
                continue
            out.append(OutputSpec(glob, dict(md)))
        return tuple(out)

    def env(self, where: tuple[str, ...], t: Mapping[str, Any], prefix: str) -> dict[str, str]:
        raw = t.get("env") or {}
        if not isinstance(raw, Mapping):
            self.bad(where, f"{prefix}env must be a map of variable name to string value, not {raw!r}")
            return {}
        env: dict[str, str] = {}
        for name, value in raw.items():
            if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
                self.bad(where, f"{prefix}env: {name!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
            elif name.startswith("METAPROD_"):
                self.bad(where, f"{prefix}env: {name!r} is reserved (METAPROD_* are set by metaprod)")
            elif not isinstance(value, str) or "\0" in value:
                self.bad(where, f"{prefix}env: {name} must be a string, not {value!r}")
            else:
                env[name] = value
        return env

    def byte_count(self, where: tuple[str, ...], t: Mapping[str, Any], key: str, prefix: str) -> int | None:
        v = t.get(key)
        if v is None:
            return None
        if not _is_int(v) or v < 1 or v > MAX_BYTES:
            self.bad(where, f"{prefix}{key} must be a positive number of bytes up to {MAX_BYTES}, not {v!r}")
            return None
        return int(v)

    def transformation(self, i: int, t: Any) -> TransformationSpec | None:
        if not isinstance(t, Mapping):
            self.bad((), f"transformations[{i}] must be a map, not {shown(t)}")
            return None
        name = t.get("name")
        if not isinstance(name, str) or not name:
            self.bad((), f"transformations[{i}]: name is missing or not a non-empty string: {shown(name)}")
            return None
        if not NAME.fullmatch(name):
            self.bad((), f"transformations[{i}]: bad name {shown(name)}: {NAME_RULE}")
            return None
        where, p = (name,), f"transformation {shown(name)}: "
        for k in t:
            if k not in _TRANSFORMATION_KEYS:
                self.bad(where, f"{p}unknown setting {shown(k)}")
        command = t.get("command")
        if not isinstance(command, str) or not command.strip():
            self.bad(where, f"{p}command is missing or not a non-empty string: {shown(command)}")
            command = ""
        elif (problem := text_problem(command, MAX_COMMAND_BYTES)) is not None:
            self.bad(where, f"{p}bad command {shown(command)}: {problem}")
            command = ""
        parents = t.get("parents") or []
        if isinstance(parents, str):
            parents = [parents]
        if not isinstance(parents, list) or not all(isinstance(x, str) and x for x in parents):
            self.bad(where, f"{p}parents must be a list of transformation names, not {shown(parents)}")
            parents = []
        plugin = self.choice(where, t, "plugin", PLUGINS, p)
        backend = self.choice(where, t, "backend", BACKENDS, p)
        group_by = t.get("group_by") or []
        if not isinstance(group_by, list) or not all(isinstance(x, str) and x for x in group_by):
            self.bad(where, f"{p}group_by must be a list of field names, not {shown(group_by)}")
            group_by = []
        for k in group_by:
            if k not in self.schema:
                self.res.errors.append(
                    Finding("unknown_field", where, k, f"{p}group_by key {shown(k)} is not a catalog field")
                )
        max_bytes = self.positive_int(where, t, "max_bytes", p)
        if plugin == "by_metadata" and not group_by:
            self.bad(where, f"{p}plugin by_metadata needs group_by (a list of field names)")
        if plugin == "by_size" and max_bytes is None:
            self.bad(where, f"{p}plugin by_size needs max_bytes (a positive integer)")
        for setting, used in (("group_by", "by_metadata"), ("max_bytes", "by_size")):
            if t.get(setting) is not None and plugin != used:
                self.res.warnings.append(
                    Finding("ignored_setting", where, None, f"{p}{setting} is ignored unless plugin is {used}")
                )
        options = t.get("options") or {}
        if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
            self.bad(where, f"{p}options must be a map, not {shown(options)}")
            options = {}
        for flag in ("reuse", "keep_checkpoints"):
            if t.get(flag) is not None and not isinstance(t.get(flag), bool):
                self.bad(where, f"{p}{flag} must be true or false, not {t.get(flag)!r}")
        return TransformationSpec(
            name=name,
            command=command,
            parents=tuple(dict.fromkeys(parents)),
            tasks=self.positive_int(where, t, "tasks", p, MAX_TASKS_PER_ROOT),
            input_query=self.query(where, t, "input_query", p),
            output_query=self.query(where, t, "output_query", p),
            outputs=self.outputs(where, t, p),
            group_size=self.positive_int(where, t, "group_size", p) or (None if plugin == "by_metadata" else 1),
            plugin=plugin,
            group_by=tuple(group_by),
            max_bytes=max_bytes,
            max_attempts=self.positive_int(where, t, "max_attempts", p) or DEFAULT_MAX_ATTEMPTS,
            max_runtime=self.positive_int(where, t, "max_runtime", p),
            backend=backend,
            options=dict(options),
            env=self.env(where, t, p),
            max_output_bytes=self.byte_count(where, t, "max_output_bytes", p),
            reuse=t["reuse"] if isinstance(t.get("reuse"), bool) else None,
            keep_checkpoints=t.get("keep_checkpoints") is True,
        )

    def read(self, spec: Any) -> ProductionSpec | None:
        if not isinstance(spec, Mapping):
            self.bad((), f"a production spec must be a map, not {type(spec).__name__}")
            return None
        for k in spec:
            if k not in _TOP_KEYS:
                self.bad((), f"unknown top-level setting {shown(k)} (use {', '.join(_TOP_KEYS)})")
        name = spec.get("production")
        if not isinstance(name, str) or not name.strip():
            self.bad((), f"production (the production's name) is missing or not a non-empty string: {shown(name)}")
            name = ""
        elif not NAME.fullmatch(name):
            self.bad((), f"bad production name {shown(name)}: {NAME_RULE}")
            name = ""
        elif "/" in name or "@" in name:
            # The name is the first segment of its outputs' LFNs; '@' marks a re-used one (name@2).
            self.bad((), f"production name {name!r} may not contain '/' or '@'")
            name = ""
        description = spec.get("description") or ""
        if not isinstance(description, str):
            self.bad((), f"description must be a string, not {shown(description)}")
            description = ""
        elif (problem := text_problem(description, MAX_DESCRIPTION_CHARS)) is not None:
            self.bad((), f"bad description {shown(description)}: {problem}")
            description = ""
        own = self.fields(spec)
        raw = spec.get("transformations")
        if not isinstance(raw, list) or not raw:
            self.bad((), f"transformations must be a non-empty list, not {shown(raw)}")
            raw = []
        elif len(raw) > MAX_TRANSFORMATIONS:
            self.bad((), f"{len(raw)} transformations: a production has at most {MAX_TRANSFORMATIONS}")
            return None
        ts = [t for i, x in enumerate(raw) if (t := self.transformation(i, x)) is not None]
        graph = validate_graph([t.node() for t in ts], self.schema, summarise=False)
        # A root whose input query did not parse has already been reported as malformed.
        graph.errors = [
            f for f in graph.errors if not (f.code == "root_without_input" and f.transformations[0] in self.bad_input)
        ]
        self.res.extend(graph)
        self.res.summarise()
        return ProductionSpec(name, tuple(ts), description, own, self.schema, tuple(self.res.warnings))


def validate_spec(spec: Mapping[str, Any], existing_schema: Schema | None = None) -> ValidationResult:
    """Every error and warning of a plain spec (see the module doc); `.ok` when it can be created."""
    reader = _Reader(existing_schema)
    reader.read(spec)
    return reader.res


def parse_spec(spec: Mapping[str, Any], existing_schema: Schema | None = None) -> ProductionSpec:
    """The typed spec, or SpecError (a ValueError) carrying the findings when it has errors."""
    reader = _Reader(existing_schema)
    parsed = reader.read(spec)
    if parsed is None or not reader.res.ok:
        raise SpecError(reader.res)
    return parsed
