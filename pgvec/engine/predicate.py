"""A WHERE clause the engine evaluates itself, over mirrored scalar columns.

The rewriter turns a top-k query's WHERE clause into these nodes when every part of it
compares a mirrored column (integer, float, boolean) with a constant or a parameter;
``Where`` binds the parameter values of one execution and evaluates the clause over a
collection's labels, with SQL's three-valued logic and PostgreSQL's comparison rules:

* an integer column against a numeric constant compares exactly (``x > 2.5`` is
  ``x >= 3``); against a double precision value in double precision;
* a float column compares in double precision, with NaN equal to itself and greater than
  every other value, as PostgreSQL orders floats;
* an untyped parameter or literal takes the column's type, as PostgreSQL infers it.

Anything else (a value PostgreSQL would reject, a type pairing with rules of its own)
raises ``Unsupported``, and the caller asks PostgreSQL instead, which also gives the
client PostgreSQL's own error where there is one.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import numpy.typing as npt

from pgvec.engine.scalars import Scalars, base_type, kind_of
from pgvec.filter.model import (
    ENGINE_NODES,
    FLIPPED,
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

__all__ = [
    "FLIPPED",
    "And",
    "AnyOf",
    "Column",
    "Compare",
    "Const",
    "IsNull",
    "Not",
    "Operand",
    "Or",
    "Param",
    "Predicate",
    "Unsupported",
    "Where",
    "parse_text",
]

Bools = npt.NDArray[np.bool_]
Value = int | Decimal | float | bool | str


# ------------------------------------------------------------------------- parameters

#: pg_type OIDs of the parameter types understood, by format_type() name
TYPE_OIDS = {
    "smallint": 21,
    "integer": 23,
    "bigint": 20,
    "real": 700,
    "double precision": 701,
    "boolean": 16,
    "numeric": 1700,
    "text": 25,
    "character varying": 1043,
}
_NAMES = {oid: name for name, oid in TYPE_OIDS.items()} | {705: "text"}  # unknown: as text
_TEXT_OIDS = (25, 1043, 705)  # text, varchar, unknown
_INT_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}
_BINARY = {21: ">h", 23: ">i", 20: ">q", 700: ">f", 701: ">d"}
_INT_TEXT = re.compile(r"\s*[+-]?\d+\s*")
_DECIMAL_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_FLOAT_WORDS = {"nan", "infinity", "+infinity", "-infinity", "inf", "+inf", "-inf"}
_TRUE = {"t", "tr", "tru", "true", "y", "ye", "yes", "on", "1"}
_FALSE = {"f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0"}
#: ``= ANY`` arrays of floats or fractions are compared one element at a time, up to this
MAX_ANY_SCAN = 256


def parse_text(text: str, type_name: str) -> Value:
    """A value typed in text, as PostgreSQL's input function for ``type_name`` reads it."""
    if type_name in _INT_RANGES:
        if not _INT_TEXT.fullmatch(text):
            raise Unsupported(f"{text!r} is not a plain {type_name}")
        value = int(text)
        bound = _INT_RANGES[type_name]
        if not -bound <= value < bound:
            raise Unsupported(f"{value} is out of range for {type_name}")
        return value
    if type_name in ("real", "double precision"):
        stripped = text.strip()
        if stripped.lower() in _FLOAT_WORDS:
            return float(stripped)  # NaN, +-Infinity
        if not _DECIMAL_TEXT.fullmatch(text):
            raise Unsupported(f"{text!r} is not a plain {type_name}")
        if type_name == "real":
            return _to_real(Decimal(stripped))
        double = float(stripped)
        if math.isinf(double):
            raise Unsupported(f"{text!r} is out of range for double precision")
        return double
    if type_name == "numeric":
        if not _DECIMAL_TEXT.fullmatch(text):
            raise Unsupported(f"{text!r} is not a plain numeric")
        try:
            return Decimal(text.strip())
        except InvalidOperation as exc:
            raise Unsupported(str(exc)) from exc
    if kind_of(type_name) == "text":
        return text
    if type_name == "boolean":
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise Unsupported(f"{text!r} is not a boolean")
    raise Unsupported(f"type {type_name}")


def _to_real(value: Decimal) -> float:
    """``value`` rounded once to the nearest float32 (ties to even), as strtof() does;
    going through a double first can round twice."""
    if value.adjusted() > 39:
        raise Unsupported(f"{value} is out of range for real")
    with np.errstate(over="ignore"):
        near = np.float32(float(value))
    if not np.isfinite(near):
        raise Unsupported(f"{value} is out of range for real")
    up = np.nextafter(near, np.float32(np.inf))
    down = np.nextafter(near, np.float32(-np.inf))

    def distance(c: np.float32) -> tuple[Decimal, int]:
        return abs(Decimal(float(c)) - value), int(c.view(np.uint32)) & 1

    best = min((near, up, down), key=distance)
    if best == 0 and value != 0:
        raise Unsupported(f"{value} is out of range for real")  # underflow: an error
    return float(best)


def _decode_binary(raw: bytes, oid: int) -> Value:
    if oid == 16:
        return raw != b"\x00"
    if oid in _TEXT_OIDS:
        return raw.decode("utf-8")
    fmt = _BINARY.get(oid)
    if fmt is None or struct.calcsize(fmt) != len(raw):
        raise Unsupported(f"binary parameter of type {oid}")
    value: int | float = struct.unpack(fmt, raw)[0]
    return value


# ------------------------------------------------------------------------- evaluation


class Where:
    """A predicate bound to one execution's parameter values (as the client sent them:
    raw bytes or None, declared type OIDs, formats)."""

    def __init__(
        self,
        predicate: Predicate,
        values: Sequence[bytes | None] = (),
        types: Sequence[int] = (),
        formats: Sequence[int] = (),
    ) -> None:
        self.predicate = predicate
        self._values, self._types, self._formats = values, types, formats

    def mask(self, scalars: Scalars, n: int) -> Bools:
        """Which of labels [0, n) the WHERE clause admits (is TRUE for)."""
        try:
            return self._true(self.predicate, scalars, n)
        except UnicodeDecodeError as exc:  # not UTF-8: PostgreSQL knows the encoding
            raise Unsupported(str(exc)) from exc

    # SQL's three-valued logic as two masks: where a clause is TRUE, and where it is
    # FALSE (NULL is neither); NOT swaps them. Each is computed only when asked for.
    def _true(self, node: Predicate, scalars: Scalars, n: int) -> Bools:
        if not isinstance(node, ENGINE_NODES):
            raise Unsupported(type(node).__name__)
        if isinstance(node, Compare):
            return self._compare(node, scalars, n, True)
        if isinstance(node, AnyOf):
            return self._any(node, scalars, n, True)
        if isinstance(node, IsNull):
            return ~self._column(node.column, scalars, n)[1]
        if isinstance(node, Not):
            return self._false(node.part, scalars, n)
        if isinstance(node, And):
            return _fold(np.logical_and, (self._true(p, scalars, n) for p in node.parts))
        return _fold(np.logical_or, (self._true(p, scalars, n) for p in node.parts))

    def _false(self, node: Predicate, scalars: Scalars, n: int) -> Bools:
        if not isinstance(node, ENGINE_NODES):
            raise Unsupported(type(node).__name__)
        if isinstance(node, Compare):
            return self._compare(node, scalars, n, False)
        if isinstance(node, AnyOf):
            return self._any(node, scalars, n, False)
        if isinstance(node, IsNull):
            valid: Bools = self._column(node.column, scalars, n)[1].copy()
            return valid
        if isinstance(node, Not):
            return self._true(node.part, scalars, n)
        if isinstance(node, And):
            return _fold(np.logical_or, (self._false(p, scalars, n) for p in node.parts))
        return _fold(np.logical_and, (self._false(p, scalars, n) for p in node.parts))

    def _compare(self, node: Compare, scalars: Scalars, n: int, holds: bool) -> Bools:
        values, valid = self._column(node.column, scalars, n)
        value = self._operand(node.operand, node.column)
        if value is None:  # a comparison with NULL is NULL
            return np.zeros(n, np.bool_)
        if isinstance(value, str):
            if node.op not in ("=", "<>"):  # the order of text is the collation's
                raise Unsupported(f"text {node.op}")
            code = scalars.code(node.column.name, value)
            hit = np.zeros(n, np.bool_) if code is None else values == code
            if node.op == "<>":
                hit = ~hit
        else:
            hit = compare(values, kind_of(node.column.type), node.op, value)
        if not holds:
            hit = ~hit
        hit &= valid
        return hit

    def _any(self, node: AnyOf, scalars: Scalars, n: int, holds: bool) -> Bools:
        values, valid = self._column(node.column, scalars, n)
        elements = self._array(node)
        if elements is None:  # x = ANY(NULL) is NULL
            return np.zeros(n, np.bool_)
        if not elements:  # x = ANY('{}') is false, even for a NULL x
            return np.full(n, not holds)
        present = [e for e in elements if e is not None]
        kind = kind_of(node.column.type)
        if kind == "text":
            codes = [scalars.code(node.column.name, str(e)) for e in present]
            hit = np.isin(values, np.array([c for c in codes if c is not None], values.dtype))
        elif kind == "int" and all(isinstance(e, int) for e in present):
            limits = np.iinfo(values.dtype)
            ints = [e for e in present if isinstance(e, int)]
            inside = [e for e in ints if limits.min <= e <= limits.max]
            hit = np.isin(values, np.array(inside, values.dtype))
        elif len(present) <= MAX_ANY_SCAN:
            hit = np.zeros(n, np.bool_)
            for e in present:
                hit |= compare(values, kind, "=", e)
        else:
            raise Unsupported(f"= ANY of {len(present)} {node.column.type} values")
        if not holds:
            if len(present) < len(elements):  # no match against a NULL element is NULL
                return np.zeros(n, np.bool_)
            hit = ~hit
        hit &= valid
        return hit

    @staticmethod
    def _column(column: Column, scalars: Scalars, n: int) -> tuple[npt.NDArray[Any], Bools]:
        arrays = scalars.column(column.name, column.type)
        if arrays is None:
            raise Unsupported(f"column {column.name} ({column.type}) is not mirrored")
        return arrays[0][:n], arrays[1][:n]

    def _operand(self, operand: Operand, column: Column) -> Value | None:
        """The operand's value, typed as PostgreSQL types it against ``column``."""
        if isinstance(operand, Const):
            value = operand.value
            if value is None:
                return None
            if isinstance(value, str):  # an untyped literal takes the column's type
                return parse_text(value, column.type)
            return _coerce(value, operand.type, column)
        found = self._param(operand, column, TYPE_OIDS, _NAMES)
        if found is None:
            return None
        raw, oid, binary = found
        type_name = _NAMES[oid]
        value = _decode_binary(raw, oid) if binary else parse_text(raw.decode(), type_name)
        return _coerce(_cast(value, operand.cast), operand.cast or type_name, column)

    def _array(self, node: AnyOf) -> list[Value | None] | None:
        """The elements of the array (None for a NULL array), each typed as PostgreSQL
        types it against the column."""
        operand, column = node.array, node.column
        if isinstance(operand, tuple):
            return self._items(node, operand)
        if isinstance(operand, Const):
            if not isinstance(operand.value, str):
                raise Unsupported("an array constant")
            items = _array_items(operand.value)
            return [None if t is None else parse_text(t, column.type) for t in items]
        found = self._param(operand, column, ARRAY_OIDS, _ARRAY_NAMES)
        if found is None:
            return None
        raw, oid, binary = found
        type_name = _ARRAY_NAMES[oid]
        if binary:
            values = _decode_binary_array(raw)
        else:
            items = _array_items(raw.decode())  # not UTF-8: Unsupported, in mask()
            values = [None if t is None else parse_text(t, type_name) for t in items]
        cast, as_type = operand.cast, operand.cast or type_name
        return [None if v is None else _coerce(_cast(v, cast), as_type, column) for v in values]

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
        if oid in _TEXT_OIDS and cast_oid and oids is TYPE_OIDS:
            # '42'::text::integer: the text read by the type's input function; the binary
            # form of text is its text
            return raw, cast_oid, False
        oid = oid or cast_oid or oids[base_type(column.type)]
        if oid not in names:
            raise Unsupported(f"parameter type {oid}")
        return raw, oid, binary


def _cast(value: Value, type_name: str | None) -> Value:
    """``value::type_name`` where that is the same value (an integer to a wider or
    narrower integer type that holds it, a value to its own type); else Unsupported."""
    if type_name is None:
        return value
    bound = _INT_RANGES.get(type_name)
    if bound is not None and isinstance(value, int) and not isinstance(value, bool):
        if -bound <= value < bound:
            return value
        raise Unsupported(f"{value} is out of range for {type_name}")
    same = {
        "boolean": bool,
        "numeric": Decimal,
        "real": float,
        "double precision": float,
        "text": str,
        "character varying": str,
    }.get(type_name)
    if same is not None and isinstance(value, same) and (same is bool) == isinstance(value, bool):
        return value
    raise Unsupported(f"{value!r} cast to {type_name}")


def _coerce(value: Value, type_name: str | None, column: Column) -> Value:
    """A value of type ``type_name`` (None: as written) as it compares with ``column``."""
    if type_name == "real" and not isinstance(value, bool | str):
        if kind_of(column.type) == "int":
            raise Unsupported("integer against real")  # its own operator resolution
        if isinstance(value, int | Decimal):
            value = _to_real(Decimal(value))
        elif math.isfinite(value):
            value = float(np.float32(value))  # float8 to float4: one rounding
    return _typed(value, column)


#: array type OIDs, by their element's format_type() name
ARRAY_OIDS = {
    "smallint": 1005,
    "integer": 1007,
    "bigint": 1016,
    "real": 1021,
    "double precision": 1022,
    "boolean": 1000,
    "numeric": 1231,
    "text": 1009,
    "character varying": 1015,
}
_ARRAY_NAMES = {oid: name for name, oid in ARRAY_OIDS.items()}
_ARRAY_ITEM = re.compile(r'\s*(?:"([^"\\]*)"|([^",{}\s\\]+))\s*')


def _array_items(text: str) -> list[str | None]:
    """The items of a one-dimensional array literal such as ``{1, 2, NULL}``."""
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise Unsupported(f"{text!r} is not a plain array")
    body = body[1:-1]
    if not body.strip():
        return []
    items: list[str | None] = []
    for part in body.split(","):
        m = _ARRAY_ITEM.fullmatch(part)
        if m is None:
            raise Unsupported(f"{text!r} is not a plain array")
        quoted, bare = m.groups()
        if quoted is not None:
            items.append(quoted)
        else:
            items.append(None if bare.upper() == "NULL" else bare)
    return items


def _decode_binary_array(raw: bytes) -> list[Value | None]:
    """A one-dimensional array in PostgreSQL's binary format."""
    if len(raw) < 12:
        raise Unsupported("a short binary array")
    ndim, _flags, oid = struct.unpack_from(">iiI", raw)
    if ndim == 0:
        return []
    if ndim != 1:
        raise Unsupported(f"a {ndim}-dimensional array")
    (count, _lower) = struct.unpack_from(">ii", raw, 12)
    pos = 20
    out: list[Value | None] = []
    for _ in range(count):
        (size,) = struct.unpack_from(">i", raw, pos)
        pos += 4
        if size < 0:
            out.append(None)
            continue
        out.append(_decode_binary(raw[pos : pos + size], oid))
        pos += size
    return out


def _fold(op: Any, masks: Iterator[Bools]) -> Bools:
    out = next(masks)
    for mask in masks:
        op(out, mask, out=out)
    return out


def _typed(value: Value, column: Column) -> Value:
    """``value`` as it compares with ``column`` (or Unsupported where PostgreSQL errs)."""
    kind = kind_of(column.type)
    if isinstance(value, bool) != (kind == "bool") or isinstance(value, str) != (kind == "text"):
        raise Unsupported(f"{value!r} against a {column.type} column")
    if kind == "float" and isinstance(value, int | Decimal):
        if isinstance(value, Decimal) and (not value.is_finite() or value.adjusted() > 308):
            raise Unsupported(f"{value} as double precision")  # NaN or out of range
        return float(value)
    return value


def compare(values: npt.NDArray[Any], kind: str, op: str, value: Value) -> Bools:
    """``values op value`` per element, for non-NULL elements (not text: its codes
    compare through the column's dictionary)."""
    if isinstance(value, str):
        raise Unsupported("text without its dictionary")
    if kind == "bool":
        if op not in ("=", "<>"):
            raise Unsupported(f"boolean {op}")
        eq: Bools = values == bool(value)
        return eq if op == "=" else ~eq
    if isinstance(value, float):
        return _compare_float(values.astype(np.float64, copy=False), op, value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise Unsupported("a non-finite numeric")
        if value.adjusted() > 19:  # beyond bigint, without making a huge int of it
            value = -(2**64) if value.is_signed() else 2**64
        elif value != value.to_integral_value():
            # an integer never equals a fraction; x < 2.5 is x <= 2, x > 2.5 is x >= 3
            floor = int(value.to_integral_value(rounding="ROUND_FLOOR"))
            if op in ("=", "<>"):
                return np.full(len(values), op == "<>", np.bool_)
            return compare(values, kind, {"<": "<=", ">=": ">"}.get(op, op), floor)
        value = int(value)
    assert isinstance(value, int)
    limits = np.iinfo(values.dtype)
    if not limits.min <= value <= limits.max:  # beyond the column's type: all on one side
        below = value > 0  # every stored value is below ``value``
        result = {"=": False, "<>": True, "<": below, "<=": below, ">": not below}
        return np.full(len(values), result.get(op, not below), np.bool_)
    hit: Bools = _OPS[op](values, values.dtype.type(value))
    return hit


def _compare_float(x: npt.NDArray[np.float64], op: str, c: float) -> Bools:
    """PostgreSQL's float order: NaN equals NaN and sorts above every other value."""
    nan = np.isnan(x)
    if math.isnan(c):
        table = {"=": nan, "<>": ~nan, "<": ~nan, "<=": np.ones(len(x), np.bool_)}
        return table.get(op, nan if op == ">=" else np.zeros(len(x), np.bool_))
    hit: Bools = _OPS[op](x, c)  # NaN compares false with <, <=, = and true with <>
    return hit | nan if op in (">", ">=") else hit


_OPS = {
    "=": np.equal,
    "<>": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
