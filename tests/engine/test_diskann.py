"""DISKANN (diskannpy's disk index) as a sealed-segment index: recall against exact numpy,
exact distances as FLAT's, deletes, filters, growing rows, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pgvec.engine import IndexSpec, Metric, SearchParams, VectorCollection
from pgvec.engine.diskann_index import DiskAnnIndex
from pgvec.engine.predicate import Column, Compare, Const, Where
from pgvec.engine.scalars import ScalarColumn
from pgvec.errors import CorruptIndex, InvalidParameter
from tests.engine.conftest import clustered
from tests.engine.reference import topk
from tests.engine.test_search import recall

pytest.importorskip("diskannpy")

DIM = 32
N = 2000
#: a smaller graph than Milvus's default builds in about a second
OPTIONS = {"max_degree": 24, "search_list_size": 48}


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    return clustered(N + 30, DIM, seed=7)


@pytest.fixture(scope="module")
def built(points, tmp_path_factory):
    """One DISKANN collection per metric, built once (and its saved directory)."""
    out = {}
    for metric in (Metric.L2, Metric.IP, Metric.COSINE):
        coll = VectorCollection(DIM)
        coll.upsert(list(range(N)), points[:N])
        coll.home = tmp_path_factory.mktemp(f"diskann-{metric.name}")
        coll.build_index(IndexSpec.create("diskann", metric, OPTIONS))
        out[metric] = coll
    return out


METRICS = [Metric.L2, Metric.IP, Metric.COSINE]


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.name)
def test_recall_and_distances_as_flat(metric, built, points):
    coll = built[metric]
    assert isinstance(coll._index, DiskAnnIndex)
    data, queries = points[:N], points[N:]
    assert recall(coll, data, list(range(N)), queries, metric) >= 0.9
    flat = VectorCollection(DIM)
    flat.upsert(list(range(N)), data)
    flat.build_index(IndexSpec.create("FLAT", metric))
    for q in queries[:10]:
        got, dists = coll.search(q, 10, metric)
        want, wd = flat.search(q, 10, metric)
        same = [i for i, key in enumerate(got) if key in want]
        np.testing.assert_allclose(dists[same], wd[[want.index(got[i]) for i in same]])


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.name)
def test_search_list_is_at_least_k(metric, built, points):
    coll = built[metric]
    q = points[N]
    small = SearchParams.create({"search_list": 1})
    assert small.search_list_for(50) == 50
    got, _ = coll.search(q, 50, metric, small)
    want, _ = topk(points[:N], list(range(N)), q, 50, metric)
    assert len(got) == 50
    assert len(set(got) & set(want)) >= 40


def test_deletes_and_growing_rows(points, tmp_path):
    coll = VectorCollection(DIM)
    coll.upsert(list(range(N)), points[:N])
    coll.home = tmp_path
    coll.build_index(IndexSpec.create("DISKANN", Metric.L2, OPTIONS))
    q = points[N]
    nearest, _ = coll.search(q, 20, Metric.L2)
    coll.delete(nearest[:10])
    got, _ = coll.search(q, 10, Metric.L2)
    assert not set(got) & set(nearest[:10])
    assert set(got) == set(nearest[10:20])
    # a growing row is found at once, and seal() rebuilds the disk index over it
    coll.upsert([10_000], q.reshape(1, -1))
    assert coll.search(q, 1, Metric.L2)[0] == [10_000]
    builds = coll.builds
    assert coll.seal()
    assert coll.builds == builds + 1 and coll.growing_count == 0
    got, dists = coll.search(q, 1, Metric.L2)
    assert got == [10_000] and dists[0] == 0


@pytest.mark.parametrize("fraction", [0.005, 0.3])
def test_allowed_and_where_filters(fraction, built, points):
    coll = built[Metric.COSINE]
    rng = np.random.default_rng(1)
    allowed = set(rng.choice(N, int(N * fraction), replace=False).tolist())
    idx = sorted(allowed)
    for q in points[N : N + 10]:
        got, _ = coll.search(q, 10, Metric.COSINE, allowed=allowed)
        assert set(got) <= allowed and len(got) == min(10, len(allowed))
        want, _ = topk(points[idx], idx, q, 10, Metric.COSINE)
        assert len(set(got) & set(want)) >= 0.8 * len(want)


def test_where_filter_over_mirrored_column(points):
    coll = VectorCollection(DIM)
    coll.mirror([ScalarColumn("n", "bigint")])
    coll.upsert(list(range(N)), points[:N], [list(range(N))])
    coll.build_index(IndexSpec.create("DISKANN", Metric.IP, OPTIONS))
    where = Where(Compare(Column("n", "bigint"), ">=", Const(1500)))
    for q in points[N : N + 5]:
        got, _ = coll.search(q, 10, Metric.IP, where=where)
        assert len(got) == 10 and all(key >= 1500 for key in got)
        want, _ = topk(points[1500:N], list(range(1500, N)), q, 10, Metric.IP)
        assert len(set(got) & set(want)) >= 8


def test_persistence_reopens_the_disk_index(points, tmp_path):
    coll = VectorCollection(DIM)
    coll.upsert(list(range(N)), points[:N])
    coll.build_index(IndexSpec.create("DISKANN", Metric.COSINE, OPTIONS))  # temporary dir
    coll.delete([0, 1, 2])
    coll.upsert([5000], points[N : N + 1])
    coll.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = manifest["index"]
    assert entry["kind"] == "diskann" and (tmp_path / entry["dir"] / "ann_disk.index").exists()
    again = VectorCollection.load(tmp_path)
    assert isinstance(again._index, DiskAnnIndex)
    assert again.index_spec == coll.index_spec
    for q in points[N : N + 10]:
        a, da = coll.search(q, 10, Metric.COSINE)
        b, db = again.search(q, 10, Metric.COSINE)
        assert a == b
        np.testing.assert_array_equal(da, db)
    # a rebuild saved over it replaces the files; the old directory goes
    again.build_index(again.index_spec)
    again.save(tmp_path)
    dirs = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("diskann."))
    assert dirs == [json.loads((tmp_path / "manifest.json").read_text())["index"]["dir"]]


def test_corrupt_files_are_detected(points, tmp_path):
    coll = VectorCollection(DIM)
    coll.upsert(list(range(N)), points[:N])
    coll.home = tmp_path
    coll.build_index(IndexSpec.create("DISKANN", Metric.L2, OPTIONS))
    coll.save(tmp_path)
    entry = json.loads((tmp_path / "manifest.json").read_text())["index"]
    (tmp_path / entry["dir"] / "ann_pq_pivots.bin").write_bytes(b"x")
    with pytest.raises(CorruptIndex):
        VectorCollection.load(tmp_path)


def test_few_rows_are_searched_exactly():
    coll = VectorCollection(4)
    data = clustered(50, 4)
    coll.upsert(list(range(50)), data)
    coll.build_index(IndexSpec.create("DISKANN", Metric.L2))
    assert coll._index is None
    got, _ = coll.search(data[3], 3, Metric.L2)
    assert got == topk(data, list(range(50)), data[3], 3, Metric.L2)[0]


def test_spec_options():
    spec = IndexSpec.create("diskann", Metric.L2, {"max_degree": "32", "search_list_size": 64})
    assert spec.index_type == "DISKANN"
    assert spec.params["max_degree"] == 32 and spec.params["search_list_size"] == 64
    assert spec.params["pq_code_budget_gb_ratio"] == 0.125
    spec = IndexSpec.create("DISKANN", Metric.IP, {"pq_code_budget_gb_ratio": "0.2"})
    assert spec.params["pq_code_budget_gb_ratio"] == 0.2
    with pytest.raises(InvalidParameter, match="out of bounds"):
        IndexSpec.create("DISKANN", Metric.L2, {"max_degree": 0})
    with pytest.raises(InvalidParameter, match="out of bounds"):
        IndexSpec.create("DISKANN", Metric.L2, {"pq_code_budget_gb_ratio": "nan"})
    with pytest.raises(InvalidParameter, match="unrecognized"):
        IndexSpec.create("DISKANN", Metric.L2, {"m": 16})
