"""Backend -> client relay, with an ordered queue of what each reply belongs to.

PostgreSQL answers requests strictly in order, so the proxy keeps one FIFO of
``Pending`` entries, one per request it sent upstream (or per synthesized reply). The
relay task reads the server's messages, matches each to the head of the queue, and
forwards, transforms, drops or captures it. After an ErrorResponse in the extended
protocol the server skips everything up to the next Sync, so the relay drops the entries
of the skipped requests too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pgvec.proxy.context import without_pgvec_context
from pgvec.proxy.positions import relocated
from pgvec.proxy.textout import VectorOutput
from pgvec.wire import messages as m
from pgvec.wire.framing import FrameBuffer, Message

log = logging.getLogger(__name__)

# Messages the server may send at any time, unrelated to the request being answered.
ASYNC_TYPES = frozenset({b"N", b"A", b"S"})
#: replies the relay takes note of (Relay._note): ParseComplete, BindComplete,
#: CloseComplete, CommandComplete, ReadyForQuery
_NOTED = frozenset({b"1", b"2", b"3", b"C", b"Z"})

Transform = Callable[[Message], bytes | None]


class Writer(Protocol):
    """Where bytes for the client go: its transport."""

    def write(self, data: bytes) -> None: ...


@dataclass(eq=False, slots=True)
class Pending:
    """What the next replies from the server belong to."""

    #: message types that end this entry's replies
    ends: frozenset[bytes]
    #: extended-protocol request (subject to skip-to-Sync after an error); for an
    #: ``emit``, a reply pgvec makes to a client's extended-protocol message, which is
    #: skipped the same way
    extended: bool = False
    #: maps a reply to the bytes sent to the client (None drops it); default: forward
    transform: Transform | None = None
    #: collect the replies here instead of forwarding them
    capture: list[Message] | None = None
    #: resolved with the captured/handled replies when the entry ends
    done: asyncio.Future[list[Message]] | None = None
    #: bytes to send to the client in order, without waiting for any server reply
    emit: bytes | None = None
    is_sync: bool = False
    #: the portal whose rows these replies carry (Query: the unnamed one), if any
    portal: str | None = None
    #: the prepared statement a Parse, Close or Describe of a statement is about
    statement: str | None = None
    #: a Bind's statement and result format codes: the portal's rows are converted as
    #: that statement's description says (VectorOutput.bound)
    bind: tuple[str, list[int]] | None = None
    #: maps a ParameterDescription's type OIDs to the ones the client sees
    params: Callable[[list[int]], list[int]] | None = None
    #: the server skipped this request: an earlier one of its Sync batch failed
    skipped: bool = False
    #: for an ``emit``: called with the transaction status of the last ReadyForQuery
    #: when the entry is reached (every reply before it relayed)
    reached: Callable[[bytes], None] | None = None
    #: names of result columns that are vectors computed by expressions
    vector_names: frozenset[str] = frozenset()
    #: the statement as sent and as the client wrote it, where pgvec rewrote it: an
    #: error's position is moved from the one to the other (positions.relocated)
    texts: tuple[str, str] | None = None
    #: a simple Query's command tags as the client's statements give them, by the
    #: order of their CommandCompletes, where pgvec sent another statement in a
    #: statement's place (None: the server's own tag)
    tags: tuple[bytes | None, ...] | None = None
    #: CommandCompletes relayed so far (for ``tags``)
    completed: int = 0


def ends_for(type_: bytes) -> frozenset[bytes]:
    return _ENDS[type_]


_ENDS = {
    b"P": frozenset({b"1"}),
    b"B": frozenset({b"2"}),
    b"D": frozenset({b"T", b"n"}),
    b"E": frozenset({b"C", b"I", b"s"}),
    b"C": frozenset({b"3"}),
    b"S": frozenset({b"Z"}),
    b"Q": frozenset({b"Z"}),
    b"F": frozenset({b"Z"}),
}


class Relay:
    """Forwards server replies to the client according to the pending queue."""

    def __init__(self, client: Writer, output: VectorOutput | None = None) -> None:
        #: where the client's bytes go (its transport)
        self._client = client
        self._output = output
        self._buf = FrameBuffer()
        self._queue: deque[Pending] = deque()
        self._skipping = False
        #: transaction status from the last ReadyForQuery: I, T or E
        self.txn_status = b"I"
        #: the tag of the last CommandComplete (COMMIT, or ROLLBACK for a transaction
        #: that ended rolled back)
        self.last_tag = b""
        #: ErrorResponses relayed so far (did a Query fail?)
        self.errors = 0
        self.closed = asyncio.Event()

    # -- used by the frontend -------------------------------------------------------

    @property
    def output(self) -> VectorOutput | None:
        return self._output

    def expect(self, entry: Pending) -> None:
        self._queue.append(entry)
        if self._skipping:
            self._write_skipped()

    def expect_request(
        self,
        type_: bytes,
        transform: Transform | None = None,
        portal: str | None = None,
        *,
        statement: str | None = None,
        bind: tuple[str, list[int]] | None = None,
        params: Callable[[list[int]], list[int]] | None = None,
        vector_names: frozenset[str] = frozenset(),
        texts: tuple[str, str] | None = None,
        tags: tuple[bytes | None, ...] | None = None,
    ) -> None:
        # positional (ends, extended, transform, capture, done, emit, is_sync, portal,
        # statement, bind, params): the relay's busiest call, and keywords cost twice
        entry = Pending(
            _ENDS[type_], type_ not in (b"Q", b"F"), transform, None, None, None,
            type_ == b"S", portal, statement, bind, params,
        )  # fmt: skip
        if vector_names:
            entry.vector_names = vector_names
        if texts is not None and texts[0] != texts[1]:
            entry.texts = texts
        if tags is not None:
            entry.tags = tags
        self._queue.append(entry)
        if self._skipping:
            self._write_skipped()

    def emit(self, data: bytes, *, extended: bool = False) -> None:
        """Send bytes to the client after every reply still owed to it. ``extended``:
        they answer a client's extended-protocol message, so they are dropped, as the
        server's own replies are, while the server skips to the next Sync after an error.
        """
        if not self._queue and not self._skipping:
            self._client.write(data)
        else:
            self.expect(Pending(frozenset(), extended=extended, emit=data))

    @property
    def skipping(self) -> bool:
        """Whether the server is skipping messages up to the next Sync after an error."""
        return self._skipping

    def idle(self) -> bool:
        return not self._queue

    async def wait_idle(self) -> None:
        """Wait until every reply owed to the client has been relayed."""
        if self._queue and self._queue[0].emit is not None and not self._skipping:
            # pgvec's own replies (and markers) at the head wait for no server message
            out: list[bytes] = []
            self._flush_emits(out)
            if out:
                self._client.write(b"".join(out))
        if not self._queue:
            return
        done: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()
        self._queue.append(Pending(frozenset(), emit=b"", done=done))
        await done

    # -- the server's bytes (transports.Receiver) -------------------------------------

    def received(self, data: bytes) -> None:
        """Bytes from the server: relay the messages they complete."""
        if self.closed.is_set():
            return
        buf = self._buf
        buf.feed(data)
        out: list[bytes] = []
        try:
            self._relay(buf, out)
        except Exception as exc:
            log.exception("relay failed; closing the session")
            self.lost(exc)
            return
        finally:
            if out:
                self._client.write(b"".join(out))

    def lost(self, exc: Exception | None) -> None:
        """The server connection ended (or the relay failed): what waits for a reply
        gets an error, and the session ends (ProxyServer waits on ``closed``)."""
        if exc is not None:
            log.debug("server connection lost: %s", exc)
        self.closed.set()
        for entry in self._queue:
            if entry.done is not None and not entry.done.done():
                entry.done.set_exception(ConnectionError("server connection closed"))
        self._queue.clear()

    def _flush_emits(self, out: list[bytes]) -> None:
        q = self._queue
        while q and q[0].emit is not None:
            entry = q.popleft()
            if not (entry.extended and self._skipping):
                out.append(entry.emit or b"")
            if entry.reached is not None:
                entry.reached(self.txn_status)
            self._finish(entry)

    def _skip(self, out: list[bytes]) -> None:
        """After an error in the extended protocol the server ignores every message up to
        the next Sync: end the entries of those messages, with nothing for the client
        (pgvec's own replies to them included), up to the Sync's entry."""
        q = self._queue
        while q and not q[0].is_sync:
            entry = q.popleft()
            if entry.emit is not None and not entry.extended:
                out.append(entry.emit)
            else:
                entry.skipped = True
            if entry.reached is not None:
                entry.reached(self.txn_status)
            self._finish(entry)

    def _write_skipped(self) -> None:
        out: list[bytes] = []
        self._skip(out)
        if out:
            self._client.write(b"".join(out))

    def _relay(self, buf: FrameBuffer, out: list[bytes]) -> None:
        """Relay the complete messages in ``buf``. Those :meth:`_dispatch` would pass on
        unchanged go out as the bytes they came in, runs of them in one piece, with the
        same bookkeeping and no :class:`Message` built; the others go to _dispatch."""
        q = self._queue
        output = self._output
        while frames := buf.frames():
            start = 0  # [start, begin): plain messages not yet in out
            for t, begin, end in frames:
                head = q[0] if q else None
                if head is None:
                    plain = t != b"E"
                elif (
                    self._skipping
                    or head.emit is not None
                    or head.capture is not None
                    or head.transform is not None
                    or head.tags is not None
                    or t == b"E"
                ):
                    plain = False
                elif t in ASYNC_TYPES:
                    plain = True
                elif output is None:
                    plain = not (t == b"t" and head.params is not None)
                elif t == b"D":
                    plain = head.portal is None or not output.converts(head.portal)
                elif t == b"T" and (head.portal is not None or head.statement is not None):
                    # a RowDescription without vectors: nothing of the portal or
                    # statement is converted
                    plain = output.as_is(buf.body(begin, end), head.vector_names)
                    if plain and head.portal is not None:
                        output.forget(head.portal)
                    elif plain and head.statement is not None:
                        output.forget_statement(head.statement)
                else:
                    plain = not (t == b"t" and head.params is not None)
                if not plain:
                    if start < begin:
                        out.append(buf.span(start, begin))
                    self._dispatch(Message(t, buf.body(begin, end)), out)
                    start = end
                    continue
                if head is None or t in ASYNC_TYPES:
                    continue
                if t in _NOTED:
                    self._note(head, t, buf.body(begin, end))
                if t in head.ends:
                    self._finish(q.popleft())
                    if q and q[0].emit is not None:
                        out.append(buf.span(start, end))
                        start = end
                        self._flush_emits(out)
            if start < end:
                out.append(buf.span(start, end))
            buf.consume(end)
            if len(buf) < 5:
                break

    def _dispatch(self, msg: Message, out: list[bytes]) -> None:
        log.debug("server %s, %d pending", msg.type, len(self._queue))
        t = msg.type
        q = self._queue
        if self._skipping:
            self._skip(out)
        self._flush_emits(out)
        if t == b"E":
            msg = Message(t, without_pgvec_context(msg)[5:])
            self.errors += 1
        if not q:
            out.append(msg.raw)
            return
        head = q[0]
        if t == b"E" and head.texts is not None:
            msg = relocated(msg, *head.texts)
        if t in ASYNC_TYPES:
            # NOTICEs of a statement pgvec runs for the client come again with the
            # client's own statement; ParameterStatus and notifications are the client's
            if not (t == b"N" and head.capture is not None):
                out.append(msg.raw)
            return
        if t == b"C" and head.tags is not None:
            msg = _retagged(head, msg)
        if head.capture is not None:
            head.capture.append(msg)
        elif head.transform is not None:
            replaced = head.transform(msg)
            if replaced is not None:
                out.append(replaced)
        elif self._output is not None and t in (b"T", b"D") and head.portal is not None:
            if t == b"T":
                out.append(self._output.row_description(head.portal, msg, head.vector_names))
            else:
                out.append(self._output.data_row(head.portal, msg))
        elif self._output is not None and t == b"T" and head.statement is not None:
            out.append(self._output.statement_description(head.statement, msg, head.vector_names))
        elif t == b"t" and head.params is not None:
            out.append(
                m.encode_parameter_description(head.params(m.parameter_description(msg.body)))
            )
        else:
            out.append(msg.raw)
        if t in _NOTED:
            self._note(head, t, msg.body)
        if t == b"E" and head.extended:
            self._finish(q.popleft())
            self._skipping = True
            self._skip(out)
        elif t in head.ends:
            self._finish(q.popleft())
            self._flush_emits(out)

    def _note(self, head: Pending, t: bytes, body: bytes) -> None:
        """What a reply of one of the _NOTED types tells about the session: descriptions
        made void, the last command tag, the transaction status."""
        if t == b"C":
            self.last_tag = body.rstrip(b"\0")
        elif t == b"Z":
            self.txn_status = body[:1]
            self._skipping = False
            if self.txn_status == b"I" and self._output is not None:
                self._output.forget_all()  # every portal ends with its transaction
        elif self._output is not None:
            self._described(head, t)

    def _described(self, head: Pending, t: bytes) -> None:
        """A statement or portal was made, bound or closed: its old description no longer
        applies (or, for a Bind, its statement's does)."""
        assert self._output is not None
        if t == b"2" and head.portal is not None and head.bind is not None:
            self._output.bound(head.portal, *head.bind)
        elif head.portal is not None:
            self._output.forget(head.portal)
        elif head.statement is not None:
            self._output.forget_statement(head.statement)

    @staticmethod
    def _finish(entry: Pending) -> None:
        if entry.done is not None and not entry.done.done():
            entry.done.set_result(entry.capture or [])


def _retagged(head: Pending, msg: Message) -> Message:
    """A CommandComplete with the tag the client's statement gives (Pending.tags)."""
    assert head.tags is not None
    i = head.completed
    head.completed += 1
    tag = head.tags[i] if i < len(head.tags) else None
    return msg if tag is None else Message(b"C", tag + b"\0")
