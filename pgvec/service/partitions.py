"""Partitioned tables (PostgreSQL declarative partitioning): one index per leaf.

A partitioned table (relkind 'p') holds no rows itself; each leaf partition is a table of
its own, with its own OID, and pgvec treats it as one: its own index, its own files, its
own change log. What ties them together:

- **Keys.** A partitioned table's primary key must hold the partition key, so it has no
  single-column primary key. pgvec keys each leaf by the one primary key column that is
  no partition key column (``pgvec._key_column``: ``id`` for ``PRIMARY KEY (id, part)``
  under ``PARTITION BY LIST (part)``), which needs to be unique within a leaf only. A hit
  of a search over the parent is the pair (leaf OID, key), spelled ``"<leaf oid>:<key>"``
  (:func:`hit_key`); the SQL frontend joins it back on ``tableoid`` and the key column.
- **Changes.** Statement triggers on a partitioned table see the parent only, so
  ``pgvec.track`` puts a row trigger on the root of the tree, which PostgreSQL clones to
  every partition, present and future, and which logs each change under the leaf's own
  OID (rows inserted, updated or moved through the parent included).
- **Indexes.** CREATE INDEX on the parent records the parent's index (no files: a
  template) and builds one index per leaf; a leaf created or attached later gets its own
  at its first search (searched exactly until it is built). DROP INDEX on the parent
  drops the leaves' indexes with it.
- **Search.** A search of the parent searches each leaf left after partition pruning and
  merges their top-k. Pruning is PostgreSQL's own: the request's filter is EXPLAINed in
  the client's session and the leaves its plan scans are the ones searched. The filter
  carries a :func:`~pgvec.service.request.leaf_condition` so that it can be run for one
  leaf at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pgvec.catalog.models import IndexDef, IndexRow, TableInfo
from pgvec.engine.collection import Key
from pgvec.engine.spec import IndexSpec, Metric
from pgvec.errors import UndefinedColumn
from pgvec.service import indexes
from pgvec.service.indexes import DEFAULT_OPCLASS
from pgvec.service.request import SearchRequest
from pgvec.service.search import ClientSQL

if TYPE_CHECKING:
    from pgvec.service.database import Database

log = logging.getLogger(__name__)

Hits = tuple[list[Key], list[float]]


def hit_key(leaf: int, key: Key) -> str:
    """A hit of a partitioned table: its leaf's OID and its key."""
    return f"{leaf}:{key}"


def hit_keys(hits: Sequence[Key]) -> list[str]:
    """The keys of :func:`hit_key` hits, as text, without their leaves."""
    return [str(h).partition(":")[2] for h in hits]


def _qualified(info: TableInfo) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in info.qualified)


async def leaves(db: Database, table: TableInfo) -> dict[int, TableInfo]:
    """The leaf partitions of ``table`` as the catalog knows them (read again once if
    one is missing: created since)."""
    catalog = await db.catalog()
    if any(relid not in catalog.tables for relid in table.partitions):
        db.note_ddl()
        catalog = await db.catalog()
    return {r: catalog.tables[r] for r in table.partitions if r in catalog.tables}


def _scanned(plan: Any) -> Iterator[tuple[str, str]]:
    """(schema, relation) of every scan in an EXPLAIN (FORMAT JSON, VERBOSE) plan."""
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            yield str(plan.get("Schema", "")), str(plan["Relation Name"])
        for value in plan.values():
            yield from _scanned(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from _scanned(item)


async def prune(
    sql: ClientSQL, request: SearchRequest, found: Mapping[int, TableInfo]
) -> list[int]:
    """The leaves of the request's table that its filter may admit rows of, as
    PostgreSQL's own partition pruning decides (EXPLAIN of the filter, in the client's
    session, its parameters bound)."""
    filt = request.filter
    if filt is None or len(found) <= 1:
        return list(found)
    spec = filt.for_leaf(None)
    rows = await sql.rows(
        "EXPLAIN (FORMAT JSON, VERBOSE, COSTS OFF) " + spec.sql,
        spec.values,
        spec.types,
        spec.formats,
        binary=False,
    )
    text = b"".join(r[0] or b"" for r in rows).decode()
    scanned = set(_scanned(json.loads(text)))
    kept = [relid for relid, info in found.items() if info.qualified in scanned]
    log.debug("%s: searching %d of %d partitions", request.table.name, len(kept), len(found))
    return kept


async def search(db: Database, request: SearchRequest, sql: ClientSQL) -> list[Hits]:
    """The hits of a search of a partitioned table: each leaf left after pruning searched
    as a table of its own, their top-k merged. Keys are :func:`hit_key` pairs."""
    from pgvec.service.database import candidates

    found = await leaves(db, request.table)
    if request.partitions is not None:
        found = {r: info for r, info in found.items() if r in request.partitions}
    await ensure_leaf_indexes(db, request.table, found)
    merged: list[list[tuple[float, str]]] = [[] for _ in range(len(request.vectors))]
    for relid in await prune(sql, request, found):
        leaf = found[relid]
        column = leaf.vectors.get(request.column.name)
        if column is None:
            raise UndefinedColumn(
                f'partition "{leaf.name}" has no vector column "{request.column.name}"'
            )
        if request.table.row_security and not leaf.row_security:
            # the parent's policies filter the rows: the engine knows nothing of them
            leaf = replace(leaf, row_security=True)
        sub = replace(
            request,
            table=leaf,
            column=column,
            filter=None if request.filter is None else request.filter.for_leaf(relid),
        )
        for i, (keys, dists) in enumerate(await db.search(sub, sql)):
            merged[i].extend((d, hit_key(relid, k)) for k, d in zip(keys, dists, strict=True))
    limit = candidates(request.k)
    out: list[Hits] = []
    for hits in merged:
        hits.sort(key=lambda h: h[0])
        out.append(([k for _, k in hits[:limit]], [d for d, _ in hits[:limit]]))
    return out


# -- indexes ---------------------------------------------------------------------------


def leaf_index(idef: IndexDef, leaf: TableInfo) -> IndexDef | None:
    """The index of leaf ``leaf`` that ``idef`` (on its parent) stands for, named as
    PostgreSQL names a partition's index; None if the leaf lacks the column."""
    column = leaf.vectors.get(idef.column.name)
    if column is None:
        return None
    return replace(idef, name=None, if_not_exists=True, table=leaf, column=column)


async def ensure_leaf_indexes(
    db: Database, table: TableInfo, found: Mapping[int, TableInfo]
) -> None:
    """Start building the index of each leaf of ``table`` that lacks the one its parent
    has (a partition created or attached since CREATE INDEX). Checked once per leaf, at
    its first search: it is searched exactly until its index is built."""
    new = [r for r in found if r not in db.tables]
    if not new:
        return
    rows = await db.run(db.index_rows)
    have = {(row.relid, row.column_name, row.metric.upper()) for row in rows}
    for row in rows:
        if row.relid != table.relid:
            continue
        idef = IndexDef(
            name=None,
            if_not_exists=True,
            table=table,
            column=table.vectors[row.column_name],
            method=row.method,
            opclass=Metric.from_name(row.metric).opclass,
            options={k: str(v) for k, v in row.options.items()},
            concurrently=True,
        )
        for relid in new:
            sub = leaf_index(idef, found[relid])
            if sub is not None and (relid, row.column_name, row.metric.upper()) not in have:
                log.info("building the index of new partition %s", found[relid].name)
                await db.create_index(sub, concurrently=True)


async def leaf_indexes(db: Database, parent: IndexRow) -> list[tuple[str, str]] | None:
    """(schema, name) of the indexes of the leaves of ``parent``'s table on its column
    with its metric; None unless that table is partitioned (DROP INDEX, load and release
    of the parent's index act on them)."""
    table = (await db.catalog()).tables.get(parent.relid)
    if table is None or not table.partitioned:
        return None
    rows = await db.run(db.index_rows)
    return [
        (row.schema_name, row.index_name)
        for row in rows
        if row.relid in table.partitions
        and row.column_name == parent.column_name
        and row.metric.upper() == parent.metric.upper()
    ]


async def set_resident(
    db: Database,
    parent: IndexRow,
    leaves: list[tuple[str, str]],
    action: Callable[[str, str | None], Awaitable[int]],
    state: str,
) -> int:
    """Load or release (``action``) the leaves' indexes of a partitioned table's index,
    and record ``state`` for the parent's; returns their row count."""
    total = 0
    for schema, name in leaves:
        total += await action(name, schema)
    await db.run(db.set_index_state, parent.key, state)
    return total


def _register_parent(db: Database, idef: IndexDef) -> bool:
    """Record the index of a partitioned table (no files: its leaves hold the indexes);
    False if IF NOT EXISTS found it there."""
    metric = Metric.from_opclass(idef.opclass or DEFAULT_OPCLASS, idef.method)
    spec = IndexSpec.create(idef.method, metric, idef.options)
    with db.pool.connection() as conn:
        return indexes.record(db, conn, idef, spec, "ready") is not None


async def create_index(
    db: Database,
    idef: IndexDef,
    notify: Callable[[str], None] | None,
    *,
    concurrently: bool,
) -> None:
    """CREATE INDEX on a partitioned table: record it, and build one index per leaf."""
    found = await leaves(db, idef.table)
    if not await db.run(_register_parent, db, idef):
        return
    db.note_ddl()
    for leaf in found.values():
        sub = leaf_index(idef, leaf)
        if sub is not None:
            await db.create_index(
                replace(sub, concurrently=concurrently), notify, concurrently=concurrently
            )
