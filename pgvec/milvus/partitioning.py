"""The partition RPCs of MilvusService, over :mod:`pgvec.milvus.partitions`."""

from __future__ import annotations

from typing import Any

from psycopg import sql
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from pgvec.filter.sql import NAMEDATALEN
from pgvec.milvus import catalog
from pgvec.milvus.base import ServiceBase
from pgvec.milvus.context import Caller
from pgvec.milvus.partitions import (
    DEFAULT_PARTITION,
    MAX_PARTITIONS,
    check_names,
    is_list_partitioned,
    leaf_name,
    leaves,
)
from pgvec.milvus.status import MilvusError, ParameterInvalid, PartitionNotFound, Unsupported


class PartitionRPCs(ServiceBase):
    """The partition RPCs of MilvusService (mixed into it)."""

    async def show_partitions(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            found = await leaves(conn, coll)
        wanted = list(request.partition_names)
        names = [n for n in found if not wanted or n in wanted]
        return milvus_pb2.ShowPartitionsResponse(
            partition_names=names,
            partitionIDs=[found[n] for n in names],
            inMemory_percentages=[
                100 if coll.loaded and n not in coll.released else 0 for n in names
            ],
        )

    async def has_partition(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            found = await leaves(conn, coll)
        return milvus_pb2.BoolResponse(value=request.partition_name in found)

    async def create_partition(self, request: Any, caller: Caller) -> Any:
        name = request.partition_name
        if not name or len(name) > 255:
            raise ParameterInvalid("the length of a partition name must be 1 to 255 characters")
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            if len(leaf_name(coll.table, name).encode()) > NAMEDATALEN - 1:
                raise ParameterInvalid(
                    f"the partition name {name} is too long for collection {coll.name} in"
                    f" pgvec: its table, {coll.table}${name}, is longer than the 63 bytes"
                    " PostgreSQL keeps of a name"
                )
            if not await is_list_partitioned(conn, coll):
                raise Unsupported(
                    f"collection {coll.name} has no partitions other than _default: it was"
                    " not made with partitions (a table made in SQL, or before pgvec had"
                    " them), or it has a partition key"
                )
            found = await leaves(conn, coll)
            if name in found:
                raise MilvusError(f"partition already exists[partition={name}]")
            if len(found) >= MAX_PARTITIONS:
                raise MilvusError(f"partition number ({len(found)}) exceeds max configuration")
            await conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES IN ({})").format(
                    sql.Identifier(coll.schema_name, leaf_name(coll.table, name)),
                    coll.ident,
                    sql.Literal(name),
                )
            )
        (await self._db()).note_ddl()
        return common_pb2.Status()

    async def drop_partition(self, request: Any, caller: Caller) -> Any:
        name = request.partition_name
        if name == DEFAULT_PARTITION:
            raise ParameterInvalid("default partition cannot be deleted")
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            found = await leaves(conn, coll)
            if name not in found or not await is_list_partitioned(conn, coll):
                raise PartitionNotFound(f"partition not found[partition={name}]")
            if coll.loaded and name not in coll.released:
                raise MilvusError(
                    "partition cannot be dropped, partition is loaded, please release it first"
                )
            async with conn.transaction():
                await conn.execute(
                    sql.SQL("DROP TABLE {}").format(
                        sql.Identifier(coll.schema_name, leaf_name(coll.table, name))
                    )
                )
                if name in coll.released:
                    await catalog.set_released(conn, coll, sorted(coll.released - {name}))
        (await self._db()).note_ddl()
        return common_pb2.Status()

    async def partition_statistics(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            coll = await self._collection(conn, caller, request.collection_name)
            found = await check_names(conn, coll, [request.partition_name])
            cur = await conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE tableoid = %s::oid").format(coll.ident),
                (found[request.partition_name],),
            )
            row = await cur.fetchone()
        out = milvus_pb2.GetPartitionStatisticsResponse()
        out.stats.add(key="row_count", value=str(row[0] if row else 0))
        return out
