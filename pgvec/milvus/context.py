"""Who is calling and where: the Milvus database and PostgreSQL role of one RPC.

pymilvus names the database in the ``dbname`` header and sends credentials as
``authorization: base64(user:password)`` (a token is ``user:password`` too). A call with
credentials runs as that PostgreSQL role, authenticated by PostgreSQL itself with that
password; a call without runs as pgvec's own upstream role where PostgreSQL lets
anyone in as that role without a password (trust, as the embedded server does), like a
Milvus without authentication, and is refused with Milvus's authentication error where
it does not: a Milvus client without credentials may do what a SQL client without
credentials may, no more. Connections are pooled per (role, password).

``root``, Milvus's built-in superuser (``token="root:Milvus"`` in most of Milvus's
documents), is the PostgreSQL role of that name where there is one, and pgvec's upstream
role where there is none (looked up at most once a second), with the password the
caller gave: PostgreSQL still decides
whether that password lets it in, so it may do no more than a caller without
credentials may where PostgreSQL trusts it, and nothing where it checks passwords and
the password is wrong.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from pgvec.milvus.status import AuthenticationFailed

#: connections per (role, password) pool
POOL_SIZE = 8
#: an unused pool's connections are closed after this many seconds
POOL_MAX_IDLE = 60.0
APPLICATION = "pgvec milvus"
#: the password of a caller that gave none (see Connections._pool)
_NO_PASSWORD = secrets.token_urlsafe(32)
#: Milvus's built-in superuser
ROOT = "root"
#: seconds before pgvec looks again whether PostgreSQL has a role named root
ROOT_RECHECK = 1.0


@dataclass(frozen=True)
class Caller:
    db: str  # Milvus database name ("" or "default": public)
    user: str | None
    password: str | None

    @classmethod
    def of(cls, context: grpc.aio.ServicerContext, request: Any) -> Caller:
        headers = {k: v for k, v in (context.invocation_metadata() or ())}
        db = str(headers.get("dbname") or getattr(request, "db_name", "") or "")
        user = password = None
        auth = headers.get("authorization")
        if auth:
            try:
                text = base64.b64decode(str(auth)).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise AuthenticationFailed("the authorization header is not base64") from None
            user, _, password = text.partition(":")
            if not user:
                user = password = None
        return cls(db, user, password)


class Clock:
    """Hybrid timestamps as Milvus hands them out (physical ms << 18 | logical), strictly
    increasing; pymilvus sends the last one back as a search's guarantee timestamp."""

    LOGICAL_BITS = 18

    def __init__(self) -> None:
        self._last = 0

    def now(self) -> int:
        ts = int(time.time() * 1000) << self.LOGICAL_BITS
        self._last = max(ts, self._last + 1)
        return self._last


class Connections:
    """Pools of connections to one PostgreSQL database, one pool per caller identity."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pools: dict[tuple[str | None, str], AsyncConnectionPool] = {}
        self._lock = asyncio.Lock()
        self._root: tuple[float, str | None] = (-ROOT_RECHECK, None)  # (when, role)
        named = conninfo_to_dict(dsn).get("user")
        self._upstream_user = None if named is None else str(named)

    async def _pool(self, caller: Caller) -> AsyncConnectionPool:
        digest = hashlib.sha256((caller.password or "").encode()).hexdigest()
        role = await self._role(caller.user)
        key = (role, digest)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        async with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                return pool
            # A caller without credentials is pgvec's upstream role, but never with that
            # role's password: PostgreSQL lets it in only where it lets anyone in as that
            # role (trust), as it would a SQL client sending none. An empty password would
            # make libpq fall back to the server's PGPASSWORD or .pgpass: so an
            # unguessable one, which trust ignores and password methods refuse.
            conninfo = make_conninfo(self.dsn, user=role, password=caller.password or _NO_PASSWORD)
            # the first connection proves the credentials before the pool is kept
            try:
                conn = await psycopg.AsyncConnection.connect(conninfo, application_name=APPLICATION)
            except psycopg.OperationalError as exc:
                raise AuthenticationFailed(
                    f"fail to connect as user {caller.user or '(default)'}: "
                    f"{str(exc).strip().splitlines()[-1]}"
                ) from None
            await conn.close()
            pool = AsyncConnectionPool(
                conninfo,
                min_size=0,
                max_size=POOL_SIZE,
                max_idle=POOL_MAX_IDLE,
                kwargs={"autocommit": True, "application_name": APPLICATION},
                open=False,
            )
            await pool.open()
            self._pools[key] = pool
            return pool

    async def _role(self, user: str | None) -> str | None:
        """The PostgreSQL role a caller connects as: its user's; pgvec's upstream role
        for a caller without credentials, and for Milvus's ``root`` where PostgreSQL
        has no role of that name."""
        upstream = self._upstream_user
        if user is None:
            return upstream
        if user != ROOT:
            return user
        checked, role = self._root
        if time.monotonic() - checked < ROOT_RECHECK:
            return role
        try:
            conn = await psycopg.AsyncConnection.connect(self.dsn, application_name=APPLICATION)
        except psycopg.OperationalError:
            return user  # (and its own connection fails with its own error)
        try:
            cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
            role = user if await cur.fetchone() is not None else upstream
        finally:
            await conn.close()
        self._root = (time.monotonic(), role)
        return role

    @asynccontextmanager
    async def connection(self, caller: Caller) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        pool = await self._pool(caller)
        async with pool.connection() as conn:
            yield conn

    async def check(self, caller: Caller) -> None:
        await self._pool(caller)

    async def verify(self, user: str, password: str) -> bool:
        """Whether PostgreSQL lets ``user`` in with ``password`` (always, where its
        pg_hba.conf trusts the connection instead of checking passwords)."""
        conninfo = make_conninfo(self.dsn, user=user, password=password)
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo, application_name=APPLICATION)
        except psycopg.OperationalError:
            return False
        await conn.close()
        return True

    async def forget(self, user: str) -> None:
        """Close ``user``'s pools (its password changed, or it is dropped): its next call
        authenticates afresh."""
        async with self._lock:
            pools = [self._pools.pop(k) for k in list(self._pools) if k[0] == user]
        for pool in pools:
            await pool.close()

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()
