"""Collections, aliases and databases as PostgreSQL sees them, read and changed on a
connection opened as the client's role (so its grants decide what it may see and do).

A Milvus database is a PostgreSQL schema (``default`` is ``public``); a collection is a
table of that schema with a vector column, made through the Milvus API or in SQL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from pymilvus.grpc_gen import schema_pb2

from pgvec.filter.sql import NAMEDATALEN
from pgvec.milvus import partitions
from pgvec.milvus.schema import (
    DT,
    MAX_CAPACITY,
    MAX_VARCHAR,
    Collection,
    ColumnRow,
    check_schema,
    create_table,
    described,
    with_field_ids,
)
from pgvec.milvus.status import (
    CollectionNotFound,
    DatabaseExists,
    DatabaseNotFound,
    MilvusError,
    ParameterInvalid,
    Unsupported,
)

DEFAULT_DB = "default"
#: schemas that are never Milvus databases
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pgvec", "pg_toast")

_RESOLVE_SQL = """
SELECT c.oid::int8, c.relname::text, m.schema, m.consistency, m.properties, m.loaded,
       m.created_ts, m.released_partitions
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pgvec.collections m ON m.relid = c.oid
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
  AND (c.relname = %(name)s OR c.oid = (SELECT a.relid FROM pgvec.aliases a
                                         WHERE a.schema_name = %(schema)s
                                           AND a.alias = %(name)s))
ORDER BY c.relname = %(name)s DESC
LIMIT 1
"""

_COLUMNS_SQL = """
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       coalesce(v.dim, 0), coalesce(v.is_binary, false),
       a.attname = pgvec._key_column(a.attrelid)
FROM pg_attribute a
LEFT JOIN pgvec.vector_columns v ON v.relid = a.attrelid AND v.attnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_LIST_SQL = """
SELECT DISTINCT v.table_name::text FROM pgvec.vector_columns v
WHERE v.schema_name = %s AND has_table_privilege(v.relid, 'SELECT')
  AND v.dim IS NOT NULL  -- a column of any dimension is no Milvus vector field
  AND NOT (SELECT c.relispartition FROM pg_class c WHERE c.oid = v.relid)
ORDER BY 1
"""


def schema_of(db_name: str) -> str:
    """The PostgreSQL schema of a Milvus database."""
    return "public" if db_name in ("", DEFAULT_DB) else db_name


def db_name_of(schema: str) -> str:
    return DEFAULT_DB if schema == "public" else schema


async def resolve(conn: psycopg.AsyncConnection[Any], db: str, name: str) -> Collection:
    """The collection (or alias) ``name`` of Milvus database ``db``."""
    schema = schema_of(db)
    await _check_db(conn, schema)
    cur = await conn.execute(_RESOLVE_SQL, {"schema": schema, "name": name})
    row = await cur.fetchone()
    if row is None:
        raise CollectionNotFound(f"collection '{name}' does not exist")
    relid, table, stored, consistency, properties, loaded, created_ts, released = row
    cur = await conn.execute(_COLUMNS_SQL, (relid,))
    columns = await cur.fetchall()
    pk = next((c[0] for c in columns if c[5]), None)
    rows = [ColumnRow(c[0], c[1], bool(c[2]), int(c[3]), bool(c[4])) for c in columns]
    if not any(r.dim for r in rows):
        raise CollectionNotFound(f"collection '{name}' does not exist")
    if pk is None:
        raise MilvusError(
            f"table {table} has no single-column primary key: it cannot be a collection"
        )
    if stored:
        proto = schema_pb2.CollectionSchema.FromString(bytes(stored))
        fields = check_schema(proto)
        proto = with_field_ids(proto)
        proto.name = table  # renamed in SQL or through the API since
        dynamic = proto.enable_dynamic_field
    else:
        fields, proto, dynamic = described(table, rows, pk)
    present = {r.name for r in rows}
    fields = tuple(f for f in fields if f.name in present)  # columns dropped in SQL
    return Collection(
        relid=int(relid),
        schema_name=schema,
        table=table,
        name=table,
        fields=fields,
        proto=proto,
        dynamic=bool(dynamic),
        consistency=2 if consistency is None else int(consistency),
        loaded=bool(loaded),
        released=frozenset(released or ()),
        created_ts=int(created_ts or 0),
        properties=dict(properties or {}),
        registered=bool(stored),
    )


async def exists(conn: psycopg.AsyncConnection[Any], db: str, name: str) -> bool:
    try:
        await resolve(conn, db, name)
    except CollectionNotFound:
        return False
    return True


async def list_names(conn: psycopg.AsyncConnection[Any], db: str) -> list[str]:
    schema = schema_of(db)
    await _check_db(conn, schema)
    cur = await conn.execute(_LIST_SQL, (schema,))
    return [r[0] for r in await cur.fetchall()]


async def create(
    conn: psycopg.AsyncConnection[Any],
    db: str,
    name: str,
    proto: schema_pb2.CollectionSchema,
    consistency: int,
    properties: dict[str, str],
    created_ts: int,
    num_partitions: int = 0,
) -> None:
    """CREATE TABLE, partitioned (:mod:`pgvec.milvus.partitions`), with its first
    partitions and its registration, in one transaction."""
    _check_name(name)
    schema = schema_of(db)
    await _check_db(conn, schema)
    fields = check_schema(proto)
    proto.name = name
    extra, partition_by, hash_leaves = partitions.partitioning(proto, fields, num_partitions)
    pk = next(f for f in fields if f.primary)
    async with conn.transaction():
        await conn.execute(create_table(schema, name, proto, fields, (extra, partition_by)))
        await partitions.create_leaves(conn, schema, name, pk.name, hash_leaves)
        await conn.execute(
            "SELECT pgvec.register_collection(%s::regclass, %s, %s, %s::jsonb, %s)",
            (
                sql.Identifier(schema, name).as_string(conn),
                proto.SerializeToString(),
                consistency,
                json.dumps(properties),
                created_ts,
            ),
        )


async def drop(conn: psycopg.AsyncConnection[Any], coll: Collection) -> None:
    async with conn.transaction():
        await conn.execute(sql.SQL("DROP TABLE {}").format(coll.ident))
        await conn.execute("SELECT pgvec.forget_collection(%s)", (coll.relid,))


async def rename(
    conn: psycopg.AsyncConnection[Any], coll: Collection, new_db: str, new_name: str
) -> None:
    _check_name(new_name)
    schema = schema_of(new_db)
    await _check_db(conn, schema)
    async with conn.transaction():
        if schema != coll.schema_name:
            await conn.execute(
                sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(coll.ident, sql.Identifier(schema))
            )
        if schema == coll.schema_name or new_name != coll.table:  # (a move keeps its name)
            await conn.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    sql.Identifier(schema, coll.table), sql.Identifier(new_name)
                )
            )


async def set_released(
    conn: psycopg.AsyncConnection[Any], coll: Collection, names: Sequence[str]
) -> None:
    """Mark the partitions ``names`` of a loaded collection released (the others loaded)."""
    await conn.execute(
        "SELECT pgvec.set_partitions_released(%s::oid::regclass, %s::text[])",
        (coll.relid, sorted(names)),
    )


async def set_loaded(conn: psycopg.AsyncConnection[Any], coll: Collection, loaded: bool) -> None:
    await conn.execute(
        "SELECT pgvec.set_collection_loaded(%s::oid::regclass, %s)", (coll.relid, loaded)
    )


async def set_alias(
    conn: psycopg.AsyncConnection[Any], db: str, alias: str, coll: Collection, replace: bool
) -> None:
    _check_name(alias, limit=255)  # kept in pgvec.aliases: no relation of its name
    schema = schema_of(db)
    cur = await conn.execute(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, alias),
    )
    if await cur.fetchone():
        raise ParameterInvalid(f"alias {alias} is the name of a collection")
    try:
        await conn.execute(
            "SELECT pgvec.set_alias(%s, %s, %s::oid::regclass, %s)",
            (schema, alias, coll.relid, replace),
        )
    except psycopg.errors.UniqueViolation:
        raise ParameterInvalid(
            f"alias exists and already aliased to another collection, alias: {alias}"
        ) from None


async def drop_alias(conn: psycopg.AsyncConnection[Any], db: str, alias: str) -> None:
    await conn.execute("SELECT pgvec.drop_alias(%s, %s)", (schema_of(db), alias))


async def aliases_of(conn: psycopg.AsyncConnection[Any], coll: Collection) -> list[str]:
    cur = await conn.execute(
        "SELECT alias::text FROM pgvec.aliases WHERE relid = %s ORDER BY 1", (coll.relid,)
    )
    return [r[0] for r in await cur.fetchall()]


async def list_aliases(conn: psycopg.AsyncConnection[Any], db: str) -> list[str]:
    cur = await conn.execute(
        "SELECT alias::text FROM pgvec.aliases WHERE schema_name = %s ORDER BY 1",
        (schema_of(db),),
    )
    return [r[0] for r in await cur.fetchall()]


# ------------------------------------------------------------ databases


async def list_dbs(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute(
        "SELECT nspname::text FROM pg_namespace WHERE nspname <> ALL(%s)"
        " AND nspname NOT LIKE 'pg\\_%%' AND has_schema_privilege(oid, 'USAGE')"
        " ORDER BY nspname <> 'public', nspname",
        (list(_SYSTEM_SCHEMAS),),
    )
    return [db_name_of(r[0]) for r in await cur.fetchall()]


async def create_db(
    conn: psycopg.AsyncConnection[Any], db: str, properties: Mapping[str, str]
) -> None:
    _check_name(db, limit=NAMEDATALEN - 1, what="database")
    schema = schema_of(db)
    try:
        async with conn.transaction():
            await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            await _set_db_properties(conn, schema, properties)  # (a reused OID's go)
    except psycopg.errors.DuplicateSchema:
        raise DatabaseExists(f"database already exist: {db}") from None


async def db_properties(conn: psycopg.AsyncConnection[Any], db: str) -> dict[str, str]:
    """The properties of database ``db`` (Milvus's DescribeDatabase)."""
    schema = schema_of(db)
    await _check_db(conn, schema)
    cur = await conn.execute(
        "SELECT d.properties FROM pgvec.databases d"
        " JOIN pg_namespace n ON n.oid = d.nspoid WHERE n.nspname = %s",
        (schema,),
    )
    row = await cur.fetchone()
    return {k: str(v) for k, v in (row[0] if row else {}).items()}


async def alter_db(
    conn: psycopg.AsyncConnection[Any], db: str, changes: Mapping[str, str], drop: Sequence[str]
) -> None:
    """Set ``changes`` and remove the keys ``drop`` from the properties of ``db``."""
    properties = await db_properties(conn, db)
    properties.update(changes)
    for key in drop:
        properties.pop(key, None)
    await _set_db_properties(conn, schema_of(db), properties)


async def _set_db_properties(
    conn: psycopg.AsyncConnection[Any], schema: str, properties: Mapping[str, str]
) -> None:
    await conn.execute(
        "SELECT pgvec.set_database_properties(%s::regnamespace, %s::jsonb)",
        (sql.Identifier(schema).as_string(conn), json.dumps(dict(properties))),
    )


async def drop_db(conn: psycopg.AsyncConnection[Any], db: str) -> None:
    if schema_of(db) == "public":
        raise ParameterInvalid("can not drop default database")
    await _check_db(conn, schema_of(db))
    try:
        await conn.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(schema_of(db))))
    except psycopg.errors.DependentObjectsStillExist:
        raise MilvusError(
            f"database:{db} not empty, must drop all collections before drop database"
        ) from None


async def _check_db(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    if schema in _SYSTEM_SCHEMAS or schema.startswith("pg_"):
        raise DatabaseNotFound(f"database not found[database={schema}]")
    cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    if await cur.fetchone() is None:
        raise DatabaseNotFound(f"database not found[database={db_name_of(schema)}]")


#: the longest name a collection may have: its partitions' tables are named
#: ``<collection>$<partition>``, ``$_default_63`` the longest of pgvec's own, and
#: PostgreSQL keeps NAMEDATALEN - 1 bytes of a table's name
MAX_COLLECTION_NAME = (
    NAMEDATALEN - 1 - len(partitions.leaf_name("", f"{partitions.DEFAULT_PARTITION}_63"))
)


def _check_name(name: str, *, limit: int = MAX_COLLECTION_NAME, what: str = "collection") -> None:
    if not name:
        raise ParameterInvalid(f"{what} name should not be empty")
    if len(name) > 255:
        raise ParameterInvalid(f"the length of a {what} name must be less than 255 characters")
    if len(name.encode()) > limit:
        raise ParameterInvalid(
            f"the length of a {what} name must be at most {limit} bytes in pgvec (PostgreSQL"
            " keeps 63 bytes of a table's or schema's name, and a collection's partitions are"
            f" tables named <collection>$<partition>): invalid {what} name: {name}"
        )
    first = name[0]
    if not (first == "_" or first.isalpha()):
        raise ParameterInvalid(
            f"the first character of a collection name must be an underscore or letter: "
            f"invalid collection name: {name}"
        )
    if not all(ch == "_" or ch.isalnum() for ch in name):
        raise ParameterInvalid(
            "collection name can only contain numbers, letters and underscores: "
            f"invalid collection name: {name}"
        )


#: the field properties AlterCollectionField takes
_FIELD_PROPERTIES = ("max_length", "max_capacity", "mmap.enabled")


async def alter_field(
    conn: psycopg.AsyncConnection[Any],
    coll: Collection,
    name: str,
    changes: Mapping[str, str],
    drop: Sequence[str],
) -> None:
    """Milvus's AlterCollectionField: ``max_length`` of a VARCHAR field widens (or
    narrows, where every value fits) its column; ``max_capacity`` and ``mmap.enabled``
    are kept in the schema (PostgreSQL keeps the rows on disk and in its buffers, as
    mmap does). Each in one transaction with the stored schema."""
    f = coll.field(name)
    if f is None:
        raise ParameterInvalid(f"field {name} does not exist in collection {coll.name}")
    if not coll.registered:
        raise Unsupported(
            f"table {coll.table} was made in SQL: change its columns with ALTER TABLE"
        )
    for key in [*changes, *drop]:
        if key not in _FIELD_PROPERTIES:
            raise ParameterInvalid(f"{key} is not a field property Milvus alters")
    cur = await conn.execute("SELECT schema FROM pgvec.collections WHERE relid = %s", (coll.relid,))
    row = await cur.fetchone()
    if row is None:  # dropped meanwhile
        raise CollectionNotFound(f"collection '{coll.name}' does not exist")
    proto = schema_pb2.CollectionSchema.FromString(bytes(row[0]))
    field = next(x for x in proto.fields if x.name == name)
    params = {p.key: p.value for p in field.type_params}
    async with conn.transaction():
        for key, value in changes.items():
            if key == "max_length":
                n = _int_value(key, value)
                if f.type != DT.VarChar or not 0 < n <= MAX_VARCHAR:
                    raise ParameterInvalid(
                        f"max_length of field {name} can be altered on a VarChar field only,"
                        f" to a value in (0, {MAX_VARCHAR}]"
                    )
                await conn.execute(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE character varying({})").format(
                        coll.ident, sql.Identifier(name), sql.Literal(n)
                    )
                )
            elif key == "max_capacity" and (
                f.type != DT.Array or not 0 < _int_value(key, value) <= MAX_CAPACITY
            ):
                raise ParameterInvalid(
                    f"max_capacity of field {name} can be altered on an Array field only,"
                    f" to a value in (0, {MAX_CAPACITY}]"
                )
            params[key] = value
        for key in drop:
            params.pop(key, None)
        del field.type_params[:]
        for key, value in params.items():
            field.type_params.add(key=key, value=value)
        await conn.execute(
            "SELECT pgvec.set_collection_schema(%s::oid::regclass, %s)",
            (coll.relid, proto.SerializeToString()),
        )


def _int_value(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ParameterInvalid(f"{key} must be an integer, not {value}") from None
