"""Vector columns in results, shown as pgvector's type.

A vector is stored as ``bytea``; PostgreSQL would describe it as bytea and send
``\\x0000803f...`` (text) or the stored little-endian bytes (binary). Where a result
column comes straight from a vector column (RowDescription names its table OID and
attribute number), pgvec describes it as the ``vector`` type clients find in pg_type
(sql/: pgvector's face), with the column's dimension as typmod, and sends pgvector's
formats: ``[1,2,3]`` in text, ``int16 dim, int16 0, float4 big-endian...`` in binary. So
pgvector-python's loaders, asyncpg codecs and SQLAlchemy's ``Vector`` read them as they
read pgvector's. Without a vector type in the database, text columns are sent as
``text`` and binary ones as the stored bytes.

Clients learn a result's columns either per portal (Describe portal, simple Query) or
once per prepared statement (Describe statement, then Bind and Execute without a
Describe: asyncpg, JDBC); both are followed here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from pgvec import vector_arrays, vectors
from pgvec.wire import messages as m
from pgvec.wire.framing import Message

BYTEA, BYTEA_ARRAY, TEXT = vectors.BYTEA_OID, vectors.BYTEA_ARRAY_OID, vectors.TEXT_OID
TEXT_ARRAY = 1009
#: a field's type OID followed by its type size, as in a RowDescription of a bytea field
_BYTEA_FIELD = BYTEA.to_bytes(4, "big") + (-1).to_bytes(2, "big", signed=True)
#: the same of a bytea[] field (an array of vectors)
_ARRAY_FIELD = BYTEA_ARRAY.to_bytes(4, "big") + (-1).to_bytes(2, "big", signed=True)

VectorColumns = Callable[[], Mapping[tuple[int, int], int]]
FaceType = Callable[[], int | None]

#: (column index, format code, array of vectors) of the vector columns of a portal's rows
Conversions = list[tuple[int, int, bool]]


def vector_text(hex_value: bytes) -> bytes:
    """``\\x0000803f...`` -> ``[1,...]`` (shortest float32 spelling, like pgvector)."""
    v = np.frombuffer(bytes.fromhex(hex_value[2:].decode()), "<f4")
    parts = []
    for x in v:
        s = str(x)
        parts.append(s[:-2] if s.endswith(".0") else s)
    return ("[" + ",".join(parts) + "]").encode()


def _convert_array(value: bytes, fmt: int, text_in_binary: bool, element: int) -> bytes:
    """An array of vectors; ``element``: the OID of the vector type."""
    if fmt == 0:
        return vector_arrays.text_out(value)
    return vector_arrays.binary_out(value, element, lambda e: _convert(e, 1, text_in_binary))


def _convert(value: bytes, fmt: int, text_in_binary: bool) -> bytes:
    if fmt == 0:
        if value.startswith(b"\\x") and len(value) % 8 == 2:
            return vector_text(value)
        return value
    if len(value) % 4 == 0:
        if text_in_binary:
            return vectors.to_text(np.frombuffer(value, "<f4")).encode()
        return vectors.to_pgvector_binary(value)
    return value


def _has_field(body: bytes) -> bool:
    """Whether a RowDescription's body may hold a bytea or bytea[] field."""
    return _BYTEA_FIELD in body or _ARRAY_FIELD in body


class VectorOutput:
    """Per-portal conversion of result rows, and the descriptions that decide it."""

    def __init__(
        self,
        columns: VectorColumns,
        face: FaceType | None = None,
        face_array: FaceType | None = None,
    ) -> None:
        self._columns = columns
        self._face = face or (lambda: None)
        self._face_array = face_array or (lambda: None)
        self._portals: dict[str, Conversions] = {}
        #: binary results as text: an asyncpg client without a vector codec (codecs.py)
        self.text_in_binary = False
        #: prepared statement -> (index, array of vectors) of its vector result columns
        #: (Describe statement)
        self._statements: dict[str, list[tuple[int, bool]]] = {}

    def _describe(
        self, msg: Message, names: frozenset[str] = frozenset()
    ) -> tuple[bytes, Conversions]:
        """The RowDescription as the client sees it, and its vector columns: those of a
        vector table column (or an array of vectors), and those ``names`` of values
        computed by expressions."""
        vector_cols = self._columns()
        if (not vector_cols and not names) or not _has_field(msg.body):
            return msg.raw, []  # no field has the type (every field carries its OID)
        fields = m.row_description(msg.body)
        convert: Conversions = []
        for i, f in enumerate(fields):
            if f.type_oid not in (BYTEA, BYTEA_ARRAY) or (
                (f.table_oid, f.attnum) not in vector_cols
                and not (f.table_oid == 0 and f.name in names)
            ):
                continue
            array = f.type_oid == BYTEA_ARRAY
            face = self._face_array() if array else self._face()
            if face is not None:
                dim = vector_cols.get((f.table_oid, f.attnum))
                fields[i] = m.FieldDescription(
                    f.name, f.table_oid, f.attnum, face, -1, dim if dim else -1, f.format
                )
                convert.append((i, f.format, array))
            elif f.format == 0:
                text = TEXT_ARRAY if array else TEXT
                fields[i] = m.FieldDescription(f.name, f.table_oid, f.attnum, text, -1, -1, 0)
                convert.append((i, 0, array))
        if not convert:
            return msg.raw, []
        return m.encode_row_description(fields), convert

    def row_description(
        self, portal: str, msg: Message, names: frozenset[str] = frozenset()
    ) -> bytes:
        """A portal's RowDescription (Describe portal, or a simple Query's)."""
        raw, convert = self._describe(msg, names)
        if convert:
            self._portals[portal] = convert
        else:
            self._portals.pop(portal, None)
        return raw

    def statement_description(
        self, statement: str, msg: Message, names: frozenset[str] = frozenset()
    ) -> bytes:
        """A prepared statement's RowDescription: its portals' rows are converted as
        Bind's result formats say (:meth:`bound`)."""
        raw, convert = self._describe(msg, names)
        if convert:
            self._statements[statement] = [(i, array) for i, _, array in convert]
        else:
            self._statements.pop(statement, None)
        return raw

    def describes(self, statement: str) -> bool:
        return statement in self._statements

    def bound(self, portal: str, statement: str, result_formats: Sequence[int]) -> None:
        """``portal`` was bound to ``statement`` (BindComplete)."""
        cols = self._statements.get(statement)
        if not cols:
            self._portals.pop(portal, None)
            return
        n = len(result_formats)
        self._portals[portal] = [
            (i, result_formats[i] if n > 1 else (result_formats[0] if n == 1 else 0), array)
            for i, array in cols
        ]

    def as_is(self, body: bytes, names: frozenset[str] = frozenset()) -> bool:
        """Whether the RowDescription ``body`` goes to the client unchanged, no column of
        it a vector (what :meth:`_describe` says without decoding it)."""
        return not _has_field(body) or (not names and not self._columns())

    def converts(self, portal: str) -> bool:
        """Whether ``portal``'s rows carry vectors to convert (:meth:`data_row`)."""
        return bool(self._portals.get(portal))

    def data_row(self, portal: str, msg: Message) -> bytes:
        convert = self._portals.get(portal)
        if not convert:
            return msg.raw
        values = m.data_row(msg.body)
        for i, fmt, array in convert:
            value = values[i]
            if value is None:
                continue
            if array:  # (binary ones are converted only where the type exists)
                element = self._face() or 0
                values[i] = _convert_array(value, fmt, self.text_in_binary, element)
            else:
                values[i] = _convert(value, fmt, self.text_in_binary)
        return m.encode_data_row(values)

    def forget(self, portal: str) -> None:
        self._portals.pop(portal, None)

    def forget_statement(self, statement: str) -> None:
        self._statements.pop(statement, None)

    def forget_all(self) -> None:
        """Every portal ends with its transaction (prepared statements stay)."""
        self._portals.clear()
