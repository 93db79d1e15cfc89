"""A bound WHERE clause evaluated over a collection's mirrored scalar columns.

The rewriter (or another frontend) compiles a filter into :mod:`pgvec.filter.model`
nodes, and :func:`pgvec.filter.bind.bind` types its parameters and literals for one
execution. ``Where`` evaluates such a bound predicate over a collection's labels, with
SQL's three-valued logic and PostgreSQL's comparison rules:

* an integer column against a numeric constant compares exactly (``x > 2.5`` is
  ``x >= 3``); against a double precision value in double precision;
* a float column compares in double precision, with NaN equal to itself and greater than
  every other value, as PostgreSQL orders floats.

Anything else (a predicate not bound, a type pairing with rules of its own) raises
``Unsupported``, and the caller asks PostgreSQL instead, which also gives the client
PostgreSQL's own error where there is one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from pgvec.engine.scalars import Scalars
from pgvec.filter.model import (
    ENGINE_NODES,
    And,
    AnyOf,
    Column,
    Compare,
    Const,
    IsNull,
    Not,
    Operand,
    Predicate,
    Unsupported,
)
from pgvec.filter.types import Value, kind_of, typed

__all__ = ["Unsupported", "Where", "compare"]

Bools = npt.NDArray[np.bool_]


#: ``= ANY`` arrays of floats or fractions are compared one element at a time, up to this
MAX_ANY_SCAN = 256


# ------------------------------------------------------------------------- evaluation


class Where:
    """A bound predicate (:func:`pgvec.filter.bind.bind`), evaluated over mirrored
    scalar columns."""

    def __init__(self, predicate: Predicate) -> None:
        self.predicate = predicate

    def mask(self, scalars: Scalars, n: int) -> Bools:
        """Which of labels [0, n) the WHERE clause admits (is TRUE for)."""
        return self._true(self.predicate, scalars, n)

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
        value = self._value(node.operand, node.column)
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
        array = node.array
        if isinstance(array, tuple):
            elements: list[Value | None] | None = [self._value(e, node.column) for e in array]
        elif array == Const(None):
            elements = None
        else:
            raise Unsupported(f"{array!r} is not a bound array (pgvec.filter.bind)")
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

    @staticmethod
    def _value(operand: Operand, column: Column) -> Value | None:
        """A bound constant's value (None: NULL); Unsupported if it is not bound."""
        if not isinstance(operand, Const) or operand.type is not None:
            raise Unsupported(f"{operand!r} is not bound (pgvec.filter.bind)")
        value = operand.value
        if value is not None and typed(value, column) is not value:
            raise Unsupported(f"{value!r} is not typed for a {column.type} column")
        return value


def _fold(op: Any, masks: Iterator[Bools]) -> Bools:
    out = next(masks)
    for mask in masks:
        op(out, mask, out=out)
    return out


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
