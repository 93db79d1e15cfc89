"""MilvusService: the RPCs pymilvus sends, answered over pgvec's core.

Every handler runs as the caller (see :mod:`pgvec.milvus.context`) and answers errors in
the reply's Status, never as a gRPC failure (pymilvus retries those for a minute).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, schema_pb2

from pgvec import __version__
from pgvec.milvus import catalog, partitions
from pgvec.milvus.base import ServiceBase, kv
from pgvec.milvus.context import Caller
from pgvec.milvus.indexing import IndexRPCs
from pgvec.milvus.partitioning import PartitionRPCs
from pgvec.milvus.rows import RowRPCs
from pgvec.milvus.rpc import rpc
from pgvec.milvus.status import (
    MilvusError,
)
from pgvec.milvus.users import UsersRPC

log = logging.getLogger(__name__)

DEFAULT_PARTITION = "_default"


class MilvusService(
    UsersRPC,
    PartitionRPCs,
    IndexRPCs,
    RowRPCs,
    ServiceBase,
    milvus_pb2_grpc.MilvusServiceServicer,  # type: ignore[misc]
):
    """MilvusService, assembled: connection, databases, collections and aliases here; the
    other RPC families in their mixins."""

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
            await catalog.create_db(conn, request.db_name, kv(request.properties))
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def AlterDatabase(self, request: Any, caller: Caller) -> Any:
        """Database properties are kept and described back; pgvec acts on none of them."""
        async with self.connections.connection(caller) as conn:
            await catalog.alter_db(
                conn, request.db_name, kv(request.properties), list(request.delete_keys)
            )
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
            properties = await catalog.db_properties(conn, name)  # raises if there is none
        out = milvus_pb2.DescribeDatabaseResponse(db_name=name)
        for key, value in properties.items():
            out.properties.add(key=key, value=value)
        return out

    # -- collections --------------------------------------------------------------

    @rpc(common_pb2.Status)
    async def CreateCollection(self, request: Any, caller: Caller) -> Any:
        proto = schema_pb2.CollectionSchema.FromString(request.schema)
        name = request.collection_name
        properties = kv(request.properties)
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
            props.update(kv(request.properties))
            for key in request.delete_keys:
                props.pop(key, None)
            await conn.execute(
                "SELECT pgvec.set_collection_properties(%s::oid::regclass, %s::jsonb)",
                (coll.relid, json.dumps(props)),
            )
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def AlterCollectionField(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            await catalog.alter_field(
                conn, coll, request.field_name, kv(request.properties), list(request.delete_keys)
            )
        (await self._db()).note_ddl()
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


def _same_schema(a: schema_pb2.CollectionSchema, b: schema_pb2.CollectionSchema, name: str) -> bool:
    def norm(s: schema_pb2.CollectionSchema) -> bytes:
        c = schema_pb2.CollectionSchema()
        c.CopyFrom(s)
        c.name = name
        for f in c.fields:
            f.fieldID = 0
        return bytes(c.SerializeToString(deterministic=True))

    return norm(a) == norm(b)
