"""Path patterns of `catalog watch`: metadata read from a file's path relative to the watched
directory, e.g. ``raw/{subject}/{run:int}_{site}.dat``.

- ``{key}`` (or ``{key:str}``) captures a string, ``{key:int}`` an integer, ``{key:float}`` a
  number; a capture never spans a ``/``, and a string capture takes as little as it can
  (``{a}_{b}`` on ``x_y_z`` gives a=x, b=y_z).
- ``*`` matches any characters within one path segment, without capturing.
- ``{{`` and ``}}`` are literal braces; anything else is matched literally.

The whole relative path must match. Malformed patterns raise InvalidArgument in one line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from metaprod.core.errors import InvalidArgument

PATTERN_TYPES = {
    "str": r"[^/]+?",
    "int": r"[+-]?[0-9]+",
    "float": r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?",
}
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|\*|[{}]")

MetaScalar = int | float | str


@dataclass(frozen=True, slots=True)
class PathPattern:
    text: str
    regex: re.Pattern[str]
    keys: tuple[tuple[str, str], ...]  # (key, type) in the order of the pattern

    @property
    def fields(self) -> dict[str, str]:
        return dict(self.keys)

    @classmethod
    def parse(cls, text: str) -> PathPattern:
        if not text:
            raise InvalidArgument("bad pattern '': it is empty")
        if text.startswith("/"):
            raise InvalidArgument(f"bad pattern {text!r}: it is relative to the watched directory, drop the leading /")
        segments = text.split("/")
        if any(s in ("", ".", "..") for s in segments):
            raise InvalidArgument(f"bad pattern {text!r}: an empty, '.' or '..' path segment")
        parts: list[str] = []
        keys: list[tuple[str, str]] = []
        pos = 0
        for m in _TOKEN.finditer(text):
            parts.append(re.escape(text[pos : m.start()]))
            pos = m.end()
            token = m.group(0)
            if token in ("{{", "}}"):
                parts.append(re.escape(token[0]))
            elif token == "*":
                parts.append(r"[^/]*?")
            elif token in ("{", "}"):
                raise InvalidArgument(f"bad pattern {text!r}: unbalanced {token!r} at character {m.start() + 1}")
            else:
                key, _, ftype = m.group(1).partition(":")
                ftype = ftype or "str"
                if not KEY.fullmatch(key):
                    raise InvalidArgument(
                        f"bad pattern {text!r}: {m.group(0)!r} needs a key name (letters, digits, '_', '.', '-')"
                    )
                if ftype not in PATTERN_TYPES:
                    raise InvalidArgument(
                        f"bad pattern {text!r}: {m.group(0)!r} has type {ftype!r}, expected one of "
                        f"{', '.join(PATTERN_TYPES)}"
                    )
                if key in dict(keys):
                    raise InvalidArgument(f"bad pattern {text!r}: key {key!r} appears twice")
                keys.append((key, ftype))
                parts.append(f"({PATTERN_TYPES[ftype]})")
        parts.append(re.escape(text[pos:]))
        return cls(text, re.compile("".join(parts)), tuple(keys))

    def match(self, path: str) -> dict[str, MetaScalar] | None:
        """The metadata of a relative path (POSIX separators), or None when it does not match."""
        m = self.regex.fullmatch(path)
        if m is None:
            return None
        out: dict[str, MetaScalar] = {}
        for (key, ftype), value in zip(self.keys, m.groups(), strict=True):
            out[key] = int(value) if ftype == "int" else float(value) if ftype == "float" else value
        return out

    def check_schema(self, schema: Mapping[str, str]) -> None:
        """Every key must be a catalog field of a type its values fit (an int key may feed a float field)."""
        for key, ftype in self.keys:
            declared = schema.get(key)
            if declared is None:
                raise InvalidArgument(
                    f"pattern key {key!r} is not a catalog field: declare it first "
                    f"(metaprod catalog field add {key} {ftype})"
                )
            if declared != ftype and not (declared == "float" and ftype == "int"):
                hint = "{" + key + ("" if declared == "str" else f":{declared}") + "}"
                raise InvalidArgument(f"pattern key {key!r}: the catalog field is {declared}, write {hint}")
