"""The search settings ALTER ROLE / ALTER DATABASE ... SET give sessions, and the ones
pgvec gives a session at startup.

pgvec adds its settings to each client's startup packet at their defaults
(:data:`pgvec.proxy.settings.DEFAULTS`), so that SHOW and current_setting() answer before
any SET and RESET, RESET ALL and DISCARD ALL return to them, as with pgvector's real
settings. A startup parameter outranks a role's or database's setting in PostgreSQL, so
those configured there are left out; the ones the client sets itself (``options=-c``, a
startup parameter of its own) too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from psycopg_pool import ConnectionPool

from pgvec.proxy.settings import DEFAULTS

#: how long what pg_db_role_setting says is trusted without DDL seen through the proxy
TTL = 5.0

_SQL = """
SELECT r.rolname::text, s.setdatabase <> 0, s.setconfig
FROM pg_db_role_setting s
LEFT JOIN pg_roles r ON r.oid = s.setrole
WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
"""

#: (role or None for every role, database-specific, name, value)
_Entry = tuple[str | None, bool, str, str]


def session_defaults(params: Mapping[str, str], configured: Mapping[str, str]) -> dict[str, str]:
    """The settings to add to a startup packet with ``params``: every default the client
    does not set itself, and that its role or database does not configure."""
    options = params.get("options", "").lower()
    return {
        name: value
        for name, value in DEFAULTS.items()
        if name not in params and name not in options and name not in configured
    }


def _settings_of(entries: list[_Entry], role: str) -> dict[str, str]:
    """PostgreSQL's order: database and role, then role, then database, then all."""
    best: dict[str, tuple[int, str]] = {}
    for who, in_db, name, value in entries:
        if who is not None and who != role:
            continue
        rank = (2 if who is not None else 0) + int(in_db)
        if name not in best or rank > best[name][0]:
            best[name] = (rank, value)
    return {name: value for name, (_, value) in best.items()}


class RoleSettings:
    """What pg_db_role_setting sets of pgvec's settings in one database, cached."""

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self._pool = pool
        self._entries: list[_Entry] | None = None
        self._at = 0.0
        self._generation = 0

    def invalidate(self) -> None:
        self._at = 0.0
        self._generation += 1

    def known(self, role: str) -> dict[str, str] | None:
        """The settings configured for ``role``'s sessions as last read (perhaps stale:
        they seldom change); None if never read."""
        if self._entries is None:
            return None
        return _settings_of(self._entries, role)

    async def get(self, role: str) -> dict[str, str]:
        """The settings configured for ``role``'s sessions, read again when stale."""
        if self._entries is not None and time.monotonic() - self._at < TTL:
            return _settings_of(self._entries, role)
        at, generation = time.monotonic(), self._generation
        entries = await asyncio.to_thread(self._read)
        if generation == self._generation:  # not invalidated while it was read
            self._entries, self._at = entries, at
        return _settings_of(entries, role)

    def _read(self) -> list[_Entry]:
        entries: list[_Entry] = []
        with self._pool.connection() as conn:
            rows = conn.execute(_SQL).fetchall()
        for role, in_db, config in rows:
            for item in config or ():
                name, _, value = str(item).partition("=")
                if name.lower() in DEFAULTS:
                    entries.append((role, bool(in_db), name.lower(), value))
        return entries
