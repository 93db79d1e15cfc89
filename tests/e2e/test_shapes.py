"""Query shapes pgvector serves (issue 10, items 12 and 13), compared with real pgvector.

Query by example (the query vector is a scalar subquery, from the table itself or a CTE),
LATERAL per-row top-k, two indexes on one column with different operator classes, and
EXPLAIN showing the ANN step. Each runs through pgvec with psycopg's defaults (extended
protocol, autocommit off) and with psql (simple protocol), and the rows are compared with
real pgvector 0.6 on the same data, in a database of the same cluster.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from tests.fix_proxy import pgvector_database

N, DIM = 400, 8


def vec(v: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((N, DIM)).astype(np.float32)


@pytest.fixture
def pgvector(pg_uri: str, data: np.ndarray) -> Iterator[psycopg.Connection]:
    """Real pgvector: a database of the same cluster with ``CREATE EXTENSION vector``
    and the same rows (no index: its answers are exact)."""
    with pgvector_database(pg_uri) as c:
        _fill(c, data)
        yield c


def _fill(c: psycopg.Connection, data: np.ndarray) -> None:
    c.execute(f"CREATE TABLE items (id int PRIMARY KEY, cat int, embedding vector({DIM}))")
    c.execute(f"CREATE TABLE users (id int PRIMARY KEY, embedding vector({DIM}))")
    with c.cursor() as cur:
        cur.executemany(
            "INSERT INTO items VALUES (%s, %s, %s)",
            [(i + 1, i % 5, vec(v)) for i, v in enumerate(data)],
        )
        cur.executemany(
            "INSERT INTO users VALUES (%s, %s)", [(u, vec(data[u * 37] + 0.01)) for u in range(4)]
        )
    c.execute("INSERT INTO items VALUES (1000, 0, NULL)")
    if not c.autocommit:
        c.commit()


@pytest.fixture
def pgvec(proxy_uri: str, data: np.ndarray) -> Iterator[psycopg.Connection]:
    """Through pgvec, psycopg's defaults (autocommit off), the same rows, HNSW indexes
    searched widely enough to be exact on 400 rows."""
    with psycopg.connect(proxy_uri) as c:
        _fill(c, data)
        c.execute("CREATE INDEX items_l2 ON items USING hnsw (embedding vector_l2_ops)")
        c.execute("SET hnsw.ef_search = 400")
        c.commit()
        yield c


def psql(uri: str, sql: str) -> str:
    out = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", uri],
        input="SET hnsw.ef_search = 400;\n" + sql,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return out.stdout + out.stderr


EXAMPLES = [
    "SELECT id FROM items ORDER BY embedding <-> (SELECT embedding FROM items WHERE id = 7)"
    " LIMIT 10",
    "SELECT id FROM items WHERE id <> 7"
    " ORDER BY embedding <-> (SELECT embedding FROM items WHERE id = 7) LIMIT 10",
    "SELECT id FROM items ORDER BY embedding <=> (SELECT embedding FROM items WHERE id = 9)"
    " LIMIT 5",
    "SELECT id FROM items ORDER BY embedding <#> (SELECT i.embedding FROM items i WHERE i.id = 3)"
    " LIMIT 5",
    "WITH q AS (SELECT embedding FROM items WHERE id = 1)"
    " SELECT id FROM items ORDER BY embedding <-> (SELECT embedding FROM q) LIMIT 5",
    "SELECT id FROM items WHERE cat = 2"
    " ORDER BY embedding <-> (SELECT embedding FROM users WHERE id = 1) LIMIT 7",
]


@pytest.mark.parametrize("sql", EXAMPLES)
def test_query_by_example_rows(pgvec: psycopg.Connection, pgvector: psycopg.Connection, sql: str):
    want = pgvector.execute(sql).fetchall()
    assert pgvec.execute(sql).fetchall() == want
    pgvec.rollback()


def test_query_by_example_parameters_and_distances(
    pgvec: psycopg.Connection, pgvector: psycopg.Connection, data: np.ndarray
) -> None:
    sql = (
        "SELECT id, embedding <-> (SELECT embedding FROM items WHERE id = %s) AS d FROM items"
        " WHERE id <> %s ORDER BY embedding <-> (SELECT embedding FROM items WHERE id = %s)"
        " LIMIT %s"
    )
    for example in (5, 123):
        args = (example, example, example, 8)
        got = pgvec.execute(sql, args).fetchall()
        want = pgvector.execute(sql, args).fetchall()
        assert [r[0] for r in got] == [r[0] for r in want]
        np.testing.assert_allclose([r[1] for r in got], [r[1] for r in want], rtol=1e-5)
        exact = np.linalg.norm(data - data[example - 1], axis=1)
        assert [r[0] for r in got] == [int(i) + 1 for i in np.argsort(exact)[1:9]]
    # prepared (psycopg prepares from the 5th execution): the same answers
    for _ in range(6):
        got = pgvec.execute(sql, (5, 5, 5, 3)).fetchall()
        assert [r[0] for r in got] == [r[0] for r in pgvector.execute(sql, (5, 5, 5, 3))]
    pgvec.rollback()


def test_query_by_example_uses_the_index(pgvec: psycopg.Connection) -> None:
    plan = "\n".join(
        r[0]
        for r in pgvec.execute(
            "EXPLAIN SELECT id FROM items"
            " ORDER BY embedding <-> (SELECT embedding FROM items WHERE id = %s) LIMIT 10",
            (7,),
        )
    )
    assert "pgvec ANN Search using items_l2 on items.embedding (hnsw, l2)" in plan
    assert "Query Vector: scalar subquery, evaluated first" in plan
    assert "ef_search=400" in plan and "k=10" in plan
    pgvec.rollback()


def test_query_by_example_null_and_no_row(
    pgvec: psycopg.Connection, pgvector: psycopg.Connection
) -> None:
    """A NULL query vector (the example's vector is NULL, or no row): pgvector's HNSW scan
    returns k rows, in no particular order, with NULL distances; so does pgvec."""
    pgvector.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
    pgvector.execute("SET enable_seqscan = off")
    for example in (1000, 99999):
        sql = (
            "SELECT id, embedding <-> (SELECT embedding FROM items WHERE id = %s) FROM items"
            " ORDER BY embedding <-> (SELECT embedding FROM items WHERE id = %s) LIMIT 5"
        )
        want = pgvector.execute(sql, (example, example)).fetchall()
        got = pgvec.execute(sql, (example, example)).fetchall()
        assert len(got) == len(want) == 5
        assert {r[1] for r in got} == {r[1] for r in want} == {None}
        assert len({r[0] for r in got}) == 5
    # a NULL parameter, too
    got = pgvec.execute("SELECT id FROM items ORDER BY embedding <-> %s LIMIT 3", (None,))
    assert len(got.fetchall()) == 3
    pgvec.rollback()


def test_query_by_example_more_than_one_row(
    pgvec: psycopg.Connection, pgvector: psycopg.Connection
) -> None:
    sql = (
        "SELECT id FROM items"
        " ORDER BY embedding <-> (SELECT embedding FROM items WHERE id > %s) LIMIT 5"
    )
    with pytest.raises(psycopg.errors.CardinalityViolation) as want:
        pgvector.execute(sql, (3,))
    with pytest.raises(psycopg.errors.CardinalityViolation) as got:
        pgvec.execute(sql, (3,))
    assert str(got.value) == str(want.value)
    pgvec.rollback()
    assert pgvec.execute("SELECT 1").fetchone() == (1,)  # the session goes on
    pgvec.rollback()


def test_query_by_example_runs_as_the_client(
    pgvec: psycopg.Connection, proxy_uri: str, app_role: str
) -> None:
    """The subquery runs in the client's session with its role: without SELECT on the
    table it reads, the client gets PostgreSQL's permission error, not rows."""
    pgvec.execute(f"GRANT SELECT ON items TO {app_role}")
    pgvec.commit()
    with psycopg.connect(proxy_uri.replace("postgres@", f"{app_role}@")) as c:
        ok = c.execute(
            "SELECT id FROM items ORDER BY embedding <-> (SELECT embedding FROM items"
            " WHERE id = 2) LIMIT 3"
        ).fetchall()
        assert ok[0] == (2,)
        c.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="table users"):
            c.execute(
                "SELECT id FROM items ORDER BY embedding <-> (SELECT embedding FROM users"
                " WHERE id = %s) LIMIT 3",
                (1,),
            )


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_query_by_example_psql(
    pgvec: psycopg.Connection, pgvector: psycopg.Connection, proxy_uri: str, pg_uri: str
) -> None:
    real = psycopg.conninfo.make_conninfo(pg_uri, dbname=pgvector.info.dbname)
    script = ";\n".join(EXAMPLES) + ";\n"
    assert psql(proxy_uri, script) == psql(real, script)
    bad = "SELECT id FROM items ORDER BY embedding <-> (SELECT embedding FROM items) LIMIT 1;"
    assert "more than one row returned by a subquery used as an expression" in psql(proxy_uri, bad)
    plan = psql(
        proxy_uri,
        "EXPLAIN ANALYZE SELECT id FROM items"
        " ORDER BY embedding <-> (SELECT embedding FROM items WHERE id = 7) LIMIT 4;",
    )
    assert "pgvec ANN Search using items_l2" in plan and "Hits: " in plan, plan


# ------------------------------------------------------------------ item 13


def test_lateral_per_row_top_k(pgvec: psycopg.Connection, pgvector: psycopg.Connection) -> None:
    sql = (
        "SELECT u.id, n.id FROM users u CROSS JOIN LATERAL"
        " (SELECT i.id FROM items i ORDER BY i.embedding <-> u.embedding LIMIT 5) n"
        " ORDER BY u.id"
    )
    want = pgvector.execute(sql).fetchall()
    assert len(want) == 20
    assert pgvec.execute(sql).fetchall() == want
    # a filter that refers to the outer row ("missing FROM-clause entry" before)
    sql = (
        "SELECT u.id, n.id FROM users u CROSS JOIN LATERAL"
        " (SELECT i.id FROM items i WHERE i.cat = u.id ORDER BY i.embedding <-> %s LIMIT 3) n"
        " ORDER BY u.id"
    )
    q = vec(np.ones(DIM, dtype=np.float32))
    want = pgvector.execute(sql, (q,)).fetchall()
    assert len(want) == 12
    assert pgvec.execute(sql, (q,)).fetchall() == want
    pgvec.rollback()


def test_two_opclasses_on_one_column(
    pgvec: psycopg.Connection, pgvector: psycopg.Connection
) -> None:
    """pgvector allows an l2 and a cosine index on one column and picks one by operator;
    so does pgvec. Made in a transaction block, the second is built at commit; each
    operator's answers are pgvector's, and EXPLAIN names the index it used."""
    pgvec.execute("CREATE INDEX items_cos ON items USING hnsw (embedding vector_cosine_ops)")
    pgvec.commit()
    for _ in range(300):
        state = pgvec.execute(
            "SELECT state FROM pgvec.indexes WHERE index_name = 'items_cos'"
        ).fetchone()
        pgvec.rollback()
        if state == ("ready",):
            break
        time.sleep(0.1)
    assert state == ("ready",)
    q = vec(np.arange(DIM, dtype=np.float32) - 3)
    for op, name in (("<->", "items_l2"), ("<=>", "items_cos"), ("<#>", None)):
        sql = f"SELECT id FROM items ORDER BY embedding {op} %s LIMIT 10"
        assert pgvec.execute(sql, (q,)).fetchall() == pgvector.execute(sql, (q,)).fetchall()
        plan = "\n".join(r[0] for r in pgvec.execute("EXPLAIN " + sql, (q,)))
        if name is not None:
            assert f"using {name} on" in plan, plan
        assert ("exact" in plan) == (name is None), plan
    pgvec.rollback()


def test_explain_shows_the_ann_step(pgvec: psycopg.Connection) -> None:
    q = vec(np.ones(DIM, dtype=np.float32))
    rows = [
        r[0]
        for r in pgvec.execute(
            "EXPLAIN ANALYZE SELECT id FROM items WHERE cat = 1 ORDER BY embedding <-> %s LIMIT 3",
            (q,),
        )
    ]
    at = next(i for i, r in enumerate(rows) if "Function Scan on" in r and "__pgvec_hit" in r)
    step = rows[at + 1 : at + 6]
    assert step[0].strip() == "pgvec ANN Search using items_l2 on items.embedding (hnsw, l2)"
    assert step[1].strip() == "Query Vector: parameter $1"
    assert step[2].strip() == "Search: k=3 candidates=11 ef_search=400"
    assert step[3].strip().startswith("Filter:")
    assert step[4].strip().startswith("Hits: ")
    # other formats are PostgreSQL's own
    (doc,) = pgvec.execute(
        "EXPLAIN (FORMAT JSON) SELECT id FROM items ORDER BY embedding <-> %s LIMIT 3", (q,)
    ).fetchone()
    assert isinstance(doc, list) and "pgvec ANN" not in str(doc)
    pgvec.rollback()
