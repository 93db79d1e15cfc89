"""Milvus's scalar indexes (INVERTED, STL_SORT, Trie, BITMAP, AUTOINDEX on a scalar
field) as the PostgreSQL index that serves the same filters: btree on a scalar column,
GIN on an ARRAY (``array_contains``) or JSON one (``json_contains``, ``meta["k"]``).

pgvec's filters are SQL, so PostgreSQL's planner uses the index wherever it helps, as
Milvus uses its own. The index is created as the caller (so it needs the table's
ownership, as CREATE INDEX does) under the name ``<collection>_<index name>_idx`` (cut
to fit, as PostgreSQL cuts names), and carries a comment that records the Milvus index
type it was asked for and the index's Milvus name, which DescribeIndex reports back.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from pgvec.milvus import indexes
from pgvec.milvus.indexes import IndexInfo
from pgvec.milvus.schema import DT, Collection, Field
from pgvec.milvus.status import ParameterInvalid

#: Milvus's scalar index types (Trie as Milvus spells it in errors: TRIE)
TYPES = frozenset({"INVERTED", "STL_SORT", "TRIE", "BITMAP", "AUTOINDEX"})
_NUMERIC = frozenset({DT.Int8, DT.Int16, DT.Int32, DT.Int64, DT.Float, DT.Double})
_STRING = frozenset({DT.VarChar, DT.String})
#: the comment that marks a PostgreSQL index as a Milvus scalar index, then its type and
#: its Milvus name
_MARK = "pgvec milvus scalar index "

_LIST_SQL = """
SELECT c.relname::text, a.attname::text, substr(d.description, length(%s) + 1)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass
WHERE i.indrelid = %s AND d.description LIKE %s || '%%'
ORDER BY a.attnum
"""


def _check(f: Field, index_type: str) -> str:
    """The PostgreSQL access method for a Milvus scalar index type on ``f``, with
    Milvus's errors for a type the field cannot take."""
    if index_type not in TYPES:
        raise ParameterInvalid(
            f"data type {DT.Name(f.type)} can't build with this index {index_type}"
        )
    if index_type == "STL_SORT" and f.type not in _NUMERIC:
        raise ParameterInvalid("STL_SORT are only supported on numeric field")
    if index_type == "TRIE" and f.type not in _STRING:
        raise ParameterInvalid("TRIE are only supported on varchar field")
    if index_type == "BITMAP" and f.type in (DT.Float, DT.Double, DT.JSON):
        raise ParameterInvalid(
            "bitmap index are only supported on bool, int, string and array field"
        )
    return "gin" if f.type in (DT.Array, DT.JSON) else "btree"


async def create(
    conn: psycopg.AsyncConnection[Any], coll: Collection, f: Field, name: str, index_type: str
) -> None:
    """A scalar index ``name`` of ``index_type`` on ``f``; the same index again is a no-op,
    as in Milvus, and a different one on the same field is refused."""
    given = index_type or "AUTOINDEX"  # (described back as given: Trie)
    method = _check(f, given.upper())
    pg_name = indexes.pg_name(coll.table, name)
    for existing in await list_indexes(conn, coll):
        if existing.field == f.name or existing.pg_name == pg_name:
            if existing.field == f.name and existing.method.upper() == given.upper():
                return
            raise ParameterInvalid(
                "CreateIndex failed: at most one distinct index is allowed per field"
            )
    async with conn.transaction():
        await conn.execute(
            sql.SQL("CREATE INDEX {} ON {} USING {} ({})").format(
                sql.Identifier(pg_name), coll.ident, sql.SQL(method), sql.Identifier(f.name)
            )
        )
        await conn.execute(
            sql.SQL("COMMENT ON INDEX {} IS {}").format(
                sql.Identifier(coll.schema_name, pg_name), sql.Literal(f"{_MARK}{given} {name}")
            )
        )


async def list_indexes(conn: psycopg.AsyncConnection[Any], coll: Collection) -> list[IndexInfo]:
    """The collection's scalar indexes (ready, their rows counted by the caller that
    describes them)."""
    cur = await conn.execute(_LIST_SQL, (_MARK, coll.relid, _MARK))
    out = []
    for pg_name, field, marked in await cur.fetchall():
        kind, _, name = marked.partition(" ")
        milvus = {"index_name": name} if name else {}
        out.append(IndexInfo(pg_name, field, kind, "", {}, "ready", 0, None, 1.0, milvus))
    return out


async def drop(conn: psycopg.AsyncConnection[Any], coll: Collection, index: IndexInfo) -> None:
    await conn.execute(
        sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(coll.schema_name, index.pg_name))
    )
