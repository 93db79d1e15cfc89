"""What the SQL frontend keeps of each database: a Rewriter over its catalog, and the
settings ALTER ROLE / ALTER DATABASE ... SET give its sessions.

The core reads the catalog (:meth:`Database.catalog
<pgvec.service.database.Database.catalog>`) and knows nothing of SQL rewriting; the
Rewriter built over each snapshot, with its cache of decisions, lives here.
"""

from __future__ import annotations

import weakref

from pgvec.catalog.models import CatalogSnapshot
from pgvec.proxy.role_settings import RoleSettings
from pgvec.rewrite.catalog import Catalog
from pgvec.rewrite.rewriter import Rewriter
from pgvec.service.database import Database


class _Passthrough(Catalog):
    """The catalog of a database pgvec only relays: no statement concerns it."""

    def may_concern(self, sql: str) -> bool:
        return False


_PASSTHROUGH = Rewriter(_Passthrough({}))


class SqlCatalog:
    """The SQL frontend's view of one database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._snapshot: CatalogSnapshot | None = None
        self._rewriter = _PASSTHROUGH
        self._role_settings = RoleSettings(db.pool)
        self._ddl_generation = db.ddl_generation

    async def rewriter(self) -> Rewriter:
        """A Rewriter over the database's catalog as last read."""
        if self._db.template:
            return _PASSTHROUGH
        return self._over(await self._db.catalog())

    def rewriter_now(self) -> Rewriter | None:
        """What :meth:`rewriter` would return without reading the catalog, if it would;
        None when the catalog must be read first."""
        if self._db.template:
            return _PASSTHROUGH
        snapshot = self._db.catalog_now()
        return None if snapshot is None else self._over(snapshot)

    def _over(self, snapshot: CatalogSnapshot) -> Rewriter:
        if snapshot is not self._snapshot:
            self._snapshot = snapshot
            self._rewriter = Rewriter(
                Catalog.from_tables(
                    [*snapshot.tables.values(), *snapshot.array_tables.values()],
                    snapshot.version,
                    snapshot.volatile,
                    snapshot.others,
                )
            )
        return self._rewriter

    @property
    def role_settings(self) -> RoleSettings:
        """pgvec's settings as pg_db_role_setting gives them, read again after DDL."""
        if self._ddl_generation != self._db.ddl_generation:
            self._ddl_generation = self._db.ddl_generation
            self._role_settings.invalidate()
        return self._role_settings


_CATALOGS: weakref.WeakKeyDictionary[Database, SqlCatalog] = weakref.WeakKeyDictionary()


def sql_catalog(db: Database) -> SqlCatalog:
    """The SQL frontend's view of ``db``, made at first use."""
    found = _CATALOGS.get(db)
    if found is None:
        found = _CATALOGS[db] = SqlCatalog(db)
    return found
