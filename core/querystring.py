"""The compact string form of metaqueries (what people type on the command line).

    datatype=raw run>=100 run<200 site in CERN,IN2P3

Grammar (see docs/metaquery-grammar.md): whitespace-separated conditions `key op values`;
symbolic operators may be glued to key and value (DIRAC's `name<op>value`), word operators
(`in`, `nin`, `not in`) are surrounded by whitespace. A comma list after `=` means `in`, after
`!=` means `nin`. Quoted values ("a b", 'x,y') are strings; bare values are numbers when they
read as one (unless the schema says the field is a string), else strings.
"""

from __future__ import annotations

import re
from typing import Any

from metaprod.core.errors import InvalidQuery
from metaprod.core.schema import Schema

_SYMBOLIC = ("==", "!=", "<=", ">=", "=", "<", ">")
_OP_CHARS = frozenset("=!<>")
_SPECIAL = frozenset("=!<>,\"'[]")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}

Atom = tuple[str, str, Any]


def parse_number(text: str) -> int | float | None:
    """The number a bare token spells (decimal only: `inf`, `nan`, `1_000` are not numbers)."""
    if _INT_RE.fullmatch(text):
        return int(text)
    if _FLOAT_RE.fullmatch(text):
        return float(text)
    return None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> ValueError:
        return ValueError(f"metaquery string {self.text!r}, position {self.pos}: {message}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def bare(self) -> str:
        start = self.pos
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch.isspace() or ch in _SPECIAL:
                break
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise self.error(f"unterminated {quote}-quoted string")
            ch = self.text[self.pos]
            self.pos += 1
            if ch == quote:
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                continue
            esc = self.peek()
            self.pos += 1
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
            elif esc in _HEX_ESCAPES:
                digits = self.text[self.pos : self.pos + _HEX_ESCAPES[esc]]
                if len(digits) != _HEX_ESCAPES[esc] or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.error(f"bad \\{esc} escape")
                out.append(chr(int(digits, 16)))
                self.pos += len(digits)
            else:
                raise self.error(f"unknown escape \\{esc}")

    def token(self, what: str) -> tuple[str, bool]:
        """A bare or quoted token; the flag tells whether it was quoted."""
        if self.peek() in ("'", '"'):
            return self.quoted(), True
        tok = self.bare()
        if not tok:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.error(f"expected {what}, found {found}")
        return tok, False

    def operator(self, key: str) -> str:
        if self.peek() in _OP_CHARS:
            for op in _SYMBOLIC:
                if self.text.startswith(op, self.pos):
                    self.pos += len(op)
                    return "=" if op == "==" else op
            raise self.error(f"key {key!r}: unknown operator {self.peek()!r}")
        start = self.pos
        word = self.bare().lower()
        if word in ("in", "nin"):
            return word
        if word == "not":
            self.skip_ws()
            if self.bare().lower() == "in":
                return "nin"
        self.pos = start
        raise self.error(f"key {key!r}: expected an operator (= != < <= > >= in nin) after the key")

    def values(self, key: str, op: str) -> tuple[list[tuple[str, bool]], bool]:
        """The value or comma list; the flag tells whether it was a list."""
        what = f"a value for key {key!r} (operator {op!r})"
        if self.peek() == "[":
            self.pos += 1
            self.skip_ws()
            items: list[tuple[str, bool]] = []
            if self.peek() == "]":
                self.pos += 1
                return items, True
            while True:
                items.append(self.token(what))
                self.skip_ws()
                if self.peek() == "]":
                    self.pos += 1
                    return items, True
                if self.peek() != ",":
                    raise self.error(f"key {key!r} (operator {op!r}): expected ',' or ']' in the list")
                self.pos += 1
                self.skip_ws()
        items = [self.token(what)]
        while True:
            save = self.pos
            self.skip_ws()
            if self.peek() != ",":
                self.pos = save
                return items, len(items) > 1
            self.pos += 1
            self.skip_ws()
            items.append(self.token(what))


def _literal(key: str, op: str, tok: str, quoted: bool, schema: Schema | None) -> Any:
    ftype = schema.field_type(key) if schema is not None else None
    if ftype == "str" or (ftype is None and quoted):
        return tok
    number = parse_number(tok.strip() if quoted else tok)
    if number is None:
        if ftype is None:
            return tok
        raise InvalidQuery(f"key {key!r}, operator {op!r}: {tok!r} is not a number (the field is {ftype})")
    return number


def parse(text: str, schema: Schema | None = None) -> list[Atom]:
    """`(key, operator, literal)` atoms of a compact query, literals typed as described above."""
    if not isinstance(text, str):
        raise InvalidQuery(f"a metaquery string must be a str, not {type(text).__name__}")
    p = _Parser(text)
    atoms: list[Atom] = []
    while True:
        p.skip_ws()
        if not p.peek():
            return atoms
        key, _ = p.token("a key")
        p.skip_ws()
        op = p.operator(key)
        p.skip_ws()
        toks, listed = p.values(key, op)
        if p.peek() and not p.peek().isspace():
            raise p.error(f"key {key!r} (operator {op!r}): unexpected {p.peek()!r} after the value")
        lits = [_literal(key, op, tok, quoted, schema) for tok, quoted in toks]
        if op in ("in", "nin"):
            atoms.append((key, op, lits))
        elif listed and op in ("=", "!="):
            # DIRAC's command line: `site=A,B` is `in`, `site!=A,B` is `nin`.
            atoms.append((key, "in" if op == "=" else "nin", lits))
        elif listed:
            raise InvalidQuery(f"key {key!r}, operator {op!r}: takes a single value, not a list")
        else:
            atoms.append((key, op, lits[0]))


def _bare_ok(s: str, *, is_key: bool) -> bool:
    if not s or not s.isprintable() or any(ch.isspace() or ch in _SPECIAL for ch in s):
        return False
    # A value that reads as a number must be quoted to stay a string.
    return is_key or parse_number(s) is None


def quote(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def format_value(v: Any) -> str:
    if isinstance(v, str):
        return v if _bare_ok(v, is_key=False) else quote(v)
    return repr(v)


def format_key(key: str) -> str:
    return key if _bare_ok(key, is_key=True) else quote(key)


def format_condition(key: str, op: str, value: Any) -> str:
    """One condition in compact form, e.g. `run>=100` or `site in CERN,IN2P3`."""
    k = format_key(key)
    if op in ("in", "nin"):
        items = list(value)
        return f"{k} {op} " + (",".join(format_value(v) for v in items) if items else "[]")
    return f"{k}{op}{format_value(value)}"
