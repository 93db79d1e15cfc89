"""Typed read helpers over the pgvec catalog (sync psycopg)."""

from __future__ import annotations

from typing import Any

import psycopg

from pgvec.catalog.models import IndexRow, TableInfo, VectorColumn

_TABLES_SQL = """
SELECT relid::int8, schema_name::text, table_name::text, pk_column::text, pk_type,
       column_names::text[], column_types::text[], tracked, column_collations
FROM pgvec.table_info
ORDER BY relid
"""

_VECTORS_SQL = """
SELECT relid::int8, column_name::text, attnum::int4, dim, checked
FROM pgvec.vector_columns
ORDER BY relid, attnum
"""

_INDEXES_SQL = """
SELECT index_name::text, schema_name::text, relid::int8, attnum::int4, column_name::text,
       method, metric, options, state, progress, rows_indexed, created_at, updated_at, error,
       dim
FROM pgvec.indexes
ORDER BY schema_name, index_name
"""


_ROW_SECURITY_SQL = "SELECT oid::int8 FROM pg_class WHERE relrowsecurity AND oid = ANY(%s)"

_VOLATILE_SQL = "SELECT DISTINCT lower(proname) FROM pg_proc WHERE provolatile = 'v'"


def volatile_functions(conn: psycopg.Connection[Any]) -> frozenset[str]:
    """Names of the functions of which at least one overload is VOLATILE."""
    return frozenset(str(r[0]) for r in conn.execute(_VOLATILE_SQL).fetchall())


def load_tables(conn: psycopg.Connection[Any]) -> dict[int, TableInfo]:
    """Every table with at least one vector column, by relid."""
    vectors: dict[int, dict[str, VectorColumn]] = {}
    for relid, name, attnum, dim, checked in conn.execute(_VECTORS_SQL).fetchall():
        column = VectorColumn(name, int(attnum), int(dim), bool(checked))
        vectors.setdefault(int(relid), {})[name] = column
    out: dict[int, TableInfo] = {}
    rows = conn.execute(_TABLES_SQL).fetchall()
    secured = {int(r[0]) for r in conn.execute(_ROW_SECURITY_SQL, ([int(r[0]) for r in rows],))}
    for row in rows:
        relid, schema, name, pk, pk_type, names, types, tracked, collations = row
        out[int(relid)] = TableInfo(
            relid=int(relid),
            schema=schema,
            name=name,
            pk=pk,
            pk_type=pk_type,
            columns=tuple(names),
            column_types=tuple(types),
            column_collations=tuple(int(c) for c in collations),
            vectors=vectors.get(int(relid), {}),
            tracked=bool(tracked),
            row_security=int(relid) in secured,
        )
    return out


def list_indexes(conn: psycopg.Connection[Any]) -> list[IndexRow]:
    """All rows of pgvec.indexes, ordered by (schema_name, index_name)."""
    return [
        IndexRow(
            index_name=r[0],
            schema_name=r[1],
            relid=int(r[2]),
            attnum=int(r[3]),
            column_name=r[4],
            method=r[5],
            metric=r[6],
            options=dict(r[7] or {}),
            state=r[8],
            progress=float(r[9]),
            rows_indexed=int(r[10]),
            created_at=r[11],
            updated_at=r[12],
            error=r[13],
            dim=None if r[14] is None else int(r[14]),
        )
        for r in conn.execute(_INDEXES_SQL).fetchall()
    ]


def gone_index_columns(conn: psycopg.Connection[Any]) -> list[tuple[int, int, str, bool]]:
    """Rows of pgvec.indexes whose table or column is gone from PostgreSQL's own catalog
    (pg_class, pg_attribute): (relid, attnum, index name, whether the table is gone)."""
    rows = conn.execute(
        "SELECT i.relid::int8, i.attnum::int4, i.index_name::text, c.oid IS NULL"
        " FROM pgvec.indexes i LEFT JOIN pg_class c ON c.oid = i.relid"
        " WHERE c.oid IS NULL OR NOT EXISTS (SELECT FROM pg_attribute a"
        "   WHERE a.attrelid = i.relid AND a.attnum = i.attnum AND NOT a.attisdropped)"
    ).fetchall()
    return [(int(r[0]), int(r[1]), str(r[2]), bool(r[3])) for r in rows]


def gone_tables(conn: psycopg.Connection[Any], relids: list[int]) -> set[int]:
    """Those of ``relids`` that are no table any more (absent from pg_class)."""
    rows = conn.execute(
        "SELECT r FROM unnest(%s::int8[]) AS r"
        " WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r::oid)",
        (relids,),
    ).fetchall()
    return {int(r[0]) for r in rows}


def database_oid(conn: psycopg.Connection[Any]) -> int:
    """OID of the connected database (part of an index's identity on disk)."""
    row = conn.execute(
        "SELECT oid::int8 FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    assert row is not None
    return int(row[0])


def is_template(conn: psycopg.Connection[Any]) -> bool:
    """Whether the connected database is a template (pg_database.datistemplate)."""
    row = conn.execute(
        "SELECT datistemplate FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    return bool(row and row[0])
