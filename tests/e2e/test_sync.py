"""Sync: committed writes are visible to the next search, rolled-back ones never,
including transactions that commit out of sequence order."""

from __future__ import annotations

import logging
import time

import numpy as np
import psycopg
import pytest


@pytest.fixture
def pconn(pconn_both_ways: psycopg.Connection) -> psycopg.Connection:
    """Through pgvec as the superuser (autocommit) and as an ordinary role (transactions)."""
    return pconn_both_ways


Q = "SELECT id FROM t ORDER BY embedding <-> '[0,0]' LIMIT 10"


def ids(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute(Q).fetchall()]


def setup(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, embedding vector(2))")
    pconn.execute("INSERT INTO t VALUES (1, '[1,1]')")
    pconn.execute("CREATE INDEX ON t USING hnsw (embedding vector_l2_ops)")


def test_out_of_order_commits(pconn: psycopg.Connection, proxy_uri: str) -> None:
    setup(pconn)
    with psycopg.connect(proxy_uri) as slow, psycopg.connect(proxy_uri) as fast:
        slow.execute("INSERT INTO t VALUES (2, '[2,2]')")  # takes the lower seq, open
        fast.execute("INSERT INTO t VALUES (3, '[3,3]')")
        fast.commit()
        assert ids(pconn) == [1, 3]
        slow.commit()
        assert ids(pconn) == [1, 2, 3]


def test_rollback_never_appears(pconn: psycopg.Connection, proxy_uri: str) -> None:
    setup(pconn)
    with psycopg.connect(proxy_uri) as other:
        other.execute("INSERT INTO t VALUES (5, '[0,0]')")
        other.execute("DELETE FROM t WHERE id = 1")
        assert ids(pconn) == [1]
        other.rollback()
    assert ids(pconn) == [1]


def test_update_delete_truncate(pconn: psycopg.Connection) -> None:
    setup(pconn)
    pconn.execute(
        "INSERT INTO t SELECT g, pgvec.vector(ARRAY[g, g]::real[]) FROM generate_series(2, 50) g"
    )
    assert ids(pconn) == list(range(1, 11))
    pconn.execute("UPDATE t SET embedding = '[100,100]' WHERE id <= 5")
    assert ids(pconn) == list(range(6, 16))
    pconn.execute("UPDATE t SET id = id + 1000 WHERE id = 6")  # the key moves, the vector stays
    assert ids(pconn) == [1006, *range(7, 16)]
    pconn.execute("DELETE FROM t WHERE id BETWEEN 7 AND 10")
    assert ids(pconn)[:3] == [1006, 11, 12]
    pconn.execute("TRUNCATE t")
    assert ids(pconn) == []
    pconn.execute("INSERT INTO t VALUES (9, '[0,0]')")
    assert ids(pconn) == [9]
    # TRUNCATE and new rows applied by the same search
    pconn.execute("TRUNCATE t")
    pconn.execute("INSERT INTO t VALUES (8, '[0,0]')")
    assert ids(pconn) == [8]


def test_compaction_after_many_deletes(
    pconn: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    pconn.execute("CREATE TABLE c (id int PRIMARY KEY, embedding vector(4))")
    n = 3000  # the engine compacts past max(1000, 20%) dead rows
    data = np.random.default_rng(2).standard_normal((n, 4)).astype("f4")
    with pconn.cursor() as cur, cur.copy("COPY c FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "bytea"])
        for i, v in enumerate(data):
            copy.write_row((i, v.tobytes()))
    pconn.execute("CREATE INDEX ON c USING hnsw (embedding vector_l2_ops)")

    def compacted() -> bool:
        return any("compacting c" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.INFO):
        pconn.execute("DELETE FROM c WHERE id % 2 = 0")
        pconn.execute("SELECT id FROM c ORDER BY embedding <-> %s LIMIT 1", (data[0].tobytes(),))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not compacted():
            time.sleep(0.2)
    assert compacted()
    q = data[1]
    got = pconn.execute("SELECT id FROM c ORDER BY embedding <-> %s LIMIT 10", (q.tobytes(),))
    odd = np.arange(1, n, 2)
    want = odd[np.argsort(np.linalg.norm(data[odd] - q, axis=1))][:10]
    assert [r[0] for r in got] == want.tolist()
