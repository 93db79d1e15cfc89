"""Any predicate of ``pgvec.filter.model`` as parameterized PostgreSQL SQL.

``render`` gives the text of a WHERE clause with ``$n`` placeholders and the values to
bind to them, text-encoded, each placeholder with an explicit cast (``$3::bigint``,
``$4::text[]``, ``$5::jsonb``), so the statement means the same whatever types a client
library would infer. Identifiers are quoted and every value is bound: nothing a user
typed is ever written into the SQL text.

    >>> from pgvec.filter.model import Column, Compare, Const
    >>> r = render(Compare(Column("id", "bigint"), ">", Const(5)), first_param=3)
    >>> r.sql, r.values
    ('"id" > $3::integer', [b'5'])

JSON values follow Milvus: a comparison with a value of another type, a missing key, or
a JSON function given something that is not an array is false (a ``jsonb_typeof`` guard
and ``COALESCE(..., false)``), never an error. Arithmetic on integers is exact
(``numeric``), integer ``/`` truncates like Milvus's, and a zero divisor gives NULL, so
the comparison is false.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from pgvec.filter import typenames as tn
from pgvec.filter.model import (
    FLIPPED,
    And,
    AnyOf,
    Arith,
    ArrayItem,
    BoolValue,
    Call,
    Column,
    Compare,
    Comparison,
    Const,
    Expr,
    In,
    IsNull,
    IsNullExpr,
    JsonPath,
    Like,
    Literal,
    Neg,
    Not,
    Or,
    Param,
    Predicate,
)
from pgvec.filter.sql import quoted

_NUMBER_TYPES = ("smallint", "integer", "bigint", "numeric", "real", "double precision")
_CONTAINS = {
    "array_contains": "contains",
    "json_contains": "contains",
    "array_contains_all": "all",
    "json_contains_all": "all",
    "array_contains_any": "any",
    "json_contains_any": "any",
}


@dataclass(frozen=True)
class Rendered:
    """WHERE-clause SQL with ``$n`` placeholders, and the values of those placeholders as
    PostgreSQL text input (None for NULL), the first being ``$first_param``."""

    sql: str
    values: list[bytes | None]


def render(predicate: Predicate, *, first_param: int = 1) -> Rendered:
    """``predicate`` as SQL; its own values are bound from ``$first_param`` on, and a
    ``Param`` node is written as the ``$number`` of the enclosing statement it names."""
    writer = _Writer(first_param)
    sql = writer.predicate(predicate)
    return Rendered(sql, writer.values)


def encode(value: object, type_name: str | None) -> bytes | None:
    """``value`` as PostgreSQL's text input for ``type_name`` (jsonb: JSON text; an array
    type: an array literal)."""
    if value is None:
        return None
    if type_name is not None and tn.kind(type_name) == "json":
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    elif isinstance(value, list | tuple):
        text = "{" + ",".join(_array_item(v) for v in value) + "}"
    else:
        text = _scalar(value)
    if "\x00" in text:
        raise ValueError("PostgreSQL text cannot contain NUL")
    return text.encode()


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        return value
    raise ValueError(f"cannot bind {type(value).__name__}")


def _array_item(value: object) -> str:
    if value is None:
        return "NULL"
    text = _scalar(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _type_of_value(value: object) -> str:
    """The type a Python value is bound as when nothing else says."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return tn.int_type(value)
    if isinstance(value, Decimal):
        return "numeric"
    if isinstance(value, float):
        return "double precision"
    return "text"


class _Writer:
    def __init__(self, first_param: int):
        self.first = first_param
        self.values: list[bytes | None] = []
        #: each JSON path's SQL, written once: a test of it reads it more than once
        self._paths: dict[tuple[Column, tuple[str | int, ...]], str] = {}

    def bind(self, value: object, type_name: str | None) -> str:
        """A new placeholder for ``value``, cast to ``type_name`` if given."""
        self.values.append(encode(value, type_name))
        placeholder = f"${self.first + len(self.values) - 1}"
        return placeholder if type_name is None else f"{placeholder}::{tn.checked(type_name)}"

    # ------------------------------------------------------------------- predicates

    def predicate(self, node: Predicate) -> str:
        if isinstance(node, Compare):
            operand = self.operand(node.operand, node.column.type)
            return f"{quoted(node.column.name)} {_op(node.op)} {operand}"
        if isinstance(node, IsNull):
            return f"{quoted(node.column.name)} IS NULL"
        if isinstance(node, AnyOf):
            return self.any_of(node)
        if isinstance(node, And | Or):
            if not node.parts:
                return "true" if isinstance(node, And) else "false"
            joiner = " AND " if isinstance(node, And) else " OR "
            return "(" + joiner.join(self.predicate(p) for p in node.parts) + ")"
        if isinstance(node, Not):
            return f"NOT ({self.predicate(node.part)})"
        if isinstance(node, Comparison):
            left, right = self.expr(node.left)[0], self.expr(node.right)[0]
            sql = f"{left} {_op(node.op)} {right}"
            if node.collation is not None:
                sql += f" COLLATE {quoted(node.collation)}"
            return self.json_test(sql, (node.left, node.right), mismatch=node.op == "<>")
        if isinstance(node, In):
            if not node.items:
                return "true" if node.negated else "false"
            target = self.expr(node.target)[0]
            items = ", ".join(self.expr(i)[0] for i in node.items)
            sql = f"{target} {'NOT IN' if node.negated else 'IN'} ({items})"
            return self.json_test(sql, (node.target, *node.items), mismatch=node.negated)
        if isinstance(node, Like):
            target = self.expr(node.target)[0]
            sql = f"{target} LIKE {self.bind(node.pattern, 'text')}"
            return self.json_test(sql, (node.target,))
        if isinstance(node, IsNullExpr):
            if isinstance(node.target, JsonPath) and node.target.as_type is None:
                path = self.json_path(node.target)
                return f"COALESCE(jsonb_typeof({path}) = 'null', true)"
            return f"({self.expr(node.target)[0]}) IS NULL"
        if isinstance(node, BoolValue):
            sql = f"({self.expr(node.part)[0]})"
            if isinstance(node.part, Call) and node.part.name.lower() == "exists":
                return sql  # true or false, never unknown
            return self.json_test(sql, (node.part,))
        raise TypeError(f"not a predicate: {node!r}")

    def any_of(self, node: AnyOf) -> str:
        column, array = node.column, node.array
        name = quoted(column.name)
        if isinstance(array, Param):
            cast = f"::{tn.checked(array.cast)}[]" if array.cast else ""
            return f"{name} = ANY(${array.number}{cast})"
        if isinstance(array, Const):  # an untyped literal such as '{1,2}'
            if array.value is None:
                return f"{name} = ANY(NULL::{tn.checked(tn.base(column.type))}[])"
            if not isinstance(array.value, str):
                raise ValueError("an array constant must be an untyped literal")
            cast = array.type or tn.base(column.type) + "[]"
            return f"{name} = ANY({self.bind(array.value, cast)})"
        if not array:
            return "false"
        if node.with_column:
            items = ", ".join(self.operand(i, column.type) for i in array)
            return f"{name} IN ({items})"
        untyped = all(isinstance(i, Const) and isinstance(i.value, str) for i in array)
        context = "text" if untyped else column.type
        items = ", ".join(self.operand(i, context) for i in array)
        return f"{name} = ANY(ARRAY[{items}])"

    def operand(self, operand: Const | Param, context: str) -> str:
        """A constant or parameter compared with a value of type ``context``: an untyped
        string literal takes that type, as PostgreSQL types it."""
        if isinstance(operand, Param):
            cast = f"::{tn.checked(operand.cast)}" if operand.cast else ""
            return f"${operand.number}{cast}"
        value = operand.value
        if value is None:
            return "NULL" if operand.type is None else f"NULL::{tn.checked(operand.type)}"
        if operand.type is not None:
            return self.bind(value, operand.type)
        if isinstance(value, str):
            return self.bind(value, tn.base(context))
        return self.bind(value, _type_of_value(value))

    # ------------------------------------------------------------------- expressions

    def expr(self, node: Expr) -> tuple[str, str | None]:
        """The SQL of an expression and its type (None: unknown)."""
        if isinstance(node, Column):
            return quoted(node.name), node.type
        if isinstance(node, Const):
            return self.operand(node, "text"), node.type or _type_of_value(node.value)
        if isinstance(node, Param):
            return self.operand(node, "text"), node.cast
        if isinstance(node, Literal):
            return self.bind(node.value, node.type), node.type
        if isinstance(node, JsonPath):
            return self.json_value(node)
        if isinstance(node, ArrayItem):
            if node.index < 0:
                raise ValueError("an array position counts from 0")
            name = quoted(node.column.name)
            return f"{name}[{int(node.index) + 1}]", tn.element(node.column.type)
        if isinstance(node, Arith):
            return self.arith(node)
        if isinstance(node, Neg):
            sql, type_name = self.expr(node.part)
            if tn.kind(type_name) == "int":
                return f"(- ({sql})::numeric)", "numeric"
            return f"(- {sql})", type_name
        if isinstance(node, Call):
            return self.call(node)
        raise TypeError(f"not an expression: {node!r}")

    def json_path(self, node: JsonPath) -> str:
        """``"col" -> 'k' -> 0``: the jsonb value at the path, NULL where it is absent."""
        key = (node.column, tuple(node.path))
        sql = self._paths.get(key)
        if sql is None:
            sql = self._paths[key] = self._json_path(node)
        return sql

    def _json_path(self, node: JsonPath) -> str:
        sql = quoted(node.column.name)
        if tn.base(node.column.type) == "json":
            sql += "::jsonb"
        for key in node.path:
            if isinstance(key, int):
                sql += f" -> {int(key)}"
            else:
                sql += f" -> {self.bind(key, 'text')}"
        return f"({sql})"

    def json_value(self, node: JsonPath) -> tuple[str, str]:
        """The value at the path as ``as_type``: NULL when it is of another JSON type."""
        path = self.json_path(node)
        json_type = _json_type(node.as_type)
        if json_type is None:
            return path, "jsonb"
        if json_type == "number":
            sql, type_name = f"{path}::numeric", "numeric"
        elif json_type == "boolean":
            sql, type_name = f"{path}::boolean", "boolean"
        else:
            sql, type_name = f"{path} #>> '{{}}'", "text"
        return f"CASE WHEN jsonb_typeof({path}) = '{json_type}' THEN {sql} END", type_name

    def json_test(self, sql: str, parts: Sequence[Expr], *, mismatch: bool = False) -> str:
        """A test reading JSON values, with Milvus's meaning: unknown (NULL, so that NOT
        keeps it out too) where a value it reads is absent or JSON null; where one is of
        another type than the test reads it as, false (``mismatch``: true, for != and
        not in)."""
        paths = [p for part in parts for p in _json_paths(part)]
        if not paths:
            return sql
        reads = [self.json_path(p) for p in paths]
        present = " AND ".join(f"jsonb_typeof({r}) <> 'null'" for r in reads)
        typed = [
            f"jsonb_typeof({r}) = '{json_type}'"
            for r, p in zip(reads, paths, strict=True)
            if (json_type := _json_type(p.as_type)) is not None
        ]
        if typed:
            sql = f"CASE WHEN {' AND '.join(typed)} THEN {sql} ELSE {str(mismatch).lower()} END"
        return f"(CASE WHEN {present} THEN {sql} END)"

    def arith(self, node: Arith) -> tuple[str, str]:
        left, left_type = self.expr(node.left)
        right, right_type = self.expr(node.right)
        kinds = {tn.kind(left_type), tn.kind(right_type)}
        domain = "double precision" if "float" in kinds else "numeric"
        left, right = f"({left})::{domain}", f"({right})::{domain}"
        if node.op in ("+", "-", "*"):
            return f"({left} {node.op} {right})", domain
        if node.op == "/":
            if kinds == {"int"}:  # integer division truncates, as in Milvus
                return f"div({left}, NULLIF({right}, 0))", domain
            return f"({left} / NULLIF({right}, 0))", domain
        if node.op == "%":
            return f"mod({left}, NULLIF({right}, 0))", domain
        if node.op == "**":
            return f"power({left}, {right})", domain
        raise ValueError(f"unknown arithmetic operator {node.op!r}")

    def call(self, node: Call) -> tuple[str, str]:
        name, args = node.name.lower(), node.args
        if name == "array_length" and len(args) == 1:
            sql, type_name = self.expr(args[0])
            if tn.kind(type_name) == "array":
                return f"cardinality({sql})", "integer"
            return (
                f"CASE WHEN jsonb_typeof({sql}) = 'array' THEN jsonb_array_length({sql}) END",
                "integer",
            )
        if name == "exists" and len(args) == 1:  # a JSON null is no value
            return f"COALESCE(jsonb_typeof({self.expr(args[0])[0]}) <> 'null', false)", "boolean"
        test = _CONTAINS.get(name)
        if test is None or len(args) != 2:
            raise ValueError(f"unknown function {node.name}/{len(args)}")
        target, target_type = self.expr(args[0])
        if tn.kind(target_type) == "array":
            value = self.expr(args[1])[0]
            if test == "contains":
                return f"({value} = ANY({target}))", "boolean"
            return f"({target} {'@>' if test == 'all' else '&&'} {value})", "boolean"
        if test == "any":
            return self.json_contains_any(target, args[1]), "boolean"
        value = self.expr(args[1])[0]
        if test == "contains":
            return f"({target} @> jsonb_build_array({value}))", "boolean"
        return (
            f"(jsonb_typeof({value}) = 'array' AND {target} @> {value})",
            "boolean",
        )

    def json_contains_any(self, target: str, values: Expr) -> str:
        if isinstance(values, Literal) and isinstance(values.value, list | tuple):
            singletons = [json.dumps([v], ensure_ascii=False) for v in values.value]
            return f"({target} @> ANY({self.bind(singletons, 'jsonb[]')}))"
        value = self.expr(values)[0]
        return (
            "EXISTS (SELECT FROM jsonb_array_elements(CASE WHEN jsonb_typeof("
            f"{value}) = 'array' THEN {value} END) AS _e(v) "
            f"WHERE {target} @> jsonb_build_array(_e.v))"
        )


def _op(op: str) -> str:
    if op not in FLIPPED:
        raise ValueError(f"unknown comparison operator {op!r}")
    return op


def _json_type(as_type: str | None) -> str | None:
    """The JSON type a value read as ``as_type`` must have (None: read as JSON)."""
    if as_type is None or tn.kind(as_type) == "json":
        return None
    if tn.base(as_type) in _NUMBER_TYPES:
        return "number"
    if as_type == "boolean":
        return "boolean"
    if tn.kind(as_type) == "text":
        return "string"
    raise ValueError(f"a JSON value cannot be read as {as_type}")


def _json_paths(node: Expr) -> list[JsonPath]:
    if isinstance(node, JsonPath):
        return [node]
    if isinstance(node, Arith):
        return _json_paths(node.left) + _json_paths(node.right)
    if isinstance(node, Neg):
        return _json_paths(node.part)
    if isinstance(node, Call):
        return [p for a in node.args for p in _json_paths(a)]
    return []


#: where a filter over a partitioned table names the leaf partition it is run for
LEAF = "\x00leaf\x00"  # NUL never occurs in SQL from the wire


def leaf_condition(tableoid: str) -> str:
    """The condition a filter over a partitioned table carries so that it can be run
    for one leaf (``tableoid``: the table's ``tableoid`` column, qualified):
    :meth:`FilterSpec.for_leaf` makes it ``tableoid = <leaf OID>``, or true."""
    return f"({LEAF} IS NULL OR {tableoid} = {LEAF})"
