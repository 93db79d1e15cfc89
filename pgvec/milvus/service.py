"""MilvusService: the RPCs pymilvus sends, answered over pgvec's core.

Every handler runs as the caller (see :mod:`pgvec.milvus.context`) and answers errors in
the reply's Status, never as a gRPC failure (pymilvus retries those for a minute).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, schema_pb2

from pgvec import __version__
from pgvec.catalog.models import IndexDef
from pgvec.errors import PgvecError
from pgvec.milvus import catalog, data, described, hybrid, indexes, iterators, partitions
from pgvec.milvus import search as searching
from pgvec.milvus.context import Caller, Clock, Connections
from pgvec.milvus.filters import EVERYTHING, compile_filter
from pgvec.milvus.partitions import PartitionRPCs
from pgvec.milvus.rpc import rpc
from pgvec.milvus.schema import DT, Collection
from pgvec.milvus.status import (
    CollectionNotLoaded,
    IndexNotFound,
    MilvusError,
    ParameterInvalid,
    Unsupported,
)
from pgvec.milvus.users import UsersRPC
from pgvec.service.core import Core
from pgvec.service.database import Database

log = logging.getLogger(__name__)

DEFAULT_PARTITION = "_default"
#: Milvus's consistency levels as pgvec's
_LEVELS = {
    common_pb2.Strong: "strong",
    common_pb2.Session: "strong",
    common_pb2.Bounded: "bounded",
    common_pb2.Eventually: "eventually",
    common_pb2.Customized: "bounded",
}


def _kv(pairs: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in pairs}


class MilvusService(
    UsersRPC,
    PartitionRPCs,
    milvus_pb2_grpc.MilvusServiceServicer,  # type: ignore[misc]
):
    def __init__(self, core: Core, database: str) -> None:
        self.core = core
        self.database = database
        self.connections = Connections(core.upstream.dsn_for(database))
        self.clock = Clock()
        #: collections and indexes as searches last read them
        self.described = described.DescribedCache()
        #: search iterators' pages handed out
        self.cursors = iterators.Cursors()
        #: by table: the timestamp of the last write through this API the engine has
        #: applied (what a Session search must see is in the engine)
        self._applied: dict[int, int] = {}

    async def close(self) -> None:
        await self.connections.close()

    async def _db(self) -> Database:
        return await self.core.database(self.database)

    # -- connection ---------------------------------------------------------------

    @rpc(milvus_pb2.ConnectResponse)
    async def Connect(self, request: Any, caller: Caller) -> Any:
        await self.connections.check(caller)
        out = milvus_pb2.ConnectResponse(identifier=1)
        out.server_info.build_tags = f"pgvec-{__version__}"
        out.server_info.deploy_mode = "pgvec"
        return out

    @rpc(milvus_pb2.GetVersionResponse)
    async def GetVersion(self, request: Any, caller: Caller) -> Any:
        return milvus_pb2.GetVersionResponse(version=f"v2.5.0-pgvec-{__version__}")

    @rpc(milvus_pb2.CheckHealthResponse)
    async def CheckHealth(self, request: Any, caller: Caller) -> Any:
        return milvus_pb2.CheckHealthResponse(isHealthy=True)

    @rpc(milvus_pb2.AllocTimestampResponse)
    async def AllocTimestamp(self, request: Any, caller: Caller) -> Any:
        return milvus_pb2.AllocTimestampResponse(timestamp=self.clock.now())

    # -- databases ----------------------------------------------------------------

    @rpc(common_pb2.Status)
    async def CreateDatabase(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            await catalog.create_db(conn, request.db_name)
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def DropDatabase(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            await catalog.drop_db(conn, request.db_name)
        return common_pb2.Status()

    @rpc(milvus_pb2.ListDatabasesResponse)
    async def ListDatabases(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            names = await catalog.list_dbs(conn)
        return milvus_pb2.ListDatabasesResponse(db_names=names)

    @rpc(milvus_pb2.DescribeDatabaseResponse)
    async def DescribeDatabase(self, request: Any, caller: Caller) -> Any:
        name = request.db_name or catalog.DEFAULT_DB
        async with self.connections.connection(caller) as conn:
            await catalog.list_names(conn, name)  # raises if there is no such database
        return milvus_pb2.DescribeDatabaseResponse(db_name=name)

    # -- collections --------------------------------------------------------------

    async def _collection(
        self, conn: psycopg.AsyncConnection[Any], caller: Caller, name: str
    ) -> Collection:
        return await catalog.resolve(conn, caller.db, name)

    @rpc(common_pb2.Status)
    async def CreateCollection(self, request: Any, caller: Caller) -> Any:
        proto = schema_pb2.CollectionSchema.FromString(request.schema)
        name = request.collection_name
        properties = _kv(request.properties)
        async with self.connections.connection(caller) as conn:
            try:
                existing = await self._collection(conn, caller, name)
            except MilvusError as exc:
                if exc.code != 100:
                    raise
            else:
                if existing.registered and _same_schema(existing.proto, proto, name):
                    return common_pb2.Status()  # Milvus: idempotent with the same schema
                raise MilvusError(
                    f"create duplicate collection with different parameters, collection: {name}"
                )
            await catalog.create(
                conn,
                caller.db,
                name,
                proto,
                request.consistency_level,
                properties,
                self.clock.now(),
                request.num_partitions,
            )
        (await self._db()).note_ddl()
        return common_pb2.Status()

    @rpc(milvus_pb2.DescribeCollectionResponse)
    async def DescribeCollection(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            aliases = await catalog.aliases_of(conn, coll)
            found = await partitions.leaves(conn, coll)
        out = milvus_pb2.DescribeCollectionResponse(
            collectionID=coll.relid,
            collection_name=coll.name,
            consistency_level=coll.consistency,
            created_timestamp=coll.created_ts,
            created_utc_timestamp=coll.created_ts >> 18,
            update_timestamp=coll.created_ts,
            shards_num=1,
            num_partitions=len(found),
            db_name=catalog.db_name_of(coll.schema_name),
            aliases=aliases,
        )
        out.schema.CopyFrom(coll.proto)
        for k, v in coll.properties.items():
            out.properties.add(key=k, value=str(v))
        return out

    @rpc(milvus_pb2.BoolResponse)
    async def HasCollection(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            found = await catalog.exists(conn, caller.db, request.collection_name)
        return milvus_pb2.BoolResponse(value=found)

    @rpc(common_pb2.Status)
    async def DropCollection(self, request: Any, caller: Caller) -> Any:
        db = await self._db()
        async with self.connections.connection(caller) as conn:
            try:
                coll = await self._collection(conn, caller, request.collection_name)
            except MilvusError as exc:
                if exc.code == 100:
                    return common_pb2.Status()  # Milvus: dropping nothing succeeds
                raise
            await catalog.drop(conn, coll)
        db.note_ddl()
        return common_pb2.Status()

    @rpc(milvus_pb2.ShowCollectionsResponse)
    async def ShowCollections(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            names = await catalog.list_names(conn, caller.db)
        wanted = list(request.collection_names)
        if wanted:
            names = [n for n in names if n in wanted]
        return milvus_pb2.ShowCollectionsResponse(
            collection_names=names, inMemory_percentages=[100] * len(names)
        )

    @rpc(common_pb2.Status)
    async def RenameCollection(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.oldName)
            await catalog.rename(conn, coll, request.newDBName or caller.db, request.newName)
        (await self._db()).note_ddl()
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def AlterCollection(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            props = dict(coll.properties)
            props.update(_kv(request.properties))
            for key in request.delete_keys:
                props.pop(key, None)
            await conn.execute(
                "SELECT pgvec.set_collection_properties(%s::oid::regclass, %s::jsonb)",
                (coll.relid, json.dumps(props)),
            )
        return common_pb2.Status()

    @rpc(milvus_pb2.GetCollectionStatisticsResponse)
    async def GetCollectionStatistics(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            cur = await conn.execute(f"SELECT count(*) FROM {coll.ident.as_string(conn)}")
            row = await cur.fetchone()
        out = milvus_pb2.GetCollectionStatisticsResponse()
        out.stats.add(key="row_count", value=str(row[0] if row else 0))
        return out

    @rpc(milvus_pb2.FlushResponse)
    async def Flush(self, request: Any, caller: Caller) -> Any:
        # every write is committed to PostgreSQL when its RPC answers: nothing to flush
        out = milvus_pb2.FlushResponse(db_name=caller.db)
        now = self.clock.now()
        for name in request.collection_names:
            out.coll_flush_ts[name] = now
            out.coll_segIDs[name].SetInParent()
        return out

    @rpc(milvus_pb2.GetFlushStateResponse)
    async def GetFlushState(self, request: Any, caller: Caller) -> Any:
        return milvus_pb2.GetFlushStateResponse(flushed=True)

    @rpc(milvus_pb2.ManualCompactionResponse)
    async def ManualCompaction(self, request: Any, caller: Caller) -> Any:
        # the engine compacts segments itself as deletes and growing rows accumulate
        return milvus_pb2.ManualCompactionResponse(compactionID=self.clock.now())

    @rpc(milvus_pb2.GetCompactionStateResponse)
    async def GetCompactionState(self, request: Any, caller: Caller) -> Any:
        return milvus_pb2.GetCompactionStateResponse(state=common_pb2.Completed)

    # -- aliases ------------------------------------------------------------------

    @rpc(common_pb2.Status)
    async def CreateAlias(self, request: Any, caller: Caller) -> Any:
        return await self._alias(request, caller, replace=False)

    @rpc(common_pb2.Status)
    async def AlterAlias(self, request: Any, caller: Caller) -> Any:
        return await self._alias(request, caller, replace=True)

    async def _alias(self, request: Any, caller: Caller, *, replace: bool) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            await catalog.set_alias(conn, caller.db, request.alias, coll, replace)
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def DropAlias(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            await catalog.drop_alias(conn, caller.db, request.alias)
        return common_pb2.Status()

    @rpc(milvus_pb2.DescribeAliasResponse)
    async def DescribeAlias(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.alias)
        return milvus_pb2.DescribeAliasResponse(
            db_name=caller.db or catalog.DEFAULT_DB, alias=request.alias, collection=coll.name
        )

    @rpc(milvus_pb2.ListAliasesResponse)
    async def ListAliases(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            if request.collection_name:
                coll = await self._collection(conn, caller, request.collection_name)
                names = await catalog.aliases_of(conn, coll)
            else:
                names = await catalog.list_aliases(conn, caller.db)
        return milvus_pb2.ListAliasesResponse(
            db_name=caller.db or catalog.DEFAULT_DB,
            collection_name=request.collection_name,
            aliases=names,
        )

    # -- partitions (pgvec.milvus.partitions) -------------------------------------

    @rpc(milvus_pb2.ShowPartitionsResponse)
    async def ShowPartitions(self, request: Any, caller: Caller) -> Any:
        return await self.show_partitions(request, caller)

    @rpc(milvus_pb2.BoolResponse)
    async def HasPartition(self, request: Any, caller: Caller) -> Any:
        return await self.has_partition(request, caller)

    @rpc(common_pb2.Status)
    async def CreatePartition(self, request: Any, caller: Caller) -> Any:
        return await self.create_partition(request, caller)

    @rpc(common_pb2.Status)
    async def DropPartition(self, request: Any, caller: Caller) -> Any:
        return await self.drop_partition(request, caller)

    @rpc(milvus_pb2.GetPartitionStatisticsResponse)
    async def GetPartitionStatistics(self, request: Any, caller: Caller) -> Any:
        return await self.partition_statistics(request, caller)

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
                raise Unsupported("scalar indexes are not needed: PostgreSQL indexes the columns")
            method, metric, options = indexes.parse_index_params(
                _kv(request.extra_params), binary=f.is_binary
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
        await db.create_index(
            IndexDef(
                name=f"{coll.table}_{request.index_name or f.name}_idx",
                if_not_exists=False,
                table=info,
                column=info.vectors[f.name],
                method=method,
                opclass=metric.opclass,
                options=options,
            )
        )
        return common_pb2.Status()

    @rpc(milvus_pb2.DescribeIndexResponse)
    async def DescribeIndex(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            found = indexes.pick(
                await indexes.list_indexes(conn, coll),
                coll.table,
                request.index_name,
                request.field_name,
            )
        out = milvus_pb2.DescribeIndexResponse()
        out.index_descriptions.extend(indexes.describe(i, coll.table) for i in found)
        return out

    @rpc(milvus_pb2.GetIndexStateResponse)
    async def GetIndexState(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            found = indexes.pick(
                await indexes.list_indexes(conn, coll),
                coll.table,
                request.index_name,
                request.field_name,
            )
        d = indexes.describe(found[0], coll.table)
        return milvus_pb2.GetIndexStateResponse(
            state=d.state, fail_reason=d.index_state_fail_reason
        )

    @rpc(milvus_pb2.GetIndexBuildProgressResponse)
    async def GetIndexBuildProgress(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            found = indexes.pick(
                await indexes.list_indexes(conn, coll),
                coll.table,
                request.index_name,
                request.field_name,
            )
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
            found = indexes.pick(
                await indexes.list_indexes(conn, coll),
                coll.table,
                request.index_name,
                request.field_name,
            )
            await conn.execute("SELECT pgvec._check_owner(%s::oid::regclass)", (coll.relid,))
        for i in found:
            await db.drop_index(coll.schema_name, i.pg_name, if_exists=True)
        return common_pb2.Status()

    # -- load and release ---------------------------------------------------------

    @rpc(common_pb2.Status)
    async def LoadCollection(self, request: Any, caller: Caller) -> Any:
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
            for i in found:
                if i.state == "released":
                    await db.load(i.pg_name, coll.schema_name)
            await catalog.set_loaded(conn, coll, True)
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def ReleaseCollection(self, request: Any, caller: Caller) -> Any:
        db = await self._db()
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            await catalog.set_loaded(conn, coll, False)
            for i in await indexes.list_indexes(conn, coll):
                if i.state == "ready":
                    await db.release(i.pg_name, coll.schema_name)
        return common_pb2.Status()

    # Partitions are loaded and released with their collection: LoadPartitions loads it,
    # ReleasePartitions of every partition releases it, of some answers success.

    @rpc(common_pb2.Status)
    async def LoadPartitions(self, request: Any, caller: Caller) -> Any:
        await self._partition_names(request, caller)
        return await self.LoadCollection.__wrapped__(self, request, caller)  # type: ignore[attr-defined]

    @rpc(common_pb2.Status)
    async def ReleasePartitions(self, request: Any, caller: Caller) -> Any:
        named, every = await self._partition_names(request, caller)
        if set(named) != set(every):
            return common_pb2.Status()
        return await self.ReleaseCollection.__wrapped__(self, request, caller)  # type: ignore[attr-defined]

    async def _partition_names(self, request: Any, caller: Caller) -> tuple[list[str], list[str]]:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            named = list(request.partition_names)
            await partitions.check_names(conn, coll, named)
            return named, list(await partitions.leaves(conn, coll))

    async def _loaded(
        self,
        conn: psycopg.AsyncConnection[Any],
        coll: Collection,
        found: Sequence[indexes.IndexInfo] | None = None,
    ) -> bool:
        if coll.registered:
            return coll.loaded
        if found is None:
            found = await indexes.list_indexes(conn, coll)
        return all(i.state != "released" for i in found)

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
        return milvus_pb2.GetLoadStateResponse(
            state=common_pb2.LoadStateLoaded if loaded else common_pb2.LoadStateNotLoad
        )

    # -- data ---------------------------------------------------------------------

    @rpc(milvus_pb2.MutationResult)
    async def Insert(self, request: Any, caller: Caller) -> Any:
        return await self._write(request, caller, upsert=False)

    @rpc(milvus_pb2.MutationResult)
    async def Upsert(self, request: Any, caller: Caller) -> Any:
        return await self._write(request, caller, upsert=True)

    async def _write(self, request: Any, caller: Caller, *, upsert: bool) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            partition = await partitions.target(conn, coll, request.partition_name)
            keys = await data.write(
                conn,
                coll,
                request.fields_data,
                request.num_rows,
                upsert=upsert,
                partition=partition,
            )
        out = milvus_pb2.MutationResult(timestamp=await self._written(coll))
        _set_ids(out.IDs, coll, keys)
        out.succ_index.extend(range(len(keys)))
        if upsert:
            out.upsert_cnt = len(keys)
        else:
            out.insert_cnt = len(keys)
        return out

    @rpc(milvus_pb2.MutationResult)
    async def Delete(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            if not request.expr.strip():
                raise ParameterInvalid("delete plan can't be empty or always true")
            where = compile_filter(coll, request.expr, request.expr_template_values)
            named = [request.partition_name] if request.partition_name else []
            where = await partitions.only(conn, coll, where, named)
            keys = await data.delete(conn, coll, where)
        # no IDs, as Milvus since 2.3.2: pymilvus would hand a list of keys back instead of
        # {"delete_count": n}
        return milvus_pb2.MutationResult(timestamp=await self._written(coll), delete_cnt=len(keys))

    async def _written(self, coll: Collection) -> int:
        """After a committed write to ``coll``: the engine applies it now, and the
        timestamp the client gets back (and sends with its next searches) is marked as
        seen, so those searches need no change-log read of their own (Session)."""
        db = await self._db()
        try:
            await db.catch_up(await indexes.table_info(db, coll.relid))
        except PgvecError as exc:  # the searches read the log themselves
            log.info("applying the writes to %s now failed: %s", coll.name, exc)
            return self.clock.now()
        ts = self.clock.now()
        self._applied[coll.relid] = ts
        return ts

    def _consistency(self, request: Any, coll: Collection) -> str:
        """pgvec's consistency for a Search or Query. pymilvus sends, as the guarantee
        timestamp, the last write timestamp this client saw (Session, and the default);
        0 for Strong, 2 for Bounded, 1 for Eventually or no write seen."""
        gts = request.guarantee_timestamp
        session = request.use_default_consistency or request.consistency_level in (
            common_pb2.Session,
            common_pb2.Bounded,
        )
        if session and gts > 2 and gts <= self._applied.get(coll.relid, 0):
            return "eventually"  # the client's writes are in the engine already
        if request.use_default_consistency:
            if gts > 2:  # a write this client saw: read it
                return "strong"
            return _LEVELS.get(coll.consistency, "bounded")
        level = _LEVELS.get(request.consistency_level, "bounded")
        if request.consistency_level == common_pb2.Session and request.guarantee_timestamp <= 1:
            return "bounded"
        return level

    @rpc(milvus_pb2.QueryResults)
    async def Query(self, request: Any, caller: Caller) -> Any:
        params = _kv(request.query_params)
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            if not await self._loaded(conn, coll):
                raise CollectionNotLoaded(f"collection not loaded[collection={coll.name}]")
            where = compile_filter(coll, request.expr, request.expr_template_values)
            limit = int(params["limit"]) if "limit" in params else None
            offset = int(params.get("offset", 0))
            if where is EVERYTHING and limit is None:
                names = [n.lower() for n in request.output_fields]
                if "count(*)" not in names:
                    raise ParameterInvalid("empty expression should be used with limit")
            outputs = data.Outputs(coll, list(request.output_fields), with_pk=True)
            if outputs.count:
                outputs = data.Outputs(coll, list(request.output_fields), with_pk=False)
            where = await partitions.only(conn, coll, where, list(request.partition_names))
            columns = await data.query(conn, coll, where, outputs, limit, offset)
        out = milvus_pb2.QueryResults(
            collection_name=coll.name,
            output_fields=[c.field_name for c in columns if not c.is_dynamic]
            + ([*outputs.dynamic_keys] if outputs.reads_dynamic else []),
            primary_field_name=coll.pk.name,
            session_ts=self.clock.now(),  # query iterators pin it as their snapshot
        )
        out.fields_data.extend(columns)
        return out

    @rpc(milvus_pb2.SearchResults)
    async def Search(self, request: Any, caller: Caller) -> Any:
        if request.sub_reqs:
            raise Unsupported("advanced (hybrid) search is not supported by pgvec yet")
        db = await self._db()
        async with self.connections.connection(caller) as conn:

            async def read(
                conn: psycopg.AsyncConnection[Any],
            ) -> tuple[Collection, list[indexes.IndexInfo]]:
                coll = await self._collection(conn, caller, request.collection_name)
                return coll, await indexes.list_indexes(conn, coll)

            key = (caller.user, caller.db, request.collection_name)
            seen = await self.described.get(key, db.ddl_generation, conn, read)
            coll, found = seen.coll, list(seen.indexes)
            if not await self._loaded(conn, coll, found):
                raise CollectionNotLoaded(f"collection not loaded[collection={coll.name}]")
            args = searching.parse_args(coll, _kv(request.search_params), found)
            info = await indexes.table_info(db, coll.relid)
            named = list(request.partition_names)
            leaves = await partitions.check_names(conn, coll, named)
            result = await searching.run(
                db,
                conn,
                coll,
                info,
                request,
                args,
                self._consistency(request, coll),
                self.cursors,
                frozenset(leaves.values()) if named and info.partitioned else None,
            )
        return milvus_pb2.SearchResults(
            collection_name=coll.name, results=result, session_ts=self.clock.now()
        )

    @rpc(milvus_pb2.SearchResults)
    async def HybridSearch(self, request: Any, caller: Caller) -> Any:
        db = await self._db()
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            if not await self._loaded(conn, coll):
                raise CollectionNotLoaded(f"collection not loaded[collection={coll.name}]")
            found = await indexes.list_indexes(conn, coll)
            info = await indexes.table_info(db, coll.relid)
            named = list(request.partition_names)
            leaves = await partitions.check_names(conn, coll, named)
            result = await hybrid.run(
                db,
                conn,
                coll,
                info,
                request,
                found,
                self._consistency(request, coll),
                frozenset(leaves.values()) if named and info.partitioned else None,
            )
        return milvus_pb2.SearchResults(collection_name=coll.name, results=result)


def _set_ids(ids: schema_pb2.IDs, coll: Collection, keys: list[Any]) -> None:
    if coll.pk.type == DT.Int64:
        ids.int_id.data.extend(int(k) for k in keys)
    else:
        ids.str_id.data.extend(str(k) for k in keys)


def _same_schema(a: schema_pb2.CollectionSchema, b: schema_pb2.CollectionSchema, name: str) -> bool:
    def norm(s: schema_pb2.CollectionSchema) -> bytes:
        c = schema_pb2.CollectionSchema()
        c.CopyFrom(s)
        c.name = name
        for f in c.fields:
            f.fieldID = 0
        return bytes(c.SerializeToString(deterministic=True))

    return norm(a) == norm(b)
