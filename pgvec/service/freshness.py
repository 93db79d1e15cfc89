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
from psycopg import pq

from pgvec.errors import PgvecError
from pgvec.sync.table import TableState, changes_of, send_changes_read

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Read:
    """One read of one table's log, and the searches waiting for it."""

    state: TableState
    #: True: the log held nothing to apply as of the read's snapshot
    done: asyncio.Future[bool] = field(default_factory=lambda: _loop().create_future())


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


class _Results:
    """The results of the queries sent on one libpq connection, one query at a time,
    taken by a reader that stays registered with the event loop for the connection's
    life. (psycopg's ``AsyncConnection.wait`` adds a reader and removes it again for
    every query: with uvloop about ten system calls a Strong search.)"""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self.conn = conn
        self._pgconn = conn.pgconn
        self._fd = self._pgconn.socket
        self._loop = _loop()
        #: the result of the query on the wire, once a caller asked for it
        self._waiter: asyncio.Future[pq.abc.PGresult] | None = None
        self._last: pq.abc.PGresult | None = None
        self._loop.add_reader(self._fd, self._readable)

    def flush(self) -> None:
        """Push out what was just sent; the rest when the socket takes it."""
        try:
            if self._pgconn.flush():
                self._loop.add_writer(self._fd, self._writable)
        except psycopg.OperationalError as exc:
            self._fail(exc)

    def result(self) -> asyncio.Future[pq.abc.PGresult]:
        """The last result of the query sent."""
        assert self._waiter is None, "one query at a time"
        waiter = self._waiter = self._loop.create_future()
        self._readable()  # its answer may be in libpq's buffer already
        return waiter

    def close(self) -> None:
        self._fail(psycopg.OperationalError("the change-log connection was closed"))
        with contextlib.suppress(Exception):
            self._pgconn.finish()

    def _writable(self) -> None:
        try:
            if not self._pgconn.flush():
                self._loop.remove_writer(self._fd)
        except psycopg.OperationalError as exc:
            self._fail(exc)

    def _readable(self) -> None:
        try:
            self._pgconn.consume_input()
            while self._waiter is not None and not self._pgconn.is_busy():
                res = self._pgconn.get_result()
                if res is not None:
                    self._last = res
                    continue
                waiter, self._waiter = self._waiter, None
                last, self._last = self._last, None
                if not waiter.done():
                    if last is None:
                        waiter.set_exception(psycopg.OperationalError("no result"))
                    else:
                        waiter.set_result(last)
        except psycopg.OperationalError as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        """The connection broke (or closed): whoever waits gets the error; the next read
        connects again."""
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class ChangeReads:
    """The change-log reads of one database, on one connection of their own."""

    def __init__(self, connect: Callable[[], Awaitable[psycopg.AsyncConnection]]) -> None:
        self._connect = connect
        self._conn: _Results | None = None
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
            if self._conn is not None and not self._conn.conn.closed:
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
        send_changes_read(self._conn.conn, relid, *watermark)
        self._conn.flush()
        return read, watermark

    async def _run(self, first: tuple[_Read, tuple[int, int]] | None) -> None:
        read = None
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
        except Exception:  # a bug of pgvec's: no search may wait forever for it
            log.exception("reading the change log failed; reading it from the pool")
            self._drop()
            for waiting in self._next.values():
                if not waiting.done.done():
                    waiting.done.set_result(False)
            self._next.clear()
        finally:
            self._pump = None
            if read is not None and not read.done.done():
                read.done.set_result(False)  # its search reads the log from the pool

    async def _send_next(self) -> tuple[_Read, tuple[int, int]] | None:
        relid = next(iter(self._next))
        try:
            if self._conn is None or self._conn.conn.closed:
                self._drop()
                self._conn = _Results(await self._connect())
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
            rows, xmin = changes_of(await self._conn.result())
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
            conn.close()
