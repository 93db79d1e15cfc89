from __future__ import annotations

import numpy as np
import pytest

from pgvec.engine import IndexSpec, Metric, SearchParams, VectorCollection
from pgvec.errors import DimensionMismatch, InvalidParameter, NonFiniteVector
from tests.engine.conftest import clustered
from tests.engine.reference import distances, topk

METRICS = [Metric.L2, Metric.IP, Metric.COSINE]
CASES = [("FLAT", m) for m in [*METRICS, Metric.L1]] + [
    (t, m) for t in ("IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW") for m in METRICS
]


def recall(coll, data, keys, queries, metric, k=10):
    hits = 0
    for q in queries:
        got, dists = coll.search(q, k, metric)
        want, _ = topk(data, keys, q, k, metric)
        assert len(got) == k
        assert np.all(np.diff(dists) >= -1e-9)
        # Returned distances are always exact, whichever path found the row.
        exact = distances(np.stack([coll.get(g) for g in got]), q, metric)
        np.testing.assert_allclose(dists, exact, rtol=1e-4, atol=1e-5)
        hits += len(set(got) & set(want))
    return hits / (k * len(queries))


@pytest.mark.parametrize(("itype", "metric"), CASES, ids=lambda v: getattr(v, "name", v))
def test_recall_default_params(itype, metric, data, queries):
    keys = list(range(len(data)))
    coll = VectorCollection(32)
    coll.upsert(keys, data)
    coll.build_index(IndexSpec.create(itype, metric))
    r = recall(coll, data, keys, queries, metric)
    if itype == "FLAT":
        assert r == 1.0
        for q in queries[:5]:
            got, d = coll.search(q, 10, metric)
            want, wd = topk(data, keys, q, 10, metric)
            assert got == want
            np.testing.assert_allclose(d, wd, rtol=1e-4, atol=1e-6)
    else:
        assert r >= 0.9, f"{itype}/{metric}: recall {r}"


def test_exact_without_index_and_other_metric(data, queries):
    keys = list(range(len(data)))
    coll = VectorCollection(32)
    coll.upsert(keys, data)
    coll.build_index(IndexSpec.create("HNSW", Metric.L2))
    for metric in (Metric.IP, Metric.COSINE, Metric.L1):  # no index for these: exact
        for q in queries[:3]:
            got, d = coll.search(q, 7, metric)
            want, wd = topk(data, keys, q, 7, metric)
            assert got == want
            np.testing.assert_allclose(d, wd, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("itype", ["HNSW", "IVF_FLAT", "FLAT"])
def test_upsert_update_delete_growing_seal(itype, data, queries):
    coll = VectorCollection(32)
    keys = list(range(4000))
    coll.upsert(keys, data[:4000])
    coll.build_index(IndexSpec.create(itype, Metric.L2))
    deleted = set(range(0, 4000, 3))
    assert coll.delete(deleted) == len(deleted)
    assert coll.delete([999999]) == 0
    # Updates: keys 1..200 (not deleted ones) move onto new vectors.
    upd = [k for k in range(1, 300) if k not in deleted]
    coll.upsert(upd, data[4000 : 4000 + len(upd)])
    # Growing rows, new keys.
    coll.upsert(list(range(10000, 10500)), data[4500:5000])
    model = {k: data[k] for k in keys if k not in deleted}
    model.update({k: data[4000 + i] for i, k in enumerate(upd)})
    model.update({10000 + i: data[4500 + i] for i in range(500)})
    assert coll.live_count == len(model)
    mkeys = list(model)
    mvecs = np.stack([model[k] for k in mkeys])

    def check():
        for q in queries[:20]:
            got, d = coll.search(q, 10, Metric.L2)
            assert not (set(got) & deleted)
            assert len(got) == 10
            np.testing.assert_allclose(
                d, distances(mvecs[[mkeys.index(g) for g in got]], q, Metric.L2), rtol=1e-4
            )
        # a stored vector (updated or growing) is its own nearest neighbour at distance 0
        for key in (upd[0], upd[-1], 10000, 10499):
            got, d = coll.search(model[key], 1, Metric.L2)
            assert got == [key] and d[0] == pytest.approx(0, abs=1e-5)
        for key in list(deleted)[:20]:
            got, _ = coll.search(data[key], 3, Metric.L2)
            assert key not in got

    check()
    before = [coll.search(q, 10, Metric.L2)[0] for q in queries[:10]]
    st = coll.stats()
    assert st["dead_rows"] > 0 and st["live_rows"] == len(model)
    if itype != "FLAT":
        assert coll.growing_count == 500 + len(upd)
        assert coll.seal()
        assert coll.growing_count == 0
    else:
        assert not coll.seal()
    check()
    after = [coll.search(q, 10, Metric.L2)[0] for q in queries[:10]]
    if itype == "FLAT":
        assert before == after
    # A rebuild compacts: dead rows go away.
    coll.build_index(IndexSpec.create(itype, Metric.L2))
    assert coll.stats()["dead_rows"] == 0
    check()


@pytest.mark.parametrize("itype", ["HNSW", "IVF_FLAT", "IVF_PQ"])
@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.5])
def test_allowed_filter(itype, fraction, data, queries):
    coll = VectorCollection(32)
    keys = [f"k{i}" for i in range(len(data))]
    coll.upsert(keys, data)
    coll.build_index(IndexSpec.create(itype, Metric.COSINE))
    coll.delete(keys[::10])
    rng = np.random.default_rng(3)
    allowed = {keys[i] for i in rng.choice(len(keys), int(len(keys) * fraction), replace=False)}
    live_allowed = allowed - set(keys[::10])
    idx = [int(k[1:]) for k in sorted(live_allowed)]
    for q in queries[:10]:
        got, _d = coll.search(q, 10, Metric.COSINE, allowed=allowed)
        assert set(got) <= live_allowed
        assert len(got) == min(10, len(live_allowed))
        want, _wd = topk(data[idx], [keys[i] for i in idx], q, 10, Metric.COSINE)
        hits = len(set(got) & set(want))
        assert hits >= 0.8 * len(want)


def test_hnsw_runs_out_of_candidates_falls_back(data):
    """A filter that HNSW's ef cannot satisfy still returns k rows."""
    coll = VectorCollection(32)
    coll.upsert(list(range(len(data))), data)
    coll.build_index(IndexSpec.create("HNSW", Metric.L2))
    # 2,500 allowed rows (above the exact-search threshold), all in a far-away cluster
    # from the query: ef=40 explores mostly non-allowed rows.
    q = data[0]
    far = np.argsort(-np.linalg.norm(data - q, axis=1))[:2500]
    allowed = set(far.tolist())
    got, _d = coll.search(q, 100, Metric.L2, SearchParams(ef_search=10), allowed=allowed)
    assert len(got) == 100 and set(got) <= allowed
    want, _ = topk(data[far], far.tolist(), q, 100, Metric.L2)
    assert len(set(got) & set(want)) >= 90


def test_k_larger_than_rows_and_empty():
    coll = VectorCollection(3)
    assert coll.search([1, 2, 3], 5, Metric.L2) == ([], pytest.approx(np.empty(0)))
    coll.upsert([1, 2], np.array([[1, 0, 0], [0, 1, 0]]))
    got, d = coll.search([1, 0, 0], 5, Metric.L2)
    assert got == [1, 2]
    np.testing.assert_allclose(d, [0, np.sqrt(2)])
    got, d = coll.search([1, 0, 0], 5, Metric.IP)
    np.testing.assert_allclose(d, [-1, 0])
    got, _ = coll.search([1, 0, 0], 0, Metric.L2)
    assert got == []


def test_cosine_zero_vector_sorts_last():
    coll = VectorCollection(2)
    coll.upsert(["z", "a", "b"], np.array([[0, 0], [1, 0], [0, 1]]))
    got, d = coll.search([1, 0], 3, Metric.COSINE)
    assert got[:2] == ["a", "b"] and got[2] == "z" and np.isnan(d[2])


def test_vector_validation():
    coll = VectorCollection(3)
    with pytest.raises(DimensionMismatch, match="expected 3 dimensions, not 4"):
        coll.upsert([1], np.zeros((1, 4)))
    with pytest.raises(NonFiniteVector, match="NaN"):
        coll.upsert([1], np.array([[1, np.nan, 0]]))
    with pytest.raises(NonFiniteVector, match="infinite"):
        coll.upsert([1], np.array([[1, np.inf, 0]]))
    with pytest.raises(NonFiniteVector):
        coll.upsert([1], np.array([[1e300, 0, 0]]))
    with pytest.raises(DimensionMismatch, match="expected 3 dimensions, not 2"):
        coll.search([1, 2], 1, Metric.L2)
    with pytest.raises(NonFiniteVector):
        coll.search([1, np.nan, 2], 1, Metric.L2)
    with pytest.raises(InvalidParameter, match="keys"):
        coll.upsert([1, 2], np.zeros((1, 3)))
    coll.upsert([1], np.zeros((1, 3)))
    with pytest.raises(InvalidParameter):
        coll.upsert(["x"], np.zeros((1, 3)))  # int-keyed collection
    assert coll.live_count == 1


def test_int_and_str_keys_and_clear():
    for keys in ([5, 7, -3, 2**62], ["a", "b", "ü", ""]):
        coll = VectorCollection(4)
        vecs = clustered(4, 4, seed=1)
        coll.upsert(keys, vecs)
        assert all(coll.contains(k) for k in keys)
        np.testing.assert_array_equal(coll.get(keys[2]), vecs[2])
        assert coll.get("nope" if isinstance(keys[0], int) else 99) is None
        got, _ = coll.search(vecs[3], 1, Metric.L2)
        assert got == [keys[3]]
        coll.clear()
        assert coll.live_count == 0 and coll.search(vecs[0], 3, Metric.L2)[0] == []


def test_seal_after_clear_rebuilds(data):
    coll = VectorCollection(32)
    coll.upsert(list(range(2000)), data[:2000])
    coll.build_index(IndexSpec.create("IVF_FLAT", Metric.L2, {"nlist": 20}))
    coll.clear()
    assert coll.index_spec is not None
    coll.upsert(list(range(10)), data[:10])
    assert not coll.seal()  # fewer rows than nlist
    coll.upsert(list(range(3000)), data[:3000])
    assert coll.needs_seal()
    assert coll.seal()
    assert coll.stats()["sealed_rows"] == 3000


def test_index_on_an_empty_collection_then_rows() -> None:
    """CREATE INDEX on an empty table: the build must not hang, and rows come later."""
    for kind in ("FLAT", "HNSW"):
        coll = VectorCollection(4)
        coll.build_index(IndexSpec.create(kind, Metric.L2))
        coll.upsert([1, 2], np.array([[0, 0, 0, 0], [1, 1, 1, 1]], np.float32))
        keys, _ = coll.search(np.zeros(4, np.float32), 2, Metric.L2)
        assert keys == [1, 2]


def test_allowed_set_away_from_the_query_is_exact():
    """2,000 of 5,000 rows allowed, all on the far side of the data from the query: a
    graph walk restricted to them returns poor neighbours at any ef; a set this small
    (in floats) is searched exactly."""
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((5000, 8)).astype("f4")
    coll = VectorCollection(8)
    coll.upsert(list(range(5000)), vecs)
    coll.build_index(IndexSpec.create("HNSW", Metric.L2))
    allowed = np.flatnonzero(vecs[:, 0] > np.quantile(vecs[:, 0], 0.6))
    q = vecs[np.argmin(vecs[:, 0])]
    want = allowed[np.argsort(np.linalg.norm(vecs[allowed] - q, axis=1))][:10].tolist()
    for ef in (40, 100, 400):
        got, _ = coll.search(q, 10, Metric.L2, SearchParams(ef_search=ef), allowed.tolist())
        assert got == want
    got, _ = coll.search(q, 10, Metric.L2, SearchParams(), allowed.tolist(), exact=True)
    assert got == want
