"""Catalog queries that ask a column's type: vector columns answer ``vector(n)``.

psql's ``\\d`` and SQLAlchemy's reflection (and so Alembic's autogenerate) read a column's
type as ``format_type(a.atttypid, a.atttypmod)`` of its pg_attribute row. A vector column
is bytea to PostgreSQL; through pgvec such a call becomes
``pgvec.format_type(a.attrelid, a.attnum, a.atttypid, a.atttypmod)``, which gives
``vector(n)`` for it (and format_type's answer for every other column). pg_dump asks
``format_type(t.oid, a.atttypmod)`` of the type instead, and so still dumps the bytea
column with its CHECK, which a restore through pgvec recognises.
"""

from __future__ import annotations

import re

_CALL = re.compile(
    r"(?:\bpg_catalog\s*\.\s*)?\bformat_type\s*\(\s*"
    r"(?P<a>(?:[A-Za-z_][\w$]*\s*\.\s*)*)atttypid\s*,\s*(?P=a)atttypmod\s*\)",
    re.IGNORECASE,
)


def rewrite_format_type(sql: str) -> str | None:
    """``sql`` with its ``format_type(<x>.atttypid, <x>.atttypmod)`` calls made pgvec's,
    or None if it has none."""
    if "atttypid" not in sql.lower():
        return None
    new, n = _CALL.subn(
        lambda m: (
            f"pgvec.format_type({m['a']}attrelid, {m['a']}attnum, {m['a']}atttypid,"
            f" {m['a']}atttypmod)"
        ),
        sql,
    )
    return new if n else None
