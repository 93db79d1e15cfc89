"""Statements pgvec runs for a client on the client's own backend connection.

Everything pgvec derives from client SQL (the keys a WHERE clause admits, the candidates
a post-filter probe keeps, the rows the client's open transaction wrote) runs here, in
the client's session: with its role, its snapshot and open transaction, its search_path,
statement_timeout and ``SET app.*`` settings. Grants and row-level security therefore
decide what pgvec sees for the client exactly as they decide what the client sees.

The statement goes out as a named prepared statement (the client's unnamed statement and
portal are left alone), bound, executed and closed, followed by

* a **Flush** inside an extended-protocol batch: the server answers at once and the
  batch goes on, in the client's implicit or explicit transaction;
* a **Sync** before a simple Query: the Query starts after it, as it would have.

An error is PostgreSQL's own: :class:`StatementFailed` carries its ErrorResponse, which the
session relays to the client in place of its statement's replies. Inside an
extended-protocol batch the server then skips to the client's Sync, as it would have
after the client's own statement failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pgvec.proxy.relay import Pending
from pgvec.wire import messages as m
from pgvec.wire.framing import Message

if TYPE_CHECKING:
    from pgvec.proxy.relay import Relay, Writer

#: the prepared statement and portal pgvec uses on a client's connection
STATEMENT = "__pgvec_stmt"


class StatementFailed(Exception):
    """PostgreSQL refused a statement pgvec ran for the client; ``response`` is the
    ErrorResponse message to relay."""

    def __init__(self, response: bytes, sqlstate: str, message: str) -> None:
        super().__init__(f"{sqlstate}: {message}")
        self.response = response
        self.sqlstate = sqlstate


class StatementSkipped(Exception):
    """The server skipped the statement: an earlier message of the client's batch failed,
    and everything up to the client's Sync is skipped (the client's statement too)."""


class ClientBackend:
    """Runs statements on the backend connection a client's session relays to."""

    def __init__(self, server: Writer, relay: Relay, *, sync: bool) -> None:
        self._server = server
        self._relay = relay
        #: end with Sync (before a simple Query) rather than Flush (inside a batch)
        self._sync = sync

    async def rows(
        self,
        sql: str,
        values: Sequence[bytes | None],
        types: Sequence[int],
        formats: Sequence[int],
        *,
        binary: bool,
    ) -> list[list[bytes | None]]:
        """The rows ``sql`` returns, each value in text (or binary) format."""
        relay = self._relay
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Message]] = loop.create_future()
        # what a batch that failed left behind is closed first (no error if nothing)
        closes = m.Close("P", STATEMENT).encode() + m.Close("S", STATEMENT).encode()
        relay.expect(Pending(frozenset({b"3"}), extended=True, transform=_drop))
        relay.expect(Pending(frozenset({b"3"}), extended=True, transform=_drop))
        entry = Pending(
            frozenset({b"Z"} if self._sync else {b"3"}),
            extended=not self._sync,
            capture=[],
            done=done,
            is_sync=self._sync,
        )
        relay.expect(entry)
        if not self._sync:  # the second Close's reply
            relay.expect(Pending(frozenset({b"3"}), extended=True, transform=_drop))
        bind = m.Bind(STATEMENT, STATEMENT, list(formats), list(values), [int(binary)])
        self._server.write(
            b"".join(
                [
                    closes,
                    m.Parse(STATEMENT, sql, list(types)).encode(),
                    bind.encode(),
                    m.execute(STATEMENT),
                    closes,
                    m.SYNC if self._sync else m.FLUSH,
                ]
            )
        )
        replies = await done
        if entry.skipped:
            raise StatementSkipped(sql)
        rows: list[list[bytes | None]] = []
        for reply in replies:
            if reply.type == b"D":
                rows.append(m.data_row(reply.body))
            elif reply.type == b"E":
                fields = m.error_fields(reply.body)
                raise StatementFailed(reply.raw, fields.get("C", "XX000"), fields.get("M", ""))
        return rows


def _drop(_msg: Message) -> bytes | None:
    return None
