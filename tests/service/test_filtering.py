"""The choice between pre- and post-filtering, against a real PostgreSQL table."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import psycopg
import pytest

from pgvec.engine.collection import VectorCollection
from pgvec.engine.spec import IndexSpec, Metric, SearchParams
from pgvec.errors import UpstreamError
from pgvec.service.filtering import (
    SelectivityMemory,
    TopK,
    decode_int_array,
    fetch_keys,
    filtered_search,
    probe,
)
from pgvec.service.request import FilterSpec
from pgvec.service.search import ClientSQL, ConnectionSQL

ROWS, DIM = 5000, 8
T = TypeVar("T")


def session(uri: str, fn: Callable[[ClientSQL], Awaitable[T]]) -> T:
    """``fn`` run with a client session on ``uri`` (as the proxy runs filters)."""

    async def main() -> T:
        async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as c:
            return await fn(ConnectionSQL(c))

    return asyncio.run(main())


def static(coll: VectorCollection) -> Callable[[], Awaitable[VectorCollection]]:
    async def get() -> VectorCollection:
        return coll

    return get


@pytest.fixture
def table(conn: psycopg.Connection) -> tuple[VectorCollection, np.ndarray]:
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((ROWS, DIM)).astype("f4")
    conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, m int, x real)")
    with conn.cursor().copy("COPY t FROM STDIN") as copy:
        for i in range(ROWS):
            copy.write_row((i, i % 1000, float(vecs[i, 0])))
    coll = VectorCollection(DIM)
    coll.upsert(list(range(ROWS)), vecs)
    coll.build_index(IndexSpec.create("HNSW", Metric.L2, {}))
    return coll, vecs


def args(where: str, *values: object) -> FilterSpec:
    return FilterSpec(
        f"SELECT t.id FROM t WHERE {where}",
        f"SELECT t.id FROM t WHERE ({where}) AND t.id = ANY(CAST(${len(values) + 1} AS bigint[]))",
        [str(v).encode() for v in values],
        [0] * len(values),
        [0] * len(values),
    )


def top(q: np.ndarray) -> TopK:
    return TopK(q, 10, 10, Metric.L2, SearchParams())


def exact(vecs: np.ndarray, q: np.ndarray, admitted: np.ndarray, k: int) -> list[int]:
    ids = np.flatnonzero(admitted)
    return ids[np.argsort(np.linalg.norm(vecs[ids] - q, axis=1))][:k].tolist()


def test_strategy_follows_selectivity(
    db_uri: str, table: tuple[VectorCollection, np.ndarray]
) -> None:
    coll, vecs = table
    memory = SelectivityMemory()
    q = vecs[0] + 0.1
    ids = np.arange(ROWS)
    common, rare = args("m % $1 = 0", 2), args("m = $1", 7)

    def run(filt: FilterSpec) -> tuple[str, list[int]]:
        r = session(
            db_uri,
            lambda sql: filtered_search(sql, static(coll), ROWS, top(q), filt, True, memory),
        )
        return r.strategy, [int(k) for k in r.keys]

    # never seen: pre-filter with a cap; half the rows pass the cap -> post-filter
    strategy, got = run(common)
    assert strategy == "post" and memory.get(common.sql) == pytest.approx(0.5, abs=0.2)
    assert got == exact(vecs, q, ids % 2 == 0, 10)
    assert run(common)[0] == "post"  # learned: straight to the post-filter
    # 5 matching rows: pre-filter, all of them, exact
    strategy, got = run(rare)
    assert strategy == "pre" and got == exact(vecs, q, ids % 1000 == 7, 10)
    assert memory.get(rare.sql) == pytest.approx(5 / ROWS)


def test_correlated_filter_falls_back_to_pre_filter(
    db_uri: str, table: tuple[VectorCollection, np.ndarray]
) -> None:
    coll, vecs = table
    memory = SelectivityMemory()
    cut = float(np.quantile(vecs[:, 0], 0.6))
    q = vecs[np.argmin(vecs[:, 0])]
    filt = args("x > $1", cut)
    memory.put(filt.sql, 0.4)  # known to admit 40%: the post-filter is tried first
    r = session(
        db_uri, lambda sql: filtered_search(sql, static(coll), ROWS, top(q), filt, True, memory)
    )
    assert r.strategy == "pre"
    want = exact(vecs, q, vecs[:, 0] > np.float32(cut), 10)
    assert len(set(map(int, r.keys)) & set(want)) >= 9


def test_keys_and_probe(db_uri: str, table: tuple[VectorCollection, np.ndarray]) -> None:
    filt = args("m = $1", 3)

    def keys(f: FilterSpec, cap: int | None) -> list[object]:
        return session(db_uri, lambda sql: fetch_keys(sql, f, True, cap))

    assert sorted(map(int, keys(filt, None))) == [3, 1003, 2003, 3003, 4003]  # type: ignore[call-overload]
    assert len(keys(args("m < $1", 500), 100)) == 101
    assert keys(args("m < $1", 0), None) == []
    assert session(db_uri, lambda sql: probe(sql, filt, [1, 3, 1003, 17])) == {3, 1003}
    with pytest.raises(UpstreamError) as err:
        keys(args("1 / (m - m) = $1", 1), None)
    assert err.value.sqlstate == "22012"


@pytest.mark.parametrize("pg_type", ["int2", "int4", "int8"])
def test_decode_int_array(conn: psycopg.Connection, pg_type: str) -> None:
    values = [0, 1, -5, 32767, -32768]
    raw = conn.execute(f"SELECT %s::{pg_type}[]", (values,), binary=True).pgresult.get_value(0, 0)  # type: ignore[union-attr]
    assert raw is not None
    assert decode_int_array(raw).tolist() == values
