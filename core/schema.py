"""The catalog schema: the declared type (`int`, `float` or `str`) of each metadata field."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping

from metaprod.core.errors import InvalidQuery

FIELD_TYPES = ("int", "float", "str")
_TYPE_NAMES: dict[object, str] = {"int": "int", "float": "float", "str": "str", int: "int", float: "float", str: "str"}


def check_field_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidQuery(f"field names must be non-empty strings, not {name!r}")
    return name


class Schema(Mapping[str, str]):
    """Immutable map from field name to type name; `Schema({"run": "int", "site": "str"})`.

    Types are given as "int", "float", "str" (or the Python types themselves); anything else is a
    ValueError naming the field. A Schema is a read-only Mapping (iteration yields field names).
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, str | type] | None = None) -> None:
        if fields is None:
            fields = {}
        if not isinstance(fields, Mapping):
            raise InvalidQuery(f"a schema is a mapping of field name to type, not {type(fields).__name__}")
        checked: dict[str, str] = {}
        for name, ftype in fields.items():
            check_field_name(name)
            try:
                checked[name] = _TYPE_NAMES[ftype]
            except (KeyError, TypeError):
                raise InvalidQuery(
                    f"field {name!r}: unknown type {ftype!r} (expected one of {', '.join(FIELD_TYPES)})"
                ) from None
        self._fields = dict(sorted(checked.items()))

    def field_type(self, name: str) -> str | None:
        """The declared type of a field, or None when it is not declared."""
        return self._fields.get(name)

    def __getitem__(self, name: str) -> str:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def items(self) -> ItemsView[str, str]:
        return self._fields.items()

    def to_dict(self) -> dict[str, str]:
        return dict(self._fields)

    def conflicts(self, other: Mapping[str, str | type]) -> list[tuple[str, str, str]]:
        """`(field, our type, their type)` for each field declared in both with another type."""
        theirs = other if isinstance(other, Schema) else Schema(other)
        return [(n, t, theirs[n]) for n, t in self._fields.items() if n in theirs and theirs[n] != t]

    def merged(self, other: Mapping[str, str | type]) -> Schema:
        """This schema extended by `other`; a field declared with another type is a ValueError."""
        theirs = other if isinstance(other, Schema) else Schema(other)
        clash = self.conflicts(theirs)
        if clash:
            name, ours, new = clash[0]
            raise InvalidQuery(f"field {name!r} is declared {ours}, cannot redeclare it as {new}")
        return Schema({**theirs.to_dict(), **self._fields})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Schema):
            return self._fields == other._fields
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._fields.items()))

    def __repr__(self) -> str:
        return f"Schema({self._fields!r})"
