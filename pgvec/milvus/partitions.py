"""Milvus partitions as PostgreSQL declarative partitions.

Every collection created through the Milvus API is a partitioned table: a hidden column
``"$partition" text NOT NULL DEFAULT '_default'``, the primary key ``(pk, "$partition")``
and ``PARTITION BY LIST ("$partition")``; each Milvus partition is a leaf table named
``<collection>$<partition>`` holding ``FOR VALUES IN ('<partition>')``, ``_default``
made with the collection. A collection with a partition key field (``is_partition_key``)
is ``PARTITION BY HASH (<key field>)`` with ``num_partitions`` leaves (16 by default, 64
at most), primary key ``(pk, <key field>)``, each leaf with a unique index on the
primary key field alone. Leaves are tables of their own: each has its own index and
the core searches the leaves left after pruning and merges their top-k
(:mod:`pgvec.service.partitions`); hits are joined back on the primary key field, which
Milvus takes to be unique in the collection.

A collection made before this (a plain table), or in SQL without partitioning, has
``_default`` only, and CreatePartition answers it with an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from pymilvus.grpc_gen import schema_pb2

from pgvec.milvus.data import PARTITION as COLUMN
from pgvec.milvus.filters import Filter
from pgvec.milvus.schema import Collection, Field
from pgvec.milvus.status import ParameterInvalid, PartitionNotFound, PartitionNotLoaded

DEFAULT_PARTITION = "_default"
DEFAULT_KEY_PARTITIONS = 16
MAX_KEY_PARTITIONS = 64
MAX_PARTITIONS = 1024

_LEAVES_SQL = """
SELECT c.oid::int8, c.relname::text, pg_get_expr(c.relpartbound, c.oid)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = %s::oid
ORDER BY c.oid
"""


def key_field(proto: schema_pb2.CollectionSchema) -> str | None:
    """The partition key field of a schema, if it has one."""
    keys = [f.name for f in proto.fields if f.is_partition_key]
    if len(keys) > 1:
        raise ParameterInvalid("there are more than one partition key")
    return keys[0] if keys else None


def partitioning(
    proto: schema_pb2.CollectionSchema, fields: Sequence[Field], num_partitions: int
) -> tuple[list[sql.Composable], sql.Composable, int]:
    """The columns to add to a collection's CREATE TABLE (hidden column, primary key),
    its PARTITION BY clause, and how many hash partitions (0: LIST by partition name)."""
    pk = next(f for f in fields if f.primary)
    key = key_field(proto)
    if key is None:
        if num_partitions > 0:
            raise ParameterInvalid("num_partitions should only be specified with partition key")
        extra: list[sql.Composable] = [
            sql.SQL("{} text NOT NULL DEFAULT {}").format(
                sql.Identifier(COLUMN), sql.Literal(DEFAULT_PARTITION)
            ),
            sql.SQL("PRIMARY KEY ({}, {})").format(sql.Identifier(pk.name), sql.Identifier(COLUMN)),
        ]
        return extra, sql.SQL(" PARTITION BY LIST ({})").format(sql.Identifier(COLUMN)), 0
    f = next((f for f in fields if f.name == key), None)
    if f is None or f.primary or f.is_vector or f.nullable:
        raise ParameterInvalid(f"the partition key field {key} must be a non-null scalar field")
    n = num_partitions or DEFAULT_KEY_PARTITIONS
    if n > MAX_KEY_PARTITIONS:
        raise ParameterInvalid(f"num_partitions {n} exceeds pgvec's maximum {MAX_KEY_PARTITIONS}")
    extra = [sql.SQL("PRIMARY KEY ({}, {})").format(sql.Identifier(pk.name), sql.Identifier(key))]
    return extra, sql.SQL(" PARTITION BY HASH ({})").format(sql.Identifier(key)), n


def leaf_name(table: str, partition: str) -> str:
    return f"{table}${partition}"


async def create_leaves(
    conn: psycopg.AsyncConnection[Any], schema: str, table: str, pk: str, hash_leaves: int
) -> None:
    """The collection's first leaves: ``_default``, or its hash partitions (each with a
    unique index on the primary key field: unique within a leaf, as hits need)."""
    parent = sql.Identifier(schema, table)
    if not hash_leaves:
        await conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES IN ({})").format(
                sql.Identifier(schema, leaf_name(table, DEFAULT_PARTITION)),
                parent,
                sql.Literal(DEFAULT_PARTITION),
            )
        )
        return
    for i in range(hash_leaves):
        leaf = sql.Identifier(schema, leaf_name(table, f"{DEFAULT_PARTITION}_{i}"))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE {} PARTITION OF {} FOR VALUES WITH (MODULUS {}, REMAINDER {})"
            ).format(leaf, parent, sql.Literal(hash_leaves), sql.Literal(i))
        )
        await conn.execute(
            sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(leaf, sql.Identifier(pk))
        )


async def leaves(conn: psycopg.AsyncConnection[Any], coll: Collection) -> dict[str, int]:
    """The collection's partitions: Milvus name -> leaf OID. A plain table is its own
    ``_default``; a hash-partitioned collection's leaves are named ``_default_<i>``."""
    cur = await conn.execute(_LEAVES_SQL, (coll.relid,))
    rows = await cur.fetchall()
    if not rows:
        return {DEFAULT_PARTITION: coll.relid}
    out: dict[str, int] = {}
    prefix = f"{coll.table}$"
    for relid, name, _bound in rows:
        out[name[len(prefix) :] if name.startswith(prefix) else name] = int(relid)
    return out


async def is_list_partitioned(conn: psycopg.AsyncConnection[Any], coll: Collection) -> bool:
    cur = await conn.execute(
        "SELECT EXISTS (SELECT FROM pg_partitioned_table p JOIN pg_attribute a"
        " ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]"
        " WHERE p.partrelid = %s::oid AND p.partstrat = 'l' AND a.attname = %s)",
        (coll.relid, COLUMN),
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def check_names(
    conn: psycopg.AsyncConnection[Any], coll: Collection, names: Sequence[str]
) -> dict[str, int]:
    """The leaves of the partitions ``names`` (every leaf if none are named)."""
    found = await leaves(conn, coll)
    if not names:
        return found
    for name in names:
        if name not in found:
            raise PartitionNotFound(f"partition not found[partition={name}]")
    return {n: found[n] for n in names}


async def readable(
    conn: psycopg.AsyncConnection[Any], coll: Collection, named: Sequence[str]
) -> list[str]:
    """The partitions a search or query naming ``named`` reads: those, each loaded, or
    (none named) every loaded one; [] for every partition."""
    for name in named:
        if name in coll.released:
            raise PartitionNotLoaded(f"partition not loaded[partition={name}]")
    if named or not coll.released:
        return list(named)
    return [n for n in await leaves(conn, coll) if n not in coll.released]


async def only(
    conn: psycopg.AsyncConnection[Any], coll: Collection, where: Filter, names: Sequence[str]
) -> Filter:
    """``where`` admitting only rows of the partitions ``names`` (none: every row)."""
    if not names:
        return where
    names = list(names)
    found = await check_names(conn, coll, names)
    if set(found.values()) == {coll.relid}:  # a plain table: _default is all of it
        return where
    if await is_list_partitioned(conn, coll):  # PostgreSQL prunes by the column
        among = sql.SQL("{} = ANY({}::text[])").format(sql.Identifier(COLUMN), sql.Literal(names))
    else:
        among = sql.SQL("tableoid = ANY({}::oid[])").format(sql.Literal(sorted(found.values())))
    text = among.as_string(conn)
    return Filter(f"({where.sql}) AND {text}", list(where.values), where.predicate)


async def target(conn: psycopg.AsyncConnection[Any], coll: Collection, name: str) -> str | None:
    """The value of the partition column for rows written to partition ``name``; None
    when the rows go where the table puts them (no name, or no partition column)."""
    if not name:
        return None
    found = await check_names(conn, coll, [name])
    if not await is_list_partitioned(conn, coll):
        if set(found.values()) == {coll.relid}:
            return None
        raise ParameterInvalid(
            "not support manually specifying the partition names if partition key mode is used"
        )
    return name
