"""The table a CREATE TABLE statement will create, for the statements after it in one Query.

``CREATE TABLE t (... embedding vector(3)); INSERT INTO t VALUES (..., '[1,2,3]')`` sent as
one simple Query runs in one implicit transaction: the catalog cannot see ``t`` yet, so the
rewriter takes its columns from the statement itself. The provisional table has relid 0:
good for rewriting values, not for searching.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from pgvec.rewrite.catalog import TableInfo, VectorColumn
from pgvec.rewrite.dialect import DIALECT


def provisional_table(sql: str, schema: str = "public") -> TableInfo | None:
    """The vector table ``sql`` (a CREATE TABLE) creates, or None; ``schema``: where
    an unqualified name is created (the first schema of the search path)."""
    try:
        tree = sqlglot.parse_one(sql, dialect=DIALECT)
    except sqlglot.errors.SqlglotError:
        return None
    if not isinstance(tree, exp.Create) or tree.kind != "TABLE":
        return None
    definition = tree.this
    if not isinstance(definition, exp.Schema) or not isinstance(definition.this, exp.Table):
        return None
    table = definition.this
    columns: list[str] = []
    vectors: dict[str, VectorColumn] = {}
    pk: list[str] = []
    types: dict[str, str] = {}
    for element in definition.expressions:
        if isinstance(element, exp.ColumnDef):
            name = element.name
            columns.append(name)
            kind = element.args.get("kind")
            if isinstance(kind, exp.DataType):
                types[name] = kind.sql(dialect=DIALECT).lower()
                if kind.is_type(exp.DataType.Type.VECTOR) and kind.expressions:
                    dim = kind.expressions[0].name
                    if not dim.isdigit() or int(dim) < 1:
                        return None  # the statement fails in PostgreSQL
                    vectors[name] = VectorColumn(name, len(columns), int(dim))
            constraints = element.args.get("constraints") or []
            if any(
                isinstance(c.args.get("kind"), exp.PrimaryKeyColumnConstraint) for c in constraints
            ):
                pk.append(name)
        elif isinstance(element, exp.PrimaryKey):
            pk.extend(e.name for e in element.expressions)
    if not vectors:
        return None
    key = pk[0] if len(pk) == 1 else None
    return TableInfo(
        relid=0,
        schema=table.db or schema,
        name=table.name,
        pk=key,
        pk_type=types.get(key) if key else None,
        columns=tuple(columns),
        vectors=vectors,
    )
