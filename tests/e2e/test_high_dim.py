"""No dimension ceiling: 3,072-d and 4,096-d vectors (OpenAI text-embedding-3-large, and
beyond pgvector's 2,000-d HNSW limit) load, index and search through pgvec."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest


@pytest.fixture
def pconn(pconn_both_ways: psycopg.Connection) -> psycopg.Connection:
    """Through pgvec as the superuser (autocommit) and as an ordinary role (transactions)."""
    return pconn_both_ways


ROWS = 1500


def text(v: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


@pytest.mark.parametrize("dim", [3072, 4096])
def test_high_dimensional_hnsw(pconn: psycopg.Connection, dim: int) -> None:
    rng = np.random.default_rng(dim)
    centers = rng.standard_normal((30, dim)).astype("f4")
    data = (centers[rng.integers(0, 30, ROWS)] + rng.standard_normal((ROWS, dim)) * 0.7).astype(
        "f4"
    )
    pconn.execute(f"CREATE TABLE docs (id int PRIMARY KEY, embedding vector({dim}))")
    with pconn.cursor().copy("COPY docs FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "bytea"])
        for i, v in enumerate(data[:-1]):
            copy.write_row((i, v.tobytes()))
    # one row the way psql sends it: a text literal of 4,096 numbers
    pconn.execute(f"INSERT INTO docs VALUES ({ROWS - 1}, '{text(data[-1])}')")
    pconn.execute("CREATE INDEX ON docs USING hnsw (embedding vector_cosine_ops)")
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    hits = 0
    for n in range(5):
        q = data[n * 7] + rng.standard_normal(dim).astype("f4") * 0.1
        got = pconn.execute(
            "SELECT id, embedding <=> %s FROM docs ORDER BY embedding <=> %s LIMIT 10",
            (text(q), text(q)),
        ).fetchall()
        dist = 1 - unit @ (q / np.linalg.norm(q))
        want = np.argsort(dist)[:10]
        assert got[0][0] == n * 7
        for key, d in got:
            assert d == pytest.approx(dist[key], abs=1e-5)
        hits += len({r[0] for r in got} & set(want.tolist()))
    assert hits / 50 >= 0.9
    row = pconn.execute(f"SELECT embedding FROM docs WHERE id = {ROWS - 1}").fetchone()
    assert row is not None
    back = np.array([float(x) for x in row[0].strip("[]").split(",")], "f4")
    assert np.array_equal(back, data[-1])
