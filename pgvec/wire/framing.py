"""Splitting a byte stream into protocol messages.

Regular messages are ``type byte + int32 length (including itself) + body``; the very
first message of a connection (startup, SSLRequest, CancelRequest, ...) has no type byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_LEN = struct.Struct("!i")

#: Largest message accepted from a client (PostgreSQL itself allows up to 1 GB).
MAX_MESSAGE = 1 << 30


class ProtocolViolation(Exception):
    """The peer sent bytes that are not a valid protocol stream."""


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
    """Accumulates received bytes and yields complete messages."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def __len__(self) -> int:
        return len(self._buf)

    def next_message(self) -> Message | None:
        buf = self._buf
        if len(buf) < 5:
            return None
        (length,) = _LEN.unpack_from(buf, 1)
        if length < 4 or length > MAX_MESSAGE:
            raise ProtocolViolation(f"invalid message length {length}")
        end = 1 + length
        if len(buf) < end:
            return None
        msg = Message(bytes(buf[0:1]), bytes(buf[5:end]))
        del buf[:end]
        return msg

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
        if length < 8 or length > 10000:
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
