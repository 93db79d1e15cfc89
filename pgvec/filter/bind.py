"""Binding a predicate to one execution's parameter values.

A predicate compiled from a client's filter holds ``Param`` nodes (``$n`` of the filter
statement) and untyped literals. ``bind`` turns them into typed constants, as
PostgreSQL types them against the column they are compared with:

* an untyped parameter or literal takes the column's type, as PostgreSQL infers it;
  a parameter's declared type, or its cast in the statement, wins over that;
* text and binary parameter formats decode as PostgreSQL's input and receive functions
  read them, arrays included.

The result holds no ``Param``: every ``Compare`` compares with a ``Const`` whose value is
typed for its column (None: NULL), every ``AnyOf`` holds a tuple of such constants (or
``Const(None)`` for a NULL array). The engine evaluates only such bound predicates.
Anything PostgreSQL would type by rules of its own, or reject, raises ``Unsupported``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pgvec.filter.model import (
    And,
    AnyOf,
    Column,
    Compare,
    Const,
    IsNull,
    Not,
    Operand,
    Or,
    Param,
    Predicate,
    Unsupported,
)
from pgvec.filter.types import (
    ARRAY_NAMES,
    ARRAY_OIDS,
    KINDS,
    TEXT_OIDS,
    TYPE_NAMES,
    TYPE_OIDS,
    Value,
    array_items,
    base_type,
    cast,
    coerce,
    decode_binary,
    decode_binary_array,
    kind_of,
    parse_text,
)


def bind(
    predicate: Predicate,
    values: Sequence[bytes | None] = (),
    types: Sequence[int] = (),
    formats: Sequence[int] = (),
) -> Predicate:
    """``predicate`` with its parameters and literals typed, for the parameter
    ``values`` the client sent (raw bytes or None), their declared type OIDs (0: none)
    and formats (1: binary)."""
    try:
        return _Binder(values, types, formats).node(predicate)
    except UnicodeDecodeError as exc:  # not UTF-8: PostgreSQL knows the encoding
        raise Unsupported(str(exc)) from exc


def _checked(column: Column) -> Column:
    if base_type(column.type) not in KINDS:
        raise Unsupported(f"column {column.name} ({column.type}) is not mirrored")
    return column


class _Binder:
    def __init__(
        self, values: Sequence[bytes | None], types: Sequence[int], formats: Sequence[int]
    ) -> None:
        self._values, self._types, self._formats = values, types, formats

    def node(self, node: Predicate) -> Predicate:
        if isinstance(node, Compare):
            return Compare(node.column, node.op, Const(self._operand(node.operand, node.column)))
        if isinstance(node, AnyOf):
            elements = self._array(node)
            array = Const(None) if elements is None else tuple(Const(e) for e in elements)
            return AnyOf(node.column, array, node.with_column)
        if isinstance(node, IsNull):
            return node
        if isinstance(node, Not):
            return Not(self.node(node.part))
        if isinstance(node, And):
            return And(tuple(self.node(p) for p in node.parts))
        if isinstance(node, Or):
            return Or(tuple(self.node(p) for p in node.parts))
        raise Unsupported(type(node).__name__)

    def _operand(self, operand: Operand, column: Column) -> Value | None:
        """The operand's value, typed as PostgreSQL types it against ``column``."""
        _checked(column)
        if isinstance(operand, Const):
            value = operand.value
            if value is None:
                return None
            if isinstance(value, str):  # an untyped literal takes the column's type
                return parse_text(value, column.type)
            return coerce(value, operand.type, column)
        found = self._param(operand, column, TYPE_OIDS, TYPE_NAMES)
        if found is None:
            return None
        raw, oid, binary = found
        type_name = TYPE_NAMES[oid]
        value = decode_binary(raw, oid) if binary else parse_text(raw.decode(), type_name)
        return coerce(cast(value, operand.cast), operand.cast or type_name, column)

    def _array(self, node: AnyOf) -> list[Value | None] | None:
        """The elements of the array (None for a NULL array), each typed as PostgreSQL
        types it against the column."""
        operand, column = node.array, _checked(node.column)
        if isinstance(operand, tuple):
            return self._items(node, operand)
        if isinstance(operand, Const):
            if not isinstance(operand.value, str):
                raise Unsupported("an array constant")
            items = array_items(operand.value)
            return [None if t is None else parse_text(t, column.type) for t in items]
        found = self._param(operand, column, ARRAY_OIDS, ARRAY_NAMES)
        if found is None:
            return None
        raw, oid, binary = found
        type_name = ARRAY_NAMES[oid]
        if binary:
            values = decode_binary_array(raw)
        else:
            items = array_items(raw.decode())
            values = [None if t is None else parse_text(t, type_name) for t in items]
        as_type = operand.cast or type_name
        return [
            None if v is None else coerce(cast(v, operand.cast), as_type, column) for v in values
        ]

    def _items(self, node: AnyOf, items: tuple[Operand, ...]) -> list[Value | None]:
        """The items of ARRAY[...] or of an IN list. PostgreSQL converts them to one
        common type first; that is each item's own comparison only in the cases below."""
        column = node.column
        kind = kind_of(column.type)
        untyped = [isinstance(i, Const) and isinstance(i.value, str) for i in items]
        if all(untyped) and kind != "text" and not node.with_column:
            raise Unsupported("an array of untyped items is text[]")
        if node.with_column and base_type(column.type) == "real":
            raise Unsupported("x IN (...) of a real column compares as real")
        values = [self._operand(i, column) for i in items]
        doubles = [isinstance(v, float) for v in values if v is not None]
        if kind == "int" and any(doubles) and not all(doubles):
            raise Unsupported("integers with doubles compare as double")
        return values

    def _param(
        self, param: Param, column: Column, oids: dict[str, int], names: dict[int, str]
    ) -> tuple[bytes, int, bool] | None:
        """(raw value, type OID, binary) of a parameter, None if NULL: the type as the
        client declared it, else as cast in the statement, else the column's."""
        i = param.number - 1
        if i >= len(self._values):
            raise Unsupported(f"no value for ${param.number}")
        raw = self._values[i]
        if raw is None:
            return None
        oid = self._types[i] if i < len(self._types) else 0
        cast_oid = oids.get(param.cast, -1) if param.cast else 0
        if cast_oid == -1:
            raise Unsupported(f"${param.number} cast to {param.cast}")
        binary = bool(self._formats[i]) if i < len(self._formats) else False
        if oid in TEXT_OIDS and cast_oid and oids is TYPE_OIDS:
            # '42'::text::integer: the text read by the type's input function; the binary
            # form of text is its text
            return raw, cast_oid, False
        oid = oid or cast_oid or oids[base_type(column.type)]
        if oid not in names:
            raise Unsupported(f"parameter type {oid}")
        return raw, oid, binary
