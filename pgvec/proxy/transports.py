"""The two sockets of an established session, driven by transport callbacks.

Startup and authentication run on asyncio streams (a few round trips, once). After
that, every message of the session goes through here: bytes from PostgreSQL go straight
from the transport's callback into :meth:`Relay.received`, bytes from the client into
:meth:`Session.received`, which relays what needs nothing from pgvec at once and wakes
the session's task only for what does. No task switch, no stream buffer in between: on
a plain statement that is most of what a proxy in Python costs (issue 11).

Flow control: when one side stops taking bytes (its transport's buffer passes
``HIGH_WATER``), pgvec stops reading from the other side until it drains.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

from pgvec.streams import StreamProtocol

#: bytes buffered for a peer that is not reading before pgvec stops reading the other side
HIGH_WATER = 1 << 20


class Receiver(Protocol):
    def received(self, data: bytes) -> None: ...

    def lost(self, exc: Exception | None) -> None: ...


class _Side(asyncio.Protocol):
    """The protocol of one of a session's transports: hands its bytes to ``receiver``;
    pauses reading the ``other`` transport while its own cannot send."""

    def __init__(self, receiver: Receiver, transport: asyncio.Transport) -> None:
        self.receiver = receiver
        self.transport = transport
        self.other: asyncio.Transport | None = None
        self._gone = False

    def data_received(self, data: bytes) -> None:
        self.receiver.received(data)

    def eof_received(self) -> bool:
        self._lost(None)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        if not self._gone:
            self._gone = True
            self.receiver.lost(exc)

    def pause_writing(self) -> None:
        if self.other is not None and not self.other.is_closing():
            self.other.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and not self.other.is_closing():
            self.other.resume_reading()


async def take_over(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, receiver: Receiver
) -> _Side:
    """Move a stream's transport to a protocol that feeds ``receiver``: the bytes the
    stream had read but nobody had taken yet come first."""
    transport = cast(asyncio.Transport, writer.transport)  # uvloop's are not subclasses
    stream = transport.get_protocol()
    ended = isinstance(stream, StreamProtocol) and stream.eof_seen
    side = _Side(receiver, transport)
    transport.set_protocol(side)
    transport.set_write_buffer_limits(high=HIGH_WATER)
    # The stream gets nothing more; what it holds is read at once (no suspension:
    # it is buffered, then end of stream), and reading resumes if the stream paused it.
    reader.feed_eof()
    rest = await reader.read()
    transport.resume_reading()
    if rest:
        receiver.received(rest)
    if ended or transport.is_closing():  # the peer left before: nothing more will say so
        side.connection_lost(None)
    return side


def pair(a: _Side, b: _Side) -> None:
    """Each side pauses the other's reading while it cannot send."""
    a.other = b.transport
    b.other = a.transport
