"""SQL pgvec does not own goes through unchanged: multi-statements, transactions, COPY."""

from __future__ import annotations

import psycopg
import pytest


def test_plain_sql(pconn: psycopg.Connection) -> None:
    assert pconn.execute("SELECT 1 + 1").fetchone() == (2,)
    pconn.execute("CREATE TABLE t (id serial PRIMARY KEY, name text, p point)")
    pconn.execute("INSERT INTO t (name, p) VALUES ('x', point(1,2)), ('y', point(3,4))")
    got = pconn.execute("SELECT name FROM t ORDER BY p <-> point(3,3) LIMIT 1").fetchall()
    assert got == [("y",)]


def test_multi_statement_and_errors(pconn: psycopg.Connection) -> None:
    pconn.execute(
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)"
    )
    assert pconn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    with pytest.raises(psycopg.errors.UniqueViolation):
        pconn.execute("INSERT INTO t VALUES (3); INSERT INTO t VALUES (1)")
    # a failed multi-statement query is one implicit transaction
    assert pconn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    with pytest.raises(psycopg.errors.DivisionByZero):
        pconn.execute("SELECT 1/0")
    assert pconn.execute("SELECT 'still here'").fetchone() == ("still here",)


def test_transactions(proxy_uri: str) -> None:
    with psycopg.connect(proxy_uri) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.commit()
        conn.execute("INSERT INTO t VALUES (1)")
        conn.rollback()
        with conn.transaction():
            conn.execute("INSERT INTO t VALUES (2)")
            with conn.transaction():
                conn.execute("INSERT INTO t VALUES (3)")
        assert conn.execute("SELECT array_agg(id ORDER BY id) FROM t").fetchone() == ([2, 3],)


def test_copy_in_and_out(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
    with pconn.cursor() as cur:
        with cur.copy("COPY t FROM STDIN") as copy:
            for i in range(1000):
                copy.write_row((i, f"n{i}"))
        with cur.copy("COPY (SELECT id FROM t ORDER BY id) TO STDOUT") as copy:
            rows = list(copy.rows())
    assert len(rows) == 1000
    assert pconn.execute("SELECT count(*) FROM t").fetchone() == (1000,)


def test_pipeline_mode(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with pconn.pipeline(), pconn.cursor() as cur:
        for i in range(50):
            cur.execute("INSERT INTO t VALUES (%s)", (i,))
    assert pconn.execute("SELECT count(*) FROM t").fetchone() == (50,)


def test_prepared_statements_and_server_side_cursor(proxy_uri: str) -> None:
    with psycopg.connect(proxy_uri) as conn:
        for i in range(10):
            assert conn.execute("SELECT %s::int * 2", (i,), prepare=True).fetchone() == (i * 2,)
        with conn.cursor(name="c") as cur:
            cur.execute("SELECT generate_series(1, 1000)")
            assert len(cur.fetchall()) == 1000


def test_postgres_indexes_untouched_in_both_protocols(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE items (id int PRIMARY KEY, name text, embedding vector(2))")
    pconn.execute("CREATE INDEX items_name ON items (name)")
    pconn.execute("CREATE INDEX items_vec ON items USING hnsw (embedding vector_l2_ops)")
    # extended protocol (prepare=True), for a PostgreSQL index and a pgvec one
    pconn.execute("DROP INDEX items_name", prepare=True)
    pconn.execute("DROP INDEX items_vec", prepare=True)
    assert pconn.execute(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'items'"
    ).fetchone() == (1,)
    assert pconn.execute("SELECT count(*) FROM pgvec.indexes").fetchone() == (0,)
