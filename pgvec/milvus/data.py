"""Insert, upsert, delete and query on a collection's table, as the caller's role.

An Insert or Upsert batch is one transaction: it lands whole or not at all. Rows travel
by COPY (into a temporary table first where row-level security or an upsert needs an
INSERT); a collection's change-log triggers then carry them to its indexes, as they do
for rows written in SQL.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine, Sequence
from typing import Any

import psycopg
from psycopg import sql
from pymilvus.grpc_gen import schema_pb2

from pgvec.filter.sql import quoted
from pgvec.milvus import fielddata
from pgvec.milvus.filters import EVERYTHING, Filter
from pgvec.milvus.schema import DT, DYNAMIC, Collection, Field, default_value
from pgvec.milvus.status import ParameterInvalid
from pgvec.service.filtering import keys_param
from pgvec.service.search import ConnectionSQL

#: column types read as they are; any other reads as text (VarChar)
_NATIVE = (
    "boolean",
    "smallint",
    "integer",
    "bigint",
    "real",
    "double precision",
    "jsonb",
    "json",
    "bytea",
    "text",
    "character varying",
)
COUNT = "count(*)"
#: the hidden column of a collection's partition (pgvec.milvus.partitions)
PARTITION = "$partition"
_PRIMARY_KEY_SQL = """
SELECT a.attname::text FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
WHERE i.indrelid = %s::oid AND i.indisprimary
"""


async def write(
    conn: psycopg.AsyncConnection[Any],
    coll: Collection,
    columns: Sequence[schema_pb2.FieldData],
    num_rows: int,
    *,
    upsert: bool,
    partition: str | None = None,
    partial: bool = False,
) -> list[Any]:
    """Insert (or upsert) the rows (into ``partition``, if named); returns their primary
    keys, in order. ``partial``: an upsert that changes only the fields given (and adds
    the dynamic keys given to a row's others), as Milvus 2.6's partial update; a new
    row still needs every field that is neither nullable nor defaulted."""
    names, values = _columns(coll, columns, num_rows, upsert=upsert, partial=partial)
    if upsert and coll.pk.name in names:
        keys = values[names.index(coll.pk.name)]
        if len(set(keys)) < len(keys):  # Milvus refuses them since 2.5.x and 2.6.x
            raise ParameterInvalid("duplicate primary keys are not allowed in the same batch")
    if partition is not None:
        names.append(PARTITION)
        values.append([partition] * num_rows)
    pk = coll.pk
    async with conn.transaction():
        if pk.name not in names:  # auto_id: Milvus-style keys, handed out here
            cur = await conn.execute(
                "SELECT pgvec.next_id() FROM generate_series(1, %s)", (num_rows,)
            )
            names.insert(0, pk.name)
            values.insert(0, [r[0] for r in await cur.fetchall()])
        target: sql.Composable = coll.ident
        # COPY FROM refuses a table under row-level security: stage the rows, then
        # INSERT ... SELECT, which the policies check (an upsert is staged anyway)
        cur = await conn.execute("SELECT row_security_active(%s::oid)", (coll.relid,))
        row = await cur.fetchone()
        staged = upsert or bool(row and row[0])
        idents = sql.SQL(", ").join(sql.Identifier(n) for n in names)
        if staged:
            target = sql.Identifier("_pgvec_upsert")
            # a partial update's rows lack fields the table requires: only its columns
            made = (
                "CREATE TEMP TABLE {s} ON COMMIT DROP AS SELECT {c} FROM {t} WITH NO DATA"
                if partial
                else "CREATE TEMP TABLE {s} (LIKE {t} INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            await conn.execute(sql.SQL(made).format(s=target, c=idents, t=coll.ident))
        async with conn.cursor().copy(
            sql.SQL("COPY {} ({}) FROM STDIN").format(target, idents)
        ) as copy:
            for row in zip(*values, strict=True):
                await copy.write_row(row)
        if staged and not upsert:
            await conn.execute(
                sql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {s}").format(
                    t=coll.ident, c=idents, s=target
                )
            )
        elif partial:
            await _partial_update(conn, coll, names, idents, target)
        elif upsert:
            updates = sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(n), sql.Identifier(n))
                for n in names
                if n != pk.name
            )
            cur = await conn.execute(_PRIMARY_KEY_SQL, (coll.relid,))
            key = [r[0] for r in await cur.fetchall()] or [pk.name]  # (pk, partition key)
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {t} ({c}) SELECT {c} FROM {s} ON CONFLICT ({k}) DO UPDATE SET {u}"
                ).format(
                    t=coll.ident,
                    c=idents,
                    s=target,
                    k=sql.SQL(", ").join(sql.Identifier(n) for n in key),
                    u=updates,
                )
            )
    return values[names.index(pk.name)]


async def _partial_update(
    conn: psycopg.AsyncConnection[Any],
    coll: Collection,
    names: list[str],
    idents: sql.Composable,
    staged: sql.Composable,
) -> None:
    """The staged rows of a partial update: the fields given set on the rows of their
    keys, the dynamic keys given added to the row's others; the rows of new keys
    inserted. (INSERT ... ON CONFLICT cannot: PostgreSQL checks NOT NULL before it looks
    for the conflict.)"""
    pk = sql.Identifier(coll.pk.name)
    sets = sql.SQL(", ").join(
        sql.SQL("{n} = COALESCE(t.{n}, '{{}}') || s.{n}" if n == DYNAMIC else "{n} = s.{n}").format(
            n=sql.Identifier(n)
        )
        for n in names
        if n != coll.pk.name
    )
    if names != [coll.pk.name]:
        await conn.execute(
            sql.SQL("UPDATE {t} AS t SET {sets} FROM {s} AS s WHERE t.{k} = s.{k}").format(
                t=coll.ident, sets=sets, s=staged, k=pk
            )
        )
    try:
        await conn.execute(
            sql.SQL(
                "INSERT INTO {t} ({c}) SELECT {c} FROM {s} AS s"
                " WHERE NOT EXISTS (SELECT FROM {t} AS t WHERE t.{k} = s.{k})"
            ).format(t=coll.ident, c=idents, s=staged, k=pk)
        )
    except psycopg.errors.NotNullViolation as exc:
        raise ParameterInvalid(
            f"Insert missed an field `{exc.diag.column_name or '?'}` to collection without"
            " set nullable==true or set default_value (a partial update of a new row)"
        ) from None


def _columns(
    coll: Collection,
    columns: Sequence[schema_pb2.FieldData],
    rows: int,
    *,
    upsert: bool,
    partial: bool = False,
) -> tuple[list[str], list[list[Any]]]:
    if rows <= 0:
        raise ParameterInvalid("num_rows should be greater than 0")
    given = {}
    for data in columns:
        if data.is_dynamic or data.field_name == DYNAMIC:
            if not coll.dynamic:
                raise ParameterInvalid(
                    "the dynamic field is not enabled, but dynamic data was given"
                )
            given[DYNAMIC] = data
            continue
        if coll.field(data.field_name) is None:
            raise ParameterInvalid(
                f"Attempt to insert an unexpected field `{data.field_name}` to collection"
                " without enabling dynamic field"
                if not coll.dynamic
                else f"field {data.field_name} not exist"
            )
        if data.field_name in given:
            raise ParameterInvalid(f"duplicated field name {data.field_name}")
        given[data.field_name] = data
    names: list[str] = []
    values: list[list[Any]] = []
    for f in coll.fields:
        data = given.get(f.name)
        if data is None:
            if f.primary and f.auto_id:
                continue
            if f.primary or not (partial or f.nullable or _has_default(coll, f)):
                raise ParameterInvalid(
                    f"Insert missed an field `{f.name}` to collection without set "
                    "nullable==true or set default_value"
                )
            continue
        if f.primary and f.auto_id and not upsert:
            raise ParameterInvalid(
                f"the primary key field ({f.name}) is auto_id, no need to provide"
            )
        names.append(f.name)
        if f.is_vector:
            vectors = fielddata.vectors_of(data, f)
            if len(vectors) != rows:
                raise ParameterInvalid(
                    f"the num_rows ({len(vectors)}) of field ({f.name}) is not equal to "
                    f"passed num_rows ({rows})"
                )
            values.append(fielddata.vector_cells(vectors))
        else:
            values.append(fielddata.scalars_of(data, f, rows, _default(coll, f)))
    if DYNAMIC in given:
        meta = fielddata.dynamic_of(given[DYNAMIC])
        if len(meta) != rows:
            raise ParameterInvalid(f"the number of dynamic rows ({len(meta)}) is not {rows}")
        names.append(DYNAMIC)
        values.append(meta)
    return names, values


def _has_default(coll: Collection, f: Field) -> bool:
    return _default(coll, f) is not None


def _default(coll: Collection, f: Field) -> Any:
    declared = next((p for p in coll.proto.fields if p.name == f.name), None)
    return None if declared is None else default_value(declared)


async def filtered(
    conn: psycopg.AsyncConnection[Any], statement: sql.Composable, where: Filter, *more: Any
) -> list[tuple[Any, ...]]:
    """The rows of a statement holding a rendered filter (``$n`` parameters, text values
    with their casts written in the SQL), and ``more`` parameters after the filter's."""
    cur = psycopg.AsyncRawCursor(conn)
    values = [None if v is None else v.decode() for v in where.values]
    await cur.execute(statement.as_string(conn), [*values, *more])
    return await cur.fetchall() if cur.description is not None else []


async def delete(conn: psycopg.AsyncConnection[Any], coll: Collection, where: Filter) -> list[Any]:
    """Delete the rows the filter admits; returns their keys."""
    statement = sql.SQL("DELETE FROM {} WHERE {} RETURNING {}").format(
        coll.ident, sql.SQL(where.sql), sql.Identifier(coll.pk.name)
    )
    return [r[0] for r in await filtered(conn, statement, where)]


# ------------------------------------------------------------ outputs


class Outputs:
    """What a Query or Search answers for each row: fields and dynamic keys."""

    def __init__(self, coll: Collection, names: Sequence[str], *, with_pk: bool) -> None:
        self.coll = coll
        fields: list[Field] = []
        self.dynamic_keys: list[str] = []
        self.all_dynamic = False
        self.count = False
        for name in names:
            name = name.strip()
            if name == "*":
                fields.extend(coll.fields)
                self.all_dynamic = coll.dynamic
            elif name.lower() == COUNT:
                self.count = True
            elif (f := coll.field(name)) is not None:
                fields.append(f)
            elif name == DYNAMIC and coll.dynamic:
                self.all_dynamic = True
            elif coll.dynamic:
                self.dynamic_keys.append(name)
            else:
                raise ParameterInvalid(f"field {name} not exist")
        #: the fields the caller named (``*`` expanded): those an answer carries
        self.asked = {f.name for f in fields}
        if with_pk:
            fields.insert(0, coll.pk)
        seen: set[str] = set()
        self.fields = [f for f in fields if not (f.name in seen or seen.add(f.name))]  # type: ignore[func-returns-value]
        if self.count and (self.fields[1:] if with_pk else self.fields):
            raise ParameterInvalid("count entities with other output fields is not supported")

    @property
    def keys_only(self) -> bool:
        """Whether an answer carries the primary key and nothing else."""
        return (
            len(self.fields) == 1
            and self.fields[0] is self.coll.pk
            and not (self.reads_dynamic or self.count)
        )

    @property
    def reads_dynamic(self) -> bool:
        return bool(self.dynamic_keys) or self.all_dynamic

    @property
    def names(self) -> list[str]:
        out = [f.name for f in self.fields if f.name in self.asked] + self.dynamic_keys
        if self.all_dynamic:
            out.append(DYNAMIC)
        return out

    def select_list(self) -> sql.Composable:
        items: list[sql.Composable] = []
        for f in self.fields:
            column: sql.Composable = sql.Identifier(f.name)
            base = f.column_type.split("(")[0]
            if f.type == DT.VarChar and base not in _NATIVE and not f.is_array:
                column = sql.SQL("{}::text").format(column)
            items.append(column)
        if self.reads_dynamic:
            items.append(sql.Identifier(DYNAMIC))
        return sql.SQL(", ").join(items)

    def field_data(self, rows: Sequence[Sequence[Any]]) -> list[schema_pb2.FieldData]:
        out = [fielddata.column_data(f, [r[i] for r in rows]) for i, f in enumerate(self.fields)]
        if self.reads_dynamic:
            j = len(self.fields)
            if self.all_dynamic:
                objects = [_as_object(r[j]) for r in rows]
            else:
                objects = [
                    {k: v for k, v in _as_object(r[j]).items() if k in self.dynamic_keys}
                    for r in rows
                ]
            out.append(fielddata.dynamic_data(objects))
        return out


def _as_object(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


async def query(
    conn: psycopg.AsyncConnection[Any],
    coll: Collection,
    where: Filter,
    outputs: Outputs,
    limit: int | None,
    offset: int,
) -> list[schema_pb2.FieldData]:
    if outputs.count:
        rows = await filtered(
            conn,
            sql.SQL("SELECT count(*) FROM {} WHERE {}").format(coll.ident, sql.SQL(where.sql)),
            where,
        )
        data = schema_pb2.FieldData(type=DT.Int64, field_name=COUNT)
        data.scalars.long_data.data.append(int(rows[0][0]) if rows else 0)
        return [data]
    statement = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
        outputs.select_list(), coll.ident, sql.SQL(where.sql), sql.Identifier(coll.pk.name)
    )
    if limit is not None:
        statement = sql.SQL("{} LIMIT {}").format(statement, sql.Literal(limit))
    if offset:
        statement = sql.SQL("{} OFFSET {}").format(statement, sql.Literal(offset))
    return outputs.field_data(await filtered(conn, statement, where))


async def rows_by_key(
    conn: psycopg.AsyncConnection[Any],
    coll: Collection,
    outputs: Outputs,
    keys: Sequence[Any],
    where: Filter = EVERYTHING,
) -> dict[Any, Sequence[Any]]:
    """The output rows of ``keys`` that exist, the caller may see and ``where`` admits
    (the pk first). PostgreSQL evaluates the filter again, where the engine may have
    evaluated it for the search: so the caller needs the right to read its columns, as
    its own SQL would."""
    if not keys:
        return {}
    pk = coll.pk
    cast = "bigint[]" if pk.type == DT.Int64 else "text[]"
    condition = f"{quoted(pk.name)} = ANY(${len(where.values) + 1}::{cast})"
    if where is not EVERYTHING:
        condition += f" AND ({where.sql})"
    if outputs.keys_only:
        return {k: (k,) for k in await _present(conn, coll, outputs, keys, condition, where)}
    statement = sql.SQL(f"{_select(coll, outputs)} WHERE {condition}")
    return {r[0]: r for r in await filtered(conn, statement, where, list(keys))}


async def _present(
    conn: psycopg.AsyncConnection[Any],
    coll: Collection,
    outputs: Outputs,
    keys: Sequence[Any],
    condition: str,
    where: Filter,
) -> list[Any]:
    """Which of ``keys`` have a row the caller may see that ``condition`` admits (its
    last parameter the keys): the answer of a search that asks for no output field. One
    statement, the keys in one array literal, sent on the connection without psycopg's
    cursor (which costs a search about three times as much CPU as the statement)."""
    ints = coll.pk.type == DT.Int64
    query = f"{_select(coll, outputs)} WHERE {condition}"
    values = [*where.values, keys_param([int(k) if ints else str(k) for k in keys])]
    rows = await ConnectionSQL(conn).rows(
        query, values, [0] * len(values), [0] * len(values), binary=False
    )
    return [int(r[0]) if ints else bytes(r[0]).decode() for r in rows if r[0] is not None]


def check_readable(
    sql_: ConnectionSQL, coll: Collection, outputs: Outputs
) -> Coroutine[Any, Any, bool]:
    """Sends a statement that reads the output columns of no row, so that PostgreSQL
    checks the caller's right to read them, as reading rows would. Returns the coroutine
    that takes its answer: whether row-level security filters the caller's rows of the
    table (so that they must be read after all); it raises where the right is missing."""
    pending = sql_.start(
        f"SELECT row_security_active({int(coll.relid)}::oid)"
        f" WHERE NOT EXISTS ({_select(coll, outputs)} WHERE false)"
    )

    async def answer() -> bool:
        rows = await pending
        return bool(rows) and rows[0][0] == b"t"

    return answer()


def _select(coll: Collection, outputs: Outputs) -> str:
    """``SELECT <output columns> FROM <collection>``, to be followed by a WHERE clause."""
    return f"SELECT {outputs.select_list().as_string(None)} FROM {coll.ident.as_string(None)}"
