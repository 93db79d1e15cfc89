"""Binary vectors: BIN_FLAT and BIN_IVF_FLAT under HAMMING and JACCARD, against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from pgvec.engine import IndexSpec, Metric, SearchParams, VectorCollection
from pgvec.errors import FeatureNotSupported, InvalidParameter

DIM, N = 128, 1500


def reference(x, q, metric, ids=None, k=10):
    """Exact top-k by (distance, key), from unpacked bits."""
    bits = np.unpackbits(x, axis=1).astype(bool)
    qb = np.unpackbits(q).astype(bool)
    if metric is Metric.HAMMING:
        d = (bits != qb).sum(1).astype(float)
    else:
        inter, union = (bits & qb).sum(1), (bits | qb).sum(1)
        d = np.where(inter > 0, 1 - inter / np.maximum(union, 1), 1.0)
    keys = np.arange(len(x)) if ids is None else np.asarray(ids)
    d = d[keys]
    order = np.lexsort((keys, d))[:k]
    return keys[order].tolist(), d[order]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (N, DIM // 8), dtype=np.uint8), rng


SPECS = [
    None,
    ("BIN_FLAT", {}),
    ("BIN_IVF_FLAT", {"nlist": 16}),
]


@pytest.mark.parametrize("metric", [Metric.HAMMING, Metric.JACCARD])
@pytest.mark.parametrize("spec", SPECS, ids=["none", "bin_flat", "bin_ivf_flat"])
def test_exact_answers(data, spec, metric):
    x, rng = data
    coll = VectorCollection(DIM, binary=True)
    coll.upsert(list(range(N)), x)
    if spec is not None:
        coll.build_index(IndexSpec.create(spec[0], metric, spec[1]))
    params = SearchParams(nprobe=16)  # every list: exact
    for _ in range(5):
        q = rng.integers(0, 256, DIM // 8, dtype=np.uint8)
        keys, dists = coll.search(q, 10, metric, params)
        want_keys, want = reference(x, q, metric)
        np.testing.assert_allclose(dists, want)
        assert keys == want_keys
        allowed = set(range(0, N, 7))
        keys, dists = coll.search(q.tobytes(), 10, metric, params, allowed=allowed)
        want_keys, want = reference(x, q, metric, sorted(allowed))
        assert keys == want_keys
        np.testing.assert_allclose(dists, want)


def test_deletes_growing_and_persistence(data, tmp_path):
    x, _ = data
    coll = VectorCollection(DIM, binary=True)
    coll.upsert(list(range(N)), x)
    coll.build_index(IndexSpec.create("BIN_IVF_FLAT", Metric.HAMMING, {"nlist": 8}))
    q = x[3]
    assert coll.search(q, 1, Metric.HAMMING, SearchParams(nprobe=8))[0] == [3]
    coll.delete([3])
    coll.upsert([N], q[None])  # growing
    keys, dists = coll.search(q, 3, Metric.HAMMING, SearchParams(nprobe=8))
    assert keys[0] == N and dists[0] == 0 and 3 not in keys
    assert coll.get(N).tobytes() == q.tobytes()
    coll.save(tmp_path)
    back = VectorCollection.load(tmp_path)
    assert back.binary and back.index_spec == coll.index_spec
    assert back.search(q, 3, Metric.HAMMING, SearchParams(nprobe=8))[0] == keys
    assert coll.seal()
    coll.save(tmp_path)  # an incremental save after the index changed
    again = VectorCollection.load(tmp_path)
    assert again.search(q, 3, Metric.JACCARD)[0][0] == N


def test_kinds_do_not_mix():
    with pytest.raises(InvalidParameter):
        VectorCollection(12, binary=True)
    coll = VectorCollection(16, binary=True)
    with pytest.raises(InvalidParameter):
        coll.upsert([1], np.zeros((1, 2), np.float32))
    coll.upsert([1], b"\x01\x02")
    with pytest.raises(InvalidParameter):
        coll.search(np.zeros(2, np.uint8), 1, Metric.L2)
    with pytest.raises(InvalidParameter):
        IndexSpec.create("IVF_FLAT", Metric.HAMMING)
    with pytest.raises(InvalidParameter):
        IndexSpec.create("BIN_FLAT", Metric.L2)
    with pytest.raises(FeatureNotSupported):
        Metric.from_name("JACCARD")  # a float field's metric
    with pytest.raises(FeatureNotSupported):
        Metric.from_name("L2", binary=True)
    assert Metric.from_name("hamming", binary=True) is Metric.HAMMING
    assert Metric.from_opclass("bit_jaccard_ops") is Metric.JACCARD
    assert Metric.from_operator("<~>") is Metric.HAMMING
    floats = VectorCollection(4)
    with pytest.raises(InvalidParameter):
        floats.search(np.zeros(4, np.float32), 1, Metric.HAMMING)
