"""Converting the vector fields of ``COPY ... FROM STDIN`` text rows as they stream by.

Rows arrive in CopyData messages split anywhere; a partial last line waits for the next
message. A vector field ``[1,2,3]`` becomes ``\\\\x0000803f...`` (bytea hex, its backslash
escaped as COPY's text format wants); a field already in that form (a dump of the bytea
column, as pg_dump writes it) is checked and kept; NULL markers and other fields are left
alone.
"""

from __future__ import annotations

from pgvec import vectors
from pgvec.errors import InvalidVector, PgvecError
from pgvec.rewrite.decision import CopyIn
from pgvec.wire.framing import frame

#: a bytea field in hex form, as COPY's text format writes it (the backslash doubled)
_BYTEA_HEX = "\\\\x"


def _unhex(digits: str) -> bytes:
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise InvalidVector(f'invalid hexadecimal data in bytea vector "{digits[:40]}"') from None


class CopyConverter:
    def __init__(self, copy: CopyIn) -> None:
        self.copy = copy
        self._delim = copy.delimiter.encode()
        self._null = copy.null.encode()
        self._partial = b""
        self.line = 0

    def data(self, chunk: bytes) -> bytes:
        """CopyData payload in -> CopyData message(s) out (may be empty)."""
        data = self._partial + chunk
        end = data.rfind(b"\n")
        if end < 0:
            self._partial = data
            return b""
        self._partial = data[end + 1 :]
        lines = data[: end + 1].split(b"\n")[:-1]
        return frame(b"d", b"".join(self._row(line) + b"\n" for line in lines))

    def finish(self) -> bytes:
        """At CopyDone: the last line if it had no newline."""
        rest, self._partial = self._partial, b""
        return frame(b"d", self._row(rest)) if rest else b""

    def _row(self, line: bytes) -> bytes:
        self.line += 1
        if line == b"\\.":
            return line
        fields = line.split(self._delim)
        for pos, dim in self.copy.vector_fields.items():
            if pos < len(fields) and fields[pos] != self._null:
                text = fields[pos].decode("utf-8", "replace")
                try:
                    if text.startswith(_BYTEA_HEX):  # as pg_dump writes a bytea column
                        value = vectors.from_bytes(_unhex(text[len(_BYTEA_HEX) :]), dim)
                    else:
                        value = vectors.parse_text(text, dim)
                except PgvecError as exc:
                    exc.message = f"{exc.message} (COPY {self.copy.table}, line {self.line})"
                    raise
                fields[pos] = b"\\\\x" + vectors.to_bytes(value).hex().encode()
        return self._delim.join(fields)
