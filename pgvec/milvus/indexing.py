"""Index and load RPCs: one pgvec index per vector field, loaded and released with the
collection (see :mod:`pgvec.milvus.indexes` for how they map onto pgvec indexes)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from psycopg import sql
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from pgvec.catalog.models import IndexDef, IndexRow
from pgvec.milvus import catalog, indexes, partitions, scalar_indexes
from pgvec.milvus.base import ServiceBase, kv
from pgvec.milvus.context import Caller
from pgvec.milvus.rpc import rpc
from pgvec.milvus.schema import Collection
from pgvec.milvus.status import (
    CollectionNotLoaded,
    IndexNotFound,
    MilvusError,
    ParameterInvalid,
)


class IndexRPCs(ServiceBase):
    async def _indexes_named(
        self, request: Any, caller: Caller
    ) -> tuple[Collection, list[indexes.IndexInfo]]:
        """The collection of a request and its indexes the request names (by index or
        field name; all of them when it names none)."""
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            found = await indexes.list_indexes(conn, coll)
            found += await scalar_indexes.list_indexes(conn, coll)
            field = getattr(request, "field_name", "")  # (AlterIndex names none)
            picked = indexes.pick(found, coll.table, request.index_name, field)
            # a built index holds every row (those written since too): the table's
            # rows, as the caller sees them, as Milvus counts a collection's
            if any(i.state in ("ready", "released") for i in picked):
                cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(coll.ident))
                row = await cur.fetchone()
                rows = int(row[0]) if row else 0
                picked = [
                    dataclasses.replace(i, rows=rows) if i.state in ("ready", "released") else i
                    for i in picked
                ]
        return coll, picked

    # -- indexes ------------------------------------------------------------------

    @rpc(common_pb2.Status)
    async def CreateIndex(self, request: Any, caller: Caller) -> Any:
        db = await self._db()
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            f = coll.field(request.field_name)
            if f is None:
                raise ParameterInvalid(
                    f"cannot create index on non-exist field: {request.field_name}"
                )
            if not f.is_vector:
                index_type = kv(request.extra_params).get("index_type", "")
                name = request.index_name or f.name
                await scalar_indexes.create(conn, coll, f, name, index_type)
                return common_pb2.Status()
            method, metric, options = indexes.parse_index_params(
                kv(request.extra_params), binary=f.is_binary
            )
            existing = [i for i in await indexes.list_indexes(conn, coll) if i.field == f.name]
            if existing:
                if indexes.same_index(existing[0], method, metric, options):
                    return common_pb2.Status()
                raise ParameterInvalid(
                    "CreateIndex failed: at most one distinct index is allowed per field"
                )
            await conn.execute("SELECT pgvec._check_owner(%s::oid::regclass)", (coll.relid,))
        info = await indexes.table_info(db, coll.relid)
        name = request.index_name or f.name
        pg_name = indexes.pg_name(coll.table, name)
        await db.create_index(
            IndexDef(
                name=pg_name,
                if_not_exists=False,
                table=info,
                column=info.vectors[f.name],
                method=method,
                opclass=metric.opclass,
                options=options,
            )
        )
        asked = kv(request.extra_params).get("index_type") or "AUTOINDEX"
        async with self.connections.connection(caller) as conn:
            await indexes.set_milvus_params(
                conn, coll, pg_name, {"index_type": asked, "index_name": name}
            )
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def AlterIndex(self, request: Any, caller: Caller) -> Any:
        """Milvus's index properties (``mmap.enabled``): kept and described back; pgvec
        keeps its indexes in memory whatever they say (DISKANN's are searched from disk)."""
        changes = kv(request.extra_params)
        for key in [*changes, *request.delete_keys]:
            if key != "mmap.enabled":
                raise ParameterInvalid(f"{key} is not an index property Milvus alters")
        coll, found = await self._indexes_named(request, caller)
        async with self.connections.connection(caller) as conn:
            for index in found:
                params = {**index.milvus, **changes}
                for key in request.delete_keys:
                    params.pop(key, None)
                await indexes.set_milvus_params(conn, coll, index.pg_name, params)
        return common_pb2.Status()

    @rpc(milvus_pb2.DescribeIndexResponse)
    async def DescribeIndex(self, request: Any, caller: Caller) -> Any:
        coll, found = await self._indexes_named(request, caller)
        out = milvus_pb2.DescribeIndexResponse()
        out.index_descriptions.extend(indexes.describe(i, coll.table) for i in found)
        return out

    @rpc(milvus_pb2.GetIndexStateResponse)
    async def GetIndexState(self, request: Any, caller: Caller) -> Any:
        coll, found = await self._indexes_named(request, caller)
        d = indexes.describe(found[0], coll.table)
        return milvus_pb2.GetIndexStateResponse(
            state=d.state, fail_reason=d.index_state_fail_reason
        )

    @rpc(milvus_pb2.GetIndexBuildProgressResponse)
    async def GetIndexBuildProgress(self, request: Any, caller: Caller) -> Any:
        _, found = await self._indexes_named(request, caller)
        i = found[0]
        return milvus_pb2.GetIndexBuildProgressResponse(indexed_rows=i.rows, total_rows=i.rows)

    @rpc(common_pb2.Status)
    async def DropIndex(self, request: Any, caller: Caller) -> Any:
        db = await self._db()
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            if coll.loaded:
                raise MilvusError(
                    "index cannot be dropped, collection is loaded, please release it first"
                )
            scalar = await scalar_indexes.list_indexes(conn, coll)
            try:
                found = indexes.pick(
                    await indexes.list_indexes(conn, coll) + scalar,
                    coll.table,
                    request.index_name,
                    request.field_name,
                )
            except IndexNotFound:  # Milvus answers success: there is nothing to drop
                return common_pb2.Status()
            await conn.execute("SELECT pgvec._check_owner(%s::oid::regclass)", (coll.relid,))
            for i in found:
                if i in scalar:
                    await scalar_indexes.drop(conn, coll, i)
        for i in found:
            if i not in scalar:
                await db.drop_index(coll.schema_name, i.pg_name, if_exists=True)
        return common_pb2.Status()

    # -- load and release ---------------------------------------------------------

    @rpc(common_pb2.Status)
    async def LoadCollection(self, request: Any, caller: Caller) -> Any:
        return await self._load(request, caller, lambda coll, every: ())

    async def _load(
        self,
        request: Any,
        caller: Caller,
        released: Callable[[Collection, list[str]], Iterable[str]],
    ) -> Any:
        """Load the collection; ``released(coll, partitions)``: the partitions that stay
        released (LoadPartitions of some of them)."""
        db = await self._db()
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            found = await indexes.list_indexes(conn, coll)
            missing = [f.name for f in coll.vectors if f.name not in {i.field for i in found}]
            if missing:
                raise IndexNotFound(
                    f"index doesn't exist, collectionID {coll.relid}: there is no vector "
                    f"index on field: {missing}, please create index firstly"
                )
            # marked first, as the caller: its privilege is checked before pgvec loads
            # anything; a load that fails rolls the mark back
            async with conn.transaction():
                await catalog.set_loaded(conn, coll, True)
                every = await partitions.leaves(conn, coll)
                stay = list(released(coll, list(every)))
                if stay:  # the other partitions' indexes only
                    await catalog.set_released(conn, coll, stay)
                    for row in await self._leaf_indexes(every, set(every) - set(stay)):
                        if row.state == "released":
                            await db.load(row.index_name, row.schema_name)
                    return common_pb2.Status()
                for i in found:
                    if i.state == "released":
                        await db.load(i.pg_name, coll.schema_name)
        return common_pb2.Status()

    async def _leaf_indexes(self, leaves: Mapping[str, int], names: set[str]) -> list[IndexRow]:
        """The indexes of the partitions ``names`` (``leaves``: partition -> leaf OID)."""
        db = await self._db()
        relids = {relid for name, relid in leaves.items() if name in names}
        return [row for row in await db.run(db.index_rows) if row.relid in relids]

    @rpc(common_pb2.Status)
    async def ReleaseCollection(self, request: Any, caller: Caller) -> Any:
        db = await self._db()
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            await catalog.set_loaded(conn, coll, False)
            for i in await indexes.list_indexes(conn, coll):
                if i.state in ("ready", "released"):  # (released: some partitions' only)
                    await db.release(i.pg_name, coll.schema_name)
        return common_pb2.Status()

    # A partition is loaded and released with its collection, or on its own: its leaf's
    # index is loaded or released, and searches and queries leave out the partitions
    # released on their own (Collection.released); they cannot be dropped until then,
    # as in Milvus.

    @rpc(common_pb2.Status)
    async def LoadPartitions(self, request: Any, caller: Caller) -> Any:
        named = await self._partition_names(request, caller)

        def released(coll: Collection, every: list[str]) -> Iterable[str]:
            before = coll.released if coll.loaded else every
            return [n for n in before if n not in named]

        return await self._load(request, caller, released)

    @rpc(common_pb2.Status)
    async def ReleasePartitions(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            named = list(request.partition_names)
            await partitions.check_names(conn, coll, named)
            every = await partitions.leaves(conn, coll)
            released = set(coll.released) | set(named)
            if not released.issuperset(every):
                if coll.loaded:
                    await catalog.set_released(conn, coll, sorted(released))
                    db = await self._db()
                    for row in await self._leaf_indexes(every, set(named)):
                        if row.state == "ready":  # its memory goes back
                            await db.release(row.index_name, row.schema_name)
                return common_pb2.Status()
        return await self.ReleaseCollection.__wrapped__(self, request, caller)  # type: ignore[attr-defined]

    async def _partition_names(self, request: Any, caller: Caller) -> list[str]:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            named = list(request.partition_names)
            await partitions.check_names(conn, coll, named)
            return named

    @rpc(milvus_pb2.GetLoadingProgressResponse)
    async def GetLoadingProgress(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            if not await self._loaded(conn, coll):
                raise CollectionNotLoaded(f"collection not loaded[collection={coll.name}]")
        return milvus_pb2.GetLoadingProgressResponse(progress=100, refresh_progress=100)

    @rpc(milvus_pb2.GetLoadStateResponse)
    async def GetLoadState(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            try:
                coll = await self._collection(conn, caller, request.collection_name)
            except MilvusError as exc:
                if exc.code == 100:
                    return milvus_pb2.GetLoadStateResponse(state=common_pb2.LoadStateNotExist)
                raise
            loaded = await self._loaded(conn, coll)
            named = list(request.partition_names)
            await partitions.check_names(conn, coll, named)
            loaded = loaded and not coll.released.intersection(named)
        return milvus_pb2.GetLoadStateResponse(
            state=common_pb2.LoadStateLoaded if loaded else common_pb2.LoadStateNotLoad
        )
