"""Partitioned tables searched from SQL: one index per leaf, pruning, merged top-k,
checked against numpy over the rows each query may see."""

from __future__ import annotations

import logging
import time

import numpy as np
import psycopg
import pytest

PARTS = ("a", "b", "c")
DIM = 4


@pytest.fixture
def pconn(pconn_both_ways: psycopg.Connection) -> psycopg.Connection:
    """Through pgvec as the superuser (autocommit) and as an ordinary role (transactions)."""
    return pconn_both_ways


def vec(v: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def setup(pconn: psycopg.Connection, n: int = 60) -> dict[tuple[int, str], np.ndarray]:
    pconn.execute(
        f"CREATE TABLE items (id bigint, part text, price int, embedding vector({DIM}),"
        " PRIMARY KEY (id, part)) PARTITION BY LIST (part)"
    )
    for p in PARTS:
        pconn.execute(f"CREATE TABLE items_{p} PARTITION OF items FOR VALUES IN ('{p}')")
    rng = np.random.default_rng(7)
    rows: dict[tuple[int, str], np.ndarray] = {}
    for i in range(n):
        # the same ids in every partition: (id, part) is the key, id alone is not
        p = PARTS[i % 3]
        v = rng.standard_normal(DIM).astype("f4")
        rows[(i // 3, p)] = v
        pconn.execute(
            "INSERT INTO items VALUES (%s, %s, %s, %s)", (i // 3, p, i, vec(v)), prepare=False
        )
    pconn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
    if not pconn.autocommit:
        pconn.commit()  # the indexes are built after the commit, in the background
    wait_for_indexes(pconn, len(PARTS) + 1)
    return rows


def wait_for_indexes(pconn: psycopg.Connection, n: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        row = pconn.execute("SELECT count(*) FROM pgvec.indexes WHERE state = 'ready'").fetchone()
        if not pconn.autocommit:
            pconn.commit()
        if (row is not None and row[0] >= n) or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def exact(
    rows: dict[tuple[int, str], np.ndarray], q: np.ndarray, k: int, parts: tuple[str, ...] = PARTS
) -> list[tuple[int, str]]:
    d = {key: float(np.linalg.norm(v - q)) for key, v in rows.items() if key[1] in parts}
    return sorted(d, key=lambda key: (d[key], key))[:k]


def search(pconn: psycopg.Connection, q: np.ndarray, k: int, where: str = "") -> list[tuple]:
    return pconn.execute(
        f"SELECT id, part, embedding <-> %s AS d FROM items {where}"
        f" ORDER BY embedding <-> %s LIMIT {k}",
        (vec(q), vec(q)),
    ).fetchall()


def test_index_per_leaf_and_merged_top_k(
    pconn: psycopg.Connection, conn: psycopg.Connection
) -> None:
    rows = setup(pconn)
    names = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT c.relname::text, i.index_name::text FROM pgvec.indexes i"
            " JOIN pg_class c ON c.oid = i.relid"
        ).fetchall()
    }
    assert names == {
        "items": "items_embedding_idx",
        "items_a": "items_a_embedding_idx",
        "items_b": "items_b_embedding_idx",
        "items_c": "items_c_embedding_idx",
    }
    q = np.array([0.1, -0.2, 0.3, 0.0], "f4")
    got = search(pconn, q, 7)
    assert [(r[0], r[1]) for r in got] == exact(rows, q, 7)
    assert [r[2] for r in got] == pytest.approx(
        [float(np.linalg.norm(rows[(r[0], r[1])] - q)) for r in got], rel=1e-5
    )


def test_pruning_by_the_partition_key(
    pconn: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    rows = setup(pconn)
    caplog.set_level(logging.DEBUG, logger="pgvec.service.partitions")
    q = np.array([0.5, 0.5, -0.5, 0.1], "f4")
    got = search(pconn, q, 5, "WHERE part = 'a'")
    assert [(r[0], r[1]) for r in got] == exact(rows, q, 5, ("a",))
    assert "items: searching 1 of 3 partitions" in caplog.text
    got = search(pconn, q, 6, "WHERE part IN ('b', 'c')")
    assert [(r[0], r[1]) for r in got] == exact(rows, q, 6, ("b", "c"))
    assert "items: searching 2 of 3 partitions" in caplog.text
    got = pconn.execute(
        "SELECT id, part FROM items WHERE part = %s ORDER BY embedding <-> %s LIMIT 4",
        ("c", vec(q)),
    ).fetchall()
    assert [tuple(r) for r in got] == exact(rows, q, 4, ("c",))
    # a filter that is no partition key: every leaf, filtered
    got = pconn.execute(
        f"SELECT id, part FROM items WHERE price % 2 = 0 ORDER BY embedding <-> '{vec(q)}' LIMIT 5"
    ).fetchall()
    even = {key: v for i, (key, v) in enumerate(rows.items()) if i % 2 == 0}
    assert [tuple(r) for r in got] == exact(even, q, 5)


def test_writes_through_the_parent_reach_each_leaf(pconn: psycopg.Connection) -> None:
    rows = setup(pconn, 30)
    q = np.zeros(DIM, "f4")
    near = np.full(DIM, 0.001, "f4")
    pconn.execute("INSERT INTO items VALUES (100, 'b', 0, %s)", (vec(near),))
    pconn.execute("UPDATE items SET part = 'c', id = 200 WHERE id = 0 AND part = 'a'")  # moves
    pconn.execute("DELETE FROM items WHERE id = 1 AND part = 'b'")
    if not pconn.autocommit:
        pconn.commit()
    rows[(100, "b")] = near
    rows[(200, "c")] = rows.pop((0, "a"))
    del rows[(1, "b")]
    got = search(pconn, q, 8)
    assert [(r[0], r[1]) for r in got] == exact(rows, q, 8)
    got = search(pconn, q, 3, "WHERE part = 'a'")
    assert [(r[0], r[1]) for r in got] == exact(rows, q, 3, ("a",))


def test_partition_created_later(pconn: psycopg.Connection, conn: psycopg.Connection) -> None:
    rows = setup(pconn, 30)
    pconn.execute("CREATE TABLE items_d PARTITION OF items FOR VALUES IN ('d')")
    v = np.array([9, 9, 9, 9], "f4")
    pconn.execute("INSERT INTO items VALUES (1, 'd', 0, %s)", (vec(v),))
    if not pconn.autocommit:
        pconn.commit()
    rows[(1, "d")] = v
    got = search(pconn, v, 3)
    assert [(r[0], r[1]) for r in got] == exact(rows, v, 3, (*PARTS, "d"))
    got = pconn.execute(
        "SELECT count(*) FROM pgvec.indexes i JOIN pg_class c ON c.oid = i.relid"
        " WHERE c.relname = 'items_d'"
    ).fetchone()
    assert got is not None and got[0] == 1


def test_drop_index_on_the_parent(pconn: psycopg.Connection, conn: psycopg.Connection) -> None:
    setup(pconn, 9)
    pconn.execute("DROP INDEX items_embedding_idx")
    if not pconn.autocommit:
        pconn.commit()  # (dropped at the commit: the session's next statement waits)
    pconn.execute("SELECT 1")
    left = conn.execute("SELECT count(*) FROM pgvec.indexes").fetchone()
    assert left is not None and left[0] == 0


def test_a_role_with_column_grants(
    pconn: psycopg.Connection, proxy_uri: str, pg_uri: str, dbname: str
) -> None:
    """A role granted SELECT on some columns of a partitioned table needs SELECT on its
    ``tableoid`` too for pgvec to search it (a hit is a leaf and a key; the README says
    so): refused with PostgreSQL's error without it, answered as numpy answers with it,
    and refused a filter on a column it may not read."""
    import uuid

    rows = setup(pconn, 30)
    reader = "reader_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_uri, dbname=dbname, autocommit=True) as su:
        su.execute(f"CREATE ROLE {reader} LOGIN")
        su.execute(f"GRANT SELECT (id, part, embedding) ON items TO {reader}")
    try:
        q = np.random.default_rng(3).standard_normal(DIM).astype("f4")
        with psycopg.connect(proxy_uri.replace("postgres@", f"{reader}@")) as c:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                search(c, q, 5)
            c.rollback()
            with psycopg.connect(pg_uri, dbname=dbname, autocommit=True) as su:
                su.execute(f"GRANT SELECT (tableoid) ON items TO {reader}")
            got = search(c, q, 5)
            assert [(r[0], r[1]) for r in got] == exact(rows, q, 5)
            got = search(c, q, 5, "WHERE part IN ('a', 'b')")
            assert [(r[0], r[1]) for r in got] == exact(rows, q, 5, ("a", "b"))
            c.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                search(c, q, 5, "WHERE price > 3")
    finally:
        with psycopg.connect(pg_uri, dbname=dbname, autocommit=True) as su:
            su.execute(f"DROP OWNED BY {reader}")
            su.execute(f"DROP ROLE {reader}")
