"""Typed read helpers over the pgvec catalog (sync psycopg)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, NamedTuple

import psycopg

from pgvec.catalog.models import IndexRow, Slot, TableInfo, VectorColumn

_INDEXES_SQL = """
SELECT index_name::text, schema_name::text, relid::int8, attnum::int4, column_name::text,
       method, metric, options, state, progress, rows_indexed, created_at, updated_at, error,
       dim, standby
FROM pgvec.indexes
ORDER BY schema_name, index_name
"""


_VOLATILE_SQL = "SELECT DISTINCT lower(proname) FROM pg_proc WHERE provolatile = 'v'"


def volatile_functions(conn: psycopg.Connection[Any]) -> frozenset[str]:
    """Names of the functions of which at least one overload is VOLATILE."""
    return frozenset(str(r[0]) for r in conn.execute(_VOLATILE_SQL).fetchall())


#: The type clients see vector columns as: pgvec's placeholder ``public.vector`` (or a real
#: pgvector type of that name), else one named vector elsewhere.
_FACE_SQL = """
SELECT oid::int8, typarray::int8 FROM pg_type WHERE typname = 'vector'
ORDER BY typnamespace <> coalesce(to_regnamespace('public')::oid, 0), oid LIMIT 1
"""


def face_types(conn: psycopg.Connection[Any]) -> tuple[int | None, int | None]:
    """OIDs of the type pgvec reports vector columns as (see sql/: pgvector's face) and
    of its array type (``vector[]``)."""
    row = conn.execute(_FACE_SQL).fetchone()
    return (int(row[0]), int(row[1])) if row else (None, None)


def load_tables(conn: psycopg.Connection[Any]) -> dict[int, TableInfo]:
    """Every table with at least one vector column, by relid."""
    return load_catalog(conn)[0]


def load_catalog(conn: psycopg.Connection[Any]) -> ParsedCatalog:
    """The vector tables by relid, the (schema, name) of the other relations named like
    one of them, and the tables with arrays of vectors only (see :data:`CATALOG_SQL`)."""
    row = conn.execute(CATALOG_SQL).fetchone()
    assert row is not None
    return parse_catalog(row[0])


#: The vector tables, and the other relations named like one (which hide it where they
#: come first in the search path), as one JSON text: one round trip, the same on pgvec's
#: pool and on a client's own connection (where its open transaction's DDL shows).
CATALOG_SQL = """
WITH v AS MATERIALIZED (
    SELECT relid, column_name::text AS name, attnum::int4 AS attnum, dim, checked, is_binary
    FROM pgvec.vector_columns
), t AS (
    SELECT i.*, c.relrowsecurity
    FROM pgvec.table_info i JOIN pg_class c ON c.oid = i.relid
)
SELECT json_build_object(
    'tables', coalesce((
        SELECT json_agg(json_build_object(
            'relid', t.relid::int8, 'schema', t.schema_name, 'name', t.table_name,
            'pk', t.pk_column, 'pk_type', t.pk_type, 'columns', t.column_names,
            'types', t.column_types, 'collations', t.column_collations,
            'tracked', t.tracked, 'row_security', t.relrowsecurity,
            'partitioned', t.partitioned, 'partitions', t.partitions,
            'vectors', (SELECT json_agg(json_build_array(v.name, v.attnum, v.dim, v.checked,
                                                          v.is_binary)
                                        ORDER BY v.attnum)
                        FROM v WHERE v.relid = t.relid))
            ORDER BY t.relid)
        FROM t), '[]'),
    'others', coalesce((
        SELECT json_agg(json_build_array(n.nspname, c.relname))
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p', 'S')
          AND c.relname IN (SELECT table_name FROM t)
          AND c.oid NOT IN (SELECT relid FROM t)), '[]'),
    'arrays', coalesce((
        SELECT json_agg(json_build_array(
            a.relid::int8, a.attnum::int4, a.dim, a.column_name, n.nspname, r.relname,
            ARRAY(SELECT c.attname FROM pg_attribute c
                  WHERE c.attrelid = a.relid AND c.attnum > 0 AND NOT c.attisdropped
                  ORDER BY c.attnum)))
        FROM pgvec.vector_array_columns a
        JOIN pg_class r ON r.oid = a.relid
        JOIN pg_namespace n ON n.oid = r.relnamespace), '[]')
)::text
"""


class ParsedCatalog(NamedTuple):
    tables: dict[int, TableInfo]
    others: frozenset[tuple[str, str]]
    array_tables: dict[int, TableInfo]


def parse_catalog(text: str) -> ParsedCatalog:
    """What :data:`CATALOG_SQL` returned."""
    data = json.loads(text)
    tables: dict[int, TableInfo] = {}
    for t in data["tables"]:
        relid = int(t["relid"])
        tables[relid] = TableInfo(
            relid=relid,
            schema=t["schema"],
            name=t["name"],
            pk=t["pk"],
            pk_type=t["pk_type"],
            columns=tuple(t["columns"]),
            column_types=tuple(t["types"]),
            column_collations=tuple(int(c) for c in t["collations"]),
            vectors={
                name: VectorColumn(name, int(attnum), dim and int(dim), bool(checked), bool(binary))
                for name, attnum, dim, checked, binary in t["vectors"] or ()
            },
            tracked=bool(t["tracked"]),
            row_security=bool(t["row_security"]),
            partitioned=bool(t.get("partitioned")),
            partitions=tuple(int(p) for p in t.get("partitions") or ()),
        )
    others = frozenset((str(schema), str(name)) for schema, name in data["others"])
    arrays: dict[int, dict[str, VectorColumn]] = {}
    names: dict[int, tuple[str, str, tuple[str, ...]]] = {}
    for relid, attnum, dim, column, schema, name, columns in data.get("arrays") or ():
        arrays.setdefault(relid, {})[column] = VectorColumn(column, attnum, dim and int(dim))
        names[relid] = (schema, name, tuple(columns))
    array_tables: dict[int, TableInfo] = {}
    for relid, found in arrays.items():
        if relid in tables:
            tables[relid] = dataclasses.replace(tables[relid], arrays=found)
        else:
            schema, name, columns = names[relid]
            array_tables[relid] = TableInfo(relid, schema, name, None, None, columns, arrays=found)
    return ParsedCatalog(tables, others, array_tables)


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
            standby=tuple(str(d["index_name"]) for d in r[15] or ()),
        )
        for r in conn.execute(_INDEXES_SQL).fetchall()
    ]


def gone_index_columns(conn: psycopg.Connection[Any]) -> list[tuple[int, Slot, str, bool]]:
    """Rows of pgvec.indexes whose table or column is gone from PostgreSQL's own catalog
    (pg_class, pg_attribute): (relid, slot, index name, whether the table is gone)."""
    rows = conn.execute(
        "SELECT i.relid::int8, i.attnum::int4, i.index_name::text, c.oid IS NULL, i.metric"
        " FROM pgvec.indexes i LEFT JOIN pg_class c ON c.oid = i.relid"
        " WHERE c.oid IS NULL OR NOT EXISTS (SELECT FROM pg_attribute a"
        "   WHERE a.attrelid = i.relid AND a.attnum = i.attnum AND NOT a.attisdropped)"
    ).fetchall()
    return [(int(r[0]), Slot(int(r[1]), str(r[4]).upper()), str(r[2]), bool(r[3])) for r in rows]


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
