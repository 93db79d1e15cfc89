"""Key types, joins with business tables, describe-before-bind, and recall through pgvec."""

from __future__ import annotations

import time
import uuid

import numpy as np
import psycopg
import pytest


@pytest.fixture
def pconn(pconn_both_ways: psycopg.Connection) -> psycopg.Connection:
    """Through pgvec as the superuser (autocommit) and as an ordinary role (transactions)."""
    return pconn_both_ways


def vec(v: np.ndarray) -> str:
    return "[" + ",".join(map(str, v.tolist())) + "]"


@pytest.mark.parametrize("key_type", ["text", "uuid", "integer"])
def test_key_types(pconn: psycopg.Connection, key_type: str) -> None:
    pconn.execute(f"CREATE TABLE docs (k {key_type} PRIMARY KEY, embedding vector(2))")
    keys = {
        "text": ["alpha", 'qu"ote', "x,y"],
        "uuid": [str(uuid.UUID(int=i + 1)) for i in range(3)],
        "integer": ["7", "8", "9"],
    }[key_type]
    with pconn.cursor() as cur:
        cur.executemany(
            "INSERT INTO docs VALUES (%s, %s)",
            [(keys[0], "[0,0]"), (keys[1], "[1,1]"), (keys[2], "[5,5]")],
        )
    pconn.execute("CREATE INDEX ON docs USING hnsw (embedding vector_l2_ops)")
    got = pconn.execute("SELECT k::text FROM docs ORDER BY embedding <-> '[0.9,0.9]' LIMIT 3")
    assert [r[0] for r in got.fetchall()] == [keys[1], keys[0], keys[2]]
    pconn.execute("DELETE FROM docs WHERE k::text = %s", (keys[1],))
    got = pconn.execute("SELECT k::text FROM docs ORDER BY embedding <-> '[0.9,0.9]' LIMIT 3")
    assert [r[0] for r in got.fetchall()] == [keys[0], keys[2]]


def test_join_with_business_table(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE shops (id int PRIMARY KEY, city text)")
    pconn.execute("INSERT INTO shops VALUES (1, 'Paris'), (2, 'Lyon')")
    pconn.execute(
        "CREATE TABLE products (id bigint PRIMARY KEY, shop int REFERENCES shops,"
        " embedding vector(2))"
    )
    rows = [(i, 1 + i % 2, f"[{i},{i}]") for i in range(40)]
    with pconn.cursor() as cur:
        cur.executemany("INSERT INTO products VALUES (%s, %s, %s)", rows)
    pconn.execute("CREATE INDEX ON products USING hnsw (embedding vector_l2_ops)")
    got = pconn.execute(
        "SELECT p.id, s.city FROM products p JOIN shops s ON s.id = p.shop"
        " WHERE s.city = %s ORDER BY p.embedding <-> %s LIMIT 3",
        ("Lyon", "[9.9,9.9]"),
    ).fetchall()
    assert got == [(9, "Lyon"), (11, "Lyon"), (7, "Lyon")]


def test_filter_fills_k_at_low_selectivity(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, cat int, embedding vector(4))")
    rng = np.random.default_rng(3)
    data = rng.standard_normal((3000, 4)).astype("f4")
    with pconn.cursor() as cur:
        cur.executemany(
            "INSERT INTO t VALUES (%s, %s, %s)",
            [(i, i % 500, v.tobytes()) for i, v in enumerate(data)],
        )
    pconn.execute("CREATE INDEX ON t USING hnsw (embedding vector_l2_ops)")
    q = rng.standard_normal(4).astype("f4")
    got = pconn.execute(
        "SELECT id FROM t WHERE cat = 3 ORDER BY embedding <-> %s LIMIT 10", (vec(q),)
    ).fetchall()
    ids = np.arange(3000)[np.arange(3000) % 500 == 3]
    want = ids[np.argsort(np.linalg.norm(data[ids] - q, axis=1))][:10]
    assert [r[0] for r in got] == list(want)  # 6 matching rows: all of them, in order


def _result(pg: psycopg.pq.abc.PGconn) -> psycopg.pq.abc.PGresult:
    """The result of a request sent with a libpq send_* call, waiting without the GIL
    (the pgvec server under test runs in a thread of this process)."""
    while True:
        pg.consume_input()
        if not pg.is_busy():
            break
        time.sleep(0.001)
    res = pg.get_result()
    assert res is not None
    while pg.get_result() is not None:
        pass
    return res


def test_describe_before_bind(pconn: psycopg.Connection) -> None:
    """asyncpg and JDBC: Parse + Describe statement first, then Bind."""
    pconn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(2))")
    pconn.execute("INSERT INTO items VALUES (1, '[0,0]'), (2, '[3,3]')")
    pg = pconn.pgconn
    sql = b"SELECT id, embedding <-> $1 FROM items ORDER BY embedding <-> $1 LIMIT $2"
    pg.send_prepare(b"s1", sql)
    res = _result(pg)
    assert res.status == psycopg.pq.ExecStatus.COMMAND_OK, res.error_message
    pg.send_describe_prepared(b"s1")
    desc = _result(pg)
    assert desc.nparams == 2  # the hit arrays pgvec adds stay hidden
    assert [desc.fname(i) for i in range(desc.nfields)] == [b"id", b"?column?"]
    assert desc.ftype(1) == 701
    pg.send_query_prepared(b"s1", [b"[3,2]", b"1"])
    res = _result(pg)
    assert res.status == psycopg.pq.ExecStatus.TUPLES_OK, res.error_message
    assert (res.get_value(0, 0), float(res.get_value(0, 1) or 0)) == (b"2", 1.0)


def test_create_and_insert_in_one_query(pconn: psycopg.Connection) -> None:
    pconn.execute(
        "CREATE TABLE t (id int PRIMARY KEY, embedding vector(2));"
        " INSERT INTO t VALUES (1, '[1,2]'), (2, '[3,4]')"
    )
    got = pconn.execute("SELECT id FROM t ORDER BY embedding <-> '[3,3]' LIMIT 1").fetchall()
    assert got == [(2,)]


@pytest.mark.parametrize(
    ("method", "opclass", "op"),
    [
        ("hnsw", "vector_l2_ops", "<->"),
        ("hnsw", "vector_cosine_ops", "<=>"),
        ("ivfflat", "vector_ip_ops", "<#>"),
    ],
)
def test_recall_against_numpy(
    pconn: psycopg.Connection, method: str, opclass: str, op: str
) -> None:
    rng = np.random.default_rng(11)
    centers = rng.standard_normal((20, 32)).astype("f4")
    data = (centers[rng.integers(0, 20, 4000)] + 0.3 * rng.standard_normal((4000, 32))).astype("f4")
    pconn.execute("CREATE TABLE v (id int PRIMARY KEY, embedding vector(32))")
    with pconn.cursor() as cur, cur.copy("COPY v FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "bytea"])
        for i, x in enumerate(data):
            copy.write_row((i, x.tobytes()))
    pconn.execute(f"CREATE INDEX ON v USING {method} (embedding {opclass})")
    queries = (centers[rng.integers(0, 20, 30)] + 0.3 * rng.standard_normal((30, 32))).astype("f4")
    hits = 0
    for q in queries:
        got = pconn.execute(
            f"SELECT id FROM v ORDER BY embedding {op} %s LIMIT 10", (q.tobytes(),)
        ).fetchall()
        if op == "<->":
            score = np.linalg.norm(data - q, axis=1)
        elif op == "<=>":
            score = 1 - data @ q / np.linalg.norm(data, axis=1) / np.linalg.norm(q)
        else:
            score = -(data @ q)
        want = set(np.argsort(score)[:10].tolist())
        hits += len(want & {r[0] for r in got})
    assert hits / (10 * len(queries)) >= 0.9


def test_search_in_the_query_that_creates_the_table(pconn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as info:
        pconn.execute(
            "CREATE TABLE n (id int PRIMARY KEY, embedding vector(2));"
            " SELECT id FROM n ORDER BY embedding <-> '[1,1]' LIMIT 1"
        )
    assert info.value.sqlstate == "0A000"
    assert pconn.execute("SELECT 1").fetchone() == (1,)


def test_long_index_build_reports_progress(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE big (id int PRIMARY KEY, embedding vector(64))")
    data = np.random.default_rng(4).standard_normal((40_000, 64)).astype("f4")
    with pconn.cursor() as cur, cur.copy("COPY big FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "bytea"])
        for i, v in enumerate(data):
            copy.write_row((i, v.tobytes()))
    notices: list[str] = []
    pconn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    started = time.monotonic()
    pconn.execute(
        "CREATE INDEX ON big USING hnsw (embedding vector_l2_ops) WITH (ef_construction = 200)"
    )
    elapsed = time.monotonic() - started
    got = pconn.execute(
        "SELECT id FROM big ORDER BY embedding <-> %s LIMIT 1", (data[7].tobytes(),)
    )
    assert got.fetchall() == [(7,)]
    if elapsed < 1.5:  # progress is reported about once a second
        pytest.skip(f"the build took only {elapsed:.1f}s on this machine")
    assert any(n.startswith("building big_embedding_idx: add") for n in notices), notices
