"""Identifiers cut as PostgreSQL cuts them, checked against PostgreSQL itself."""

from __future__ import annotations

import psycopg
import pytest

from pgvec.filter.sql import object_name, truncated

NAMES = [
    ("items", "embedding"),
    ("t" * 70, "embedding"),
    ("t" * 40, "e" * 40),
    ("é" * 40, "e" * 5),  # two bytes a character: cut at a character boundary
    ("t" * 10, "€" * 30),  # three bytes a character
]


@pytest.mark.parametrize(("table", "column"), NAMES)
def test_names_as_postgresql_makes_them(conn: psycopg.Connection, table: str, column: str) -> None:
    conn.execute(f'CREATE TABLE "{table}" ("{column}" int)')
    for label in ("idx", "idx1", "idx2"):
        conn.execute(f'CREATE INDEX ON "{table}" ("{column}")')
        made = conn.execute(
            "SELECT i.indexrelid::regclass::text FROM pg_index i WHERE i.indrelid = %s::regclass"
            " ORDER BY i.indexrelid DESC LIMIT 1",
            (f'"{truncated(table)}"',),
        ).fetchone()
        assert made is not None
        assert made[0].strip('"') == object_name(truncated(table), truncated(column), label)
    name = conn.execute(
        "SELECT relname FROM pg_class WHERE oid = %s::regclass", (f'"{table}"',)
    ).fetchone()
    assert name == (truncated(table),)
    conn.rollback()
