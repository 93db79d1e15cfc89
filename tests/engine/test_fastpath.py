"""The unfiltered search fast path: incremental dead counts, cached selectors."""

from __future__ import annotations

import numpy as np
import pytest

from pgvec.engine import IndexSpec, Metric, SearchParams, VectorCollection
from tests.engine.conftest import clustered
from tests.engine.reference import distances, topk


def _check_counts(coll: VectorCollection) -> None:
    s = coll._sealed_upto
    assert coll._dead_sealed == s - int(np.count_nonzero(coll._alive[:s]))
    assert coll.growing_count == (
        0
        if coll.index_spec is None or coll.index_spec.index_type == "FLAT"
        else int(np.count_nonzero(coll._alive[s : coll._n]))
    )


def _check_search(coll: VectorCollection, rows: dict[int, np.ndarray], q, metric, k=10):
    """Exact results with an exhaustive ef/nprobe: same keys and distances as brute force."""
    params = SearchParams(ef_search=1000, nprobe=1000)
    got, dists = coll.search(q, k, metric, params)
    assert len(got) == min(k, len(rows))
    if not rows:
        return
    keys = list(rows)
    _, want_d = topk(np.stack([rows[key] for key in keys]), keys, q, k, metric)
    assert len(set(got)) == len(got)
    np.testing.assert_allclose(dists, want_d, rtol=1e-5, atol=1e-9)
    exact = distances(np.stack([rows[g] for g in got]), q, metric)
    np.testing.assert_allclose(dists, exact, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("itype", ["HNSW", "IVF_FLAT"])
@pytest.mark.parametrize("metric", [Metric.L2, Metric.IP, Metric.COSINE])
def test_random_writes_keep_counts_and_exact_results(itype, metric):
    rng = np.random.default_rng(7)
    data = clustered(1200, 16, seed=3)
    queries = clustered(5, 16, seed=4)
    coll = VectorCollection(16)
    rows: dict[int, np.ndarray] = {}
    spec = IndexSpec.create(itype, metric, {"nlist": 8} if itype != "HNSW" else {})
    next_row = 0
    for step in range(40):
        op = rng.integers(0, 6)
        if op <= 1 or step < 3:  # upsert new and existing keys
            keys = rng.integers(0, 400, 30).tolist()
            vecs = data[next_row : next_row + 30]
            next_row = (next_row + 30) % (len(data) - 30)
            coll.upsert(keys, vecs)
            rows.update(zip(keys, vecs, strict=True))
        elif op == 2:
            keys = rng.integers(0, 400, 25).tolist()
            coll.delete(keys)
            for key in keys:
                rows.pop(key, None)
        elif op == 3 and len(rows) >= 8:
            coll.build_index(spec)
        elif op == 4:
            coll.seal()
        elif step % 13 == 0:
            coll.drop_index()
        _check_counts(coll)
        for q in queries[:2]:
            _check_search(coll, rows, q, metric)
    assert coll.live_count == len(rows)


def test_selector_cache_follows_deletes():
    data = clustered(600, 8, seed=5)
    coll = VectorCollection(8)
    coll.upsert(list(range(600)), data)
    coll.build_index(IndexSpec.create("HNSW", Metric.L2, {}))
    q = data[0]
    assert coll.search(q, 1, Metric.L2)[0] == [0]
    assert coll._selector is None  # no deletes: no bitmap at all
    coll.delete([0])
    assert coll.search(q, 1, Metric.L2)[0] != [0]
    first = coll._selector
    assert first is not None
    coll.search(q, 1, Metric.L2)
    assert coll._selector is first  # reused while nothing changes
    near = coll.search(q, 1, Metric.L2)[0][0]
    coll.upsert([near], data[599:600])  # replacing a sealed row kills its label
    assert coll._selector is None
    assert coll.search(q, 1, Metric.L2)[0] != [near]
    _check_counts(coll)


def test_persist_recounts_dead_rows(tmp_path):
    data = clustered(500, 8, seed=6)
    coll = VectorCollection(8)
    coll.upsert(list(range(500)), data)
    coll.build_index(IndexSpec.create("HNSW", Metric.L2, {}))
    coll.delete(list(range(0, 500, 3)))
    coll.save(tmp_path)
    loaded = VectorCollection.load(tmp_path)
    _check_counts(loaded)
    assert loaded._dead_sealed == len(range(0, 500, 3))
    for q in data[:5]:
        assert loaded.search(q, 5, Metric.L2)[0] == coll.search(q, 5, Metric.L2)[0]


def test_memory_after_a_build_counts_the_rows_once():
    """A build compacts the rows into arrays of exactly their size; memory_bytes then
    counts each stored vector once (it counted a doubled, never-used buffer)."""
    dim, n = 32, 1000
    coll = VectorCollection(dim)
    coll.upsert(list(range(n)), np.random.default_rng(0).standard_normal((n, dim)))
    coll.build_index(IndexSpec.create("FLAT", Metric.L2))
    assert coll.stats()["memory_bytes"] == n * (dim * 4 + 5) + n * 8  # keys: one int64 each
    coll.upsert([n], np.zeros((1, dim)))  # room to grow comes with the next write
    assert coll.search(np.zeros(dim), 1, Metric.L2)[0] == [n]
