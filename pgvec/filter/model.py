"""The predicate model every frontend compiles its filters to.

A SQL WHERE clause (the rewriter) and a Milvus boolean expression (the Milvus frontend)
both become a tree of these frozen nodes. ``pgvec.filter.render`` turns any tree into
parameterized PostgreSQL SQL, which is always right; the engine evaluates the subset it
can reproduce exactly (``Compare``, ``AnyOf``, ``IsNull`` over mirrored scalar columns,
combined with ``And``, ``Or``, ``Not``) and raises ``Unsupported`` for anything else, so
PostgreSQL evaluates it instead.

Nodes for the engine's subset name a ``Column`` and an ``Operand``; the general nodes
below them (``Comparison``, ``In``, ``Like``, ``Arith``, ``JsonPath``, ``Call``,
``Literal``) take any ``Expr`` and are rendered to SQL only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


class Unsupported(Exception):
    """The engine cannot evaluate this predicate exactly; PostgreSQL can."""


# ------------------------------------------------------------ the engine's subset


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type()


@dataclass(frozen=True)
class Const:
    """A constant: int, Decimal (a numeric literal), float, bool, str (an untyped literal,
    read as the column's type) or None (NULL); ``type`` if it was cast explicitly."""

    value: int | Decimal | float | bool | str | None
    type: str | None = None


@dataclass(frozen=True)
class Param:
    """``$number`` of the filter statement, with the type of an explicit cast if any."""

    number: int
    cast: str | None = None


Operand = Const | Param
FLIPPED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class Compare:
    column: Column
    op: str
    operand: Operand


@dataclass(frozen=True)
class IsNull:
    column: Column


@dataclass(frozen=True)
class AnyOf:
    """``column = ANY(array)``: the array a parameter (``cast``: its element type, from
    ``$1::int[]``), an untyped literal such as ``'{1,2}'``, or items: ``ARRAY[...]``, or
    with ``with_column`` the list of ``column IN (...)``, whose common type includes the
    column's."""

    column: Column
    array: Operand | tuple[Operand, ...]
    with_column: bool = False


@dataclass(frozen=True)
class And:
    parts: tuple[Predicate, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Predicate, ...]


@dataclass(frozen=True)
class Not:
    part: Predicate


# ------------------------------------------------------------------ general nodes


@dataclass(frozen=True)
class Literal:
    """A constant of a known PostgreSQL type (``type``: a format_type() name, or None to
    let PostgreSQL infer it), rendered as a bound parameter. ``value`` is a Python value
    psycopg can adapt: None, bool, int, float, Decimal, str, or a list of those."""

    value: object
    type: str | None = None


@dataclass(frozen=True)
class JsonPath:
    """``column -> key -> ... `` of a jsonb column: the value at ``path`` (keys are str,
    array positions int), compared as ``as_type`` (a format_type() name) or as jsonb."""

    column: Column
    path: tuple[str | int, ...]
    as_type: str | None = None


@dataclass(frozen=True)
class ArrayItem:
    """``column[index]`` of an array column, ``index`` counted from 0 (NULL when out of
    range)."""

    column: Column
    index: int


@dataclass(frozen=True)
class Arith:
    """``left op right`` with op one of + - * / %, and ** (power)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg:
    part: Expr


@dataclass(frozen=True)
class Call:
    """A function of the filter language, rendered by name in ``pgvec.filter.render``
    (``array_length``, ``json_contains``, ``array_contains_any``...)."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Comparison:
    """``left op right`` between any two expressions (op as in ``Compare``); ``collation``
    names the collation of a text comparison (``C``: byte order), None for the default."""

    left: Expr
    op: str
    right: Expr
    collation: str | None = None


@dataclass(frozen=True)
class In:
    """``target [NOT] IN (items)``."""

    target: Expr
    items: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True)
class Like:
    """``target LIKE pattern`` with SQL's % and _ and backslash escapes."""

    target: Expr
    pattern: str


@dataclass(frozen=True)
class IsNullExpr:
    """``target IS NULL`` for any expression (``IsNull`` is the engine's column form)."""

    target: Expr


@dataclass(frozen=True)
class BoolValue:
    """A boolean expression used as a predicate: a boolean column, ``true``, ``false``."""

    part: Expr


Expr = Column | Const | Param | Literal | JsonPath | ArrayItem | Arith | Neg | Call
Predicate = (
    Compare | AnyOf | IsNull | And | Or | Not | Comparison | In | Like | IsNullExpr | BoolValue
)
ENGINE_NODES = (Compare, AnyOf, IsNull, And, Or, Not)
