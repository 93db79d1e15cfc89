"""Strong searches' change-log reads, shared between concurrent searches.

A Strong search must see every change committed before it began, so it reads the
table's change log (``pgvec.changes``) in a snapshot taken after it began. One read
serves every search of the same table that began before the read was sent: searches that
arrive while a read is on the wire join the next one, which goes out as soon as the
connection is free. However many sessions search at once, a table's log is read at most
once per round trip, and no search queues behind another's read.

The first read is sent at once, from the caller, so that the engine searches while its
answer travels (``Database._search_fresh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psycopg

from pgvec.errors import PgvecError
from pgvec.sync.table import TableState, receive_changes_read, send_changes_read

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Read:
    """One read of one table's log, and the searches waiting for it."""

    state: TableState
    #: True: the log held nothing to apply as of the read's snapshot
    done: asyncio.Future[bool] = field(default_factory=lambda: _loop().create_future())


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


class ChangeReads:
    """The change-log reads of one database, on one connection of their own."""

    def __init__(self, connect: Callable[[], Awaitable[psycopg.AsyncConnection]]) -> None:
        self._connect = connect
        self._conn: psycopg.AsyncConnection | None = None
        #: per table, the read searches join: not sent yet
        self._next: dict[int, _Read] = {}
        #: the task sending and receiving reads; None while the connection is idle
        self._pump: asyncio.Task[None] | None = None

    def request(self, state: TableState) -> asyncio.Future[bool]:
        """A read of ``state``'s log sent after this call: resolves True if it found
        nothing to apply (``TableState.note_fresh``), False if the caller must apply the
        log (or if the read failed)."""
        read = self._next.get(state.relid)
        if read is None:
            read = self._next[state.relid] = _Read(state)
        if self._pump is None:
            first = None
            if self._conn is not None and not self._conn.closed:
                first = self._send(read.state.relid)  # now: the engine searches meanwhile
            self._pump = asyncio.create_task(self._run(first))
        return read.done

    def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        self._drop()
        for read in self._next.values():
            if not read.done.done():
                read.done.set_result(False)
        self._next.clear()

    def _send(self, relid: int) -> tuple[_Read, tuple[int, int]]:
        read = self._next.pop(relid)
        watermark = (read.state.seen_seq, read.state.seen_xmin)
        assert self._conn is not None
        send_changes_read(self._conn, relid, *watermark)
        return read, watermark

    async def _run(self, first: tuple[_Read, tuple[int, int]] | None) -> None:
        try:
            sent = first
            while sent is not None or self._next:
                if sent is None:
                    sent = await self._send_next()
                    if sent is None:
                        continue
                read, watermark = sent
                sent = None
                fresh = await self._receive(read.state, watermark)
                if not read.done.done():
                    read.done.set_result(fresh)
        finally:
            self._pump = None

    async def _send_next(self) -> tuple[_Read, tuple[int, int]] | None:
        relid = next(iter(self._next))
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await self._connect()
            return self._send(relid)
        except (psycopg.Error, PgvecError, OSError) as exc:
            log.info("reading the change log failed (%s); reading it from the pool", exc)
            self._drop()
            read = self._next.pop(relid, None)
            if read is not None and not read.done.done():
                read.done.set_result(False)
            return None

    async def _receive(self, state: TableState, watermark: tuple[int, int]) -> bool:
        assert self._conn is not None
        try:
            rows, xmin = await receive_changes_read(self._conn)
        except asyncio.CancelledError:  # cut mid-read: the connection's state is unknown
            self._drop()
            raise
        except (psycopg.Error, PgvecError) as exc:
            log.info("reading the change log failed (%s); reading it from the pool", exc)
            self._drop()
            return False
        return state.note_fresh(rows, xmin, watermark)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()
