"""Sync: committed writes are visible to the next search, rolled-back ones never,
including transactions that commit out of sequence order."""

from __future__ import annotations

import psycopg

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
