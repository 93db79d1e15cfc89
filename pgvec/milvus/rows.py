"""Row RPCs: Insert, Upsert, Delete, Query, Search and HybridSearch, each as the caller."""

from __future__ import annotations

from typing import Any

import psycopg
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from pgvec.catalog.models import TableInfo
from pgvec.milvus import data, hybrid, indexes, partitions
from pgvec.milvus import search as searching
from pgvec.milvus.base import ServiceBase, flag, kv
from pgvec.milvus.context import Caller
from pgvec.milvus.filters import EVERYTHING, compile_filter
from pgvec.milvus.rpc import rpc
from pgvec.milvus.schema import DT, Collection
from pgvec.milvus.status import CollectionNotLoaded, ParameterInvalid, Unsupported
from pgvec.service.database import Database


class RowRPCs(ServiceBase):
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
                partial=upsert and request.partial_update,
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

    @rpc(milvus_pb2.QueryResults)
    async def Query(self, request: Any, caller: Caller) -> Any:
        params = kv(request.query_params)
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
            named = await partitions.readable(conn, coll, list(request.partition_names))
            where = await partitions.only(conn, coll, where, named)
            columns = await data.query(conn, coll, where, outputs, limit, offset)
        out = milvus_pb2.QueryResults(
            collection_name=coll.name,
            output_fields=[c.field_name for c in columns if not c.is_dynamic]
            + ([*outputs.dynamic_keys] if outputs.reads_dynamic else []),
            primary_field_name=coll.pk.name,
            session_ts=self._session_ts(params),
        )
        out.fields_data.extend(columns)
        return out

    def _session_ts(self, params: dict[str, str]) -> int:
        """The snapshot an iterator pins its pages to, for a request of one (pymilvus
        says ``iterator: True``); 0 otherwise, as Milvus (pymilvus shows it in every
        result's extra info)."""
        if flag(params.get("iterator", "")):
            return self.clock.now()
        return 0

    async def _searchable(
        self, conn: psycopg.AsyncConnection[Any], caller: Caller, request: Any, db: Database
    ) -> tuple[Collection, list[indexes.IndexInfo], TableInfo, frozenset[int] | None]:
        """What a search of a request's collection needs: the collection and its indexes
        (cached between searches), the engine's view of its table, and the leaves of the
        partitions it names (None: every one). Milvus refuses a released collection."""

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
        info = await indexes.table_info(db, coll.relid)
        named = await partitions.readable(conn, coll, list(request.partition_names))
        leaves = None
        if named:
            chosen = await partitions.check_names(conn, coll, named)
            leaves = frozenset(chosen.values()) if info.partitioned else None
        return coll, found, info, leaves

    @rpc(milvus_pb2.SearchResults)
    async def Search(self, request: Any, caller: Caller) -> Any:
        if request.function_score.functions:  # (a decay or model reranker of one search)
            raise Unsupported("rerankers of a single search are not supported by pgvec yet")
        if request.sub_reqs:
            raise Unsupported("advanced (hybrid) search is not supported by pgvec yet")
        db = await self._db()
        params = kv(request.search_params)
        async with self.connections.connection(caller) as conn:
            coll, found, info, leaves = await self._searchable(conn, caller, request, db)
            args = searching.parse_args(coll, params, found)
            consistency = self._consistency(request, coll)
            result = await searching.run(
                db, conn, coll, info, request, args, consistency, self.cursors, leaves
            )
        return milvus_pb2.SearchResults(
            collection_name=coll.name,
            results=result,
            session_ts=self._session_ts(params),
        )

    @rpc(milvus_pb2.SearchResults)
    async def HybridSearch(self, request: Any, caller: Caller) -> Any:
        db = await self._db()
        async with self.connections.connection(caller) as conn:
            coll, found, info, leaves = await self._searchable(conn, caller, request, db)
            consistency = self._consistency(request, coll)
            result = await hybrid.run(db, conn, coll, info, request, found, consistency, leaves)
        return milvus_pb2.SearchResults(collection_name=coll.name, results=result)


def _set_ids(ids: schema_pb2.IDs, coll: Collection, keys: list[Any]) -> None:
    if coll.pk.type == DT.Int64:
        ids.int_id.data.extend(int(k) for k in keys)
    else:
        ids.str_id.data.extend(str(k) for k in keys)
