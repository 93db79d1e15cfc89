from __future__ import annotations

import json
import time

import numpy as np
import pytest

from pgvec.engine import IndexSpec, Metric, SearchParams, VectorCollection
from pgvec.errors import CorruptIndex


def _results(coll, queries, metric):
    return [coll.search(q, 10, metric, SearchParams(ef_search=64)) for q in queries]


@pytest.mark.parametrize("itype", ["HNSW", "IVF_PQ", "FLAT"])
@pytest.mark.parametrize("str_keys", [False, True])
def test_round_trip(tmp_path, data, queries, itype, str_keys):
    keys = [f"row-{i}" for i in range(len(data))] if str_keys else list(range(len(data)))
    coll = VectorCollection(32)
    coll.upsert(keys[:4000], data[:4000])
    coll.build_index(
        IndexSpec.create(itype, Metric.COSINE, {"nlist": 32} if "IVF" in itype else {})
    )
    coll.upsert(keys[4000:], data[4000:])  # growing rows
    coll.delete(keys[::7])
    before = _results(coll, queries, Metric.COSINE)
    coll.save(tmp_path)
    loaded = VectorCollection.load(tmp_path)
    assert loaded.builds == 0  # the FAISS index was read, not rebuilt
    s1, s2 = loaded.stats(), coll.stats()
    s1.pop("memory_bytes")
    s2.pop("memory_bytes")
    assert s1 == s2
    after = _results(loaded, queries, Metric.COSINE)
    for (k1, d1), (k2, d2) in zip(before, after, strict=True):
        assert k1 == k2
        np.testing.assert_array_equal(d1, d2)
    # the loaded collection keeps working
    loaded.upsert([keys[0]], data[:1])
    assert loaded.search(data[0], 1, Metric.COSINE)[0] == [keys[0]]
    assert loaded.seal() == (itype != "FLAT")


def test_hnsw_load_is_fast(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((20000, 64), dtype=np.float32)
    coll = VectorCollection(64)
    coll.upsert(list(range(len(x))), x)
    t0 = time.perf_counter()
    coll.build_index(IndexSpec.create("HNSW", Metric.L2))
    build = time.perf_counter() - t0
    coll.save(tmp_path)
    t0 = time.perf_counter()
    loaded = VectorCollection.load(tmp_path)
    load = time.perf_counter() - t0
    assert loaded.builds == 0 and load < build / 3


def test_generations_and_interrupted_save(tmp_path, data, queries):
    coll = VectorCollection(32)
    coll.upsert(list(range(1000)), data[:1000])
    coll.build_index(IndexSpec.create("HNSW", Metric.L2))
    coll.save(tmp_path)
    coll.save(tmp_path)  # second generation replaces the first
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "g2.alive.npy",
        "g2.index.faiss",
        "g2.keys.npy",
        "g2.vectors.npy",
        "manifest.json",
    ]
    expected = _results(coll, queries[:5], Metric.L2)
    # Simulate a crash mid-save: next-generation files written, manifest not replaced.
    coll.upsert(list(range(1000, 2000)), data[1000:2000])
    (tmp_path / "g3.vectors.npy").write_bytes(b"partial")
    (tmp_path / "g3.keys.npy.tmp").write_bytes(b"partial")
    loaded = VectorCollection.load(tmp_path)
    assert loaded.live_count == 1000
    for (k1, d1), (k2, d2) in zip(_results(loaded, queries[:5], Metric.L2), expected, strict=True):
        assert k1 == k2
        np.testing.assert_array_equal(d1, d2)
    coll.save(tmp_path)  # the next save skips past the leftover generation and cleans up
    assert json.loads((tmp_path / "manifest.json").read_text())["generation"] == 4
    assert not any(p.name.startswith("g3") for p in tmp_path.iterdir())
    assert VectorCollection.load(tmp_path).live_count == 2000


@pytest.mark.parametrize("victim", ["vectors", "index", "keys", "alive", "manifest"])
def test_corrupt_files(tmp_path, data, victim):
    coll = VectorCollection(32)
    coll.upsert(list(range(500)), data[:500])
    coll.build_index(IndexSpec.create("HNSW", Metric.L2))
    coll.save(tmp_path)
    path = next(
        p
        for p in tmp_path.iterdir()
        if f".{victim}." in p.name or (victim == "manifest" and p.name == "manifest.json")
    )
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptIndex, match=r"corrupt|unreadable") as e:
        VectorCollection.load(tmp_path)
    assert "REINDEX" in (e.value.hint or "")


def test_bit_flip_detected(tmp_path, data):
    coll = VectorCollection(32)
    coll.upsert(list(range(100)), data[:100])
    coll.save(tmp_path)
    path = tmp_path / "g1.vectors.npy"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptIndex, match="checksum"):
        VectorCollection.load(tmp_path)


def test_missing_directory_manifest(tmp_path):
    with pytest.raises(CorruptIndex, match="no index manifest"):
        VectorCollection.load(tmp_path)
