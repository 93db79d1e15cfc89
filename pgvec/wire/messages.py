"""The messages pgvec decodes or builds, named as in the PostgreSQL documentation.

Only what the proxy needs to look inside is decoded; everything else is forwarded as
bytes. Text is decoded as UTF-8 with surrogateescape so that undecodable bytes round-trip.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from pgvec.errors import ProtocolViolation
from pgvec.wire.framing import frame

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolViolation("unterminated string in message")
        s = self.data[self.pos : end]
        self.pos = end + 1
        return _text(s)

    def _fixed(self, fmt: struct.Struct) -> int:
        if self.pos + fmt.size > len(self.data):
            raise ProtocolViolation("insufficient data left in message")
        (v,) = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return int(v)

    def int16(self) -> int:
        return self._fixed(_I16)

    def int32(self) -> int:
        return self._fixed(_I32)

    def uint32(self) -> int:
        return self._fixed(_U32)

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolViolation("insufficient data left in message")
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v

    def kind(self) -> str:
        """The one-byte subtype of Describe and Close ('S' or 'P')."""
        return chr(self.raw(1)[0])


def startup_code(body: bytes) -> int:
    """The protocol version or request code of an untyped first packet."""
    return _Reader(body).int32()


def startup_parameters(body: bytes) -> dict[str, str]:
    """The name/value pairs of a StartupMessage body (after the length)."""
    parts = body[4:].split(b"\0")
    params: dict[str, str] = {}
    for i in range(0, len(parts) - 1, 2):
        if not parts[i]:
            break
        params[_text(parts[i])] = _text(parts[i + 1])
    return params


def add_startup_parameters(body: bytes, extra: dict[str, str]) -> bytes:
    """A StartupMessage body (after the length) with the name/value pairs of ``extra``
    added before its terminator."""
    pairs = b"".join(_bytes(k) + b"\0" + _bytes(v) + b"\0" for k, v in extra.items())
    return body[:-1] + pairs + b"\0"


# -- frontend messages ----------------------------------------------------------------


@dataclass(slots=True)
class Query:
    sql: str

    @classmethod
    def decode(cls, body: bytes) -> Query:
        return cls(_Reader(body).cstring())

    def encode(self) -> bytes:
        return frame(b"Q", _bytes(self.sql) + b"\0")


@dataclass(slots=True)
class Parse:
    name: str
    sql: str
    param_types: list[int] = field(default_factory=list)

    @classmethod
    def decode(cls, body: bytes) -> Parse:
        r = _Reader(body)
        name = r.cstring()
        sql = r.cstring()
        n = r.int16()
        return cls(name, sql, [r.uint32() for _ in range(n)])

    def encode(self) -> bytes:
        body = _bytes(self.name) + b"\0" + _bytes(self.sql) + b"\0"
        body += _I16.pack(len(self.param_types))
        body += b"".join(_U32.pack(t) for t in self.param_types)
        return frame(b"P", body)


def bind_names(body: bytes) -> tuple[str, str]:
    """A Bind's portal and statement names. The rest is checked to be whole, as
    :meth:`Bind.decode` checks it, but not decoded (no list of parameters made)."""
    end = body.find(b"\0")
    stop = body.find(b"\0", end + 1) if end >= 0 else -1
    if stop < 0:
        raise ProtocolViolation("unterminated string in message")
    unpack = _I16.unpack_from
    try:
        (count,) = unpack(body, stop + 1)  # parameter formats
        pos = stop + 3
        if count > 0:
            pos += 2 * count
        (count,) = unpack(body, pos)  # parameters
        pos += 2
        for _ in range(count):
            (size,) = _I32.unpack_from(body, pos)
            pos += 4 + size if size > 0 else 4
        (count,) = unpack(body, pos)  # result formats
    except struct.error:
        raise ProtocolViolation("insufficient data left in message") from None
    if count > 0:
        pos += 2 * count
    if pos + 2 > len(body):
        raise ProtocolViolation("insufficient data left in message")
    return _text(body[:end]), _text(body[end + 1 : stop])


@dataclass(slots=True)
class Bind:
    portal: str
    statement: str
    param_formats: list[int]
    params: list[bytes | None]
    result_formats: list[int]

    @classmethod
    def decode(cls, body: bytes) -> Bind:
        r = _Reader(body)
        portal = r.cstring()
        statement = r.cstring()
        formats = [r.int16() for _ in range(r.int16())]
        params: list[bytes | None] = []
        for _ in range(r.int16()):
            n = r.int32()
            params.append(None if n < 0 else r.raw(n))
        results = [r.int16() for _ in range(r.int16())]
        return cls(portal, statement, formats, params, results)

    def param_format(self, i: int) -> int:
        """The format code (0 text, 1 binary) of parameter ``i`` (0-based)."""
        if not self.param_formats:
            return 0
        if len(self.param_formats) == 1:
            return self.param_formats[0]
        return self.param_formats[i]

    def encode(self) -> bytes:
        parts = [_bytes(self.portal), b"\0", _bytes(self.statement), b"\0"]
        parts.append(_I16.pack(len(self.param_formats)))
        parts.extend(_I16.pack(f) for f in self.param_formats)
        parts.append(_I16.pack(len(self.params)))
        for p in self.params:
            if p is None:
                parts.append(_I32.pack(-1))
            else:
                parts.append(_I32.pack(len(p)))
                parts.append(p)
        parts.append(_I16.pack(len(self.result_formats)))
        parts.extend(_I16.pack(f) for f in self.result_formats)
        return frame(b"B", b"".join(parts))


@dataclass(slots=True)
class Describe:
    kind: str  # "S" statement or "P" portal
    name: str

    @classmethod
    def decode(cls, body: bytes) -> Describe:
        r = _Reader(body)
        return cls(r.kind(), r.cstring())


@dataclass(slots=True)
class Close:
    kind: str
    name: str

    @classmethod
    def decode(cls, body: bytes) -> Close:
        r = _Reader(body)
        return cls(r.kind(), r.cstring())

    def encode(self) -> bytes:
        return frame(b"C", self.kind.encode() + _bytes(self.name) + b"\0")


def execute_portal(body: bytes) -> str:
    """The portal an Execute message names."""
    return _Reader(body).cstring()


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    return frame(b"E", _bytes(portal) + b"\0" + _I32.pack(max_rows))


SYNC = frame(b"S", b"")
FLUSH = frame(b"H", b"")

# -- backend messages -----------------------------------------------------------------


def parameter_description(body: bytes) -> list[int]:
    r = _Reader(body)
    return [r.uint32() for _ in range(r.int16())]


def encode_parameter_description(oids: Sequence[int]) -> bytes:
    return frame(b"t", _I16.pack(len(oids)) + b"".join(_U32.pack(o) for o in oids))


def command_complete(tag: str) -> bytes:
    return frame(b"C", _bytes(tag) + b"\0")


def ready_for_query(status: bytes) -> bytes:
    return frame(b"Z", status)


def error_fields(body: bytes) -> dict[str, str]:
    """Fields of an ErrorResponse or NoticeResponse, keyed by their one-letter code."""
    fields: dict[str, str] = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = _text(part[1:])
    return fields


def encode_fields(type_: bytes, fields: dict[str, str]) -> bytes:
    """An ErrorResponse or NoticeResponse of these fields (as error_fields returns them)."""
    body = b"".join(code.encode("ascii") + _bytes(value) + b"\0" for code, value in fields.items())
    return frame(type_, body + b"\0")


def _fields_message(
    type_: bytes,
    code: str,
    message: str,
    severity: str,
    detail: str | None,
    hint: str | None,
    position: int | None = None,
) -> bytes:
    parts = [b"S" + _bytes(severity), b"V" + _bytes(severity), b"C" + _bytes(code)]
    parts.append(b"M" + _bytes(message))
    if detail:
        parts.append(b"D" + _bytes(detail))
    if hint:
        parts.append(b"H" + _bytes(hint))
    if position:
        parts.append(b"P" + str(position).encode())
    return frame(type_, b"\0".join(parts) + b"\0\0")


def error_response(
    code: str,
    message: str,
    *,
    severity: str = "ERROR",
    detail: str | None = None,
    hint: str | None = None,
    position: int | None = None,
) -> bytes:
    return _fields_message(b"E", code, message, severity, detail, hint, position)


def notice_response(message: str, *, severity: str = "NOTICE") -> bytes:
    """A NoticeResponse, e.g. progress of a long CREATE INDEX."""
    return _fields_message(b"N", "00000", message, severity, None, None)


@dataclass(frozen=True, slots=True)
class FieldDescription:
    name: str
    table_oid: int
    attnum: int
    type_oid: int
    type_size: int
    type_modifier: int
    format: int


def row_description(body: bytes) -> list[FieldDescription]:
    r = _Reader(body)
    return [
        FieldDescription(
            r.cstring(), r.uint32(), r.int16(), r.uint32(), r.int16(), r.int32(), r.int16()
        )
        for _ in range(r.int16())
    ]


def encode_row_description(fields: Sequence[FieldDescription]) -> bytes:
    parts = [_I16.pack(len(fields))]
    for f in fields:
        parts.append(_bytes(f.name) + b"\0")
        parts.append(
            struct.pack(
                "!IhIhih", f.table_oid, f.attnum, f.type_oid, f.type_size, f.type_modifier, f.format
            )
        )
    return frame(b"T", b"".join(parts))


def data_row(body: bytes) -> list[bytes | None]:
    r = _Reader(body)
    values: list[bytes | None] = []
    for _ in range(r.int16()):
        n = r.int32()
        values.append(None if n < 0 else r.raw(n))
    return values


def encode_data_row(values: Sequence[bytes | None]) -> bytes:
    parts = [_I16.pack(len(values))]
    for v in values:
        if v is None:
            parts.append(_I32.pack(-1))
        else:
            parts.append(_I32.pack(len(v)))
            parts.append(v)
    return frame(b"D", b"".join(parts))


def frame_parse_complete() -> bytes:
    return frame(b"1", b"")


def frame_bind_complete() -> bytes:
    return frame(b"2", b"")


def frame_no_data() -> bytes:
    return frame(b"n", b"")


def copy_in_response(columns: int) -> bytes:
    """CopyInResponse: text format, ``columns`` text columns."""
    body = b"\0" + columns.to_bytes(2, "big") + b"\0\0" * columns
    return frame(b"G", body)


def frame_copy_fail(message: str) -> bytes:
    return frame(b"f", _bytes(message) + b"\0")
