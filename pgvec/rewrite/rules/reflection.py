"""Catalog queries that ask a column's type: vector columns answer ``vector(n)``.

psql's ``\\d`` and SQLAlchemy's reflection (and so Alembic's autogenerate) read a column's
type as ``format_type(a.atttypid, a.atttypmod)`` of its pg_attribute row. A vector column
is bytea to PostgreSQL; through pgvec such a call becomes
``pgvec.format_type(a.attrelid, a.attnum, a.atttypid, a.atttypmod)``, which gives
``vector(n)`` for it (and format_type's answer for every other column). pg_dump asks
``format_type(t.oid, a.atttypmod)`` of the type instead, and so still dumps the bytea
column with its CHECK, which a restore through pgvec recognises.

``information_schema.columns`` (LangChain's PGVectorStore checks a column's
``data_type``) becomes ``pgvec.information_schema_columns``, the same view with vector
columns as ``USER-DEFINED`` ``vector`` and arrays of vectors as ``ARRAY`` ``_vector``;
``pg_indexes`` (where LangChain looks its index up) becomes ``pgvec.pg_indexes``, which
also lists pgvec's indexes, with pgvector's definitions, and ``pg_class`` in a query that
asks relations' kinds (vecs and haystack look their indexes up so) ``pgvec.pg_class``,
which has a row for each of them. ``pg_extension``, ``pg_available_extensions`` and
``pg_available_extension_versions`` (where tools look pgvector and its version up)
become pgvec's views of them, which list pgvector's extension where pgvec gives its
surface. A bare
``atttypmod`` (supabase's vecs reads a vector column's dimension there) becomes
``pgvec.atttypmod(...)``, n for a ``vector(n)`` column.
"""

from __future__ import annotations

import re

_CALL = re.compile(
    r"(?:\bpg_catalog\s*\.\s*)?\bformat_type\s*\(\s*"
    r"(?P<a>(?:[A-Za-z_][\w$]*\s*\.\s*)*)atttypid\s*,\s*(?P=a)atttypmod\s*\)",
    re.IGNORECASE,
)


_COLUMNS = re.compile(
    r'(?<![\w$."])(?:information_schema|"information_schema")\s*\.\s*(?:columns|"columns")(?![\w$"])',
    re.IGNORECASE,
)


_INDEXES = re.compile(
    r'(?<![\w$."])(?:(?:pg_catalog|"pg_catalog")\s*\.\s*)?(?:pg_indexes|"pg_indexes")(?![\w$"])',
    re.IGNORECASE,
)


_CLASS = re.compile(
    r'(?<![\w$."\'])(?:(?:pg_catalog|"pg_catalog")\s*\.\s*)?(?:pg_class|"pg_class")(?![\w$"\'])',
    re.IGNORECASE,
)


_TYPMOD = re.compile(
    r"(?<![\w$.\"'])(?P<a>(?:[A-Za-z_][\w$]*\s*\.\s*)*)atttypmod(?![\w$\"'])",
    re.IGNORECASE,
)


_EXTENSIONS = re.compile(
    r"(?<![\w$.\"'])(?:(?:pg_catalog|\"pg_catalog\")\s*\.\s*)?"
    r"(?:(pg_extension|pg_available_extensions|pg_available_extension_versions)"
    r"|\"(pg_extension|pg_available_extensions|pg_available_extension_versions)\")"
    r"(?![\w$\"'])",
    re.IGNORECASE,
)


def rewrite_reflection(sql: str) -> str | None:
    """``sql`` with its ``format_type(<x>.atttypid, <x>.atttypmod)`` calls made pgvec's,
    ``information_schema.columns`` made ``pgvec.information_schema_columns``, and
    ``pg_indexes``, ``pg_class``, ``pg_extension``, ``pg_available_extensions`` and
    ``pg_available_extension_versions`` pgvec's views of them, or None if it has none of
    them."""
    low = sql.lower()
    n = m = k = e = t = 0
    if "pg_indexes" in low:
        sql, k = _INDEXES.subn("pgvec.pg_indexes", sql)
    if "pg_class" in low and "relkind" in low:
        # (a query that asks relations' kinds may look for indexes; asyncpg's type
        # lookups read pg_class for composite types' columns, and are left alone)
        sql, c = _CLASS.subn("pgvec.pg_class", sql)
        k += c
    if "extension" in low:
        sql, e = _EXTENSIONS.subn(lambda x: f"pgvec.{(x[1] or x[2]).lower()}", sql)
    if "atttypmod" in low and "format_type" not in low:
        # a typmod read by itself (a vector column's dimension, to vecs). Not where
        # format_type reads it: pg_dump writes format_type(t.oid, a.atttypmod), which
        # would dump bytea(n)
        sql, t = _TYPMOD.subn(
            lambda m: (
                f"pgvec.atttypmod({m['a']}attrelid, {m['a']}attnum, {m['a']}atttypid,"
                f" {m['a']}atttypmod)"
            ),
            sql,
        )
    if "atttypid" in low:
        sql, n = _CALL.subn(
            lambda m: (
                f"pgvec.format_type({m['a']}attrelid, {m['a']}attnum, {m['a']}atttypid,"
                f" {m['a']}atttypmod)"
            ),
            sql,
        )
    if "information_schema" in low:
        sql, m = _COLUMNS.subn("pgvec.information_schema_columns", sql)
    return sql if n or m or k or e or t else None
