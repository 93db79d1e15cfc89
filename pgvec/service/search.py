"""Running SQL derived from a client's request in that client's own session."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

import psycopg
from psycopg import generators, pq

from pgvec.errors import UpstreamError


class ClientSQL(Protocol):
    """Runs SQL derived from a client's statement in that client's own session (its role,
    snapshot, transaction and settings). The SQL frontend runs it on the client's backend
    connection; anything else runs it on a connection opened as the client."""

    async def rows(
        self,
        sql: str,
        values: Sequence[bytes | None],
        types: Sequence[int],
        formats: Sequence[int],
        *,
        binary: bool,
    ) -> list[list[bytes | None]]:
        """The rows ``sql`` returns, each value in text (or binary, if ``binary``) format;
        raises on PostgreSQL's error."""
        ...


class ConnectionSQL:
    """``ClientSQL`` over a psycopg connection opened as the client."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def rows(
        self,
        sql: str,
        values: Sequence[bytes | None],
        types: Sequence[int],
        formats: Sequence[int],
        *,
        binary: bool,
    ) -> list[list[bytes | None]]:
        return await self.start(sql, values, types, formats, binary=binary)

    def start(
        self,
        sql: str,
        values: Sequence[bytes | None] = (),
        types: Sequence[int] = (),
        formats: Sequence[int] = (),
        *,
        binary: bool = False,
    ) -> Coroutine[Any, Any, list[list[bytes | None]]]:
        """Sends ``sql`` at once and returns the coroutine that reads its rows, so that
        other work runs while it travels. The coroutine must be awaited before anything
        else runs on the connection."""
        pgconn = self._conn.pgconn
        pgconn.send_query_params(
            sql.encode(), list(values), list(types), list(formats), int(binary)
        )
        return self._result()

    async def _result(self) -> list[list[bytes | None]]:
        pgconn = self._conn.pgconn
        results = await self._conn.wait(generators.execute(pgconn))
        res = results[-1]
        if res.status != pq.ExecStatus.TUPLES_OK:
            code = (res.error_field(pq.DiagnosticField.SQLSTATE) or b"XX000").decode()
            msg = (res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode()
            raise UpstreamError(code, msg)
        return [[res.get_value(i, j) for j in range(res.nfields)] for i in range(res.ntuples)]
