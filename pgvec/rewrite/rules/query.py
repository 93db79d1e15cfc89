"""INSERT/UPDATE values, vector operators (exact form) and the top-k (Knn) shape."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from sqlglot import exp
from sqlglot.tokenizer_core import Token, TokenType

from pgvec.filter.model import Column, Predicate
from pgvec.filter.render import leaf_condition
from pgvec.filter.types import mirrorable
from pgvec.rewrite.catalog import Catalog, TableInfo, VectorColumn
from pgvec.rewrite.decision import Decision, Knn, KnnPlan, Passthrough, Rewritten
from pgvec.rewrite.dialect import Raw, VectorDistance, generate
from pgvec.rewrite.rules.example import (
    kept_for_types,
    prepass,
    refers_outside,
    scalar_subquery,
)
from pgvec.rewrite.rules.expressions import (
    ExprPass,
    column_name,
    literal_vector,
    param_number,
    pgvec_call,
    unparen,
    vector_array_from_text,
    vector_array_typmod,
)
from pgvec.rewrite.rules.predicate import to_predicate
from pgvec.rewrite.tokens import quote_ident
from pgvec.vectors import bytea_literal

HIT = "__pgvec_hit"
HIT_KEY = "__pgvec_key"
HIT_DIST = "__pgvec_dist"
_IDS = "\x00ids\x00"  # NUL never occurs in a statement from the wire
_DISTS = "\x00dists\x00"


@dataclass(frozen=True)
class Binding:
    table: TableInfo
    alias: str
    column: VectorColumn
    scope: exp.Expr  # the statement node whose FROM holds the table


@dataclass
class _Ctx:
    sql: str
    tokens: Sequence[Token]
    catalog: Catalog
    vector_params: dict[int, int | None] = field(default_factory=dict)
    #: $n -> dim of the parameters that are arrays of vectors
    array_params: dict[int, int | None] = field(default_factory=dict)
    # leaf replacements that can be spliced into the original text: (start, end, text)
    splices: list[tuple[int, int, str]] = field(default_factory=list)
    structural: bool = False  # an edit that needs regeneration
    changed: bool = False
    _tok_at: dict[int, int] | None = None

    def token_index(self, start: int) -> int | None:
        if self._tok_at is None:
            self._tok_at = {t.start: i for i, t in enumerate(self.tokens)}
        return self._tok_at.get(start)


def ident_name(node: exp.Expr | str | None) -> str:
    """An identifier as Postgres folds it."""
    if isinstance(node, exp.Identifier):
        return str(node.this) if node.quoted else str(node.this).lower()
    if node is None:
        return ""
    if isinstance(node, str):  # e.g. the empty schema of "a..t"
        return node.lower()
    return node.name.lower()


# ---------------------------------------------------------------- name resolution


def _sources(scope: exp.Expr) -> list[exp.Table]:
    tables: list[exp.Table] = []
    if isinstance(scope, exp.Select):
        frm = scope.args.get("from_")
        if frm is not None and isinstance(frm.this, exp.Table):
            tables.append(frm.this)
        tables.extend(
            j.this for j in scope.args.get("joins") or () if isinstance(j.this, exp.Table)
        )
    elif isinstance(scope, (exp.Update, exp.Delete, exp.Insert)):
        target = scope.this
        if isinstance(target, exp.Schema):
            target = target.this
        if isinstance(target, exp.Table):
            tables.append(target)
        frm = scope.args.get("from_")
        if frm is not None and isinstance(frm.this, exp.Table):
            tables.append(frm.this)
        tables.extend(
            j.this for j in scope.args.get("joins") or () if isinstance(j.this, exp.Table)
        )
        using = scope.args.get("using")
        if isinstance(using, list):
            tables.extend(t for t in using if isinstance(t, exp.Table))
    return tables


def _cte_names(node: exp.Expr) -> set[str]:
    names: set[str] = set()
    cur: exp.Expr | None = node
    while cur is not None:
        w = cur.args.get("with_") if isinstance(cur, exp.Expr) else None
        if isinstance(w, exp.With):
            names.update(ident_name(c.args["alias"].this) for c in w.expressions)
        cur = cur.parent
    return names


def _table_info(table: exp.Table, catalog: Catalog, ctes: set[str]) -> TableInfo | None:
    name = ident_name(table.this)
    schema = ident_name(table.args.get("db")) or None
    if schema is None and name in ctes:
        return None
    return catalog.lookup(name, schema)


def _alias_of(table: exp.Table) -> str:
    alias = table.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.this is not None:
        return ident_name(alias.this)
    return ident_name(table.this)


def resolve(col: exp.Expr, catalog: Catalog, arrays: bool = False) -> Binding | None:
    """The catalog vector column (or, if ``arrays``, array of vectors) a Column node
    refers to, if any."""
    if not isinstance(col, exp.Column) or not isinstance(col.this, exp.Identifier):
        return None
    name = ident_name(col.this)
    qualifier = ident_name(col.args.get("table")) or None
    ctes: set[str] | None = None
    scope: exp.Expr | None = col.parent
    while scope is not None:
        if isinstance(scope, (exp.Select, exp.Update, exp.Delete, exp.Insert)):
            if ctes is None:
                ctes = _cte_names(scope)
            for table in _sources(scope):
                alias = _alias_of(table)
                if qualifier is not None and qualifier != alias:
                    continue
                info = _table_info(table, catalog, ctes)
                if info is None:
                    if qualifier is not None:
                        return None
                    continue
                vcol = (info.arrays if arrays else info.vectors).get(name)
                if vcol is not None:
                    return Binding(info, alias, vcol, scope)
                if qualifier is not None:
                    return None
        scope = scope.parent
    return None


# ---------------------------------------------------------------- vector values


def _is_vector_cast(node: exp.Expr) -> bool:
    if not isinstance(node, exp.Cast):
        return False
    to = node.args.get("to")
    return isinstance(to, exp.DataType) and to.this == exp.DataType.Type.VECTOR


@dataclass(frozen=True)
class QueryValue:
    literal: bytes | None = None
    param: int | None = None
    #: an uncorrelated scalar subquery, as generated (pgvec evaluates it first)
    subquery: str | None = None


def classify(node: exp.Expr, dim: int | None) -> QueryValue | None:
    """A vector literal (parsed, checked against dim) or $n, else None."""
    node = unparen(node)
    if _is_vector_cast(node):
        node = unparen(node.this)
    if isinstance(node, exp.Literal) and node.is_string:
        return QueryValue(literal=literal_vector(node, dim))
    n = param_number(node)
    if n is not None:
        return QueryValue(param=n)
    return None


def convert_value(node: exp.Expr, dim: int | None, ctx: _Ctx) -> None:
    """Turn a value bound for a vector column into bytea (literal) or record it ($n)."""
    inner = unparen(node)
    value = classify(inner, dim)
    if value is None:
        return  # an expression: the expression pass turns a cast of it into pgvec.vector()
    ctx.changed = True
    if value.param is not None:
        ctx.vector_params[value.param] = dim
        if inner is node and not _is_vector_cast(inner):
            return  # a bare $n: nothing to change in the text
        replacement: exp.Expr = exp.Parameter(this=exp.Literal.number(value.param))
        text = f"${value.param}"
    else:
        assert value.literal is not None
        text = bytea_literal(value.literal)
        replacement = Raw(this=text)
    span = _span(node, ctx)
    if span is None:
        ctx.structural = True
    else:
        ctx.splices.append((span[0], span[1], text))
    node.replace(replacement)


def _span(node: exp.Expr, ctx: _Ctx) -> tuple[int, int] | None:
    """[start, end) of a literal, $n or a cast of one to vector in the original text."""
    if isinstance(node, exp.Literal):
        meta = node.meta
        if "start" in meta and "end" in meta:
            return int(meta["start"]), int(meta["end"]) + 1
        return None
    if isinstance(node, exp.Parameter) and isinstance(node.this, exp.Literal):
        inner = _span(node.this, ctx)
        return (inner[0] - 1, inner[1]) if inner else None
    if not _is_vector_cast(node):
        return None
    inner = _span(node.this, ctx)
    if inner is None:
        return None
    idx = ctx.token_index(inner[0])
    if idx is None:
        return None
    tokens = ctx.tokens
    if isinstance(node.this, exp.Parameter):
        idx += 1  # '$' then the number
    j = idx + 1
    if j < len(tokens) and tokens[j].token_type == TokenType.DCOLON:
        end = _type_end(tokens, j + 1)
        return (inner[0], end) if end is not None else None
    # CAST ( x AS vector [(n)] )
    if (
        idx >= 2
        and tokens[idx - 1].token_type == TokenType.L_PAREN
        and (tokens[idx - 2].text.upper() == "CAST")
    ):
        if j < len(tokens) and tokens[j].token_type == TokenType.ALIAS:
            end = _type_end(tokens, j + 1)
            close = [t for t in tokens[j + 2 :] if end is not None and t.start >= end][:1]
            if close and close[0].token_type == TokenType.R_PAREN:
                return tokens[idx - 2].start, close[0].end + 1
    return None


def _type_end(tokens: Sequence[Token], i: int) -> int | None:
    if i >= len(tokens) or tokens[i].text.lower() != "vector":
        return None
    if i + 1 < len(tokens) and tokens[i + 1].token_type == TokenType.L_PAREN:
        if i + 3 < len(tokens) and tokens[i + 3].token_type == TokenType.R_PAREN:
            return tokens[i + 3].end + 1
        return None
    return tokens[i].end + 1


# ---------------------------------------------------------------- INSERT / UPDATE


def _target(stmt: exp.Expr, catalog: Catalog) -> tuple[TableInfo | None, list[str] | None]:
    target = stmt.this
    cols: list[str] | None = None
    if isinstance(target, exp.Schema):
        cols = [ident_name(c) for c in target.expressions]
        target = target.this
    if not isinstance(target, exp.Table):
        return None, None
    return _table_info(target, catalog, _cte_names(stmt)), cols


def _assignments(eqs: Sequence[exp.Expr], table: TableInfo, ctx: _Ctx) -> None:
    for eq in eqs:
        if not isinstance(eq, exp.EQ):
            continue
        left = eq.this
        name = ident_name(left.this) if isinstance(left, exp.Column) else ident_name(left)
        _convert_for(table, name, eq.expression, ctx)


def _convert_for(table: TableInfo, name: str, value: exp.Expr, ctx: _Ctx) -> None:
    """A value bound for column ``name``: converted if it is a vector or an array of
    vectors."""
    vcol = table.vectors.get(name)
    if vcol is not None:
        convert_value(value, vcol.dim, ctx)
        return
    acol = table.arrays.get(name)
    if acol is not None:
        _convert_array(value, acol.dim, ctx)


def _convert_array(node: exp.Expr, dim: int | None, ctx: _Ctx) -> None:
    """A value bound for an array of vectors: $n recorded as one, a string literal
    (``'{"[1,2]"}'``) read as pgvector's text form of one (PostgreSQL would read it as
    bytea[])."""
    inner = unparen(node)
    n = param_number(inner)
    if n is not None:
        ctx.array_params[n] = dim
        ctx.changed = True
    elif isinstance(inner, exp.Literal) and inner.is_string:
        inner.replace(vector_array_from_text(inner.copy(), dim))
        ctx.changed = ctx.structural = True
    elif dim is not None and not isinstance(inner, exp.Null):  # pgvector's error, not CHECK's
        inner.replace(vector_array_typmod(inner.copy(), dim))
        ctx.changed = ctx.structural = True


def rewrite_values(tree: exp.Expr, ctx: _Ctx) -> None:
    if isinstance(tree, exp.Insert):
        table, cols = _target(tree, ctx.catalog)
        if table is None or not (table.vectors or table.arrays):
            return
        names = cols if cols is not None else list(table.columns)
        values = tree.expression
        if isinstance(values, exp.Values):
            for row in values.expressions:
                items = row.expressions if isinstance(row, exp.Tuple) else [row]
                for name, item in zip(names, list(items), strict=False):
                    _convert_for(table, name, item, ctx)
        elif isinstance(values, exp.Select):  # INSERT ... SELECT: its items, in order
            for name, item in zip(names, list(values.expressions), strict=False):
                _convert_for(table, name, item.this if isinstance(item, exp.Alias) else item, ctx)
        conflict = tree.args.get("conflict")
        if isinstance(conflict, exp.OnConflict):
            _assignments(conflict.expressions or [], table, ctx)
    elif isinstance(tree, exp.Update):
        table, _ = _target(tree, ctx.catalog)
        if table is not None and (table.vectors or table.arrays):
            _assignments(tree.expressions, table, ctx)


# ---------------------------------------------------------------- operators


def _operand_binding(node: VectorDistance, catalog: Catalog) -> tuple[Binding, exp.Expr] | None:
    """The vector column side of a distance and the other operand."""
    for col, other in ((node.this, node.expression), (node.expression, node.this)):
        binding = resolve(unparen(col), catalog)
        if binding is not None:
            return binding, other
    return None


def _same_binding(a: Binding | None, b: Binding) -> bool:
    return a is not None and a.alias == b.alias and a.column == b.column and a.scope is b.scope


# ---------------------------------------------------------------- top-k


@dataclass
class _KnnShape:
    select: exp.Select
    binding: Binding
    operator: str
    query: QueryValue
    key: exp.Ordered
    distances: list[VectorDistance]  # the distance nodes the hit distance replaces
    #: the query vector's scalar subquery, if it is one
    subquery: exp.Subquery | None = None


def _order_key(select: exp.Select, key: exp.Expr) -> exp.Expr:
    key = unparen(key)
    if isinstance(key, exp.Column) and key.args.get("table") is None:
        name = ident_name(key.this)
        for item in select.expressions:
            if isinstance(item, exp.Alias) and ident_name(item.args.get("alias")) == name:
                return unparen(item.this)
    if isinstance(key, exp.Literal) and not key.is_string and str(key.this).isdigit():
        pos = int(str(key.this))
        if 1 <= pos <= len(select.expressions):
            item = select.expressions[pos - 1]
            return unparen(item.this if isinstance(item, exp.Alias) else item)
    return key


def _limit_value(node: exp.Expr | None) -> tuple[int | None, int | None] | None:
    """(literal, param) of a LIMIT/OFFSET expression, None when neither."""
    if node is None:
        return None
    value = unparen(node)
    if isinstance(value, exp.Literal) and not value.is_string and str(value.this).isdigit():
        return int(str(value.this)), None
    n = param_number(value)
    if n is not None:
        return None, n
    return None


def _same_distance(node: VectorDistance, shape: _KnnShape, catalog: Catalog) -> bool:
    if node.op != shape.operator:
        return False
    found = _operand_binding(node, catalog)
    if found is None or not _same_binding(found[0], shape.binding):
        return False
    try:
        value = classify(found[1], shape.binding.column.dim)
    except Exception:
        return False
    if value is None and shape.subquery is not None:
        other = unparen(found[1])
        if isinstance(other, exp.Subquery):
            value = QueryValue(subquery=generate(other))
    return value == shape.query


def find_knn(tree: exp.Expr, catalog: Catalog) -> _KnnShape | None:
    for select in tree.find_all(exp.Select):
        shape = _knn_shape(select, catalog)
        if shape is not None:
            return shape
    return None


def _knn_shape(select: exp.Select, catalog: Catalog) -> _KnnShape | None:
    order = select.args.get("order")
    if not isinstance(order, exp.Order) or not order.expressions:
        return None
    first = order.expressions[0]
    if not isinstance(first, exp.Ordered) or first.args.get("desc"):
        return None
    key = _order_key(select, first.this)
    if not isinstance(key, VectorDistance):
        return None
    limit = select.args.get("limit")
    if not isinstance(limit, exp.Limit) or _limit_value(limit.expression) is None:
        return None
    offset = select.args.get("offset")
    if isinstance(offset, exp.Offset) and _limit_value(offset.expression) is None:
        return None
    for arg in ("group", "having", "distinct", "qualify", "windows", "into", "locks"):
        if select.args.get(arg):
            return None
    if _modifies_data(select) or _calls_volatile(select, catalog):
        # pgvec would run the filter twice (a pre-pass, then the join): only an exact
        # scan runs it once per row, as PostgreSQL does
        return None
    if any(item.find(exp.AggFunc, exp.Window) for item in select.expressions):
        return None
    found = _operand_binding(key, catalog)
    if found is None:
        return None
    binding, other = found
    if binding.scope is not select or not binding.table.pk or not binding.table.pk_type:
        return None
    if binding.table.relid in catalog.exact:
        return None  # made in the client's open transaction: exact, in SQL
    where = select.args.get("where")
    if any(
        refers_outside(part, select, catalog)
        for part in [*(select.args.get("joins") or []), *([where] if where else [])]
    ):
        return None  # a LATERAL or correlated subquery's filter: exact, row by row
    if binding.column.dim is None:
        return None  # a column of any dimension has no index: PostgreSQL scans it exactly
    if _is_vector_cast(unparen(other)) and classify(other, binding.column.dim) is None:
        return None
    query = classify(other, binding.column.dim)
    subquery = None
    if query is None:
        subquery = scalar_subquery(other, catalog)
        if subquery is None or binding.column.binary:
            return None
        query = QueryValue(subquery=generate(subquery))
    shape = _KnnShape(select, binding, key.op, query, first, [], subquery)
    shape.distances = [
        n
        for n in select.find_all(VectorDistance)
        if n is key or (_in_select_list(n, select) and _same_distance(n, shape, catalog))
    ]
    return shape


_DML = (exp.Insert, exp.Update, exp.Delete, exp.Merge)


def _modifies_data(select: exp.Select) -> bool:
    """Whether a WITH around ``select`` holds a data-modifying statement."""
    cur: exp.Expr | None = select
    while cur is not None:
        w = cur.args.get("with_")
        if isinstance(w, exp.With) and any(
            isinstance(cte.this, _DML) or cte.find(*_DML) for cte in w.expressions
        ):
            return True
        cur = cur.parent
    return False


def function_name(node: exp.Func) -> str:
    """The lower-cased SQL name a function call has in PostgreSQL (no schema)."""
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    text = generate(node)
    return text.split("(", 1)[0].strip().rsplit(".", 1)[-1].strip('"').lower()


def _calls_volatile(select: exp.Select, catalog: Catalog) -> bool:
    """Whether the rows ``select`` admits depend on a VOLATILE function: in its FROM,
    JOINs, WHERE or the CTEs those use."""
    if not catalog.volatile:
        return False
    parts: list[exp.Expr] = list(_referenced_ctes(select))
    parts += [select.args[a] for a in ("from_", "where") if select.args.get(a)]
    parts += select.args.get("joins") or []
    return any(
        function_name(func) in catalog.volatile
        for part in parts
        for func in part.find_all(exp.Func)
    )


def _in_select_list(node: exp.Expr, select: exp.Select) -> bool:
    cur: exp.Expr | None = node
    while cur is not None and cur.parent is not select:
        if isinstance(cur, exp.Select):
            return False
        cur = cur.parent
    return cur is not None and cur.arg_key == "expressions"


def _hit_dist() -> exp.Expr:
    return exp.column(HIT_DIST, table=HIT)


@dataclass(frozen=True)
class _Filter:
    sql: str
    probe_sql: str
    params: tuple[int, ...]
    vector_params: dict[int, int | None]
    #: the WHERE clause as the engine evaluates it over mirrored columns, if it can
    engine: Predicate | None = None


def _build_filter(shape: _KnnShape, ctx: _Ctx) -> _Filter | None:
    """The statement returning the keys the query's WHERE and JOINs admit (the pre-filter),
    and the same restricted to candidate keys given as one more array parameter (the
    post-filter probe). Parameters are renumbered $1.. in order of first use."""
    select = shape.select
    where = select.args.get("where")
    joins = select.args.get("joins") or []
    table = shape.binding.table
    if where is None and not joins and not table.row_security:
        # (under row-level security the table's policies are a filter of their own)
        return None
    assert table.pk is not None and table.pk_type is not None
    key = f"{quote_ident(shape.binding.alias)}.{quote_ident(table.pk)}"
    # the primary key is unique in its own table; a join can repeat it
    filt = exp.Select(expressions=[Raw(this=key)], distinct=exp.Distinct() if joins else None)
    filt.set("from_", select.args["from_"].copy())
    filt.set("joins", [j.copy() for j in joins])
    if where is not None:
        filt.set("where", where.copy())
    ctes = _referenced_ctes(select)
    if ctes:
        filt.set("with_", exp.With(expressions=[c.copy() for c in ctes]))
    mapping: dict[int, int] = {}
    for param in filt.find_all(exp.Parameter, bfs=False):
        old = param_number(param)
        if old is None:
            continue
        new = mapping.setdefault(old, len(mapping) + 1)
        param.set("this", exp.Literal.number(new))
    originals = tuple(sorted(mapping, key=lambda k: mapping[k]))
    fvec = {mapping[o]: ctx.vector_params[o] for o in originals if o in ctx.vector_params}
    inner = filt.args.get("where")
    engine = None
    if inner is not None and not joins and not ctes:
        engine = to_predicate(inner.this, partial(_mirrored, shape.binding.alias, table))
    if table.partitioned:  # run for one leaf at a time (pgvec.service.partitions)
        leaf = Raw(this=leaf_condition(f"{quote_ident(shape.binding.alias)}.tableoid"))
        filt.set(
            "where",
            exp.Where(
                this=leaf
                if inner is None
                else exp.And(this=exp.Paren(this=inner.this), expression=leaf)
            ),
        )
        inner = filt.args["where"]
    sql = generate(filt)
    candidates = Raw(this=f"{key} = ANY(CAST(${len(mapping) + 1} AS {table.pk_type}[]))")
    filt.set(
        "where",
        exp.Where(
            this=candidates
            if inner is None
            else exp.And(this=exp.Paren(this=inner.this), expression=candidates)
        ),
    )
    return _Filter(sql, generate(filt), originals, fvec, engine)


def _mirrored(alias: str, table: TableInfo, node: exp.Column) -> Column | None:
    """The scalar column of ``table`` (as ``alias``) that ``node`` names, if mirrored."""
    if node.args.get("db") is not None or node.args.get("catalog") is not None:
        return None
    qualifier = node.args.get("table")
    if qualifier is not None and ident_name(qualifier) != alias:
        return None
    name = ident_name(node.this)
    if name in table.vectors:
        return None
    collations = table.column_collations or (0,) * len(table.columns)
    for column, type_name, collation in zip(
        table.columns, table.column_types, collations, strict=False
    ):
        if column == name and mirrorable(type_name, collation):
            return Column(column, type_name)
    return None


def _referenced_ctes(select: exp.Select) -> list[exp.CTE]:
    names = {ident_name(t.this) for t in select.find_all(exp.Table) if not t.args.get("db")}
    out: list[exp.CTE] = []
    cur: exp.Expr | None = select.parent
    while cur is not None:
        w = cur.args.get("with_")
        if isinstance(w, exp.With):
            for cte in w.expressions:
                if (
                    ident_name(cte.args["alias"].this) in names
                    and not cte.find(lambda n: n is select)
                    and cte not in out
                ):
                    out.append(cte)
        cur = cur.parent
    return out


def _rewrite_knn(shape: _KnnShape, ctx: _Ctx, tree: exp.Expr) -> KnnPlan:
    select = shape.select
    binding = shape.binding
    table = binding.table
    assert table.pk is not None and table.pk_type is not None
    filt = _build_filter(shape, ctx)
    limit = _limit_value(select.args["limit"].expression)
    assert limit is not None
    offset_node = select.args.get("offset")
    offset = _limit_value(offset_node.expression) if offset_node is not None else (0, None)
    assert offset is not None
    example = keep = None
    if shape.subquery is not None:  # (before the distance holding it leaves the tree)
        example = prepass(shape.subquery, ctx.vector_params)
        keep = kept_for_types(shape.subquery)
    # the distances become the hit's distance
    for node in shape.distances:
        if node.parent is select and node.arg_key == "expressions":
            node.replace(exp.alias_(_hit_dist(), "?column?", quoted=True))
        elif (
            isinstance(node.parent, exp.Paren)
            and node.parent.parent is select
            and (node.parent.arg_key == "expressions")
        ):
            node.parent.replace(exp.alias_(_hit_dist(), "?column?", quoted=True))
        else:
            node.replace(_hit_dist())
    shape.key.set("this", _hit_dist())
    # SELECT * would show the hit's columns
    sources = [_from_item_name(j) for j in _from_items(select)]
    new_items: list[exp.Expr] = []
    for item in select.expressions:
        if isinstance(item, exp.Star):
            new_items.extend(Raw(this=f"{quote_ident(s)}.*") for s in sources if s)
        else:
            new_items.append(item)
    select.set("expressions", new_items)
    key = f"{quote_ident(binding.alias)}.{quote_ident(table.pk)}"
    if table.partitioned:
        # a hit is "<leaf oid>:<key>" (pgvec.service.partitions): join on both
        hit = f"{HIT}.{HIT_KEY}"
        key_type = "text"
        match: exp.Expr = Raw(
            this=f"{quote_ident(binding.alias)}.tableoid = CAST(split_part({hit}, ':', 1) AS oid)"
            f" AND {key} = CAST(substr({hit}, strpos({hit}, ':') + 1) AS {table.pk_type})"
        )
    else:
        key_type = table.pk_type
        match = exp.EQ(this=Raw(this=key), expression=exp.column(HIT_KEY, table=HIT))
    on = exp.And(
        this=match,
        # the query reads the vector column: so does the join, for column privileges
        expression=Raw(
            this=f"{quote_ident(binding.alias)}.{quote_ident(binding.column.name)} IS NOT NULL"
        ),
    )
    if keep is not None:
        on = exp.And(this=on, expression=Raw(this=keep))
    join = exp.Join(
        this=Raw(
            this=f"unnest(CAST({_IDS} AS {key_type}[]), CAST({_DISTS} AS float8[]))"
            f" AS {HIT}({HIT_KEY}, {HIT_DIST})"
        ),
        on=on,
    )
    joins = list(select.args.get("joins") or [])
    position = 0
    for i, j in enumerate(joins):
        if isinstance(j.this, exp.Table) and _alias_of(j.this) == binding.alias:
            position = i + 1
    joins.insert(position, join)
    select.set("joins", joins)
    if shape.query.param is not None:
        ctx.vector_params[shape.query.param] = binding.column.dim
    text = generate(tree)
    before, rest = text.split(_IDS, 1)
    between, after = rest.split(_DISTS, 1)
    return KnnPlan(
        table=table,
        alias=binding.alias,
        column=binding.column,
        operator=shape.operator,
        query_literal=shape.query.literal,
        query_param=shape.query.param,
        limit=limit[0],
        limit_param=limit[1],
        offset=offset[0] or 0,
        offset_param=offset[1],
        filter_sql=filt.sql if filt else None,
        filter_params=filt.params if filt else (),
        probe_sql=filt.probe_sql if filt else None,
        engine_filter=filt.engine if filt else None,
        template_parts=(before, between, after),
        vector_params=dict(ctx.vector_params),
        filter_vector_params=filt.vector_params if filt else {},
        query_sql=example.sql if example else None,
        query_params=example.params if example else (),
        query_vector_params=example.vector_params if example else {},
    )


def _from_items(select: exp.Select) -> list[exp.Expr]:
    items: list[exp.Expr] = []
    frm = select.args.get("from_")
    if frm is not None:
        items.append(frm.this)
    items.extend(j.this for j in select.args.get("joins") or [])
    return items


def _from_item_name(item: exp.Expr) -> str:
    if isinstance(item, exp.Table):
        return _alias_of(item)
    alias = item.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.this is not None:
        return ident_name(alias.this)
    return ""


# ---------------------------------------------------------------- entry point


def rewrite_query(sql: str, tokens: Sequence[Token], tree: exp.Expr, catalog: Catalog) -> Decision:
    ctx = _Ctx(sql, tokens, catalog)
    rewrite_values(tree, ctx)
    shape = find_knn(tree, catalog)
    skip = {id(n) for n in shape.distances} if shape is not None else set()
    names = _item_names(tree)
    vectors = ExprPass(
        partial(_column_dim, catalog),
        ctx.vector_params,
        skip,
        array_params=ctx.array_params,
        array_dim=partial(_column_dim, catalog, arrays=True),
    )
    vectors.run(tree)
    if _order_by_value(tree, vectors, shape) or vectors.changed:
        ctx.changed = True
        ctx.structural = True
        _keep_names(names, vectors.created)
    outputs = _vector_outputs(tree, vectors)
    if shape is not None:
        return Knn(dataclasses.replace(_rewrite_knn(shape, ctx, tree), vector_outputs=outputs))
    if not ctx.changed:
        return Passthrough()
    if not ctx.structural:
        out: list[str] = []
        pos = 0
        for start, end, text in sorted(ctx.splices):
            out.append(sql[pos:start])
            out.append(text)
            pos = end
        out.append(sql[pos:])
        return Rewritten("".join(out), dict(ctx.vector_params), outputs, dict(ctx.array_params))
    return Rewritten(generate(tree), dict(ctx.vector_params), outputs, dict(ctx.array_params))


def _column_dim(catalog: Catalog, node: exp.Expr, arrays: bool = False) -> int | None:
    """The dimension of the vector column (or array of vectors) ``node`` names (0: any);
    None: not one."""
    binding = resolve(node, catalog, arrays)
    if binding is None:
        return None
    return binding.column.dim or 0


# ---------------------------------------------------------------- vector values by value


def _order_by_value(tree: exp.Expr, vectors: ExprPass, shape: _KnnShape | None) -> bool:
    """ORDER BY a vector orders by its value, as pgvector's btree class: by
    ``pgvec.vector_sort_key``. (Not under SELECT DISTINCT, whose ORDER BY must name
    select-list items: there the bytes' order stays.)"""
    changed = False
    for select in tree.find_all(exp.Select):
        order = select.args.get("order")
        if not isinstance(order, exp.Order) or select.args.get("distinct"):
            continue
        for ordered in order.expressions:
            if not isinstance(ordered, exp.Ordered) or (shape and ordered is shape.key):
                continue
            key = _order_key(select, ordered.this)
            if vectors.is_vector(key):
                ordered.set("this", pgvec_call("vector_sort_key", key.copy()))
                changed = True
    return changed


# ---------------------------------------------------------------- result columns


def _item_names(tree: exp.Expr) -> list[tuple[exp.Select, int, str]]:
    """(select, position, PostgreSQL's column name) of every unaliased select-list item,
    before pgvec rewrites any."""
    out = []
    for select in tree.find_all(exp.Select):
        for i, item in enumerate(select.expressions):
            if isinstance(item, (exp.Alias, exp.Star, Raw)):
                continue
            if isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
                continue
            name = column_name(item)
            if name is not None:
                out.append((select, i, name))
    return out


def _keep_names(names: list[tuple[exp.Select, int, str]], created: set[int]) -> None:
    """A rewritten select-list item keeps the column name of what the client wrote."""
    for select, i, name in names:
        items = select.expressions
        if i >= len(items):
            continue
        item = items[i]
        if isinstance(item, exp.Alias) or not any(id(n) in created for n in item.walk()):
            continue
        if column_name(item) != name:
            items = list(items)
            items[i] = exp.alias_(item, name, quoted=True, copy=False)
            select.set("expressions", items)


def _result_items(tree: exp.Expr) -> list[exp.Expr]:
    node = tree
    while isinstance(node, exp.SetOperation):
        node = node.this
    if isinstance(node, exp.Subquery):
        return _result_items(node.this)
    if isinstance(node, exp.Select):
        return list(node.expressions)
    returning = node.args.get("returning")
    if isinstance(returning, exp.Returning):
        return list(returning.expressions)
    return []


def _vector_outputs(tree: exp.Expr, vectors: ExprPass) -> frozenset[str]:
    """The column names of the result's vector values."""
    out = set()
    for item in _result_items(tree):
        value = item.this if isinstance(item, exp.Alias) else item
        # (a table's column PostgreSQL reports as that column: the proxy knows those)
        if (vectors.is_vector(value) or vectors.is_vector_array(value)) and not isinstance(
            unparen(value), exp.Column
        ):
            name = column_name(item)
            if name is not None:
                out.add(name)
    return frozenset(out)
