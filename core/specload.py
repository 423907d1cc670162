"""Reading a spec's YAML (or JSON) text within the limits of core/limits.py.

The YAML is composed by a loader that weighs every node as it is composed (one per node plus
the characters of a scalar), counting an alias as the whole weight of the node it repeats. A
spec whose expanded weight passes MAX_SPEC_EXPANDED (an "alias bomb" of a few lines), nested
deeper than MAX_NESTING, or with an alias inside its own anchor is refused before any of it is
built into Python objects.
"""

from __future__ import annotations

from typing import Any

import yaml
from metaprod.core.errors import InvalidArgument
from metaprod.core.limits import MAX_NESTING, MAX_SPEC_CHARS, MAX_SPEC_EXPANDED, plain_problem


class _Weighed(InvalidArgument):
    pass


class _CappedLoader(yaml.SafeLoader):
    """SafeLoader that refuses oversized, overdeep or self-referencing documents while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._total = 0
        self._depth = 0
        self._open: list[str] = []  # anchors of the nodes being composed
        self._memo: dict[int, tuple[int, int]] = {}  # id(node) -> (weight, depth)

    def _add(self, weight: int, depth: int) -> None:
        self._total += weight
        if self._total > MAX_SPEC_EXPANDED:
            raise _Weighed(
                f"malformed spec: larger than {MAX_SPEC_EXPANDED} nodes and characters once its YAML aliases "
                "are expanded"
            )
        if self._depth + depth > MAX_NESTING:
            raise _Weighed(f"malformed spec: nested deeper than {MAX_NESTING} levels")

    def _weigh(self, node: yaml.Node) -> tuple[int, int]:
        """(weight, depth) of an already composed node; its depth is bounded, so is this recursion."""
        known = self._memo.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.ScalarNode):
            result = (1 + len(node.value), 0)
        else:
            children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
            parts = [self._weigh(c) for c in children]
            result = (1 + sum(w for w, _ in parts), 1 + max((d for _, d in parts), default=0))
        self._memo[id(node)] = result
        return result

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor  # type: ignore[no-untyped-call]
            if anchor in self._open:
                raise _Weighed(f"malformed spec: the alias *{str(anchor)[:40]} is inside its own anchor")
            repeated: yaml.Node = super().compose_node(parent, index)  # type: ignore[no-untyped-call,assignment]
            self._add(*self._weigh(repeated))
            return repeated
        event = self.peek_event()  # type: ignore[no-untyped-call]
        opens = not self.check_event(yaml.ScalarEvent)
        if opens:
            self._depth += 1
            self._add(1, 0)
        if event.anchor is not None:
            self._open.append(event.anchor)
        try:
            node: yaml.Node = super().compose_node(parent, index)  # type: ignore[no-untyped-call,assignment]
        finally:
            if event.anchor is not None:
                self._open.pop()
            if opens:
                self._depth -= 1
        if isinstance(node, yaml.ScalarNode):
            self._add(1 + len(node.value), 0)
        return node


def load_spec_text(text: str) -> dict[str, Any]:
    """The spec as a dict, or InvalidArgument (too large, too deep, not YAML/JSON, not a map)."""
    if len(text) > MAX_SPEC_CHARS:
        raise InvalidArgument(f"malformed spec: {len(text)} characters, more than the limit of {MAX_SPEC_CHARS}")
    loader: _CappedLoader | None = None
    try:
        loader = _CappedLoader(text)  # its reader refuses some characters at once
        data = loader.get_single_data()
    except _Weighed:
        raise
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidArgument(f"malformed spec: not YAML or JSON: {first[:200]}") from None
    except RecursionError:  # a guard: the loader's own depth limit comes first
        raise InvalidArgument(f"malformed spec: nested deeper than {MAX_NESTING} levels") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise InvalidArgument("malformed spec: the top level must be a mapping")
    check_plain_spec(data)
    return data


def check_plain_spec(data: Any) -> None:
    """A spec is plain JSON data (YAML dates, sets, binary... are not stored)."""
    problem = plain_problem(data)
    if problem is not None:
        raise InvalidArgument(f"malformed spec: {problem}")
