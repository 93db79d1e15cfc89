"""Bad input gets a PostgreSQL error with a fitting SQLSTATE; the session stays usable."""

from __future__ import annotations

import psycopg
import pytest

from tests.e2e.test_walking_skeleton import setup_items


def count(pconn: psycopg.Connection) -> int:
    row = pconn.execute("SELECT count(*) FROM items").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("statement", "sqlstate", "message"),
    [
        ("INSERT INTO items VALUES (9, 'x', 1, '[1,2]')", "22000", "expected 3 dimensions, not 2"),
        ("INSERT INTO items VALUES (9, 'x', 1, '[1,2,x]')", "22P02", "invalid input syntax"),
        ("INSERT INTO items VALUES (9, 'x', 1, '[1,NaN,3]')", "22000", "NaN not allowed"),
        ("UPDATE items SET embedding = '[1,2,3,4]' WHERE id = 1", "22000", "expected 3"),
        ("SELECT id FROM items ORDER BY embedding <-> '[1,2]' LIMIT 1", "22000", "expected 3"),
        (
            "CREATE INDEX ON items USING hnsw (embedding vector_l2_ops) WITH (foo = 1)",
            "22023",
            'unrecognized parameter "foo"',
        ),
        (
            "CREATE INDEX ON items USING hnsw (embedding) WITH (m = 1)",
            "22023",
            'for option "m"',
        ),
        ("CREATE TABLE bad (id int PRIMARY KEY, v vector(0))", "22023", "at least 1"),
    ],
)
def test_errors_simple_protocol(
    pconn: psycopg.Connection, statement: str, sqlstate: str, message: str
) -> None:
    setup_items(pconn, index=False)
    with pytest.raises(psycopg.Error) as info:
        pconn.execute(statement)
    assert info.value.sqlstate == sqlstate
    assert message in str(info.value)
    assert count(pconn) == 3  # the session still works, nothing lost


def test_errors_extended_protocol(pconn: psycopg.Connection) -> None:
    setup_items(pconn)
    with pytest.raises(psycopg.Error) as info:
        pconn.execute("INSERT INTO items VALUES (%s, 'x', 1, %s)", (9, "[1,2]"))
    assert info.value.sqlstate == "22000"
    with pytest.raises(psycopg.Error) as info:
        pconn.execute("SELECT id FROM items ORDER BY embedding <-> %s LIMIT 1", ("[1,x,2]",))
    assert info.value.sqlstate == "22P02"
    assert count(pconn) == 3
    got = pconn.execute("SELECT id FROM items ORDER BY embedding <-> %s LIMIT 1", ("[1,1,1]",))
    assert got.fetchall() == [(3,)]


def test_error_inside_transaction_aborts_it(pconn: psycopg.Connection) -> None:
    setup_items(pconn, index=False)
    pconn.execute("BEGIN")
    pconn.execute("INSERT INTO items VALUES (7, 'x', 1, '[7,7,7]')")
    with pytest.raises(psycopg.Error):
        pconn.execute("INSERT INTO items VALUES (8, 'x', 1, '[1,2]')")
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        pconn.execute("SELECT 1")
    pconn.execute("ROLLBACK")
    assert count(pconn) == 3


def test_table_without_primary_key(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE nopk (title text, embedding vector(2))")
    pconn.execute("INSERT INTO nopk VALUES ('a', '[1,2]')")
    with pytest.raises(psycopg.Error) as info:
        pconn.execute("CREATE INDEX ON nopk USING hnsw (embedding vector_l2_ops)")
    assert info.value.sqlstate == "42P16"
    assert "primary key" in str(info.value)
    assert pconn.execute("SELECT count(*) FROM nopk").fetchone() == (1,)


def test_create_index_concurrently_inside_transaction_is_refused(
    pconn: psycopg.Connection,
) -> None:
    setup_items(pconn, index=False)
    pconn.execute("BEGIN")
    with pytest.raises(psycopg.Error) as info:
        pconn.execute("CREATE INDEX CONCURRENTLY ON items USING hnsw (embedding vector_l2_ops)")
    assert info.value.sqlstate == "25001"
    pconn.execute("ROLLBACK")
    # without CONCURRENTLY it is built at COMMIT; after a ROLLBACK nothing is left
    pconn.execute("BEGIN")
    pconn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
    pconn.execute("ROLLBACK")
    assert pconn.execute("SELECT count(*) FROM pgvec.indexes").fetchone() == (0,)


def test_index_survives_bad_statements(pconn: psycopg.Connection) -> None:
    setup_items(pconn)
    for bad in ("INSERT INTO items VALUES (9, 'x', 1, '[1,2]')", "SELEC 1", "SELECT 1/0"):
        with pytest.raises(psycopg.Error):
            pconn.execute(bad)
    got = pconn.execute("SELECT id FROM items ORDER BY embedding <-> '[1,1,2]' LIMIT 3").fetchall()
    assert [r[0] for r in got] == [3, 1, 2]
