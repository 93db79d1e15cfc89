"""Which database a statement needs no one connected to (DROP / ALTER ... RENAME / copy)."""

from __future__ import annotations

import pytest

from pgvec.rewrite.rules.database import LetGo, database_to_let_go


@pytest.mark.parametrize(
    ("sql", "want"),
    [
        ("DROP DATABASE x", LetGo("x")),
        ('drop database if exists "My Db";', LetGo("My Db")),
        ("-- dropdb\nDROP DATABASE x WITH (FORCE)", LetGo("x", force=True)),
        ("DROP DATABASE X (FORCE)", LetGo("x", force=True)),
        ("ALTER DATABASE x RENAME TO y", LetGo("x", dropping=False)),
        ('CREATE DATABASE y OWNER = a TEMPLATE = "T" ENCODING utf8', LetGo("T", dropping=False)),
        ("CREATE DATABASE y TEMPLATE x", LetGo("x", dropping=False)),
        ("DROP DATABASE x; SELECT 1", None),
        ("ALTER DATABASE x SET work_mem = '1MB'", None),
        ("CREATE DATABASE y LOCALE 'template'", None),
        ("CREATE DATABASE y", None),
        ("DROP TABLE database", None),
        ("SELECT 'drop database x'", None),
    ],
)
def test_database_to_let_go(sql: str, want: LetGo | None) -> None:
    assert database_to_let_go(sql) == want
