"""The issue's psql session, through pgvec with psycopg, checked against numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest

from tests.fix_proxy import PgvecServer


@pytest.fixture
def pconn(pconn_both_ways: psycopg.Connection) -> psycopg.Connection:
    """Through pgvec as the superuser (autocommit) and as an ordinary role (transactions)."""
    return pconn_both_ways


ROWS = [(1, "a", 10, [1, 2, 3]), (2, "b", 20, [4, 5, 6]), (3, "c", 30, [1, 1, 1])]


def setup_items(pconn: psycopg.Connection, index: bool = True) -> None:
    pconn.execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, title text, price int, embedding vector(3))"
    )
    pconn.execute(
        "INSERT INTO items VALUES (1, 'a', 10, '[1,2,3]'), (2, 'b', 20, '[4,5,6]'),"
        " (3, 'c', 30, '[1,1,1]')"
    )
    if index:
        pconn.execute(
            "CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )


def exact(rows: list[tuple[int, str, int, list[int]]], q: list[float], k: int) -> list[int]:
    d = {r[0]: float(np.linalg.norm(np.array(r[3], "f4") - np.array(q, "f4"))) for r in rows}
    return sorted(d, key=lambda i: (d[i], i))[:k]


def test_issue_session(pconn: psycopg.Connection) -> None:
    setup_items(pconn)
    got = pconn.execute(
        "SELECT id, title, embedding <-> '[1,1,2]' AS distance FROM items"
        " ORDER BY embedding <-> '[1,1,2]' LIMIT 2"
    ).fetchall()
    assert [r[0] for r in got] == exact(ROWS, [1, 1, 2], 2) == [3, 1]
    assert got[0][1] == "c"
    assert got[0][2] == pytest.approx(1.0)
    assert got[1][2] == pytest.approx(np.sqrt(2))

    got = pconn.execute(
        "SELECT id FROM items WHERE price > 15 ORDER BY embedding <-> '[1,1,2]' LIMIT 2"
    ).fetchall()
    assert [r[0] for r in got] == [3, 2]

    pconn.execute("INSERT INTO items VALUES (4, 'd', 40, '[1,1,2]')")
    got = pconn.execute("SELECT id FROM items ORDER BY embedding <-> '[1,1,2]' LIMIT 2").fetchall()
    assert [r[0] for r in got] == [4, 3]

    pconn.execute("DELETE FROM items WHERE id = 3")
    got = pconn.execute("SELECT id FROM items ORDER BY embedding <-> '[1,1,2]' LIMIT 2").fetchall()
    assert [r[0] for r in got] == [4, 1]


def test_distance_column_keeps_its_name_and_type(pconn: psycopg.Connection) -> None:
    setup_items(pconn)
    cur = pconn.execute(
        "SELECT id, embedding <-> '[1,1,2]' FROM items ORDER BY embedding <-> '[1,1,2]' LIMIT 1"
    )
    assert cur.description is not None
    assert [c.name for c in cur.description] == ["id", "?column?"]
    assert cur.description[1].type_code == 701  # float8, like pgvector
    assert cur.fetchone() == (3, pytest.approx(1.0))


@pytest.mark.parametrize(
    ("op", "fn"),
    [
        ("<->", lambda a, b: float(np.linalg.norm(a - b))),
        ("<#>", lambda a, b: -float(a @ b)),
        ("<=>", lambda a, b: 1 - float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))),
    ],
)
def test_operators_without_index_are_exact(pconn: psycopg.Connection, op: str, fn: object) -> None:
    setup_items(pconn, index=False)
    q = np.array([1, 1, 2], "f4")
    got = pconn.execute(
        f"SELECT id, embedding {op} '[1,1,2]' FROM items ORDER BY embedding {op} '[1,1,2]' LIMIT 3"
    ).fetchall()
    want = sorted(((r[0], fn(np.array(r[3], "f4"), q)) for r in ROWS), key=lambda x: x[1])
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[1] for g in got] == pytest.approx([w[1] for w in want], rel=1e-5)


def test_query_vector_as_parameter(pconn: psycopg.Connection) -> None:
    setup_items(pconn)
    sql = "SELECT id, embedding <-> %s AS d FROM items ORDER BY embedding <-> %s LIMIT %s"
    for _ in range(7):  # past psycopg's prepare threshold: named statements too
        got = pconn.execute(sql, ("[1,1,2]", "[1,1,2]", 2)).fetchall()
        assert [r[0] for r in got] == [3, 1]
    got = pconn.execute(
        "SELECT id FROM items WHERE price > %s ORDER BY embedding <-> %s LIMIT 2",
        (15, "[1,1,2]"),
    ).fetchall()
    assert [r[0] for r in got] == [3, 2]
    got = pconn.execute(
        "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 2", ([1.0, 1.0, 2.0],)
    ).fetchall()
    assert [r[0] for r in got] == [3, 1]


def test_insert_with_parameters_and_binary_vectors(pconn: psycopg.Connection) -> None:
    setup_items(pconn)
    with pconn.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (%s, %s, %s, %s)", (10, "p", 1, "[9,9,9]"))
        cur.executemany(
            "INSERT INTO items (id, title, price, embedding) VALUES (%s, %s, %s, %s)",
            [(11, "q", 1, [8.0, 8.0, 8.0]), (12, "r", 1, np.array([7, 7, 7], "<f4").tobytes())],
        )
    got = pconn.execute("SELECT id FROM items ORDER BY embedding <-> '[9,9,9]' LIMIT 3").fetchall()
    assert [r[0] for r in got] == [10, 11, 12]
    # binary results are in pgvector's binary form: int16 dim, int16 0, float4 big-endian
    raw = pconn.cursor(binary=True).execute("SELECT embedding FROM items WHERE id = 12")
    expected = b"\x00\x03\x00\x00" + np.array([7, 7, 7], ">f4").tobytes()
    assert bytes(raw.fetchone()[0]) == expected  # type: ignore[index]


def test_vectors_read_back_in_pgvector_text_form(pconn: psycopg.Connection) -> None:
    setup_items(pconn, index=False)
    pconn.execute("INSERT INTO items VALUES (5, 'e', 1, '[0.1,-2.5e-08,3e+20]')")
    cur = pconn.execute("SELECT id, embedding, title FROM items ORDER BY id")
    assert cur.fetchall() == [
        (1, "[1,2,3]", "a"),
        (2, "[4,5,6]", "b"),
        (3, "[1,1,1]", "c"),
        (5, "[0.1,-2.5e-08,3e+20]", "e"),
    ]
    # extended protocol, and a portal fetched in pieces
    with pconn.transaction(), pconn.cursor(name="c") as named:
        named.execute("SELECT embedding FROM items WHERE id > %s ORDER BY id", (1,))
        assert named.fetchmany(1) == [("[4,5,6]",)]
        assert pconn.execute("SELECT 'interleaved'").fetchone() == ("interleaved",)
        assert named.fetchall() == [("[1,1,1]",), ("[0.1,-2.5e-08,3e+20]",)]
    # the text form is also what pgvec.vector_out() gives, straight from PostgreSQL
    row = pconn.execute("SELECT pgvec.vector_out(embedding) FROM items WHERE id = 5").fetchone()
    assert row == ("[0.1,-2.5e-08,3e+20]",)


def test_update_moves_the_vector(pconn: psycopg.Connection) -> None:
    setup_items(pconn)
    pconn.execute("UPDATE items SET embedding = '[100,100,100]' WHERE id = 3")
    got = pconn.execute("SELECT id FROM items ORDER BY embedding <-> '[1,1,2]' LIMIT 3").fetchall()
    assert [r[0] for r in got] == [1, 2, 3]


def test_ivfflat_and_settings(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE docs (id int PRIMARY KEY, embedding vector(8))")
    rng = np.random.default_rng(7)
    data = rng.standard_normal((500, 8)).astype("f4")
    with pconn.cursor() as cur:
        cur.executemany(
            "INSERT INTO docs VALUES (%s, %s)",
            [(i, "[" + ",".join(map(str, v)) + "]") for i, v in enumerate(data)],
        )
    pconn.execute(
        "CREATE INDEX docs_ivf ON docs USING ivfflat (embedding vector_l2_ops) WITH (lists = 10)"
    )
    pconn.execute("SET ivfflat.probes = 10")
    assert pconn.execute("SHOW ivfflat.probes").fetchone() == ("10",)
    q = rng.standard_normal(8).astype("f4")
    got = pconn.execute(
        "SELECT id FROM docs ORDER BY embedding <-> %s LIMIT 10",
        ("[" + ",".join(map(str, q)) + "]",),
    ).fetchall()
    want = np.argsort(np.linalg.norm(data - q, axis=1))[:10]
    assert [r[0] for r in got] == list(want)
    pconn.execute("DROP INDEX docs_ivf")
    got = pconn.execute(
        "SELECT id FROM docs ORDER BY embedding <-> %s LIMIT 10",
        ("[" + ",".join(map(str, q)) + "]",),
    ).fetchall()
    assert [r[0] for r in got] == list(want)


def test_explain_shows_the_ann_join(pconn: psycopg.Connection) -> None:
    setup_items(pconn)
    plan = "\n".join(
        r[0]
        for r in pconn.execute(
            "EXPLAIN (COSTS off) SELECT id FROM items ORDER BY embedding <-> '[1,1,2]' LIMIT 2"
        )
    )
    assert "__pgvec_hit" in plan
    rows = pconn.execute("EXPLAIN ANALYZE SELECT embedding <-> '[1,1,2]' FROM items").fetchall()
    assert rows


def test_first_search_after_restart_of_a_tracked_table(
    pg_uri: str, dbname: str, tmp_path: Path
) -> None:
    """After a restart, the first search of a table without index loads it (and checks
    its change-log triggers) while the client's own statement, already parsed, holds a
    lock on the table: that must not wait on itself."""
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    query = "SELECT id FROM fresh ORDER BY embedding <-> %s LIMIT 1"
    with PgvecServer(upstream, tmp_path / "data").start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            conn.execute("CREATE TABLE fresh (id int PRIMARY KEY, embedding vector(2))")
            conn.execute("INSERT INTO fresh VALUES (1, '[1,1]'), (2, '[5,5]')")
            assert conn.execute(query, ("[4,4]",)).fetchall() == [(2,)]
    with PgvecServer(upstream, tmp_path / "data").start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            conn.execute("SET statement_timeout = '20s'")
            assert conn.execute(query, ("[1,2]",)).fetchall() == [(1,)]
