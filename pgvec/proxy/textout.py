"""Vector columns in text-format results, shown in pgvector's text form.

A vector is stored as ``bytea``; PostgreSQL would send ``\\x0000803f...``. Where a result
column comes straight from a vector column (RowDescription names its table OID and
attribute number) and the client asked for text, pgvec sends ``[1,2,3]`` with type
``text``, as a client without a pgvector adapter sees pgvector's type. Binary results are
left as the raw bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pgvec.wire import messages as m
from pgvec.wire.framing import Message

BYTEA = 17
TEXT = 25

VectorColumns = Callable[[], frozenset[tuple[int, int]]]


def vector_text(hex_value: bytes) -> bytes:
    """``\\x0000803f...`` -> ``[1,...]`` (shortest float32 spelling, like pgvector)."""
    v = np.frombuffer(bytes.fromhex(hex_value[2:].decode()), "<f4")
    parts = []
    for x in v:
        s = str(x)
        parts.append(s[:-2] if s.endswith(".0") else s)
    return ("[" + ",".join(parts) + "]").encode()


class VectorOutput:
    """Per-portal conversion of result rows."""

    def __init__(self, columns: VectorColumns) -> None:
        self._columns = columns
        self._portals: dict[str, list[int]] = {}

    def row_description(
        self, portal: str, msg: Message, names: frozenset[str] = frozenset()
    ) -> bytes:
        """``names``: columns computed by vector expressions (no table column)."""
        self._portals.pop(portal, None)
        vector_cols = self._columns()
        if not vector_cols and not names:
            return msg.raw
        fields = m.row_description(msg.body)
        convert = [
            i
            for i, f in enumerate(fields)
            if f.format == 0
            and f.type_oid == BYTEA
            and ((f.table_oid, f.attnum) in vector_cols or (f.table_oid == 0 and f.name in names))
        ]
        if not convert:
            return msg.raw
        self._portals[portal] = convert
        for i in convert:
            f = fields[i]
            fields[i] = m.FieldDescription(f.name, f.table_oid, f.attnum, TEXT, -1, -1, 0)
        return m.encode_row_description(fields)

    def data_row(self, portal: str, msg: Message) -> bytes:
        convert = self._portals.get(portal)
        if not convert:
            return msg.raw
        values = m.data_row(msg.body)
        for i in convert:
            value = values[i]
            if value is not None and value.startswith(b"\\x") and len(value) % 8 == 2:
                values[i] = vector_text(value)
        return m.encode_data_row(values)

    def forget(self, portal: str) -> None:
        self._portals.pop(portal, None)

    def forget_all(self) -> None:
        self._portals.clear()
