"""The core of one pgvec server: the upstream PostgreSQL and a Database per database name.

Databases come and go while pgvec runs. PostgreSQL drops (or renames, or copies) a
database only when no other session is connected to it, and pgvec's own connections
count: so when a client sends ``DROP DATABASE x`` through pgvec, :meth:`Core.let_go`
closes what pgvec holds of ``x`` first (unless other clients are connected to ``x``
through pgvec, in which case PostgreSQL refuses anyway). Once PostgreSQL has dropped it,
its index files are removed. A database dropped behind pgvec's back (``WITH (FORCE)``,
straight to PostgreSQL) is noticed when pgvec's background work on it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import psycopg

from pgvec.service.database import Database
from pgvec.service.upstream import Upstream

log = logging.getLogger(__name__)

#: how long after a DROP DATABASE sent through pgvec its index files wait for the drop
DROP_WAIT = 30.0
#: how long a DROP DATABASE waits for pgvec's sessions on that database to end (a client
#: that just disconnected); PostgreSQL itself waits 5 s for other sessions
SESSIONS_WAIT = 2.0
#: a new client session checks that its database is still the one pgvec holds (not
#: dropped and created again behind pgvec's back) at most this often
CHECK_SECONDS = 1.0


class Core:
    def __init__(self, upstream: Upstream, data_dir: Path) -> None:
        self.upstream = upstream
        self.data_dir = data_dir
        self.index_root = data_dir / "indexes"
        self._databases: dict[str, Database] = {}
        self._opening: dict[str, asyncio.Future[Database]] = {}
        #: client sessions connected through pgvec, by database name
        self._sessions: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._shutting_down = False
        #: when each database was last checked to be the one pgvec holds
        self._checked: dict[str, float] = {}
        #: databases being closed, by name: opened again only once closed
        self._closing_dbs: dict[str, asyncio.Task[None]] = {}

    def opened(self, name: str) -> Database | None:
        """The database ``name`` if pgvec has it open already."""
        return self._databases.get(name)

    async def database(self, name: str) -> Database:
        db = self._databases.get(name)
        if db is not None:
            now = asyncio.get_running_loop().time()
            if now - self._checked.get(name, 0.0) < CHECK_SECONDS:
                return db
            self._checked[name] = now
            if not await self._lost(db):
                return db
        pending = self._opening.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        closing = self._closing_dbs.get(name)
        if closing is not None:  # its files are being written: read them once written
            await asyncio.wait([closing])
            return await self.database(name)
        fut: asyncio.Future[Database] = asyncio.get_running_loop().create_future()
        self._opening[name] = fut
        try:
            db = Database(name, self.upstream.dsn_for(name), self.index_root)
            db.lost = self._lost
            await db.open()
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: the caller re-raises
            raise
        finally:
            del self._opening[name]
        self._databases[name] = db
        fut.set_result(db)
        return db

    @contextlib.contextmanager
    def attached(self, name: str) -> Iterator[None]:
        """Count a client session connected to database ``name`` while it lasts."""
        self._sessions[name] = self._sessions.get(name, 0) + 1
        try:
            yield
        finally:
            self._sessions[name] -= 1
            if not self._sessions[name]:
                del self._sessions[name]

    async def let_go(self, name: str, *, force: bool = False, dropping: bool = True) -> None:
        """A client is about to drop (``dropping``), rename or copy database ``name``:
        close pgvec's connections to it so that PostgreSQL can. Nothing is closed while
        other clients are connected to it through pgvec (PostgreSQL refuses then), unless
        ``force`` (DROP DATABASE ... WITH (FORCE) disconnects them)."""
        db = self._databases.get(name)
        if db is None or db.template:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SESSIONS_WAIT
        while self._sessions.get(name) and not force and loop.time() < deadline:
            await asyncio.sleep(0.05)  # a client that just disconnected
        if self._sessions.get(name) and not force:
            log.info("database %s has clients connected through pgvec: not closing it", name)
            return
        if self._databases.get(name) is not db:
            return  # closed meanwhile
        log.info("closing database %s for a DROP/ALTER/CREATE DATABASE", name)
        await self._close(db, checkpoint=True)
        if dropping:
            self._spawn(self._remove_files(db, DROP_WAIT))

    async def _close(self, db: Database, *, checkpoint: bool) -> None:
        """Forget ``db`` and close it; errors are logged (the statement goes on)."""
        if self._databases.get(db.name) is db:
            del self._databases[db.name]
        task = asyncio.create_task(db.close(checkpoint=checkpoint))
        self._closing_dbs[db.name] = task
        try:
            await asyncio.wait([task])
            if task.exception() is not None:
                log.error("closing database %s: %s", db.name, task.exception())
        finally:
            if self._closing_dbs.get(db.name) is task:
                del self._closing_dbs[db.name]

    async def gone(self, db: Database) -> bool:
        """Whether the database of ``db`` is gone (a client's connection found another
        database of that name): then pgvec has let go of it, as of :meth:`_lost`."""
        return await self._lost(db)

    async def _lost(self, db: Database) -> bool:
        """Whether the database of ``db`` is gone (dropped, or renamed): then pgvec lets
        go of it, and removes its files if it was dropped. Asked when its background
        work fails, and by new client sessions."""
        try:
            async with await psycopg.AsyncConnection.connect(
                self.upstream.dsn, autocommit=True, connect_timeout=5
            ) as conn:
                cur = await conn.execute(
                    "SELECT datname::text FROM pg_database WHERE oid = %s::oid", (db.oid,)
                )
                row = await cur.fetchone()
        except psycopg.Error:
            return False  # PostgreSQL is down, say: keep trying
        if row is not None and row[0] == db.name:
            return False
        log.info("database %s is gone (dropped or renamed): letting go of it", db.name)
        if self._databases.get(db.name) is db:
            del self._databases[db.name]
        self._spawn(self._retire(db, dropped=row is None))
        return True

    async def _retire(self, db: Database, *, dropped: bool) -> None:
        # no checkpoint: the change log is replayed if the database comes back (renamed)
        await self._close(db, checkpoint=False)
        if dropped:
            await self._remove_files(db, 0.0)

    async def _remove_files(self, db: Database, wait: float) -> None:
        """Remove the index files of ``db`` once its database is dropped (its OID absent
        from pg_database), checking for up to ``wait`` seconds: if the DROP failed, the
        files stay for the next time the database is served."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        directory = self.index_root / str(db.oid)
        try:
            async with await psycopg.AsyncConnection.connect(
                self.upstream.dsn, autocommit=True, connect_timeout=5
            ) as conn:
                while True:
                    cur = await conn.execute(
                        "SELECT 1 FROM pg_database WHERE oid = %s::oid", (db.oid,)
                    )
                    if await cur.fetchone() is None:
                        break
                    if loop.time() >= deadline or self._shutting_down:
                        return
                    await asyncio.sleep(0.2)
        except psycopg.Error as exc:
            log.info("cannot tell whether database %s was dropped: %s", db.name, exc)
            return
        if db.oid and directory.exists():
            log.info("database %s was dropped: removing its index files", db.name)
            await asyncio.to_thread(shutil.rmtree, directory, True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._shutting_down = True  # cuts the waits for dropped databases short
        databases = list(self._databases.values())
        self._databases.clear()
        results = await asyncio.gather(*(db.close() for db in databases), return_exceptions=True)
        for db, result in zip(databases, results, strict=True):
            if isinstance(result, BaseException):
                log.error("closing database %s: %s", db.name, result)
        pending = [*self._tasks, *self._closing_dbs.values()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
