"""Converting the vector fields of COPY rows as they stream by, in both directions.

Rows arrive in CopyData messages split anywhere; a partial row waits for the next
message. Into PostgreSQL (``COPY ... FROM STDIN``): a text field ``[1,2,3]`` (or bytea hex
``\\\\x0000803f...``, as a dump of the stored bytea holds) becomes bytea hex, its
backslash escaped as COPY's text format wants; a binary field in pgvector's binary form
becomes the stored bytes. Out of PostgreSQL (``COPY ... TO STDOUT``): the other way, to
pgvector's forms. An array of vectors is converted element by element
(pgvec.vector_arrays); one in its stored form (a dump's) passes as it is. NULL markers
and other fields are left alone.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from functools import partial

import numpy as np

from pgvec import vector_arrays, vectors
from pgvec.errors import InvalidVector, PgvecError
from pgvec.rewrite.decision import CopyIn, CopyOut
from pgvec.wire.framing import frame

#: the binary COPY file header's fixed part: signature, flags, extension length
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")

#: a field's conversion, by the field's position
FieldConversions = Mapping[int, Callable[[bytes], bytes]]


class BinaryRows:
    """A binary COPY stream, with the fields at the positions of ``fields`` converted."""

    def __init__(self, fields: FieldConversions) -> None:
        self._fields = fields
        self._buf = bytearray()
        self._header = False
        self._ended = False

    def feed(self, chunk: bytes) -> bytes:
        """Bytes in -> the converted bytes of every complete part (header, rows)."""
        self._buf += chunk
        out: list[bytes] = []
        if not self._header:
            if len(self._buf) < len(_SIGNATURE) + 8:
                return b""
            if bytes(self._buf[: len(_SIGNATURE)]) != _SIGNATURE:
                raise InvalidVector("COPY BINARY: the data does not start with a COPY signature")
            (ext,) = _INT32.unpack_from(self._buf, len(_SIGNATURE) + 4)
            end = len(_SIGNATURE) + 8 + ext
            if len(self._buf) < end:
                return b""
            out.append(bytes(self._buf[:end]))
            del self._buf[:end]
            self._header = True
        while not self._ended and (row := self._row()) is not None:
            out.append(row)
        if self._ended:  # after the trailer: whatever follows is PostgreSQL's to judge
            out.append(bytes(self._buf))
            self._buf.clear()
        return b"".join(out)

    def rest(self) -> bytes:
        """At the end of the data: what was left incomplete, unconverted."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

    def _row(self) -> bytes | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        (n,) = _INT16.unpack_from(buf, 0)
        if n == -1:
            self._ended = True
            del buf[:2]
            return b"\xff\xff"
        pos = 2
        spans: list[tuple[int, int]] = []
        for _ in range(n):
            if len(buf) < pos + 4:
                return None
            (length,) = _INT32.unpack_from(buf, pos)
            pos += 4
            if length < 0:
                spans.append((pos, -1))
                continue
            if len(buf) < pos + length:
                return None
            spans.append((pos, length))
            pos += length
        parts = [bytes(buf[:2])]
        for i, (start, length) in enumerate(spans):
            if length < 0:
                parts.append(_INT32.pack(-1))
                continue
            value = bytes(buf[start : start + length])
            convert = self._fields.get(i)
            if convert is not None:
                value = convert(value)
            parts.append(_INT32.pack(len(value)) + value)
        del buf[:pos]
        return b"".join(parts)


def _to_stored(value: bytes, dim: int | None) -> bytes:
    """A binary COPY field into a vector column: pgvector's form, or the stored bytes."""
    if vectors.is_pgvector_binary(value, dim) and (dim is not None or len(value) % 4 == 0):
        return vectors.to_bytes(vectors.from_pgvector_binary(value, dim))
    return value  # the stored form already (PostgreSQL's CHECK judges it)


def _to_pgvector(value: bytes) -> bytes:
    return vectors.to_pgvector_binary(value) if len(value) % 4 == 0 else value


def _array_to_stored(value: bytes, dim: int | None) -> bytes:
    """A binary COPY field into an array of vectors: pgvector's form, or the stored
    form (element type bytea, as a binary dump of the table holds it)."""
    if value[8:12] == vectors.BYTEA_OID.to_bytes(4, "big"):
        return value
    return vector_arrays.binary_in(value, dim)


def _array_text_to_stored(field: bytes, dim: int | None) -> bytes:
    """A text COPY field into an array of vectors: pgvector's text form, or the stored
    one (``{"\\\\x..."}`` in a dump: it holds backslashes, which no vector's text does)."""
    if b"\\" in field:
        return field
    return vector_arrays.text_in(field, dim).replace(b"\\", b"\\\\")  # COPY's escape


class _RowStream:
    """CopyData payloads split anywhere, rows converted as they complete: text lines by
    ``_row``, binary rows by the stream's field conversion."""

    def __init__(self, binary: BinaryRows | None) -> None:
        self._binary = binary
        self._partial = b""

    def data(self, chunk: bytes) -> bytes:
        """A CopyData payload in -> CopyData message(s) out (may be empty)."""
        if self._binary is not None:
            out = self._binary.feed(chunk)
            return frame(b"d", out) if out else b""
        data = self._partial + chunk
        end = data.rfind(b"\n")
        if end < 0:
            self._partial = data
            return b""
        self._partial = data[end + 1 :]
        lines = data[: end + 1].split(b"\n")[:-1]
        return frame(b"d", b"".join(self._row(line) + b"\n" for line in lines))

    def finish(self) -> bytes:
        """At CopyDone: what was left (the last line, if it had no newline)."""
        if self._binary is not None:
            rest = self._binary.rest()
            return frame(b"d", rest) if rest else b""
        rest, self._partial = self._partial, b""
        return frame(b"d", self._row(rest)) if rest else b""

    def _row(self, line: bytes) -> bytes:
        raise NotImplementedError


class CopyConverter(_RowStream):
    """COPY FROM STDIN: the client's rows, vectors converted to the stored form."""

    def __init__(self, copy: CopyIn) -> None:
        self.copy = copy
        self._delim = copy.delimiter.encode()
        self._null = copy.null.encode()
        self.line = 0
        fields = {
            **{
                i: partial(self._binary_field, _to_stored, dim)
                for i, dim in copy.vector_fields.items()
            },
            **{
                i: partial(self._binary_field, _array_to_stored, dim)
                for i, dim in copy.array_fields.items()
            },
        }
        super().__init__(BinaryRows(fields) if copy.binary else None)

    def _binary_field(
        self, convert: Callable[[bytes, int | None], bytes], dim: int | None, value: bytes
    ) -> bytes:
        self.line += 1
        try:
            return convert(value, dim)
        except PgvecError as exc:
            exc.message = f"{exc.message} (COPY {self.copy.table}, row {self.line})"
            raise

    def _row(self, line: bytes) -> bytes:
        self.line += 1
        if line == b"\\.":
            return line
        fields = line.split(self._delim)
        for pos, dim in self.copy.vector_fields.items():
            if pos < len(fields) and fields[pos] != self._null:
                text = fields[pos].decode("utf-8", "replace")
                try:
                    if text.startswith("\\\\x"):  # bytea hex, as a dump of bytea has it
                        value = vectors.from_bytes(bytes.fromhex(text[3:]), dim)
                    else:
                        value = vectors.parse_text(text, dim)
                except ValueError:
                    raise InvalidVector(
                        f'invalid input syntax for type vector: "{text}"'
                        f" (COPY {self.copy.table}, line {self.line})"
                    ) from None
                except PgvecError as exc:
                    exc.message = f"{exc.message} (COPY {self.copy.table}, line {self.line})"
                    raise
                fields[pos] = b"\\\\x" + vectors.to_bytes(value).hex().encode()
        for pos, dim in self.copy.array_fields.items():
            if pos < len(fields) and fields[pos] != self._null:
                try:
                    fields[pos] = _array_text_to_stored(fields[pos], dim)
                except PgvecError as exc:
                    exc.message = f"{exc.message} (COPY {self.copy.table}, line {self.line})"
                    raise
        return self._delim.join(fields)


class CopyOutConverter(_RowStream):
    """COPY TO STDOUT: PostgreSQL's rows, vectors in pgvector's forms."""

    def __init__(self, copy: CopyOut, face_oid: int | None = None) -> None:
        """``face_oid``: the vector type's, the element type of arrays of vectors in
        binary format (without one, they go as stored)."""
        self.copy = copy
        self._delim = copy.delimiter.encode()
        fields: dict[int, Callable[[bytes], bytes]] = dict.fromkeys(
            copy.vector_fields, _to_pgvector
        )
        if face_oid is not None:
            array = partial(vector_arrays.binary_out, element_oid=face_oid, element=_to_pgvector)
            fields.update(dict.fromkeys(copy.array_fields, array))
        super().__init__(BinaryRows(fields) if copy.binary else None)

    def _row(self, line: bytes) -> bytes:
        fields = line.split(self._delim)
        for pos in self.copy.vector_fields:
            if pos < len(fields) and fields[pos].startswith(b"\\\\x"):
                raw = bytes.fromhex(fields[pos][3:].decode())
                fields[pos] = vectors.to_text(np.frombuffer(raw, "<f4")).encode()
        for pos in self.copy.array_fields:  # {"\\\\x..."}: array text, COPY-escaped
            if pos < len(fields):
                fields[pos] = vector_arrays.text_out(fields[pos].replace(b"\\\\", b"\\"))
        return self._delim.join(fields)
