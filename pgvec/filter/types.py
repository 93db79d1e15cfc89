"""PostgreSQL's type rules for filter values: what its input functions read, which
casts keep a value, how a parameter's text or binary form decodes, and how a value
compares with a column of a given type.

They are shared by the rewriter (constant folding of a WHERE clause), the binder
(:mod:`pgvec.filter.bind`: a client's parameter values typed per column) and the engine
(which mirrors the columns whose comparisons numpy reproduces exactly). Anything not
reproduced exactly raises ``Unsupported``, and PostgreSQL judges it instead.
"""

from __future__ import annotations

import math
import re
import struct
from decimal import Decimal, InvalidOperation

import numpy as np

from pgvec.filter.model import Column, Unsupported

Value = int | Decimal | float | bool | str

#: format_type() names mirrored, and how they compare
KINDS: dict[str, str] = {
    "smallint": "int",
    "integer": "int",
    "bigint": "int",
    "real": "float",
    "double precision": "float",
    "boolean": "bool",
    "text": "text",
    "character varying": "text",
}
#: collations whose equality is byte equality: the database default (deterministic by
#: rule), "C" and "POSIX"; 0 for types without a collation
_DETERMINISTIC = frozenset({0, 100, 950, 951})


def base_type(type_name: str) -> str:
    """format_type() without a type modifier: ``character varying(20)`` is text-like, and
    ``character varying(8)[]`` an array (``character varying[]``), which is nothing like it."""
    name, paren, rest = type_name.partition("(")
    if paren and rest.endswith("[]"):
        return name + "[]"
    return name


def kind_of(type_name: str) -> str:
    return KINDS[base_type(type_name)]


def mirrorable(type_name: str, collation: int = 0) -> bool:
    """Whether a column of this type (and collation) is mirrored."""
    return base_type(type_name) in KINDS and collation in _DETERMINISTIC


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
TYPE_NAMES = {oid: name for name, oid in TYPE_OIDS.items()} | {705: "text"}  # unknown: as text
TEXT_OIDS = (25, 1043, 705)  # text, varchar, unknown
INT_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}
_BINARY = {21: ">h", 23: ">i", 20: ">q", 700: ">f", 701: ">d"}
_INT_TEXT = re.compile(r"\s*[+-]?\d+\s*")
_DECIMAL_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_FLOAT_WORDS = {"nan", "infinity", "+infinity", "-infinity", "inf", "+inf", "-inf"}
_TRUE = {"t", "tr", "tru", "true", "y", "ye", "yes", "on", "1"}
_FALSE = {"f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0"}


def parse_text(text: str, type_name: str) -> Value:
    """A value typed in text, as PostgreSQL's input function for ``type_name`` reads it."""
    if type_name in INT_RANGES:
        if not _INT_TEXT.fullmatch(text):
            raise Unsupported(f"{text!r} is not a plain {type_name}")
        value = int(text)
        bound = INT_RANGES[type_name]
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
            return to_real(Decimal(stripped))
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


def to_real(value: Decimal) -> float:
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


def decode_binary(raw: bytes, oid: int) -> Value:
    if oid == 16:
        return raw != b"\x00"
    if oid in TEXT_OIDS:
        return raw.decode("utf-8")
    fmt = _BINARY.get(oid)
    if fmt is None or struct.calcsize(fmt) != len(raw):
        raise Unsupported(f"binary parameter of type {oid}")
    value: int | float = struct.unpack(fmt, raw)[0]
    return value


def cast(value: Value, type_name: str | None) -> Value:
    """``value::type_name`` where that is the same value (an integer to a wider or
    narrower integer type that holds it, a value to its own type); else Unsupported."""
    if type_name is None:
        return value
    bound = INT_RANGES.get(type_name)
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


def coerce(value: Value, type_name: str | None, column: Column) -> Value:
    """A value of type ``type_name`` (None: as written) as it compares with ``column``."""
    if type_name == "real" and not isinstance(value, bool | str):
        if kind_of(column.type) == "int":
            raise Unsupported("integer against real")  # its own operator resolution
        if isinstance(value, int | Decimal):
            value = to_real(Decimal(value))
        elif math.isfinite(value):
            value = float(np.float32(value))  # float8 to float4: one rounding
    return typed(value, column)


def typed(value: Value, column: Column) -> Value:
    """``value`` as it compares with ``column`` (or Unsupported where PostgreSQL errs)."""
    kind = kind_of(column.type)
    if isinstance(value, bool) != (kind == "bool") or isinstance(value, str) != (kind == "text"):
        raise Unsupported(f"{value!r} against a {column.type} column")
    if kind == "float" and isinstance(value, int | Decimal):
        if isinstance(value, Decimal) and (not value.is_finite() or value.adjusted() > 308):
            raise Unsupported(f"{value} as double precision")  # NaN or out of range
        return float(value)
    return value


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
ARRAY_NAMES = {oid: name for name, oid in ARRAY_OIDS.items()}
_ARRAY_ITEM = re.compile(r'\s*(?:"([^"\\]*)"|([^",{}\s\\]+))\s*')


def array_items(text: str) -> list[str | None]:
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


def decode_binary_array(raw: bytes) -> list[Value | None]:
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
        out.append(decode_binary(raw[pos : pos + size], oid))
        pos += size
    return out
