"""Input rules and size limits: the one place for them (docs/spec.md "Limits", docs/catalog.md).

Every entry point (spec parsing, catalog registration and metadata, field and token names,
metaqueries) checks its input here and refuses with InvalidArgument (InvalidQuery for queries):
a clear one-line message that quotes at most a short prefix of the bad value (`shown`), never
the value itself. The numbers are named constants so that docs, tests and code agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from metaprod.core.errors import InvalidArgument, InvalidQuery

# -- names ------------------------------------------------------------------------------------
MAX_NAME_CHARS = 128
# Productions, transformations, tokens: a letter or digit, then letters, digits, '.', '_', '-'.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
NAME_RULE = "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
# Fields are also the bare words of the compact query form: they start with a letter.
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,127}")
RESERVED_FIELD_NAMES = frozenset({"in", "nin", "not"})  # words of the compact query form
FIELD_NAME_RULE = "1 to 128 letters, digits, '.', '_' or '-', starting with a letter (not in, nin or not)"

# -- LFNs -------------------------------------------------------------------------------------
MAX_LFN_BYTES = 1024  # UTF-8
MAX_LFN_CHARS = 700  # the catalog's column (a unique index on MariaDB)
LFN_RULE = (
    f"an absolute path ('/...') of at most {MAX_LFN_BYTES} bytes and {MAX_LFN_CHARS} characters, normalised "
    "(no '.' or '..' segment, no '//', no trailing '/'), without control characters or a trailing space"
)

# -- free text --------------------------------------------------------------------------------
MAX_COMMAND_BYTES = 65_536
MAX_DESCRIPTION_CHARS = 4_096
MAX_OWNER_CHARS = 128
# Control characters (C0 and C1, DEL) other than newline and tab.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# -- specs ------------------------------------------------------------------------------------
MAX_SPEC_CHARS = 2_000_000  # the spec's text
# The spec's size once YAML aliases are expanded: one per node plus the characters of each
# scalar. Counted while the YAML is composed, so an alias bomb is refused before it is built.
MAX_SPEC_EXPANDED = 2_000_000
MAX_NESTING = 32  # YAML/JSON nesting depth of a spec, a metaquery or metadata
MAX_TRANSFORMATIONS = 1_000  # per production
MAX_TASKS_PER_ROOT = 10_000_000  # `tasks:` of a root (and after `transformation extend`)

# -- metaqueries and metadata -----------------------------------------------------------------
MAX_QUERY_CHARS = 65_536
MAX_METADATA_KEYS = 256  # per file
MAX_STR_VALUE_CHARS = 255  # a str metadata value (the catalog's column)

# -- gRPC -------------------------------------------------------------------------------------
# Both ends accept messages of this size: a production at MAX_TRANSFORMATIONS with a spec of
# MAX_SPEC_CHARS, its warnings summarised, stays well below it.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# -- error messages ---------------------------------------------------------------------------
SHOWN_CHARS = 60  # of a bad value quoted in an error
MAX_ERROR_CHARS = 1_000  # of any error message sent to a client


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A bad value as quoted in an error: its repr, cut to a short prefix for long values."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    if len(text) > limit:
        return f"{text[:limit]}... ({type(value).__name__} of {len(text)} characters)"
    return text


def clip(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An error message cut to `limit` characters (the last line of defence against echoes)."""
    return message if len(message) <= limit else f"{message[: limit - 30]}... ({len(message)} characters)"


def check_name(what: str, value: Any) -> str:
    """A production, transformation or token name, or InvalidArgument."""
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise InvalidArgument(f"bad {what} name {shown(value)}: {NAME_RULE}")
    return value


def check_field_name(value: Any) -> str:
    if not isinstance(value, str) or not FIELD_NAME.fullmatch(value) or value in RESERVED_FIELD_NAMES:
        raise InvalidArgument(f"bad field name {shown(value)}: {FIELD_NAME_RULE}")
    return value


def lfn_problem(lfn: Any) -> str | None:
    """Why `lfn` is not a valid LFN (None when it is); the fast path is a few C string calls."""
    if type(lfn) is not str:
        return "an LFN is a string"
    if not lfn.startswith("/") or len(lfn) > MAX_LFN_CHARS:
        return "not an absolute path" if not lfn.startswith("/") else f"longer than {MAX_LFN_CHARS} characters"
    if len(lfn) > 256 and len(lfn.encode("utf-8", "surrogatepass")) > MAX_LFN_BYTES:
        return f"longer than {MAX_LFN_BYTES} bytes"
    if "//" in lfn or "/./" in lfn or "/../" in lfn or lfn.endswith(("/.", "/..", "/")):
        return "not normalised (a '.' or '..' segment, '//' or a trailing '/')"
    if not (lfn.isascii() and lfn.isprintable()) and _ANY_CONTROL.search(lfn):
        return "has a control character"
    if lfn.endswith(" "):
        return "ends with a space"
    return None


def check_lfn(lfn: Any) -> str:
    problem = lfn_problem(lfn)
    if problem is not None:
        raise InvalidArgument(f"bad LFN {shown(lfn)}: {problem}; an LFN is {LFN_RULE}")
    return str(lfn)


def text_problem(value: str, max_chars: int, *, newlines: bool = True) -> str | None:
    """Why a free text (command, description) is refused, or None."""
    if len(value) > max_chars:
        return f"longer than {max_chars} characters"
    if not (value.isascii() and value.isprintable()) and (_CONTROL if newlines else _ANY_CONTROL).search(value):
        allowed = " other than newline and tab" if newlines else ""
        return f"has a control character{allowed} (NUL, escape...)"
    return None


def check_text(what: str, value: str, max_chars: int, *, newlines: bool = True) -> str:
    problem = text_problem(value, max_chars, newlines=newlines)
    if problem is not None:
        raise InvalidArgument(f"bad {what} {shown(value)}: {problem}")
    return value


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """The nesting depth of lists and maps in `value` (iterative: never a RecursionError),
    counted up to `limit + 1`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, Mapping):
            children: Any = v.values()
        elif isinstance(v, list | tuple):
            children = v
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((c, depth + 1) for c in children)
    return deepest


def check_query_text(text: str) -> str:
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"metaquery {shown(text)} is longer than {MAX_QUERY_CHARS} characters")
    return text


def check_query_value(value: Any) -> Any:
    """A metaquery in its dict form: nesting bounded (a query is a map of keys to conditions)."""
    if nesting_depth(value) > MAX_NESTING:
        raise InvalidQuery(f"metaquery nested deeper than {MAX_NESTING} levels")
    return value


def check_json_depth(text: str, limit: int = MAX_NESTING) -> None:
    """Refuse JSON text nested deeper than `limit` before it is parsed (the parser recurses)."""
    if text.count("[") + text.count("{") <= limit:
        return
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                raise InvalidQuery(f"JSON nested deeper than {limit} levels")
        elif ch in "]}":
            depth -= 1


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def plain_problem(value: Any, limit: int = MAX_NESTING) -> str | None:
    """Why `value` is not plain JSON data (str, finite float, 64-bit int, bool, None, lists,
    maps with string keys, nested at most `limit` deep), or None. Iterative."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if v is None or isinstance(v, str | bool):
            continue
        if isinstance(v, int):
            if not INT64_MIN <= v <= INT64_MAX:
                return f"the integer {shown(v)} is not a 64-bit integer"
        elif isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                return f"{v} is not a finite number"
        elif isinstance(v, Mapping | list):
            if depth > limit:
                return f"nested deeper than {limit} levels"
            if isinstance(v, Mapping):
                bad = next((k for k in v if not isinstance(k, str)), None)
                if bad is not None:
                    return f"the key {shown(bad)} is not a string"
                stack.extend((c, depth + 1) for c in v.values())
            else:
                stack.extend((c, depth + 1) for c in v)
        else:
            return f"{shown(v)} ({type(v).__name__}) is not a string, number, boolean, list or map"
    return None


# Validation lists at most this many warnings of each kind, then one that counts them all.
WARNINGS_LISTED_PER_KIND = 10


def check_lfn_lookup(lfn: Any) -> str:
    """An LFN to look up: refused only when it could never have been stored and would be
    unwieldy to quote (too long, a control character); any other string is simply not found."""
    if type(lfn) is not str:
        raise InvalidArgument(f"bad LFN {shown(lfn)}: an LFN is a string")
    if len(lfn) > MAX_LFN_CHARS or (len(lfn) > 256 and len(lfn.encode("utf-8", "surrogatepass")) > MAX_LFN_BYTES):
        raise InvalidArgument(f"bad LFN {shown(lfn)}: longer than {MAX_LFN_BYTES} bytes or {MAX_LFN_CHARS} characters")
    if not (lfn.isascii() and lfn.isprintable()) and _ANY_CONTROL.search(lfn):
        raise InvalidArgument(f"bad LFN {shown(lfn)}: has a control character")
    return lfn
