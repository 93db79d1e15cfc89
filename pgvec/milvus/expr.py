"""Milvus boolean expressions compiled to pgvec's predicate model.

``compile_expr`` parses a ``filter=`` / ``expr=`` text (``pgvec.milvus.parse``), resolves
its names against the collection's fields, checks types as Milvus does, and gives a
``Predicate``: the engine's nodes (``Compare``, ``AnyOf``, ``IsNull``, ``And``, ``Or``,
``Not``) where a plain scalar column meets literals, the general nodes elsewhere.

    >>> fields = {"id": FieldRef("id", "bigint"), "color": FieldRef("color", "text")}
    >>> compile_expr('id > 5 and color == "red"', fields, dynamic=None)
    And(parts=(Compare(column=Column(name='id', type='bigint'), op='>', operand=Const(value=5, \
type=None)), Compare(column=Column(name='color', type='text'), op='=', operand=Const(value='red', \
type=None))))

Semantics chosen where Milvus leaves room: a JSON value of another type than the literal
it is compared with, or a missing key, makes the test false (see ``pgvec.filter.render``);
a ``Float`` (real) field is compared with literals in single precision, as Milvus casts
the literal to the field's type; strings order by bytes (``COLLATE "C"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

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
    Predicate,
)
from pgvec.milvus.lexer import MilvusExprError
from pgvec.milvus.parse import (
    Binary,
    CallOp,
    Exists,
    InList,
    IsNullOp,
    LikeOp,
    ListLit,
    Lit,
    Name,
    Node,
    Range,
    Template,
    Unary,
    parse,
)

__all__ = ["FieldRef", "MilvusExprError", "compile_expr"]

_ENGINE_TYPES = {"smallint", "integer", "bigint", "real", "double precision", "boolean"}
_ENGINE_TYPES |= {"text", "character varying"}
_MILVUS_TYPES = {
    "smallint": "Int16",
    "integer": "Int32",
    "bigint": "Int64",
    "real": "Float",
    "double precision": "Double",
    "boolean": "Bool",
    "text": "VarChar",
    "character varying": "VarChar",
    "jsonb": "JSON",
    "json": "JSON",
}
_KINDS = {"int": "int", "float": "float", "bool": "bool", "text": "string", "json": "json"}
_NUMERIC = ("int", "float", "number")
_COMPARISONS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_CONTAINS = {
    "json_contains": "contains",
    "array_contains": "contains",
    "json_contains_all": "all",
    "array_contains_all": "all",
    "json_contains_any": "any",
    "array_contains_any": "any",
}
_INT64 = 2**63


@dataclass(frozen=True)
class FieldRef:
    """A Milvus field as pgvec stores it: the SQL column and its PostgreSQL type, as
    ``format_type()`` names it (``bigint``, ``character varying(200)``, ``jsonb``,
    ``bigint[]``)."""

    column: str
    type: str

    @property
    def is_array(self) -> bool:
        return tn.is_array(self.type)

    @property
    def is_json(self) -> bool:
        return tn.kind(self.type) == "json"


def compile_expr(
    text: str,
    fields: Mapping[str, FieldRef],
    *,
    dynamic: str | None,
    params: Mapping[str, object] | None = None,
) -> Predicate:
    """The predicate of Milvus expression ``text`` over ``fields`` (by Milvus field name).

    ``dynamic`` is the jsonb column of a dynamic schema's extra keys: an unknown name
    reads that key of it; None makes an unknown name an error. ``params`` binds the
    ``{name}`` templates (``filter_params``). A blank text is ``And(())``, always true.
    """
    if not text.strip():
        return And(())
    return _Compiler(text, fields, dynamic, params or {}).predicate(parse(text))


@dataclass(frozen=True)
class _Value:
    """A compiled operand: its expression, kind (int, float, number, string, bool, json,
    array, list, other) and Milvus type name, the value of a constant, and the column of
    a plain scalar column of a type the engine evaluates."""

    expr: Expr
    kind: str
    type: str
    const: bool = False
    value: object = None
    column: Column | None = None
    element: str | None = None  # of an array column


class _Compiler:
    def __init__(
        self,
        text: str,
        fields: Mapping[str, FieldRef],
        dynamic: str | None,
        params: Mapping[str, object],
    ):
        self.text = text
        self.fields = fields
        self.dynamic = dynamic
        self.params = params

    def error(self, message: str, pos: int) -> MilvusExprError:
        return MilvusExprError(message, pos + 1, self.text)

    # ------------------------------------------------------------------- predicates

    def predicate(self, node: Node) -> Predicate:
        if isinstance(node, Binary) and node.op in ("and", "or"):
            kind = And if node.op == "and" else Or
            parts: list[Predicate] = []
            for side in (node.left, node.right):
                part = self.predicate(side)
                parts.extend(part.parts if isinstance(part, kind) else (part,))
            return kind(tuple(parts))
        if isinstance(node, Unary) and node.op == "not":
            return Not(self.predicate(node.operand))
        if isinstance(node, Binary) and node.op in _COMPARISONS:
            return self.compare(node.op, node.left, node.right, node.pos)
        if isinstance(node, Range):
            low = self.compare(node.op1, node.low, node.middle, node.pos)
            high = self.compare(node.op2, node.middle, node.high, node.pos)
            return And((low, high))
        if isinstance(node, InList):
            return self.in_list(node)
        if isinstance(node, LikeOp):
            return self.like(node)
        if isinstance(node, IsNullOp):
            return self.is_null(node)
        if isinstance(node, Exists):
            target = self.value(node.operand)
            if target.kind != "json":
                raise self.error(f"exists needs a JSON key, not {target.type}", node.pos)
            return BoolValue(Call("exists", (target.expr,)))
        if isinstance(node, CallOp) and node.name in _CONTAINS:
            return self.contains(node)
        value = self.value(node)
        if value.kind == "json":
            return Comparison(_as(value, "boolean").expr, "=", Literal(True, "boolean"))
        if value.kind != "bool":
            raise self.error(f"{value.type} is not a boolean expression", _pos(node))
        if value.column is not None:
            return Compare(value.column, "=", Const(True))
        if value.const:
            return BoolValue(Literal(value.value, "boolean"))
        return Comparison(value.expr, "=", Literal(True, "boolean"))

    def compare(self, op: str, left_node: Node, right_node: Node, pos: int) -> Predicate:
        sql_op = _COMPARISONS[op]
        left, right = self.value(left_node), self.value(right_node)
        if left.const and right.const:
            self.check(left, right, sql_op, pos)
            return BoolValue(Literal(_fold_compare(sql_op, left.value, right.value), "boolean"))
        if left.const:
            left, right, sql_op = right, left, FLIPPED[sql_op]
        if left.kind == "json" and right.kind == "json":
            raise self.error("comparisons between JSON and JSON are not supported", pos)
        if left.kind == "json" or right.kind == "json":
            json_side, other = (left, right) if left.kind == "json" else (right, left)
            typed = self.json_as(json_side, other, pos)
            left, right = (typed, other) if left.kind == "json" else (other, typed)
        self.check(left, right, sql_op, pos)
        collation = "C" if left.kind == "string" and sql_op not in ("=", "<>") else None
        if right.const and left.column is not None and collation is None:
            return Compare(left.column, sql_op, self.const_for(left, right.value))
        right_expr = self.literal_for(left, right.value) if right.const else right.expr
        return Comparison(left.expr, sql_op, right_expr, collation)

    def in_list(self, node: InList) -> Predicate:
        target = self.value(node.target)
        items = self.value(node.items)
        if items.kind != "list" or not isinstance(items.value, list):
            raise self.error("the right side of in must be a list", _pos(node.items))
        values: list[object] = items.value
        if target.kind == "json":
            kinds = {_const_kind(v) for v in values}
            kinds = {"float" if k == "int" else k for k in kinds}
            if len(kinds) == 1 and kinds <= {"float", "string", "bool"}:
                example = _Value(Literal(None), kinds.pop(), "")
                typed = self.json_as(target, example, node.pos)
                literals = tuple(self.literal_for(typed, v) for v in values)
                return In(typed.expr, literals, node.negated)
            return In(target.expr, tuple(Literal(v, "jsonb") for v in values), node.negated)
        for v in values:
            self.check(target, _const(v), "=", node.pos)
        if target.column is None:
            literals = tuple(self.literal_for(target, v) for v in values)
            return In(target.expr, literals, node.negated)
        if not values:
            return In(target.column, (), node.negated)
        consts = tuple(self.const_for(target, v) for v in values)
        if len(consts) == 1:
            test: Predicate = Compare(target.column, "=", consts[0])
        else:
            test = AnyOf(target.column, consts, with_column=True)
        return Not(test) if node.negated else test

    def like(self, node: LikeOp) -> Predicate:
        target = self.value(node.target)
        pattern = self.value(node.pattern)
        if not (pattern.const and isinstance(pattern.value, str)):
            raise self.error("the pattern of like must be a string", _pos(node.pattern))
        text = pattern.value
        if (len(text) - len(text.rstrip("\\"))) % 2:
            text += "\\"  # a lone trailing backslash matches itself
        if target.kind == "json":
            return Like(_as(target, "text").expr, text)
        if target.kind != "string":
            raise self.error(f"like operation on non-string field {target.type}", node.pos)
        return Like(target.expr, text)

    def is_null(self, node: IsNullOp) -> Predicate:
        target = self.value(node.target)
        if isinstance(target.expr, Column):
            test: Predicate = IsNull(target.expr)
        elif isinstance(target.expr, JsonPath | ArrayItem):
            test = IsNullExpr(target.expr)
        else:
            raise self.error("is null needs a field", node.pos)
        return Not(test) if node.negated else test

    def contains(self, node: CallOp) -> Predicate:
        test = _CONTAINS[node.name]
        if len(node.args) != 2:
            raise self.error(f"{node.name} takes 2 arguments", node.pos)
        target, value = self.value(node.args[0]), self.value(node.args[1])
        if not value.const:
            raise self.error(f"the second argument of {node.name} must be a constant", node.pos)
        if test != "contains" and value.kind != "list":
            raise self.error(f"the second argument of {node.name} must be a list", node.pos)
        if target.kind == "json":
            return BoolValue(Call(node.name, (target.expr, Literal(value.value, "jsonb"))))
        if target.kind != "array" or target.element is None:
            raise self.error(f"{node.name} operation on non-array field {target.type}", node.pos)
        element = tn.base(target.element)
        item = _Value(Literal(None), _kind(element), _milvus_type(element))
        if test == "contains":
            self.check_element(item, value, node.pos)
            literal = Literal(value.value, element)
        else:
            assert isinstance(value.value, list)
            for v in value.value:
                self.check_element(item, _const(v), node.pos)
            literal = Literal(value.value, element + "[]")
        return BoolValue(Call(node.name, (target.expr, literal)))

    def check_element(self, item: _Value, value: _Value, pos: int) -> None:
        if item.kind == "int" and value.kind == "float":
            raise self.error(f"{value.type} value in an array of {item.type}", pos)
        try:
            self.check(item, value, "=", pos)
        except MilvusExprError:
            raise self.error(f"{value.type} value in an array of {item.type}", pos) from None

    # ------------------------------------------------------------------- values

    def value(self, node: Node) -> _Value:
        if isinstance(node, Lit):
            return self.constant(node.value, node.pos)
        if isinstance(node, ListLit):
            items = [self.value(i) for i in node.items]
            for item, sub in zip(items, node.items, strict=True):
                if not item.const:
                    raise self.error("a list may hold constants only", _pos(sub))
            return _const([i.value for i in items])
        if isinstance(node, Template):
            if node.name not in self.params:
                raise self.error(f"no value for template variable {node.name}", node.pos)
            return self.constant(self.params[node.name], node.pos)
        if isinstance(node, Name):
            return self.name(node)
        if isinstance(node, Unary) and node.op in ("-", "+"):
            return self.negate(node)
        if isinstance(node, Binary) and node.op in ("+", "-", "*", "/", "%", "**"):
            return self.arith(node)
        if isinstance(node, CallOp) and node.name == "array_length":
            if len(node.args) != 1:
                raise self.error("array_length takes 1 argument", node.pos)
            target = self.value(node.args[0])
            if target.kind not in ("array", "json"):
                raise self.error(f"array_length of non-array field {target.type}", node.pos)
            return _Value(Call("array_length", (target.expr,)), "int", "Int64")
        if isinstance(node, CallOp) and node.name not in _CONTAINS:
            raise self.error(f"function {node.name} is not supported", node.pos)
        raise self.error("a boolean expression cannot be an operand here", _pos(node))

    def constant(self, value: object, pos: int) -> _Value:
        """A literal or template value, checked as Milvus accepts it."""
        if isinstance(value, bool | str):
            if isinstance(value, str) and "\x00" in value:
                raise self.error("a string cannot contain NUL", pos)
            return _const(value)
        if isinstance(value, int):
            if not -_INT64 <= value < _INT64:
                raise self.error(f"integer {value} is out of range for Int64", pos)
            return _const(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.error(f"number {value} is out of range", pos)
            return _const(value)
        if isinstance(value, list | tuple):
            return _const([self.constant(v, pos).value for v in value])
        raise self.error(f"unsupported template value of type {type(value).__name__}", pos)

    def name(self, node: Name) -> _Value:
        path: tuple[str | int, ...] = node.path
        field = None if node.name == "$meta" else self.fields.get(node.name)
        if field is None:
            if self.dynamic is None:
                raise self.error(f"field {node.name} not exist", node.pos)
            if node.name != "$meta":
                path = (node.name, *path)
            return _Value(JsonPath(Column(self.dynamic, "jsonb"), path), "json", "JSON")
        column = Column(field.column, field.type)
        if field.is_json:
            return _Value(JsonPath(column, path), "json", "JSON")
        if field.is_array:
            element = tn.element(field.type)
            if not path:
                return _Value(column, "array", "Array", element=element)
            if len(path) == 1 and isinstance(path[0], int):
                item = ArrayItem(column, path[0])
                return _Value(item, _kind(element), _milvus_type(element))
            raise self.error(f"field {node.name} is an array: index it by position", node.pos)
        if path:
            raise self.error(f"field {node.name} is not JSON or an array", node.pos)
        engine = column if tn.base(field.type) in _ENGINE_TYPES else None
        return _Value(column, _kind(field.type), _milvus_type(field.type), column=engine)

    def negate(self, node: Unary) -> _Value:
        operand = self.value(node.operand)
        if operand.kind == "json":
            operand = _as(operand, "numeric")
        if operand.kind not in _NUMERIC:
            raise self.error(f"unary {node.op} on {operand.type}", node.pos)
        if node.op == "+":
            return operand
        if operand.const:
            assert isinstance(operand.value, int | float)
            return self.constant(-operand.value, node.pos)
        kind = "float" if operand.kind == "float" else "number"
        return _Value(Neg(operand.expr), kind, operand.type)

    def arith(self, node: Binary) -> _Value:
        left, right = self.value(node.left), self.value(node.right)
        sides = [_as(v, "numeric") if v.kind == "json" else v for v in (left, right)]
        for side, sub in zip(sides, (node.left, node.right), strict=True):
            if side.kind not in _NUMERIC:
                raise self.error(f"arithmetic on {side.type} is not supported", _pos(sub))
        left, right = sides
        if node.op == "%" and "float" in (left.kind, right.kind):
            raise self.error("% needs integers", node.pos)
        if left.const and right.const:
            assert isinstance(left.value, int | float) and isinstance(right.value, int | float)
            return self.constant(self.fold(node.op, left.value, right.value, node.pos), node.pos)
        kind = "float" if "float" in (left.kind, right.kind) else "number"
        exprs = [_numeric_literal(v) if v.const else v.expr for v in (left, right)]
        milvus = "Double" if kind == "float" else "Int64"
        return _Value(Arith(node.op, exprs[0], exprs[1]), kind, milvus)

    def fold(self, op: str, a: int | float, b: int | float, pos: int) -> int | float:
        if op in ("/", "%") and b == 0:
            raise self.error("division by zero", pos)
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if isinstance(a, int) and isinstance(b, int):
                quotient = abs(a) // abs(b)  # truncated, as in C
                return quotient if (a < 0) == (b < 0) else -quotient
            return a / b
        if op == "%":
            return math.fmod(a, b) if isinstance(a, float) else a - b * int(a / b)
        try:
            result: int | float = a**b
        except (OverflowError, ZeroDivisionError) as exc:
            raise self.error(f"{a} ** {b}: {exc}", pos) from None
        return result

    # ------------------------------------------------------------------- typing

    def check(self, left: _Value, right: _Value, op: str, pos: int) -> None:
        """Milvus's rule: numbers with numbers, strings with strings, booleans with
        booleans (for == and != only)."""
        kinds = {left.kind, right.kind}
        if kinds <= set(_NUMERIC) or kinds in ({"string"}, {"bool"}):
            if "bool" in kinds and op not in ("=", "<>"):
                raise self.error(f"{op} is not supported on Bool", pos)
            return
        raise self.error(f"comparisons between {left.type} and {right.type} are not supported", pos)

    def json_as(self, value: _Value, other: _Value, pos: int) -> _Value:
        """A JSON value read as the type of what it meets."""
        if other.kind in _NUMERIC:
            return _as(value, "numeric")
        if other.kind == "string":
            return _as(value, "text")
        if other.kind == "bool":
            return _as(value, "boolean")
        raise self.error(f"comparisons between JSON and {other.type} are not supported", pos)

    def const_for(self, column: _Value, value: object) -> Const:
        """A constant compared with an engine column: a Float field compares in single
        precision; a string is an untyped literal, read as the column's type."""
        if column.column is not None and tn.base(column.column.type) == "real":
            return Const(_plain(value), "real")
        return Const(_plain(value))

    def literal_for(self, target: _Value, value: object) -> Literal:
        """A literal compared with a general expression of ``target``'s kind."""
        if isinstance(value, bool):
            return Literal(value, "boolean")
        if isinstance(value, str):
            return Literal(value, "text")
        if target.kind == "number":
            return Literal(value, "numeric")
        if target.kind == "float" and isinstance(target.expr, Column):
            return Literal(value, tn.base(target.expr.type))
        if target.kind == "float" and isinstance(target.expr, ArrayItem):
            return Literal(value, tn.base(tn.element(target.expr.column.type)))
        return _numeric_literal(_const(value))


def _plain(value: object) -> int | float | bool | str:
    assert isinstance(value, int | float | bool | str)
    return value


def _pos(node: Node) -> int:
    return node.pos


def _as(value: _Value, as_type: str) -> _Value:
    """A JSON value read as ``as_type`` (numeric, text or boolean)."""
    assert isinstance(value.expr, JsonPath)
    kind = {"numeric": "number", "text": "string", "boolean": "bool"}[as_type]
    return replace(value, expr=replace(value.expr, as_type=as_type), kind=kind)


def _const_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "list"


def _const(value: object) -> _Value:
    kind = _const_kind(value)
    milvus = {"bool": "Bool", "int": "Int64", "float": "Double", "string": "VarChar"}
    return _Value(Literal(value), kind, milvus.get(kind, "Array"), const=True, value=value)


def _kind(type_name: str) -> str:
    return _KINDS.get(tn.kind(type_name), "other")


def _milvus_type(type_name: str) -> str:
    if tn.is_array(type_name):
        return "Array"
    return _MILVUS_TYPES.get(tn.base(type_name), type_name)


def _numeric_literal(value: _Value) -> Literal:
    if isinstance(value.value, float):
        return Literal(value.value, "double precision")
    return Literal(value.value, "bigint")


def _fold_compare(op: str, a: object, b: object) -> bool:
    x, y = _plain(a), _plain(b)
    if op == "=":
        return x == y
    if op == "<>":
        return x != y
    assert isinstance(x, int | float | str) and isinstance(y, int | float | str)
    if op == "<":
        return x < y  # type: ignore[operator]
    if op == "<=":
        return x <= y  # type: ignore[operator]
    if op == ">":
        return x > y  # type: ignore[operator]
    return x >= y  # type: ignore[operator]
