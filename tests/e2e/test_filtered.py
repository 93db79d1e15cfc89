"""Filtered top-k through pgvec fills k at every selectivity, with recall against exact
filtered search: WHERE on the same table and through a JOIN, 0.01% to 100%."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest


@pytest.fixture
def pconn(pconn_both_ways: psycopg.Connection) -> psycopg.Connection:
    """Through pgvec as the superuser (autocommit) and as an ordinary role (transactions)."""
    return pconn_both_ways


ROWS, DIM, K = 20_000, 16, 10


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    centers = rng.standard_normal((50, DIM)).astype("f4") * 4
    vecs = centers[rng.integers(0, 50, ROWS)] + rng.standard_normal((ROWS, DIM)).astype("f4")
    queries = vecs[rng.integers(0, ROWS, 12)] + rng.standard_normal((12, DIM)).astype("f4") * 0.5
    return vecs.astype("f4"), queries.astype("f4")


@pytest.fixture(params=["on", "off"], ids=["engine-filter", "postgres-filter"])
def loaded(
    pconn: psycopg.Connection, data: tuple[np.ndarray, np.ndarray], request: pytest.FixtureRequest
) -> Iterator[psycopg.Connection]:
    """The table, searched with the WHERE clause evaluated by the engine over its mirror
    of the integer columns, or by PostgreSQL (pre- and post-filtering)."""
    pconn.execute(f"SET pgvec.engine_filter = {request.param}")
    vecs, _ = data
    pconn.execute(
        f"CREATE TABLE items (id int PRIMARY KEY, m10000 int, m1000 int, m100 int, m10 int,"
        f" m2 int, x0 real, embedding vector({DIM}))"
    )
    pconn.execute("CREATE TABLE tags (item int PRIMARY KEY, tag int)")
    with pconn.cursor().copy("COPY items FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "int4", "int4", "int4", "int4", "int4", "float4", "bytea"])
        for i, v in enumerate(vecs):
            copy.write_row((i, i % 10000, i % 1000, i % 100, i % 10, i % 2, v[0], v.tobytes()))
    with pconn.cursor().copy("COPY tags FROM STDIN") as copy:
        for i in range(ROWS):
            copy.write_row((i, i % 20))
    pconn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
    pconn.execute("ANALYZE items")
    pconn.execute("ANALYZE tags")
    yield pconn


def exact(vecs: np.ndarray, q: np.ndarray, admitted: np.ndarray) -> list[int]:
    ids = np.flatnonzero(admitted)
    d = np.linalg.norm(vecs[ids] - q, axis=1)
    return ids[np.argsort(d, kind="stable")][:K].tolist()


CASES = [
    # (label, WHERE clause with one parameter, numpy predicate of (ids, value))
    ("0.01%", "m10000 = %s", lambda ids, v: ids % 10000 == v),
    ("0.1%", "m1000 = %s", lambda ids, v: ids % 1000 == v),
    ("1%", "m100 = %s", lambda ids, v: ids % 100 == v),
    ("10%", "m10 = %s", lambda ids, v: ids % 10 == v),
    ("50%", "m2 = %s", lambda ids, v: ids % 2 == v),
    ("100%", "id >= %s", lambda ids, v: ids >= v),
]


@pytest.mark.parametrize(("label", "where", "pred"), CASES, ids=[c[0] for c in CASES])
def test_filter_fills_k_with_recall(
    loaded: psycopg.Connection,
    data: tuple[np.ndarray, np.ndarray],
    label: str,
    where: str,
    pred: object,
) -> None:
    vecs, queries = data
    ids = np.arange(ROWS)
    sql = f"SELECT id FROM items WHERE {where} ORDER BY embedding <-> %s LIMIT {K}"
    hits = total = 0
    for n, q in enumerate(queries):
        value = 0 if label == "100%" else n % 2
        want = exact(vecs, q, pred(ids, value))  # type: ignore[operator]
        got = [r[0] for r in loaded.execute(sql, (value, q.tobytes())).fetchall()]
        assert len(got) == len(want) == min(K, int(pred(ids, value).sum()))  # type: ignore[operator]
        assert got == sorted(got, key=lambda i: float(np.linalg.norm(vecs[i] - q)))
        hits += len(set(got) & set(want))
        total += len(want)
    assert hits / total >= 0.95, f"recall {hits / total:.3f} at {label}"


@pytest.mark.parametrize("tag_mod", [1, 7])
def test_filter_through_join(
    loaded: psycopg.Connection, data: tuple[np.ndarray, np.ndarray], tag_mod: int
) -> None:
    """A filter on a business table joined by key (5% and, with OR, 35% of the rows)."""
    vecs, queries = data
    ids = np.arange(ROWS)
    sql = (
        "SELECT i.id, t.tag FROM items i JOIN tags t ON t.item = i.id"
        " WHERE t.tag %% %s = 0 AND t.tag < 20 ORDER BY i.embedding <-> %s LIMIT 10"
    )
    hits = total = 0
    for q in queries:
        admitted = (ids % 20) % tag_mod == 0
        want = exact(vecs, q, admitted)
        got = loaded.execute(sql, (tag_mod, q.tobytes())).fetchall()
        assert len(got) == K
        assert all(tag % tag_mod == 0 for _, tag in got)
        hits += len({r[0] for r in got} & set(want))
        total += len(want)
    assert hits / total >= 0.95


def test_filter_correlated_with_the_query(
    loaded: psycopg.Connection, data: tuple[np.ndarray, np.ndarray]
) -> None:
    """A quarter of the rows match, all far from the query: the nearest candidates never
    pass, and pgvec must still return the 10 nearest matching rows."""
    vecs, _ = data
    cut = float(np.quantile(vecs[:, 0], 0.75))
    q = vecs[np.argmin(vecs[:, 0])].copy()
    want = exact(vecs, q, vecs[:, 0] > cut)
    sql = "SELECT id FROM items WHERE x0 > %s ORDER BY embedding <-> %s LIMIT 10"
    for _ in range(3):  # first run, and runs with the learned selectivity
        got = [r[0] for r in loaded.execute(sql, (cut, q.tobytes())).fetchall()]
        assert len(got) == K
        assert len(set(got) & set(want)) >= 9


def test_filter_selectivity_changes_between_executions(
    loaded: psycopg.Connection, data: tuple[np.ndarray, np.ndarray]
) -> None:
    """One prepared statement, alternately admitting 50% and 0.005% of the rows: the
    estimate learned from one execution must not shorten the next."""
    vecs, queries = data
    ids = np.arange(ROWS)
    sql = "SELECT id FROM items WHERE id %% %s = 0 ORDER BY embedding <-> %s LIMIT 10"
    with loaded.cursor() as cur:
        for n, q in enumerate(queries[:6]):
            mod = 2 if n % 2 == 0 else 20_000
            want = exact(vecs, q, ids % mod == 0)
            got = [r[0] for r in cur.execute(sql, (mod, q.tobytes()), prepare=True).fetchall()]
            assert len(got) == len(want)
            assert len(set(got) & set(want)) >= len(want) - 1
