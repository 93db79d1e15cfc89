"""A top-k query's WHERE clause as an engine predicate, when the engine can evaluate it.

Only comparisons of a mirrored scalar column with a constant or a parameter, combined
with AND / OR / NOT, BETWEEN, IN, ``= ANY(array)`` and IS [NOT] NULL, translate; anything
else (a function, a subquery, a column of another table, arithmetic) leaves the filter to
PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from sqlglot import exp

from pgvec.filter.model import (
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
from pgvec.filter.types import base_type, kind_of, parse_text

#: resolves a column reference of the WHERE clause to a mirrored column, or None
Resolver = Callable[[exp.Column], Column | None]

_COMPARISONS: dict[type[exp.Expr], str] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_TYPES = {
    exp.DataType.Type.SMALLINT: "smallint",
    exp.DataType.Type.INT: "integer",
    exp.DataType.Type.BIGINT: "bigint",
    exp.DataType.Type.FLOAT: "real",
    exp.DataType.Type.DOUBLE: "double precision",
    exp.DataType.Type.BOOLEAN: "boolean",
    exp.DataType.Type.DECIMAL: "numeric",
    exp.DataType.Type.TEXT: "text",
    exp.DataType.Type.VARCHAR: "character varying",
}
_INT = re.compile(r"\d+")


class _NotEngine(Exception):
    """This clause stays with PostgreSQL."""


def to_predicate(where: exp.Expr, resolve: Resolver) -> Predicate | None:
    """The engine predicate equivalent to ``where``, or None."""
    try:
        predicate = _node(where, resolve)
    except (_NotEngine, Unsupported):
        return None
    # PostgreSQL types an untyped parameter once, at its first use: one used against
    # columns of different types is left to it
    uses: dict[int, set[str]] = {}
    for column, param in _params_of(predicate):
        if param.cast is None:
            uses.setdefault(param.number, set()).add(base_type(column.type))
    if any(len(types) > 1 for types in uses.values()):
        return None
    return predicate


def _params_of(node: Predicate) -> list[tuple[Column, Param]]:
    if isinstance(node, Compare):
        return [(node.column, node.operand)] if isinstance(node.operand, Param) else []
    if isinstance(node, AnyOf):
        items = node.array if isinstance(node.array, tuple) else (node.array,)
        return [(node.column, p) for p in items if isinstance(p, Param)]
    if isinstance(node, IsNull):
        return []
    if isinstance(node, Not):
        return _params_of(node.part)
    if isinstance(node, And | Or):
        return [pair for part in node.parts for pair in _params_of(part)]
    raise _NotEngine(type(node).__name__)


def _node(node: exp.Expr, resolve: Resolver) -> Predicate:
    if isinstance(node, exp.Paren):
        return _node(node.this, resolve)
    if isinstance(node, exp.And | exp.Or):
        parts = (_node(node.this, resolve), _node(node.expression, resolve))
        return And(parts) if isinstance(node, exp.And) else Or(parts)
    if isinstance(node, exp.Not):
        return Not(_node(node.this, resolve))
    if (
        isinstance(node, exp.EQ)
        and isinstance(node.this, exp.Column)
        and isinstance(node.expression, exp.Any)
    ):
        return _any(_column(node.this, resolve), node.expression.this)
    op = _COMPARISONS.get(type(node))
    if op is not None:
        left, right = node.this, node.expression
        if isinstance(left, exp.Column):
            return _compare(_column(left, resolve), op, _operand(right))
        if isinstance(right, exp.Column):
            return _compare(_column(right, resolve), FLIPPED[op], _operand(left))
        raise _NotEngine
    if isinstance(node, exp.Between) and isinstance(node.this, exp.Column):
        column = _column(node.this, resolve)
        low, high = _operand(node.args["low"]), _operand(node.args["high"])
        between = And((_compare(column, ">=", low), _compare(column, "<=", high)))
        if not node.args.get("symmetric"):
            return between
        reverse = And((_compare(column, ">=", high), _compare(column, "<=", low)))
        return Or((between, reverse))
    if isinstance(node, exp.In) and isinstance(node.this, exp.Column):
        if node.args.get("query") is not None or not node.expressions:
            raise _NotEngine  # IN (SELECT ...)
        column = _column(node.this, resolve)
        items = tuple(_operand(e) for e in node.expressions)
        if len(items) == 1:  # PostgreSQL reads x IN (a) as x = a
            return _compare(column, "=", items[0])
        # several: x = ANY(ARRAY[...]) of the common type of x and the items
        return AnyOf(column, items, with_column=True)
    if (
        isinstance(node, exp.Is)
        and isinstance(node.this, exp.Column)
        and isinstance(node.expression, exp.Null)
    ):
        test = IsNull(_column(node.this, resolve))
        return Not(test) if node.args.get("negate") else test
    if isinstance(node, exp.Column):  # a boolean column on its own
        column = _column(node, resolve)
        if column.type != "boolean":
            raise _NotEngine
        return Compare(column, "=", Const(True))
    raise _NotEngine


def _compare(column: Column, op: str, operand: Operand) -> Compare:
    if op not in ("=", "<>") and kind_of(column.type) in ("text", "bool"):
        raise _NotEngine  # the order of text is the collation's
    return Compare(column, op, operand)


def _any(column: Column, array: exp.Expr) -> Predicate:
    """``column = ANY(array)``: a parameter, an ARRAY[...] of constants, or '{...}'."""
    while isinstance(array, exp.Paren):
        array = array.this
    if isinstance(array, exp.Array):
        items = tuple(_operand(e) for e in array.expressions)
        if not items or any(isinstance(i, Param) and i.cast is None for i in items):
            raise _NotEngine  # the array's type would come from elsewhere
        untyped = [isinstance(i, Const) and isinstance(i.value, str) for i in items]
        if any(untyped) and not all(untyped):
            raise _NotEngine  # untyped items take the others' type
        return AnyOf(column, items)
    if isinstance(array, exp.Literal) and array.is_string:
        return AnyOf(column, _string(str(array.this)))
    cast = None
    if isinstance(array, exp.Cast):
        to = array.args.get("to")
        if not (isinstance(to, exp.DataType) and to.is_type(exp.DataType.Type.ARRAY)):
            raise _NotEngine
        element = to.expressions[0] if to.expressions else None
        cast = _TYPES.get(element.this) if isinstance(element, exp.DataType) else None
        if cast is None or element is None or element.expressions:
            raise _NotEngine
        array = array.this
    operand = _operand(array)
    if not isinstance(operand, Param) or operand.cast is not None:
        raise _NotEngine
    return AnyOf(column, Param(operand.number, cast))


def _column(node: exp.Column, resolve: Resolver) -> Column:
    column = resolve(node)
    if column is None:
        raise _NotEngine
    return column


def _operand(node: exp.Expr) -> Operand:
    if isinstance(node, exp.Paren):
        return _operand(node.this)
    if isinstance(node, exp.Parameter):
        number = node.this.this if isinstance(node.this, exp.Literal) else None
        if number is None or not _INT.fullmatch(str(number)):
            raise _NotEngine
        return Param(int(str(number)))
    if isinstance(node, exp.Null):
        return Const(None)
    if isinstance(node, exp.Boolean):
        return Const(bool(node.this))
    if isinstance(node, exp.Literal):
        text = str(node.this)
        if node.is_string:
            return _string(text)  # untyped: read as the column's type
        return Const(_number(text))
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        if node.this.is_string:
            raise _NotEngine
        value = _number(str(node.this.this))
        return Const(-value)
    if isinstance(node, exp.Cast):
        to = node.args.get("to")
        if not isinstance(to, exp.DataType) or to.expressions:  # numeric(p, s) rounds
            raise _NotEngine
        type_name = _TYPES.get(to.this)
        if type_name is None:
            raise _NotEngine
        inner = _operand(node.this)
        if isinstance(inner, Param) and inner.cast is None:
            return Param(inner.number, type_name)
        if isinstance(inner, Const) and inner.value is not None and inner.type is None:
            if kind_of(type_name) == "text" and not isinstance(inner.value, str):
                raise _NotEngine  # true::text is 'true': PostgreSQL's spelling
            return Const(parse_text(str(inner.value), type_name), type_name)
        raise _NotEngine
    raise _NotEngine


def _string(text: str) -> Const:
    """An untyped string constant. One with a backslash means something else when
    standard_conforming_strings is off: PostgreSQL reads it."""
    if "\\" in text:
        raise _NotEngine
    return Const(text)


def _number(text: str) -> int | Decimal:
    """A numeric literal: an integer, or numeric (exact) when it has a point or exponent."""
    if _INT.fullmatch(text) and len(text) <= 18:
        return int(text)
    return Decimal(text)  # exact, however long
