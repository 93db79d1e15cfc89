"""Errors raised inside pgvec's SQL functions, shown as pgvector's are: without CONTEXT.

A vector function of pgvec (``pgvec.l2_distance``, ...) is SQL or PL/pgSQL, so PostgreSQL
reports where in it an error arose (``PL/pgSQL function pgvec._dims_error(bytea,bytea)
line 17 at RAISE``, ``SQL function "l2_distance" statement 1``). pgvector's functions
are C and report no such lines. The innermost lines that are pgvec's own are removed;
lines of the client's functions around them stay.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from pgvec.wire import messages as m
from pgvec.wire.framing import Message

_SQL_FILE = Path(__file__).resolve().parents[1] / "catalog" / "sql" / "pgvec--0.1.0.sql"
_PLPGSQL = re.compile(r"^(?:PL/pgSQL function pgvec\.|SQL statement \"[^\n]*\bpgvec\.)")
_SQL_FUNCTION = re.compile(r'^SQL function "([^"]+)"')


@cache
def _function_names() -> frozenset[str]:
    """The names of pgvec's SQL functions (an SQL function's context line gives no schema)."""
    text = _SQL_FILE.read_text() if _SQL_FILE.exists() else ""
    return frozenset(re.findall(r"FUNCTION\s+pgvec\.(\w+)", text, re.IGNORECASE))


def _pgvecs(line: str) -> bool:
    if _PLPGSQL.match(line):
        return True
    found = _SQL_FUNCTION.match(line)
    return found is not None and found.group(1) in _function_names()


def without_pgvec_context(msg: Message) -> bytes:
    """An ErrorResponse or NoticeResponse without the CONTEXT lines of pgvec's functions."""
    if b"pgvec" not in msg.body and b'SQL function "' not in msg.body:
        return msg.raw
    fields = m.error_fields(msg.body)
    where = fields.get("W")
    if not where:
        return msg.raw
    lines = where.split("\n")
    i = 0
    while i < len(lines) and _pgvecs(lines[i]):
        i += 1
    if i == 0:
        return msg.raw
    if i == len(lines):
        del fields["W"]
    else:
        fields["W"] = "\n".join(lines[i:])
    return m.encode_fields(msg.type, fields)
