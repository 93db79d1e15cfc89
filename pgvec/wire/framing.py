"""Splitting a byte stream into protocol messages.

Regular messages are ``type byte + int32 length (including itself) + body``; the very
first message of a connection (startup, SSLRequest, CancelRequest, ...) has no type byte.

A length is checked as soon as its five header bytes are in, before any of the body is
waited for: a client announcing a message it may not send is refused at once, and
nothing is ever allocated for a length, only for bytes that actually arrive.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from pgvec.errors import ProtocolViolation

__all__ = [
    "FRONTEND_LIMITS",
    "MAX_MESSAGE",
    "MAX_STARTUP",
    "FrameBuffer",
    "Message",
    "ProtocolViolation",
    "frame",
]

_LEN = struct.Struct("!i")
#: each type byte as the one-byte ``bytes`` it is compared as (no allocation per message)
_TYPES = tuple(bytes((i,)) for i in range(256))

#: Largest message accepted when no per-type limits apply (server replies).
MAX_MESSAGE = 1 << 30

# PostgreSQL's own limits on what a client sends (src/backend/tcop/postgres.c, libpq):
# the length word included, as PostgreSQL counts it.
_LARGE = (1 << 30) - 2  # PQ_LARGE_MESSAGE_LIMIT: MaxAllocSize - 1
_SMALL = 10_000  # PQ_SMALL_MESSAGE_LIMIT
_AUTH = 65_535  # PG_MAX_AUTH_TOKEN_LENGTH (password, SASL and GSS responses)
#: Largest untyped first packet (MAX_STARTUP_PACKET_LENGTH).
MAX_STARTUP = 10_000

#: The message types a client may send, and the longest message of each type.
FRONTEND_LIMITS: Mapping[bytes, int] = {
    **dict.fromkeys((b"Q", b"F", b"P", b"B", b"d"), _LARGE),
    **dict.fromkeys((b"X", b"C", b"D", b"E", b"H", b"S", b"c", b"f"), _SMALL),
    b"p": _AUTH,
}


@dataclass(frozen=True, slots=True)
class Message:
    type: bytes  # one byte, e.g. b"Q"
    body: bytes

    @property
    def raw(self) -> bytes:
        return self.type + _LEN.pack(len(self.body) + 4) + self.body


def frame(type_: bytes, body: bytes) -> bytes:
    return type_ + _LEN.pack(len(body) + 4) + body


class FrameBuffer:
    """Accumulates received bytes and yields complete messages.

    ``limits`` maps each message type the peer may send to its longest length; a type
    not in it is a protocol violation. Without it (server replies) any type up to
    :data:`MAX_MESSAGE` is accepted.
    """

    __slots__ = ("_buf", "_limits")

    def __init__(self, limits: Mapping[bytes, int] | None = None) -> None:
        self._buf = bytearray()
        self._limits = limits

    def feed(self, data: bytes) -> None:
        self._buf += data

    def __len__(self) -> int:
        return len(self._buf)

    def next_message(self) -> Message | None:
        found = self.frame_at(0)
        if found is None:
            return None
        type_, end = found
        msg = Message(type_, bytes(self._buf[5:end]))
        del self._buf[:end]
        return msg

    def frame_at(self, pos: int) -> tuple[bytes, int] | None:
        """The type and end offset of the complete message starting at ``pos`` of the
        buffer, without consuming it; None while it is incomplete."""
        buf = self._buf
        if len(buf) - pos < 5:
            return None
        type_ = _TYPES[buf[pos]]
        (length,) = _LEN.unpack_from(buf, pos + 1)
        self._check(type_, length)
        end = pos + 1 + length
        return (type_, end) if len(buf) >= end else None

    def frames(self) -> list[tuple[bytes, int, int]]:
        """The complete messages at the start of the buffer as (type, start, end)
        offsets, without consuming them: what a relay goes through in one pass and
        passes on as the bytes they came in (:meth:`span`, :meth:`consume`) instead of
        as :class:`Message` objects. A malformed header after complete messages ends
        the list there; it is raised once those are consumed."""
        buf = self._buf
        n = len(buf)
        limits = self._limits
        unpack = _LEN.unpack_from
        out: list[tuple[bytes, int, int]] = []
        pos = 0
        while n - pos >= 5:
            type_ = _TYPES[buf[pos]]
            (length,) = unpack(buf, pos + 1)
            if length < 4 or length > (MAX_MESSAGE if limits is None else limits.get(type_, 0)):
                if out:
                    break
                self._check(type_, length)
            end = pos + 1 + length
            if end > n:
                break
            out.append((type_, pos, end))
            pos = end
        return out

    def _check(self, type_: bytes, length: int) -> None:
        if self._limits is not None:
            limit = self._limits.get(type_, 0)
            if not limit:
                raise ProtocolViolation(f"invalid frontend message type {type_[0]}")
        else:
            limit = MAX_MESSAGE
        if length < 4 or length > limit:
            raise ProtocolViolation(f"invalid message length {length}")

    def span(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the buffer (whole messages, as :meth:`frame_at` found)."""
        return bytes(self._buf[start:end])

    def body(self, start: int, end: int) -> bytes:
        """The body of the message [start, end) of the buffer."""
        return bytes(self._buf[start + 5 : end])

    def consume(self, end: int) -> None:
        """Drop the first ``end`` bytes (whole messages already handled)."""
        del self._buf[:end]

    def messages(self) -> list[Message]:
        out: list[Message] = []
        while (m := self.next_message()) is not None:
            out.append(m)
        return out

    def next_startup(self) -> bytes | None:
        """The untyped first packet (length + body), body returned without the length."""
        buf = self._buf
        if len(buf) < 4:
            return None
        (length,) = _LEN.unpack_from(buf, 0)
        if length < 8 or length > MAX_STARTUP:
            raise ProtocolViolation(f"invalid startup packet length {length}")
        if len(buf) < length:
            return None
        body = bytes(buf[4:length])
        del buf[:length]
        return body

    def take_rest(self) -> bytes:
        rest = bytes(self._buf)
        self._buf.clear()
        return rest
