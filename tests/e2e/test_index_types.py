"""Every index method and operator class through SQL, against exact numpy search, before
and after updates and deletes (growing rows, dead rows)."""

from __future__ import annotations

import importlib.util
import zlib

import numpy as np
import psycopg
import pytest


@pytest.fixture
def pconn(pconn_both_ways: psycopg.Connection) -> psycopg.Connection:
    """Through pgvec as the superuser (autocommit) and as an ordinary role (transactions)."""
    return pconn_both_ways


ROWS, DIM, K = 3000, 16, 10

METHODS = [
    ("flat", ""),
    ("hnsw", "WITH (m = 12, ef_construction = 48)"),
    ("ivfflat", "WITH (lists = 20)"),
    ("ivf_flat", "WITH (nlist = 20)"),
    ("ivf_sq8", "WITH (nlist = 20)"),
    ("ivf_pq", "WITH (nlist = 20, m = 8, nbits = 8)"),
    pytest.param(
        "diskann",
        "WITH (max_degree = 32, search_list_size = 64)",
        id="diskann",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("diskannpy") is None, reason="diskannpy is not installed"
        ),
    ),
]
OPCLASSES = [("vector_l2_ops", "<->"), ("vector_ip_ops", "<#>"), ("vector_cosine_ops", "<=>")]


def distances(data: np.ndarray, q: np.ndarray, op: str) -> np.ndarray:
    x, q = data.astype(np.float64), q.astype(np.float64)
    if op == "<->":
        return np.linalg.norm(x - q, axis=1)
    if op == "<#>":
        return -(x @ q)
    return 1 - (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))


def check(
    conn: psycopg.Connection, rows: dict[int, np.ndarray], queries: np.ndarray, op: str
) -> float:
    keys = np.array(sorted(rows))
    data = np.stack([rows[k] for k in keys])
    hits = 0
    for q in queries:
        got = conn.execute(
            f"SELECT id, embedding {op} %s FROM items ORDER BY embedding {op} %s LIMIT {K}",
            (q.tobytes(), q.tobytes()),
        ).fetchall()
        assert len(got) == K
        exact = distances(data, q, op)
        want = set(keys[np.argsort(exact)[:K]].tolist())
        for key, d in got:  # distances are exact whatever found the row
            assert d == pytest.approx(exact[np.searchsorted(keys, key)], rel=1e-4, abs=1e-5)
        assert [d for _, d in got] == sorted(d for _, d in got)
        hits += len({k for k, _ in got} & want)
    return hits / (K * len(queries))


@pytest.mark.parametrize(("opclass", "op"), OPCLASSES, ids=[o[0] for o in OPCLASSES])
@pytest.mark.parametrize(
    ("method", "options"), METHODS, ids=[m[0] if isinstance(m, tuple) else m.id for m in METHODS]
)
def test_index_method_and_metric(
    pconn: psycopg.Connection, method: str, options: str, opclass: str, op: str
) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{method} {opclass}".encode()))
    centers = rng.standard_normal((20, DIM)).astype("f4") * 3
    data = (centers[rng.integers(0, 20, ROWS)] + rng.standard_normal((ROWS, DIM))).astype("f4")
    queries = (data[rng.integers(0, ROWS, 8)] + rng.standard_normal((8, DIM)) * 0.3).astype("f4")
    pconn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({DIM}))")
    with pconn.cursor().copy("COPY items FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "bytea"])
        for i, v in enumerate(data):
            copy.write_row((i, v.tobytes()))
    pconn.execute(f"CREATE INDEX ON items USING {method} (embedding {opclass}) {options}")
    rows = {i: v for i, v in enumerate(data)}
    floor = 1.0 if method == "flat" else 0.9
    assert check(pconn, rows, queries, op) >= floor
    # move 200 rows onto the queries' neighbourhoods, delete 300, add 100
    moved = rng.integers(0, ROWS, 200)
    with pconn.cursor() as cur:
        for i in moved.tolist():
            v = (queries[i % len(queries)] + rng.standard_normal(DIM) * 0.2).astype("f4")
            cur.execute("UPDATE items SET embedding = %s WHERE id = %s", (v.tobytes(), i))
            rows[i] = v
        gone = rng.choice(ROWS, 300, replace=False).tolist()
        cur.execute("DELETE FROM items WHERE id = ANY(%s)", (gone,))
        for i in gone:
            rows.pop(i, None)
        for i in range(ROWS, ROWS + 100):
            v = (centers[i % 20] + rng.standard_normal(DIM)).astype("f4")
            cur.execute("INSERT INTO items VALUES (%s, %s)", (i, v.tobytes()))
            rows[i] = v
    assert check(pconn, rows, queries, op) >= floor


@pytest.mark.skipif(importlib.util.find_spec("diskannpy") is None, reason="needs diskannpy")
def test_diskann_search_list_setting(pconn: psycopg.Connection) -> None:
    """SET pgvec.diskann_search_list: shown, checked, and widened to LIMIT when smaller."""
    rng = np.random.default_rng(5)
    data = rng.standard_normal((ROWS, DIM)).astype("f4")
    pconn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({DIM}))")
    with pconn.cursor().copy("COPY items FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "bytea"])
        for i, v in enumerate(data):
            copy.write_row((i, v.tobytes()))
    pconn.execute(
        "CREATE INDEX items_dk ON items USING diskann (embedding vector_l2_ops)"
        " WITH (max_degree = 32, search_list_size = 64)"
    )
    assert pconn.execute("SHOW pgvec.diskann_search_list").fetchone() == ("100",)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        pconn.execute("SET pgvec.diskann_search_list = 0")
    pconn.execute("SET pgvec.diskann_search_list = 10")
    assert pconn.execute("SHOW pgvec.diskann_search_list").fetchone() == ("10",)
    rows = {i: v for i, v in enumerate(data)}
    queries = data[:4] + rng.standard_normal((4, DIM)).astype("f4") * 0.1
    assert check(pconn, rows, queries, "<->") >= 0.9
    got = pconn.execute(
        "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 40", (queries[0].tobytes(),)
    ).fetchall()
    want = np.argsort(np.linalg.norm(data - queries[0], axis=1))[:40]
    # a search list of 40 (not 10): the rows are all there, most of them the nearest
    assert len(got) == 40 and len({r[0] for r in got} & set(want.tolist())) >= 30
