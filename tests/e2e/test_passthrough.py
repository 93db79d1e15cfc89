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


def test_copy_text_form_vectors(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE v (id int PRIMARY KEY, note text, embedding vector(3))")
    pconn.execute("CREATE INDEX ON v USING hnsw (embedding vector_l2_ops)")
    with pconn.cursor() as cur:
        with cur.copy("COPY v FROM STDIN") as copy:
            copy.write_row((1, "a\tb", "[1,2,3]"))
            copy.write_row((2, None, "[4,5,6]"))
            copy.write_row((3, "n", None))
        # rows split across CopyData messages anywhere, and a custom delimiter
        with cur.copy("COPY v (embedding, id) FROM STDIN WITH (DELIMITER '|')") as copy:
            for chunk in ("[1,1,", "1]|4\n[9,9,9]|5", "\n"):
                copy.write(chunk)
    rows = pconn.execute("SELECT id, note, embedding FROM v ORDER BY id").fetchall()
    assert rows == [
        (1, "a\tb", "[1,2,3]"),
        (2, None, "[4,5,6]"),
        (3, "n", None),
        (4, None, "[1,1,1]"),
        (5, None, "[9,9,9]"),
    ]
    got = pconn.execute("SELECT id FROM v ORDER BY embedding <-> '[1,1,1]' LIMIT 2").fetchall()
    assert got == [(4,), (1,)]


def test_copy_with_a_bad_vector_fails_and_loads_nothing(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE v (id int PRIMARY KEY, embedding vector(2))")
    with pytest.raises(psycopg.Error) as info, pconn.cursor() as cur:
        with cur.copy("COPY v FROM STDIN") as copy:
            copy.write("1\t[1,2]\n2\t[1,2,3]\n3\t[5,5]\n")
    assert "expected 2 dimensions, not 3" in str(info.value)
    assert "line 2" in str(info.value)
    assert pconn.execute("SELECT count(*) FROM v").fetchone() == (0,)
    assert pconn.execute("SELECT 'usable'").fetchone() == ("usable",)
