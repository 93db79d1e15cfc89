"""``COPY table FROM STDIN`` and ``COPY table TO STDOUT`` of a table with vector columns
(or arrays of vectors: the same, element by element).

From the client, rows arrive as CopyData; the proxy converts the vector fields to what
PostgreSQL stores, field by field (pgvec.proxy.copyin): in text format ``[1,2,3]`` (or
bytea hex, as a dump of the bytea holds) to bytea hex; in binary format pgvector's
binary form to the stored bytes (the stored bytes themselves pass as they are). To the
client, the vector fields go in pgvector's forms, as real pgvector's COPY writes them.
CSV is passed through.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot.tokenizer_core import Token, TokenType

from pgvec.rewrite.catalog import Catalog
from pgvec.rewrite.decision import CopyIn, CopyOut
from pgvec.rewrite.tokens import TokenCursor


def rewrite_copy(tokens: Sequence[Token], catalog: Catalog) -> CopyIn | CopyOut | None:
    cur = TokenCursor(tokens)
    if not cur.accept("COPY"):
        return None
    name = cur.qualified_name()
    if name is None:
        return None
    schema, table_name = name
    table = catalog.lookup(table_name, schema)
    if table is None or not (table.vectors or table.arrays):
        return None
    columns = list(table.columns)
    tok = cur.peek()
    if tok is not None and tok.token_type == TokenType.L_PAREN:
        cur.next()
        columns = []
        while (t := cur.next()) is not None and t.token_type != TokenType.R_PAREN:
            if t.token_type != TokenType.COMMA:
                columns.append(t.text)
    if cur.accept("FROM"):
        if not cur.accept("STDIN"):
            return None
        direction = "in"
    elif cur.accept("TO"):
        if not cur.accept("STDOUT"):
            return None
        direction = "out"
    else:
        return None
    fmt, delimiter, null = "text", "\t", "\\N"
    rest = list(tokens[cur.i :])
    for i, t in enumerate(rest):
        word = t.text.upper()
        nxt = rest[i + 1] if i + 1 < len(rest) else None
        if word == "FORMAT" and nxt is not None:
            fmt = nxt.text.lower()
        elif word == "BINARY":
            fmt = "binary"
        elif word == "CSV":
            fmt = "csv"
        elif word == "DELIMITER" and nxt is not None and nxt.token_type == TokenType.STRING:
            delimiter = nxt.text
        elif word == "NULL" and nxt is not None and nxt.token_type == TokenType.STRING:
            null = nxt.text
    if fmt not in ("text", "binary"):
        return None
    fields = {
        i: table.vectors[c].dim
        for i, c in enumerate(columns)
        if c in table.vectors and not table.vectors[c].binary
    }
    arrays = {i: table.arrays[c].dim for i, c in enumerate(columns) if c in table.arrays}
    if not fields and not arrays:
        return None
    if direction == "out":
        return CopyOut(fields, fmt == "binary", delimiter, arrays)
    return CopyIn(table.name, fields, delimiter, null, fmt == "binary", arrays)
