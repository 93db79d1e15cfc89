"""One PostgreSQL database behind pgvec: its connection pools, catalog and table states.

Threads and connections, so that background work never makes a search wait:

- searches, and what a client waits on briefly (catalog reads, index DDL bookkeeping),
  run on the *search* threads; loads, releases, the background sync and checkpoints on
  the *maintenance* threads; index builds on threads of their own. A build holds a
  connection of its own for as long as it runs.
- ``pool`` serves those threads and has a connection for each of them, so none waits
  for one; change-log applies (a search's, the background sync's) use ``log_pool``. No
  code path holds a connection while it waits for another.
- One lock order: the table's asyncio lock or the catalog lock (event loop), then one
  connection, then ``Database.loading``, then ``TableState.lock``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from pgvec.catalog import queries
from pgvec.catalog.install import install
from pgvec.catalog.models import (
    CatalogSnapshot,
    IndexDef,
    IndexRow,
    Slot,
    TableInfo,
    VectorColumn,
    vector_dims,
)
from pgvec.engine.collection import Key, VectorCollection
from pgvec.engine.predicate import Unsupported, Where
from pgvec.engine.spec import IndexSpec, Metric, SearchParams
from pgvec.errors import (
    CatalogError,
    FeatureNotSupported,
    IndexNotLoaded,
    ObjectInUse,
    PgvecError,
    UndefinedObject,
)
from pgvec.filter.bind import bind
from pgvec.service import indexes, partitions, residency
from pgvec.service.builds import Build
from pgvec.service.filtering import SelectivityMemory, TopK, filtered_search
from pgvec.service.freshness import ChangeReads
from pgvec.service.indexes import DEFAULT_OPCLASS
from pgvec.service.own_writes import own_rows
from pgvec.service.request import FilterSpec, SearchRequest
from pgvec.service.search import ClientSQL
from pgvec.sync.table import (
    TableState,
    key_parser,
    prepare_statements,
    prepare_statements_async,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: how long a catalog snapshot is trusted without DDL seen through the proxy
CATALOG_TTL = 5.0
#: save an indexed table after this many applied changes, or this many seconds
CHECKPOINT_CHANGES = int(os.environ.get("PGVEC_CHECKPOINT_CHANGES", "5000"))
CHECKPOINT_SECONDS = float(os.environ.get("PGVEC_CHECKPOINT_SECONDS", "30"))
#: bounded consistency: apply the change log at most this often
BOUNDED_MS = 200
#: tables not searched with Strong or Bounded consistency are synced this often
SYNC_SECONDS = 1.0
#: how long installing a table's change-log triggers may wait for its lock
TRACK_LOCK_TIMEOUT = "10s"
#: application_name of the connection searches read the change log on
CHANGES_APPLICATION = "pgvec changes"
#: pool connections unused this long are closed, one at a time: an idle pgvec holds none
POOL_MAX_IDLE = 60.0
#: threads for searches (and short catalog work), for maintenance, for index builds
SEARCH_THREADS = 8
MAINTENANCE_THREADS = 2
BUILD_THREADS = 2
#: connections for change-log applies (searches, the background sync)
LOG_POOL_SIZE = 4
#: application_name of pgvec's own connections
APPLICATION = "pgvec"
#: pgvec's own connections: autocommit, and no statement prepared by psycopg, which
#: deallocates every prepared statement of the session (the change-log one too) after a
#: ROLLBACK, DROP or ALTER once it has prepared one of its own
_OWN_CONNECTION: dict[str, Any] = {
    "autocommit": True,
    "application_name": APPLICATION,
    "prepare_threshold": None,
}
#: how long closing waits for PostgreSQL before giving up the final checkpoint
CLOSE_CONNECT_TIMEOUT = 3
#: how long closing waits for cancelled builds to stop
BUILD_STOP_WAIT = 5.0


def candidates(k: int) -> int:
    """How many hits to hand the join for a LIMIT of k.

    The join runs in the client's own snapshot, a moment after the search: a row deleted
    in between (or hidden from the client by row-level security) drops out there. A few
    spare candidates, cut by the query's own LIMIT, keep the answer at k rows.
    """
    return k + max(8, k // 4)


def _track(conn: psycopg.Connection, relid: int, name: str) -> None:
    """Install the table's change-log triggers unless they are there. Installing them
    waits for writers of the table: never for long without saying so."""
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{TRACK_LOCK_TIMEOUT}'")
            conn.execute("SELECT pgvec.track(%s::oid::regclass)", (relid,))
    except psycopg.errors.LockNotAvailable as exc:
        raise ObjectInUse(
            f'cannot install the change-log triggers of table "{name}": it is locked',
            hint="A long transaction holds a lock on the table; retry once it ends.",
        ) from exc


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("applying the change log failed: %s", future.exception())


_EMPTY_CATALOG = CatalogSnapshot({})


def _not_loaded(name: str) -> IndexNotLoaded:
    return IndexNotLoaded(
        f'index "{name}" is not loaded: it was released from memory',
        hint=f"Load it with SELECT pgvec.load('{name}');",
    )


class Database:
    def __init__(self, name: str, dsn: str, index_root: Path) -> None:
        self.name = name
        self.dsn = dsn
        self.index_root = index_root
        self.pool = self._pool("", SEARCH_THREADS + MAINTENANCE_THREADS + BUILD_THREADS)
        self.log_pool = self._pool("log", LOG_POOL_SIZE)
        self._searches = ThreadPoolExecutor(SEARCH_THREADS, f"pgvec-{name}-search")
        self._maintenance = ThreadPoolExecutor(MAINTENANCE_THREADS, f"pgvec-{name}-maint")
        self._builds = ThreadPoolExecutor(BUILD_THREADS, f"pgvec-{name}-build")
        self.oid = 0
        #: a template database: served as a plain proxy, nothing installed, no pool
        self.template = False
        #: set by the Core: asked when the background work fails whether the database
        #: is gone (dropped, or renamed); True when the Core has let go of it
        self.lost: Callable[[Database], Awaitable[bool]] | None = None
        self._closed = False
        self.tables: dict[int, TableState] = {}
        self._catalog_at = 0.0
        self._stale = True
        self._catalog: CatalogSnapshot | None = None
        #: grows by one at each DDL statement a frontend reports (note_ddl)
        self.ddl_generation = 0
        self._vector_columns: dict[tuple[int, int], int] = {}
        #: OID of the type clients see vector columns as (``public.vector``), if any
        self.face_oid: int | None = None
        #: and of its array type (``vector[]`` columns)
        self.face_array_oid: int | None = None
        self._catalog_lock = asyncio.Lock()
        self._table_locks: dict[int, asyncio.Lock] = {}
        self._checkpointer: asyncio.Task[None] | None = None
        #: what each filter statement admitted last time (pre- or post-filtering)
        self.selectivity = SelectivityMemory()
        #: Strong searches' change-log reads, shared, on a connection of their own
        self._change_reads = ChangeReads(self._changes_connection)
        #: runs a search's change-log read next to its filter query
        self._helpers = ThreadPoolExecutor(LOG_POOL_SIZE, f"pgvec-{name}-log")
        #: index builds in progress, by (table OID, attnum, metric): one per index
        self.builds: dict[tuple[int, int, str], Build] = {}
        #: indexes released from memory (pgvec.release): (table OID, attnum, metric) -> name
        self.released: dict[tuple[int, int, str], str] = {}
        #: indexes whose column's vector CHECK is gone, as already logged
        self.unchecked: set[tuple[int, int, str]] = set()
        #: held while a column is loaded, and while change-log rows nobody reads are
        #: deleted: a load's snapshot may not miss rows deleted meanwhile
        self.loading = threading.RLock()
        self._unread_cleaned = time.monotonic()

    def _pool(self, role: str, size: int) -> ConnectionPool:
        """A pool keeping no idle connection; its name says which pool it is."""
        return ConnectionPool(
            self.dsn,
            min_size=0,
            max_size=size,
            max_idle=POOL_MAX_IDLE,
            kwargs=dict(_OWN_CONNECTION),
            open=False,
            name="-".join(["pgvec", self.name, *([role] if role else [])]),
            configure=prepare_statements,
        )

    def connect(self, purpose: str) -> psycopg.Connection:
        """A connection of its own (an index build's), prepared like the pools' ones."""
        conn = psycopg.connect(
            self.dsn, **{**_OWN_CONNECTION, "application_name": f"{APPLICATION} {purpose}"}
        )
        try:
            prepare_statements(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    # -- lifecycle --------------------------------------------------------------------

    async def open(self) -> None:
        await self.run_maintenance(self._open_sync)
        if not self.template:
            self._checkpointer = asyncio.create_task(self._checkpoint_loop())

    def _open_sync(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            self.oid = queries.database_oid(conn)
            if queries.is_template(conn):
                # Whatever pgvec installed here would be copied into every database
                # created from it, and a connection held here makes CREATE DATABASE fail.
                log.info("database %s is a template: passing its sessions through", self.name)
                self.template = True
                return
            install(conn)  # before the pool, whose connections prepare statements on it
        self.pool.open(wait=True, timeout=30)
        self.log_pool.open()
        with self.pool.connection() as conn:
            self.oid = queries.database_oid(conn)
            conn.execute("DELETE FROM pgvec.build_progress")  # builds of an earlier run
            indexes.forget_gone(self, conn)
            tables = queries.load_tables(conn)
            rows = queries.list_indexes(conn)
            indexes.move_old_layout(self, rows)
            indexes.check_fit(self, conn, tables, rows)
            for row in queries.list_indexes(conn):
                info = tables.get(row.relid)
                if info is None or row.state == "failed":  # the column is searched exactly
                    continue
                if info.partitioned:  # its leaves have the indexes
                    continue
                if row.state == "released":
                    self.released[row.key] = row.index_name
                    log.info("index %s is released: not loading it", row.index_name)
                    continue
                state = self.tables.get(row.relid) or TableState(info, self.table_dir(row.relid))
                self.tables[row.relid] = state
                try:
                    loaded = state.load_persisted(row.slot)
                except PgvecError as exc:
                    log.warning("index %s cannot be loaded: %s", row.index_name, exc)
                    loaded = False
                if not loaded or not indexes.files_fit(state, row):
                    indexes.rebuild(conn, state, row)
                elif row.state == "building":  # a REINDEX cut short: the old index stands
                    conn.execute(
                        "UPDATE pgvec.indexes SET state = 'ready'"
                        " WHERE relid = %s AND attnum = %s AND metric = %s",
                        row.key,
                    )

    async def close(self, *, checkpoint: bool = True) -> None:
        """Stop the background work, save what changed (``checkpoint``, and PostgreSQL
        reachable) and close every connection. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self._checkpointer is not None and self._checkpointer is not asyncio.current_task():
            self._checkpointer.cancel()
        tasks = [b.task for b in self.builds.values() if b.task is not None]
        for build in self.builds.values():
            build.cancel("pgvec is shutting down")  # built again at the next start
        if tasks:  # they stop at their next progress report; FAISS training gives none
            await asyncio.wait(tasks, timeout=BUILD_STOP_WAIT)
        self._change_reads.close()
        # not on the maintenance threads: they may be busy (a long load)
        await asyncio.to_thread(self._close_sync, checkpoint)

    def _close_sync(self, checkpoint: bool) -> None:
        try:
            if checkpoint and not self.template and self._reachable():
                self.checkpoint_all(force=True)
        finally:
            for executor in (self._helpers, self._searches, self._maintenance, self._builds):
                executor.shutdown(wait=False, cancel_futures=True)
            self.pool.close()
            self.log_pool.close()

    def _reachable(self) -> bool:
        """Whether PostgreSQL answers now. When it does not (it died, or the database was
        dropped), the final checkpoint is skipped rather than waited for: the change log
        keeps every change not saved, and the next start replays it."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=CLOSE_CONNECT_TIMEOUT):
                return True
        except psycopg.Error as exc:
            log.warning(
                "database %s: no final checkpoint, PostgreSQL is unreachable: %s", self.name, exc
            )
            return False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a search thread: what a client waits on."""
        return await asyncio.get_running_loop().run_in_executor(self._searches, fn, *args)

    async def run_maintenance(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a maintenance thread: loads, releases, sync, checkpoints."""
        return await asyncio.get_running_loop().run_in_executor(self._maintenance, fn, *args)

    async def run_build(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a build thread."""
        return await asyncio.get_running_loop().run_in_executor(self._builds, fn, *args)

    def table_dir(self, relid: int) -> Path:
        return self.index_root / str(self.oid) / str(relid)

    # -- catalog ----------------------------------------------------------------------

    def note_ddl(self) -> None:
        """A frontend saw DDL that may change the catalog: read it again when next asked."""
        self._stale = True
        self.ddl_generation += 1

    def catalog_now(self) -> CatalogSnapshot | None:
        """The catalog :meth:`catalog` would return without reading it, if it would;
        None when it must be read (after DDL, or CATALOG_TTL passed)."""
        if self.template:
            return _EMPTY_CATALOG
        snap = self._catalog
        if (
            snap is not None
            and not self._stale
            and not self._catalog_lock.locked()
            and time.monotonic() - self._catalog_at < CATALOG_TTL
        ):
            return snap
        return None

    async def catalog(self) -> CatalogSnapshot:
        """The catalog as last read: read again after DDL, or when CATALOG_TTL passed.
        (A template database's is empty: pgvec only relays its sessions.)"""
        snap = self.catalog_now()  # (a read after DDL under way: waited for below)
        if snap is not None:
            return snap
        async with self._catalog_lock:
            if (
                self._catalog is None
                or self._stale
                or (time.monotonic() - self._catalog_at >= CATALOG_TTL)
            ):
                self._stale = False
                self._catalog = await self.run(self._load_catalog)
                self._catalog_at = time.monotonic()
            return self._catalog

    def vector_columns(self) -> Mapping[tuple[int, int], int]:
        """(table OID, attnum) -> dimension (0: any) of every float vector column and
        array of vectors (a bytea and a bytea[] column: their types tell them apart), as
        of the last catalog read."""
        return self._vector_columns

    async def check_face(self) -> None:
        """Make sure clients can be shown pgvector's type (CREATE EXTENSION vector)."""
        if self.face_oid is None:
            self.face_oid, self.face_array_oid = await self.run(self._read_face)
        if self.face_oid is None:
            raise CatalogError(
                "type public.vector is missing: pgvec could not create it",
                hint="create it as a role allowed to create in schema public: "
                "CREATE TYPE public.vector AS ENUM ()",
            )

    def _read_face(self) -> tuple[int | None, int | None]:
        with self.pool.connection() as conn:
            return queries.face_types(conn)

    def _load_catalog(self) -> CatalogSnapshot:
        with self.pool.connection() as conn:
            indexes.forget_gone(self, conn)
            tables, others, array_tables = queries.load_catalog(conn)
            volatile = queries.volatile_functions(conn)
            self.face_oid, self.face_array_oid = queries.face_types(conn)
            indexes.check_fit(self, conn, tables, queries.list_indexes(conn))
        for relid, info in tables.items():
            if relid in self.tables:
                self.tables[relid].info = info
        self._vector_columns = vector_dims([*tables.values(), *array_tables.values()])
        version = (self._catalog.version + 1) if self._catalog else 1
        return CatalogSnapshot(tables, others, volatile, version, array_tables)

    # -- tables -----------------------------------------------------------------------

    def _table_lock(self, relid: int) -> asyncio.Lock:
        return self._table_locks.setdefault(relid, asyncio.Lock())

    def _state(self, info: TableInfo) -> TableState:
        state = self.tables.get(info.relid)
        if state is None:
            state = TableState(info, self.table_dir(info.relid))
            self.tables[info.relid] = state
        _ = state.pk  # no primary key: clear error before anything else
        return state

    def ensure_loaded(
        self, conn: psycopg.Connection, info: TableInfo, attnum: int, metric: str
    ) -> TableState:
        """The table's state, tracked, with a collection that a search of column ``attnum``
        by ``metric`` (a Metric name) can use (TableState.pick): the index of that
        metric, or else the column's rows, read for an exact search. Caller holds the
        lock."""
        state = self._state(info)
        name = self._released_name(state, attnum, metric)
        if name is not None:
            raise _not_loaded(name)
        if state.pick(attnum, metric) is None:
            _track(conn, info.relid, info.name)
            with self.loading, state.lock:
                state.apply_changes(conn)
                state.full_load(conn, [Slot(attnum)])
        return state

    def ensure_slot(self, conn: psycopg.Connection, info: TableInfo, slot: Slot) -> TableState:
        """The table's state, tracked, with the collection of index ``slot`` loaded (the
        column's unindexed one taken over, else its rows read). Caller holds the lock."""
        state = self._state(info)
        if slot not in state.collections:
            _track(conn, info.relid, info.name)
            with self.loading, state.lock:
                state.apply_changes(conn)
                if not state.take_unindexed(slot):
                    state.full_load(conn, [slot])
        return state

    def _released_name(self, state: TableState, attnum: int, metric: str) -> str | None:
        """The released index a search of column ``attnum`` by ``metric`` waits for: the
        index of that metric, or any of the column's when none of them is loaded."""
        name = self.released.get((state.relid, attnum, metric))
        if name is None and not any(s.attnum == attnum for s in list(state.collections)):
            name = next(
                (n for k, n in list(self.released.items()) if k[:2] == (state.relid, attnum)),
                None,
            )
        return name

    # -- search -----------------------------------------------------------------------

    async def search(
        self, request: SearchRequest, sql: ClientSQL
    ) -> list[tuple[list[Key], list[float]]]:
        """The hits of a top-k search, one (keys, distances) per query vector: the
        ``request.k`` nearest rows and a few spare ones (:func:`candidates`).

        Whatever is derived from the client's request (its filter) runs through ``sql``,
        in the client's own session. The table is loaded, and the change log applied as
        ``request.consistency`` asks, once for the whole batch.
        """
        relid = request.table.relid
        if relid == 0:
            raise FeatureNotSupported(
                f'table "{request.table.name}" is created by this same query',
                hint="Search it in a statement of its own, after the CREATE TABLE.",
            )
        if request.table.partitioned:
            return await partitions.search(self, request, sql)
        attnum, metric = request.column.attnum, request.metric.name
        state = self.tables.get(relid)
        if (
            state is None
            or state.pick(attnum, metric) is None
            or (relid, attnum, metric) in self.released
        ):
            async with self._table_lock(relid):
                await self.run_maintenance(self._load_for, request.table, attnum, metric)
        state = self.tables[relid]
        need_apply = self._needs_apply(state, request.consistency)
        params = SearchParams.create(dict(request.params))
        where, engine = self._engine_filter(request)
        found = []
        for query in request.vectors:
            found.append(
                await self._search_vector(
                    state, request, query, params, where, engine, sql, need_apply
                )
            )
            need_apply = False  # applied for the first vector: the batch's snapshot
        return found

    @staticmethod
    def _engine_filter(request: SearchRequest) -> tuple[Where | None, bool]:
        """The request's filter as the engine evaluates it, and whether it can: not
        when the predicate cannot be bound exactly (PostgreSQL evaluates it then)."""
        filt = request.filter
        if filt is None:
            return None, True
        # the engine's copy of the table knows nothing of row-level security
        if filt.predicate is None or not request.engine_filter or request.table.row_security:
            return None, False
        try:
            return Where(bind(filt.predicate, filt.values, filt.types, filt.formats)), True
        except Unsupported as exc:
            log.debug("filter not evaluated in the engine: %s", exc)
            return None, False

    async def _search_vector(
        self,
        state: TableState,
        request: SearchRequest,
        query: np.ndarray,
        params: SearchParams,
        where: Where | None,
        engine: bool,
        sql: ClientSQL,
        need_apply: bool,
    ) -> tuple[list[Key], list[float]]:
        """One query vector's hits; with ``own_writes``, merged with the rows the
        client's open transaction wrote."""
        k = request.k
        own = None
        if request.own_writes and k > 0:
            own = await own_rows(
                sql,
                request.table,
                request.column,
                query,
                request.metric,
                request.filter,
                key_parser(request.table.pk_type),
            )
        if own is None:
            return await self._knn(state, request, query, k, params, where, engine, sql, need_apply)
        keys, dists = await self._knn(
            state, request, query, k + own.excluded, params, where, engine, sql, need_apply
        )
        return own.merge(keys, dists, candidates(k))

    async def _knn(
        self,
        state: TableState,
        request: SearchRequest,
        query: np.ndarray,
        k: int,
        params: SearchParams,
        where: Where | None,
        engine: bool,
        sql: ClientSQL,
        need_apply: bool,
    ) -> tuple[list[Key], list[float]]:
        """``engine``: the engine evaluates the filter (``where``, if there is one);
        else PostgreSQL does."""
        metric = request.metric
        filt = request.filter
        top = TopK(query, k, candidates(k), metric, params)
        if k <= 0 or not engine:
            return await self._filtered(sql, state, request.column, top, filt, need_apply)
        search = partial(self._search, query=query, k=k, metric=metric, params=params, where=where)
        if need_apply:
            found = await self._search_fresh(state, request.column, metric, search)
            if found is not None:
                return found
        try:
            coll = self._collection(state, request.column, metric)
            if coll.quick(metric):
                # a search over an ANN index costs less than handing it to a thread
                return search(coll)
            return await self.run(search, coll)
        except Unsupported as exc:  # PostgreSQL evaluates the filter instead
            log.debug("filter not evaluated in the engine: %s", exc)
        return await self._filtered(sql, state, request.column, top, filt, False)

    @staticmethod
    def _needs_apply(state: TableState, consistency: str) -> bool:
        """Whether the search must see every change committed before it (Strong), or
        changes older than BOUNDED_MS (Bounded); Session and Eventually rely on the
        background sync."""
        if consistency == "strong":
            return True
        return (
            consistency == "bounded" and (time.monotonic() - state.last_apply) * 1000 >= BOUNDED_MS
        )

    async def _search_fresh(
        self,
        state: TableState,
        column: VectorColumn,
        metric: Metric,
        search: Callable[[VectorCollection], tuple[list[Key], list[float]]],
    ) -> tuple[list[Key], list[float]] | None:
        """A search that sees every change committed before it.

        The change-log read goes out first, shared with the searches of the table that
        began meanwhile (freshness.ChangeReads); while its answer travels, a quick
        search runs on the collections as they are. If the log holds nothing unapplied
        and no change was applied meanwhile, that search stands (a read-mostly workload
        pays one round trip, overlapped, and no thread).
        Otherwise returns None, with the log applied: the caller searches again.
        """
        version = state.version
        if state.busy():
            # the log is being applied (by a thread): its watermark runs ahead of the
            # collections until it ends; wait for it, then the caller searches again
            await self.run(self._apply_pooled, state)
            return None
        hits = None
        read = self._change_reads.request(state)
        try:
            coll = self._collection(state, column, metric)
            if coll.quick(metric):
                hits = search(coll)
        except Unsupported:
            hits = None  # the caller leaves the filter to PostgreSQL
        finally:
            fresh = await asyncio.shield(read)
        if not fresh or state.busy():  # an apply that began after this search did
            await self.run(self._apply_pooled, state)
            return None
        return hits if state.version == version else None

    async def _changes_connection(self) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(
            self.dsn, **{**_OWN_CONNECTION, "application_name": CHANGES_APPLICATION}
        )
        await prepare_statements_async(conn)
        return conn

    def _load_for(self, info: TableInfo, attnum: int, metric: str) -> None:
        with self.pool.connection() as conn:
            self.ensure_loaded(conn, info, attnum, metric)

    def _load_slot(self, info: TableInfo, slot: Slot) -> None:
        with self.pool.connection() as conn:
            self.ensure_slot(conn, info, slot)

    async def _filtered(
        self,
        sql: ClientSQL,
        state: TableState,
        column: VectorColumn,
        top: TopK,
        filt: FilterSpec | None,
        need_apply: bool,
    ) -> tuple[list[Key], list[float]]:
        """A search whose WHERE clause PostgreSQL evaluates (pre- or post-filtering), in
        the client's session."""
        if top.need <= 0 or filt is None:
            return [], []
        # The change log is read on pgvec's own connection while the filter runs.
        applied = (
            asyncio.wrap_future(self._helpers.submit(self._apply_pooled, state))
            if need_apply
            else None
        )

        async def collection() -> VectorCollection:
            if applied is not None:
                await applied
            return self._collection(state, column, top.metric)

        try:
            found = await filtered_search(
                sql,
                collection,
                self._collection(state, column, top.metric).live_count,
                top,
                filt,
                key_parser(state.info.pk_type) is int,
                self.selectivity,
            )
        finally:
            if applied is not None and not applied.done():
                # the filter failed first: the log is still applied, nobody waits for it
                applied.add_done_callback(_consume)
        return found.keys, found.distances

    def _apply_pooled(self, state: TableState) -> None:
        with self.log_pool.connection() as conn, state.lock:
            state.apply_changes(conn)

    async def catch_up(self, info: TableInfo) -> None:
        """Apply the change log of a table the engine holds (of each of its leaves, if it is
        partitioned), now: a frontend that has just written to it and committed calls this,
        so that searches asking to see that write need not read the log themselves."""
        for relid in (info.relid, *info.partitions):
            state = self.tables.get(relid)
            if state is not None:
                await self.run(self._apply_pooled, state)

    def _collection(
        self, state: TableState, column: VectorColumn, metric: Metric
    ) -> VectorCollection:
        """The collection a search of ``column`` by ``metric`` uses (TableState.pick)."""
        name = self._released_name(state, column.attnum, metric.name)
        slot = state.pick(column.attnum, metric.name)
        collection = None if slot is None else state.collections.get(slot)
        if name is not None or collection is None:  # released since search() looked
            raise _not_loaded(name or column.name)
        return collection

    @staticmethod
    def _search(
        collection: VectorCollection,
        query: np.ndarray,
        k: int,
        metric: Metric,
        params: SearchParams,
        where: Where | None = None,
    ) -> tuple[list[Key], list[float]]:
        if k <= 0:
            return [], []
        keys, dists = collection.search(query, candidates(k), metric, params, where=where)
        if where is not None:
            log.debug("filter evaluated in the engine: %s", where.predicate)
        return list(keys), [float(d) for d in dists]

    # -- indexes ----------------------------------------------------------------------

    async def create_index(
        self,
        idef: IndexDef,
        notify: Callable[[str], None] | None = None,
        *,
        concurrently: bool = False,
    ) -> None:
        """CREATE INDEX: wait for the build, or with ``concurrently`` return once it started.

        A background build that fails leaves the index in state 'failed' with its error.
        """
        if idef.table.partitioned:
            await partitions.create_index(self, idef, notify, concurrently=concurrently)
            return
        command = "CREATE INDEX CONCURRENTLY" if concurrently else "CREATE INDEX"
        async with self._table_lock(idef.table.relid):
            got = await self.run(indexes.register, self, idef, command)
            if got is None:
                self.note_ddl()  # (a name may have changed: the same definition again)
                return
            build, spec = got
            if not concurrently:
                build.notify = notify
            task = self._start_build(build, spec, idef.table)
        self.note_ddl()
        if not concurrently:
            await asyncio.shield(task)

    def check_index(self, idef: IndexDef, pending: Sequence[IndexDef] = ()) -> bool:
        """The errors a CREATE INDEX of a transaction block would raise before reading any
        row, but for its name taken by a relation or an index the transaction sees
        (pgvec.index_name_free checks that in the client's transaction): operator class,
        options, primary key, its name among ``pending`` (the transaction's CREATE
        INDEXes, which are checked now and carried out at commit), an index of that
        operator class on a partitioned table's column already. True: IF NOT EXISTS, and
        one of ``pending`` has its name (nothing to do)."""
        IndexSpec.create(
            idef.method,
            Metric.from_opclass(idef.opclass or DEFAULT_OPCLASS, idef.method),
            idef.options,
        )
        _ = idef.column.fixed_dim
        _ = TableState(idef.table, self.table_dir(idef.table.relid)).pk
        with self.pool.connection() as conn:
            indexes.serving_index(conn, idef)
        return indexes.pending_index(idef, pending)

    async def create_committed_index(self, idef: IndexDef) -> None:
        """Build, in the background, an index whose CREATE INDEX ran in a transaction
        block that has now committed. Its table is looked up again: the transaction may
        have made or changed it. A failure is logged and recorded, as for CONCURRENTLY.
        """
        try:
            info = (await self.catalog()).find(idef.table.relid, idef.table.schema, idef.table.name)
            column = None if info is None else info.vectors.get(idef.column.name)
            if info is None or column is None:
                log.warning(
                    "CREATE INDEX %s: column %s of table %s is gone at commit; not built",
                    idef.default_name,
                    idef.column.name,
                    idef.table.name,
                )
                return
            await self.create_index(replace(idef, table=info, column=column))
        except PgvecError as exc:
            log.warning("CREATE INDEX %s after commit failed: %s", idef.default_name, exc)
        except Exception:
            log.exception("CREATE INDEX %s after commit failed", idef.default_name)

    async def reindex(self, schema: str | None, name: str, *, concurrently: bool = False) -> None:
        """REINDEX: build the index again; searches use the previous one meanwhile."""
        row = await self.run(self._find_index, schema, name)
        if row is None:
            raise UndefinedObject(f'index "{name}" does not exist')
        command = "REINDEX CONCURRENTLY" if concurrently else "REINDEX"
        async with self._table_lock(row.relid):
            self._check_idle(row)
            build, spec = await self.run_maintenance(indexes.for_reindex, self, row, command)
            task = self._start_build(build, spec)
        if not concurrently:
            await asyncio.shield(task)

    def _check_idle(self, row: IndexRow) -> None:
        if row.key in self.builds:
            raise ObjectInUse(
                f'index "{row.index_name}" is being built',
                hint="Watch its progress in pgvec.index_progress, or DROP INDEX to cancel it.",
            )

    def _start_build(
        self, build: Build, spec: IndexSpec, info: Any | None = None
    ) -> asyncio.Task[None]:
        if build.key in self.builds:
            raise ObjectInUse(f'index "{build.index_name}" is being built')
        self.builds[build.key] = build
        task = asyncio.create_task(self._build(build, spec, info), name=build.index_name)
        build.task = task
        return task

    async def _build(self, build: Build, spec: IndexSpec, info: Any | None) -> None:
        """Read the column's rows if they are not in memory yet (``info``: its table), then
        build in a worker thread."""
        try:
            if info is not None:
                try:
                    async with self._table_lock(build.relid):
                        await self.run_build(self._load_slot, info, build.slot)
                except Exception as exc:
                    await self.run_build(indexes.fail, self, build, exc)
                    raise
            await self.run_build(indexes.run_build, self, build, spec)
        except Exception:
            if not build.concurrently:
                raise  # the client waiting for it gets the error
            # logged, and recorded in pgvec.indexes by run_build
        finally:
            self.builds.pop(build.key, None)

    def _find_index(self, schema: str | None, name: str) -> IndexRow | None:
        with self.pool.connection() as conn:
            rows = queries.list_indexes(conn)
        return next(
            (r for r in rows if r.named(name) and r.schema_name == (schema or "public")),
            None,
        )

    async def find_index(self, schema: str | None, name: str) -> IndexRow | None:
        """The pgvec index ``schema.name`` (unqualified: in public), if there is one; for
        a standby index (IndexRow.standby), the row of the index it stands by."""
        return await self.run(self._find_index, schema, name)

    async def owns_index(self, schema: str | None, name: str) -> bool:
        if self.template:
            return False
        return await self.run(self._owns_sync, schema, name)

    def _owns_sync(self, schema: str | None, name: str) -> bool:
        with self.pool.connection() as conn:
            return indexes.find(conn, schema, name) is not None

    def set_index_state(self, key: tuple[int, int, str], state: str) -> None:
        """Record ``state`` for the index of ``key`` (table OID, attnum, metric)."""
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE pgvec.indexes SET state = %s, updated_at = now()"
                " WHERE relid = %s AND attnum = %s AND metric = %s",
                (state, *key),
            )

    def index_rows(self) -> list[IndexRow]:
        """Every row of pgvec.indexes."""
        with self.pool.connection() as conn:
            return queries.list_indexes(conn)

    async def drop_index(self, schema: str | None, name: str, *, if_exists: bool) -> None:
        """DROP INDEX. An index that superseded others of its operator class on its
        column gives its place to the last of them, built in the background while the
        dropped one serves (as REINDEX CONCURRENTLY), unless it is of the same method
        and options."""
        row = await self.run(self._find_index, schema, name)
        if row is not None and row.index_name != name:  # a standby index: only a record
            await self.run(indexes.drop, self, schema, name, if_exists)
            return
        if row is not None:
            for leaf_schema, leaf_name in await partitions.leaf_indexes(self, row) or ():
                await self.drop_index(leaf_schema, leaf_name, if_exists=True)
        build = self.builds.get(row.key) if row is not None else None
        if build is not None and build.task is not None:
            build.cancel("the index was dropped")
            await asyncio.wait([build.task])  # stops at its next progress report
        promoted = await self.run(indexes.drop, self, schema, name, if_exists)
        if promoted is not None:
            standby, state, rebuild = promoted
            if rebuild and state != "released":  # (else REINDEX once loaded)
                await self.reindex(schema, standby, concurrently=True)
        elif row is not None:
            self.released.pop(row.key, None)

    # -- load and release -------------------------------------------------------------

    async def release(self, name: str, schema: str | None = None) -> int:
        """Save the index and free its memory (Milvus's release_collection).

        Searches of the column then fail until :meth:`load`; writes to the table go on
        being logged and are applied at load. Returns the index's row count.
        """
        row = await self._lifecycle_row(schema, name)
        leaves = await partitions.leaf_indexes(self, row)
        if leaves is not None:  # a partitioned table's: its leaves'
            return await partitions.set_resident(self, row, leaves, self.release, "released")
        async with self._table_lock(row.relid):
            self._check_idle(row)
            return await self.run_maintenance(residency.release, self, row)

    async def load(self, name: str, schema: str | None = None) -> int:
        """Load a released index from disk, without a rebuild (Milvus's load_collection),
        and apply the writes made meanwhile. Returns the index's row count."""
        row = await self._lifecycle_row(schema, name)
        leaves = await partitions.leaf_indexes(self, row)
        if leaves is not None:
            return await partitions.set_resident(self, row, leaves, self.load, "ready")
        async with self._table_lock(row.relid):
            self._check_idle(row)
            return await self.run_maintenance(residency.load, self, row)

    async def _lifecycle_row(self, schema: str | None, name: str) -> IndexRow:
        row = await self.run(self._find_index, schema, name)
        if row is None:
            raise UndefinedObject(f'index "{name}" does not exist')
        return row

    # -- checkpoints ------------------------------------------------------------------

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.run_maintenance(self.sync_all)
                await self.run_maintenance(self.checkpoint_all, False)
                if time.monotonic() - self._unread_cleaned >= CHECKPOINT_SECONDS:
                    await self.run_maintenance(self.drop_unread_changes)
            except (PgvecError, psycopg.Error, PoolTimeout) as exc:
                if self.lost is not None and await self.lost(self):
                    return
                log.warning("checkpoint failed: %s", exc)
            except Exception:
                log.exception("checkpoint failed")

    def sync_all(self) -> None:
        """Apply the change log of every loaded table not searched lately, so that
        Eventually searches see writes within about a second and the log is drained
        even when nobody searches."""
        now = time.monotonic()
        for state in list(self.tables.values()):
            if not state.collections or now - state.last_apply < SYNC_SECONDS:
                continue
            self._apply_pooled(state)

    def drop_unread_changes(self) -> int:
        """Delete change-log rows no collection will read: those of tracked tables with
        nothing loaded or released (an index dropped while released, say). Loading a
        column reads the table itself, so they would only pile up. Returns how many."""
        with self.pool.connection() as conn, self.loading:
            keep = {relid for relid, state in self.tables.items() if state.collections}
            keep |= {key[0] for key in self.released}
            cur = conn.execute(
                "DELETE FROM pgvec.changes WHERE NOT (relid = ANY(%s::oid[]))", (list(keep),)
            )
            count = cur.rowcount
        self._unread_cleaned = time.monotonic()
        if count:
            log.info("deleted %d change-log rows of tables pgvec does not hold", count)
        return count

    def checkpoint_all(self, force: bool) -> None:
        now = time.monotonic()
        building = {key[0] for key in list(self.builds)}
        for state in list(self.tables.values()):
            if state.relid in building:
                continue  # the build saves the table when it ends
            persisted = indexes.indexed_slots(state)
            compacted = False
            for slot in persisted:
                coll = state.collections[slot]
                spec = coll.index_spec
                if spec is not None and coll.needs_compaction():
                    # deleted and replaced rows pass the threshold: rebuild over live rows
                    log.info("compacting %s column %d (%s)", state.info.name, *slot)
                    coll.build_index(spec)
                    compacted = True
                elif coll.needs_seal():
                    coll.seal()
            if compacted:
                with self.pool.connection() as conn:
                    state.checkpoint(conn, persisted)
                continue
            if not state.applied and not force:
                continue
            due = (
                force
                or not persisted
                or len(state.applied) >= CHECKPOINT_CHANGES
                or now - state.last_save >= CHECKPOINT_SECONDS
            )
            if due and (state.applied or force):
                with self.pool.connection() as conn:
                    state.checkpoint(conn, persisted)
