"""The core of one pgvec server: the upstream PostgreSQL and a Database per database name."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from pgvec.proxy.upstream import Upstream
from pgvec.service.database import Database

log = logging.getLogger(__name__)


class Core:
    def __init__(self, upstream: Upstream, data_dir: Path) -> None:
        self.upstream = upstream
        self.data_dir = data_dir
        self.index_root = data_dir / "indexes"
        self._databases: dict[str, Database] = {}
        self._opening: dict[str, asyncio.Future[Database]] = {}

    async def database(self, name: str) -> Database:
        db = self._databases.get(name)
        if db is not None:
            return db
        pending = self._opening.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Database] = asyncio.get_running_loop().create_future()
        self._opening[name] = fut
        try:
            db = Database(name, self.upstream.dsn_for(name), self.index_root)
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

    async def close(self) -> None:
        databases = list(self._databases.values())
        self._databases.clear()
        results = await asyncio.gather(*(db.close() for db in databases), return_exceptions=True)
        for db, result in zip(databases, results, strict=True):
            if isinstance(result, BaseException):
                log.error("closing database %s: %s", db.name, result)
