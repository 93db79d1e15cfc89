"""What every part of MilvusService shares: its state, and the steps many RPCs take.

MilvusService is assembled from mixins, one per family of RPCs (collections and
databases in :mod:`pgvec.milvus.service`, indexes and loading in
:mod:`pgvec.milvus.indexing`, rows in :mod:`pgvec.milvus.rows`, partitions, users); each
derives from :class:`ServiceBase`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from pymilvus.grpc_gen import common_pb2

from pgvec.errors import PgvecError
from pgvec.milvus import catalog, described, indexes, iterators
from pgvec.milvus.context import Caller, Clock, Connections
from pgvec.milvus.schema import Collection
from pgvec.service.core import Core
from pgvec.service.database import Database

log = logging.getLogger("pgvec.milvus.service")

#: Milvus's consistency levels as pgvec's
LEVELS = {
    common_pb2.Strong: "strong",
    common_pb2.Session: "strong",
    common_pb2.Bounded: "bounded",
    common_pb2.Eventually: "eventually",
    common_pb2.Customized: "bounded",
}


def kv(pairs: Any) -> dict[str, str]:
    """A request's KeyValuePair list as a dict."""
    return {p.key: p.value for p in pairs}


def flag(value: Any) -> bool:
    """A flag as pymilvus sends it: JSON ``true`` (``"true"``, quoted or not), or a bool."""
    return value is True or str(value).strip('"').lower() == "true"


class ServiceBase:
    """The state MilvusService's mixins share, and the steps many of its RPCs take."""

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

    async def _collection(
        self, conn: psycopg.AsyncConnection[Any], caller: Caller, name: str
    ) -> Collection:
        return await catalog.resolve(conn, caller.db, name)

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

    def _consistency(self, request: Any, coll: Collection) -> str:
        """pgvec's consistency for a Search or Query. pymilvus sends, as the guarantee
        timestamp, the last write timestamp this client saw (Session, and the default);
        0 for Strong, 2 for Bounded, 1 for Eventually or no write seen."""
        gts = request.guarantee_timestamp
        session = request.use_default_consistency or request.consistency_level == common_pb2.Session
        if session and gts > 2 and gts <= self._applied.get(coll.relid, 0):
            return "eventually"  # the client's writes are in the engine already
        if request.use_default_consistency:
            if gts > 2:  # a write this client saw: read it
                return "strong"
            return LEVELS.get(coll.consistency, "bounded")
        level = LEVELS.get(request.consistency_level, "bounded")
        if request.consistency_level == common_pb2.Session and request.guarantee_timestamp <= 1:
            return "bounded"
        return level

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
