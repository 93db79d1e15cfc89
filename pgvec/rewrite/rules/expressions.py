"""pgvector's SQL surface on vector values: functions, operators, aggregates, casts and
comparisons, mapped to schema pgvec's functions on bytea.

An expression is a vector when it is a catalog vector column, a cast to ``vector``, or
one of the functions and operators below applied to a vector. pgvector's names are
mapped only where an operand is a vector, so ``avg(price)`` or ``a || b`` on text stay
PostgreSQL's; a string literal or a parameter beside a vector is read as a vector.

The select-list items pgvec rewrites keep the column names PostgreSQL gives the original
expressions (``?column?``, ``avg``, ``vector``, ...), and the names of the outermost
select list's items whose values are vectors are reported so that the proxy shows them
in pgvector's form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from pgvec.errors import PgvecError
from pgvec.rewrite.dialect import Raw, VectorDistance, generate
from pgvec.vectors import bytea_literal, check_dim, parse_text, to_bytes

__all__ = ["ExprPass", "column_name"]

#: pgvector's functions: name -> (positions of vector arguments, returns a vector)
FUNCTIONS: dict[str, tuple[tuple[int, ...], bool]] = {
    "l2_distance": ((0, 1), False),
    "cosine_distance": ((0, 1), False),
    "inner_product": ((0, 1), False),
    "l1_distance": ((0, 1), False),
    "vector_dims": ((0,), False),
    "vector_norm": ((0,), False),
    "l2_normalize": ((0,), True),
    "subvector": ((0,), True),
}
DISTANCES = {
    "<->": "l2_distance",
    "<#>": "negative_inner_product",
    "<=>": "cosine_distance",
    "<+>": "l1_distance",
}
ARITHMETIC: dict[type[exp.Expr], str] = {
    exp.Add: "vector_add",
    exp.Sub: "vector_sub",
    exp.Mul: "vector_mul",
    exp.DPipe: "vector_concat",
}
COMPARISONS: dict[type[exp.Expr], str] = {
    exp.EQ: "vector_eq",
    exp.NEQ: "vector_ne",
    exp.LT: "vector_lt",
    exp.LTE: "vector_le",
    exp.GT: "vector_gt",
    exp.GTE: "vector_ge",
}
AGGREGATES: dict[type[exp.Expr], str] = {exp.Avg: "avg", exp.Sum: "sum"}

#: is this Column node a catalog vector column? (its dimension, else None)
ColumnDim = Callable[[exp.Expr], int | None]


def literal_vector(node: exp.Literal, dim: int | None = None) -> bytes:
    """A vector literal's stored bytes. vector_in's errors point at the literal in the
    statement (psql's ``LINE 1: ... ^``), as pgvector's do; a wrong dimension, checked
    after the literal is read (pgvector's typmod check), does not."""
    try:
        values = parse_text(str(node.this))
    except PgvecError as err:
        start = node.meta.get("start")
        if isinstance(start, int):
            err.position = start + 1
        raise
    check_dim(values, dim)
    return to_bytes(values)


def pgvec_call(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Dot(
        this=exp.to_identifier("pgvec"),
        expression=exp.Anonymous(this=name, expressions=list(args)),
    )


def unparen(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _cast_to(node: exp.Expr) -> exp.DataType | None:
    if isinstance(node, exp.Cast):
        to = node.args.get("to")
        if isinstance(to, exp.DataType):
            return to
    return None


def _typmod(to: exp.DataType) -> int | None:
    """n of ``vector(n)``."""
    for param in to.expressions:
        value = param.this if isinstance(param, exp.DataTypeParam) else param
        if isinstance(value, exp.Literal) and str(value.this).isdigit():
            return int(str(value.this))
    return None


def _is_real_array(to: exp.DataType) -> bool:
    return (
        to.this == exp.DataType.Type.ARRAY
        and len(to.expressions) == 1
        and isinstance(to.expressions[0], exp.DataType)
        and to.expressions[0].this == exp.DataType.Type.FLOAT
    )


def param_number(node: exp.Expr) -> int | None:
    if isinstance(node, exp.Parameter) and isinstance(node.this, exp.Literal):
        text = str(node.this.this)
        if text.isdigit():
            return int(text)
    return None


@dataclass
class ExprPass:
    """One pass over a statement's tree, innermost expressions first."""

    column_dim: ColumnDim
    #: $n -> dimension (None: any) of the parameters that stand for vectors
    vector_params: dict[int, int | None]
    #: ids of nodes left alone (the top-k's distance, which the hit's distance replaces)
    skip: set[int] = field(default_factory=set)
    #: $n -> dimension (None: any) of the parameters that stand for arrays of vectors
    array_params: dict[int, int | None] = field(default_factory=dict)
    #: the dimension of the array of vectors a column names (0: any); None: not one
    array_dim: ColumnDim | None = None
    changed: bool = False
    #: ids of the nodes this pass put into the tree
    created: set[int] = field(default_factory=set)
    #: ids of the nodes (as now in the tree) whose values are vectors, with their
    #: dimension when known (0: not known)
    _vectors: dict[int, int] = field(default_factory=dict)
    #: ids of the nodes whose values are arrays of vectors (bytea[] to PostgreSQL)
    _arrays: set[int] = field(default_factory=set)

    def run(self, tree: exp.Expr) -> None:
        skipped = {id(n) for node in tree.walk() if id(node) in self.skip for n in node.walk()}
        nodes = list(tree.walk(bfs=False))
        for node in reversed(nodes):  # every node after all of its descendants
            if id(node) in skipped:
                continue
            new = self._visit(node)
            if new is not None and new is not node:
                node.replace(new)
                self.created.add(id(new))
                self.changed = True

    def is_vector(self, node: exp.Expr) -> bool:
        return id(unparen(node)) in self._vectors

    def is_vector_array(self, node: exp.Expr) -> bool:
        return id(unparen(node)) in self._arrays

    def _dim(self, node: exp.Expr) -> int | None:
        dim = self._vectors.get(id(unparen(node)))
        return dim or None

    def _mark(self, node: exp.Expr, dim: int | None) -> exp.Expr:
        self._vectors[id(node)] = dim or 0
        return node

    # ----------------------------------------------------------------- one node

    def _visit(self, node: exp.Expr) -> exp.Expr | None:
        if isinstance(node, exp.Column):
            dim = self.column_dim(node)
            if dim is not None:
                self._mark(node, dim)
            elif self.array_dim is not None and self.array_dim(node) is not None:
                self._arrays.add(id(node))
            return None
        if isinstance(node, exp.Paren):
            if self.is_vector(node.this):
                self._mark(node, self._dim(node.this))
            return None
        if isinstance(node, exp.Subquery):  # a scalar subquery of one vector
            inner = node.this
            if isinstance(inner, exp.Select) and len(inner.expressions) == 1:
                item = inner.expressions[0]
                item = item.this if isinstance(item, exp.Alias) else item
                if self.is_vector(item):
                    self._mark(node, self._dim(item))
            return None
        if isinstance(node, exp.Array) and node.expressions:  # ARRAY[v1, v2]: a vector[]
            if all(self.is_vector(e) for e in node.expressions):
                self._arrays.add(id(node))
            return None
        if isinstance(node, (exp.Filter, exp.Window)):  # avg(v) FILTER (...) / OVER (...)
            if self.is_vector(node.this):
                self._mark(node, self._dim(node.this))
            return None
        to = _cast_to(node)
        if to is not None:
            return self._cast(node, to)
        if isinstance(node, VectorDistance):
            return self._binary(node, DISTANCES[node.op], vector_result=False)
        kind = type(node)
        if kind in ARITHMETIC:
            return self._binary(node, ARITHMETIC[kind], vector_result=True)
        if kind in COMPARISONS and not _assignment(node):
            return self._binary(node, COMPARISONS[kind], vector_result=False)
        if kind in AGGREGATES:
            return self._aggregate(node, AGGREGATES[kind])
        if isinstance(node, exp.Anonymous):
            return self._function(node, str(node.this).lower(), list(node.expressions))
        if isinstance(node, exp.CosineDistance):  # sqlglot knows this one by name
            return self._function(node, "cosine_distance", [node.this, node.expression])
        return None

    def _cast(self, node: exp.Expr, to: exp.DataType) -> exp.Expr | None:
        inner = node.this
        element = _array_of(to)
        if element is not None and element.this == exp.DataType.Type.VECTOR:
            return self._array_cast(inner, _typmod(element))
        if to.this in _TEXT_TYPES and self.is_vector_array(inner):  # pgvector's text form
            text = pgvec_call("vector_array_out", inner)
            return text if to.this == exp.DataType.Type.TEXT else exp.Cast(this=text, to=to)
        if to.this == exp.DataType.Type.VECTOR:
            dim = _typmod(to)
            if self.is_vector(inner):
                value = inner
            else:
                n = param_number(unparen(inner))
                if n is not None:
                    if self.vector_params.get(n) is None:
                        self.vector_params[n] = dim
                    value = exp.Parameter(this=exp.Literal.number(n))
                else:
                    value = pgvec_call("vector", inner)
            if dim is not None:
                value = pgvec_call("vector_typmod", value, exp.Literal.number(dim))
            return self._mark(value, dim)
        if _is_real_array(to) and self.is_vector(inner):
            return pgvec_call("to_float4", inner)
        if to.this in _TEXT_TYPES and self.is_vector(inner):  # pgvector's text form
            text = pgvec_call("vector_out", inner)
            if to.this == exp.DataType.Type.TEXT and not to.expressions:
                return text
            return exp.Cast(this=text, to=to)
        return None

    def _array_cast(self, inner: exp.Expr, dim: int | None) -> exp.Expr:
        """``x::vector[]`` (or ``vector(n)[]``): an ``ARRAY[...]`` of vectors, a
        parameter, or anything whose text is an array of pgvector's text forms."""
        bare = unparen(inner)
        value: exp.Expr
        n = param_number(bare)
        operands = self._operands(bare.expressions, dim) if isinstance(bare, exp.Array) else None
        if self.is_vector_array(inner):
            value = inner
        elif n is not None:
            if self.array_params.get(n) is None:
                self.array_params[n] = dim
            value = exp.Cast(this=exp.Parameter(this=exp.Literal.number(n)), to=BYTEA_ARRAY.copy())
        elif operands is not None:
            value = exp.Cast(this=exp.Array(expressions=operands), to=BYTEA_ARRAY.copy())
        else:
            value = vector_array_from_text(inner, None)
        value = vector_array_typmod(value, dim)
        self._arrays.add(id(value))
        return value

    def _operands(self, nodes: list[exp.Expr], dim: int | None) -> list[exp.Expr] | None:
        """Each of ``nodes`` as a vector (:meth:`_operand`), or None (and no parameter
        marked) if one is something else."""
        marked = dict(self.vector_params)
        out = [self._operand(node, dim) for node in nodes]
        if any(o is None for o in out):
            self.vector_params.clear()
            self.vector_params.update(marked)
            return None
        return [o for o in out if o is not None]

    def _operand(self, node: exp.Expr, dim: int | None) -> exp.Expr | None:
        """``node`` as a vector, where a vector is expected: itself if it is one, a string
        literal parsed, a parameter marked; None if it is something else."""
        if self.is_vector(node):
            return node
        inner = unparen(node)
        if isinstance(inner, exp.Literal) and inner.is_string:
            return Raw(this=bytea_literal(literal_vector(inner)))
        if isinstance(inner, exp.Null):  # a NULL vector: the result is NULL, as pgvector's
            return exp.Cast(this=exp.Null(), to=exp.DataType.build("bytea"))
        n = param_number(inner)
        if n is not None:
            if self.vector_params.get(n) is None:
                self.vector_params[n] = dim
            return exp.Parameter(this=exp.Literal.number(n))
        return None

    def _binary(self, node: exp.Expr, fn: str, *, vector_result: bool) -> exp.Expr | None:
        left, right = node.this, node.expression
        if not (self.is_vector(left) or self.is_vector(right)):
            return None
        dim = self._dim(left) or self._dim(right)
        a, b = self._operand(left, dim), self._operand(right, dim)
        if a is None or b is None:
            return None  # not pgvector's operator: PostgreSQL says what it makes of it
        call = pgvec_call(fn, a, b)
        if vector_result:
            self._mark(call, dim if fn != "vector_concat" else None)
        return call

    def _aggregate(self, node: exp.Expr, fn: str) -> exp.Expr | None:
        arg = node.this
        distinct = isinstance(arg, exp.Distinct)
        value = arg.expressions[0] if distinct and len(arg.expressions) == 1 else arg
        if not self.is_vector(value):
            return None
        call = pgvec_call(fn, arg)
        return self._mark(call, self._dim(value))

    def _function(self, node: exp.Expr, name: str, args: list[exp.Expr]) -> exp.Expr | None:
        spec = FUNCTIONS.get(name)
        if spec is None or isinstance(node.parent, exp.Dot):
            return None  # (a schema-qualified call is the schema's function)
        positions, returns_vector = spec
        if not any(i < len(args) and self.is_vector(args[i]) for i in positions) and not any(
            i < len(args) and _looks_vector(args[i]) for i in positions
        ):
            return None
        dims = [self._dim(args[i]) for i in positions if i < len(args)]
        dim = next((d for d in dims if d), None)
        for i in positions:
            if i < len(args):
                value = self._operand(args[i], dim)
                if value is None:
                    return None
                args[i] = value
        call = pgvec_call(name, *args)
        if returns_vector:
            self._mark(call, dim if name == "l2_normalize" else None)
        return call


#: casts of a vector that give its text form (PostgreSQL's I/O conversion casts)
_TEXT_TYPES = frozenset(
    {
        exp.DataType.Type.TEXT,
        exp.DataType.Type.VARCHAR,
        exp.DataType.Type.CHAR,
        exp.DataType.Type.NAME,
    }
)


BYTEA_ARRAY = exp.DataType.build("bytea[]", dialect="postgres")
TEXT_ARRAY = exp.DataType.build("text[]", dialect="postgres")


def vector_array_typmod(value: exp.Expr, dim: int | None) -> exp.Expr:
    """``value`` (an array of vectors) with each vector checked to have ``dim``
    dimensions, pgvector's error if not; as it is when ``dim`` is None."""
    if dim is None:
        return value
    return pgvec_call("vector_array_typmod", value, exp.Literal.number(dim))


def vector_array_from_text(node: exp.Expr, dim: int | None) -> exp.Expr:
    """The array of vectors whose text ``node`` is (pgvector's ``{"[1,2]","[3,4]"}``)."""
    return vector_array_typmod(
        pgvec_call("vector_array", exp.Cast(this=node, to=TEXT_ARRAY.copy())), dim
    )


def _array_of(to: exp.DataType) -> exp.DataType | None:
    """The element type of an array type (``vector[]``: vector), None if not an array."""
    if to.this == exp.DataType.Type.ARRAY and len(to.expressions) == 1:
        element = to.expressions[0]
        return element if isinstance(element, exp.DataType) else None
    return None


def _assignment(node: exp.Expr) -> bool:
    """``col = value`` of UPDATE ... SET or ON CONFLICT ... DO UPDATE SET."""
    return node.arg_key == "expressions" and isinstance(node.parent, (exp.Update, exp.OnConflict))


def _looks_vector(node: exp.Expr) -> bool:
    """A string literal in pgvector's text form, or a parameter."""
    inner = unparen(node)
    if isinstance(inner, exp.Literal) and inner.is_string:
        return str(inner.this).lstrip().startswith("[")
    return param_number(inner) is not None


# ---------------------------------------------------------------- column names


def column_name(node: exp.Expr) -> str | None:
    """The name PostgreSQL gives a select-list item (FigureColname), where pgvec can
    tell; None where it cannot."""
    if isinstance(node, exp.Alias):
        alias = node.args.get("alias")
        if isinstance(alias, exp.Identifier):
            return str(alias.this) if alias.quoted else str(alias.this).lower()
        return None
    return _figure(node)[0] or "?column?"


def _figure(node: exp.Expr) -> tuple[str | None, int]:
    """(name, strength) as PostgreSQL's FigureColnameInternal: 2 for a name from a
    column or function, 1 from a type or CASE, 0 for none."""
    if isinstance(node, (exp.Paren, exp.Filter, exp.Window)):
        return _figure(node.this)
    if isinstance(node, exp.Column):
        ident = node.this
        if isinstance(ident, exp.Identifier):
            return (str(ident.this) if ident.quoted else str(ident.this).lower()), 2
        return None, 0
    if isinstance(node, exp.Dot):
        return _figure(node.expression)
    if isinstance(node, exp.Cast):
        inner, strength = _figure(node.this)
        if strength > 1:
            return inner, strength
        to = node.args.get("to")
        name = _type_name(to) if isinstance(to, exp.DataType) else None
        return (name, 1) if name is not None else (inner, strength)
    if isinstance(node, (exp.Case, exp.If)):
        default = node.args.get("default")
        inner, strength = _figure(default) if default is not None else (None, 0)
        return (inner, strength) if strength > 1 else ("case", 1)
    for kind, name in _FIXED_NAMES.items():
        if isinstance(node, kind):
            return name, 2
    if isinstance(node, exp.Subquery):
        select = node.this
        if isinstance(select, exp.Select) and select.expressions:
            name = column_name(select.expressions[0])
            return (None, 0) if name == "?column?" else (name, 2)
        return None, 0
    if isinstance(node, exp.Anonymous):
        return (str(node.this).lower(), 2) if isinstance(node.this, str) else (None, 0)
    if isinstance(node, exp.Func) and not isinstance(node, exp.Binary):
        name = _function_name(node)
        return (name, 2) if name is not None else (None, 0)
    return None, 0


_FIXED_NAMES: dict[type[exp.Expr], str] = {
    exp.Array: "array",
    exp.Exists: "exists",
    exp.Coalesce: "coalesce",
    exp.Greatest: "greatest",
    exp.Least: "least",
    exp.CurrentDate: "current_date",
    exp.CurrentTimestamp: "current_timestamp",
    exp.CurrentTime: "current_time",
    exp.CurrentUser: "current_user",
}


def _function_name(node: exp.Func) -> str | None:
    text = generate(node)
    head = text.split("(", 1)[0].strip()
    if not head or " " in head:
        return None
    return head.rsplit(".", 1)[-1].strip('"').lower()


_TYPE_NAMES = {
    exp.DataType.Type.VECTOR: "vector",
    exp.DataType.Type.INT: "int4",
    exp.DataType.Type.BIGINT: "int8",
    exp.DataType.Type.SMALLINT: "int2",
    exp.DataType.Type.FLOAT: "float4",
    exp.DataType.Type.DOUBLE: "float8",
    exp.DataType.Type.TEXT: "text",
    exp.DataType.Type.VARCHAR: "varchar",
    exp.DataType.Type.BOOLEAN: "bool",
    exp.DataType.Type.DECIMAL: "numeric",
    exp.DataType.Type.VARBINARY: "bytea",
}


def _type_name(to: exp.DataType) -> str | None:
    if to.this == exp.DataType.Type.ARRAY and to.expressions:
        inner = to.expressions[0]
        return _type_name(inner) if isinstance(inner, exp.DataType) else None
    return _TYPE_NAMES.get(to.this)
