"""Collections and their indexes as a search last read them, so that a stream of searches
reads PostgreSQL's catalog once in a while instead of four times per call.

An entry is keyed by the caller's role, database and collection name, and read again:

- after any RPC that may change the catalog (everything but the reads in ``READS``):
  :meth:`DescribedCache.clear`, called by the service around such RPCs;
- after DDL that the server's SQL side saw (``Database.ddl_generation``);
- after ``TTL`` seconds, for DDL sent straight to PostgreSQL, past pgvec.

What a caller may read is not decided here: every search asks PostgreSQL, as the
caller, so grants and row-level security apply to every call (pgvec.milvus.search).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from pgvec.milvus.indexes import IndexInfo
from pgvec.milvus.schema import Collection

#: seconds an entry stands without DDL seen
TTL = 1.0
#: entries kept at most; past that the cache starts afresh
MAX_ENTRIES = 1024
#: RPCs that change nothing in the catalog: they leave the cache as it is
READS = frozenset(
    {
        "Search",
        "HybridSearch",
        "Query",
        "Insert",
        "Upsert",
        "Delete",
        "Connect",
        "GetVersion",
        "CheckHealth",
        "AllocTimestamp",
        "DescribeCollection",
        "HasCollection",
        "ShowCollections",
        "GetCollectionStatistics",
        "DescribeIndex",
        "GetIndexState",
        "GetIndexBuildProgress",
        "GetLoadingProgress",
        "GetLoadState",
        "GetFlushState",
        "ListDatabases",
        "DescribeDatabase",
        "DescribeAlias",
        "ListAliases",
        "ShowPartitions",
        "HasPartition",
    }
)

Key = tuple[str | None, str, str]


@dataclass(frozen=True)
class Described:
    """One collection and its indexes, as read at ``at`` (time.monotonic)."""

    coll: Collection
    indexes: tuple[IndexInfo, ...]
    at: float
    ddl_generation: int


Reader = Callable[[psycopg.AsyncConnection[Any]], Awaitable[tuple[Collection, list[IndexInfo]]]]


class DescribedCache:
    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = ttl
        self._entries: dict[Key, Described] = {}
        #: grows at each clear(): a read that began before one is not kept
        self._epoch = 0

    def clear(self) -> None:
        self._entries.clear()
        self._epoch += 1

    async def get(
        self,
        key: Key,
        ddl_generation: int,
        conn: psycopg.AsyncConnection[Any],
        read: Reader,
    ) -> Described:
        """The entry of ``key``, read with ``read`` on ``conn`` unless a fresh one is kept."""
        now = time.monotonic()
        found = self._entries.get(key)
        if (
            found is not None
            and found.ddl_generation == ddl_generation
            and now - found.at < self.ttl
        ):
            return found
        epoch = self._epoch
        coll, indexes = await read(conn)
        entry = Described(coll, tuple(indexes), now, ddl_generation)
        if epoch == self._epoch:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = entry
        return entry
