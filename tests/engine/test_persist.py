from __future__ import annotations

import json
import time
import zlib

import faiss
import numpy as np
import pytest

from pgvec.engine import IndexSpec, Metric, SearchParams, VectorCollection
from pgvec.engine.scalars import ScalarColumn
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
    assert coll.save(tmp_path) == 0  # nothing changed: nothing written
    coll.delete([5])
    coll.save(tmp_path)  # the second generation names the first one's files
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "g1.index.faiss",
        "g1.keys.npy",
        "g1.vectors.npy",
        "g2.dead.npy",
        "manifest.json",
    ]
    expected = _results(coll, queries[:5], Metric.L2)
    # Simulate a crash mid-save: next-generation files written, manifest not replaced.
    coll.upsert(list(range(1000, 2000)), data[1000:2000])
    (tmp_path / "g3.vectors.npy").write_bytes(b"partial")
    (tmp_path / "g3.keys.npy.tmp").write_bytes(b"partial")
    loaded = VectorCollection.load(tmp_path)
    assert loaded.live_count == 999
    for (k1, d1), (k2, d2) in zip(_results(loaded, queries[:5], Metric.L2), expected, strict=True):
        assert k1 == k2
        np.testing.assert_array_equal(d1, d2)
    coll.save(tmp_path)  # the next save skips past the leftover generation and cleans up
    assert json.loads((tmp_path / "manifest.json").read_text())["generation"] == 4
    assert not any(p.name.startswith("g3") for p in tmp_path.iterdir())
    assert VectorCollection.load(tmp_path).live_count == 1999


@pytest.mark.parametrize("victim", ["vectors", "index", "keys", "dead", "manifest"])
def test_corrupt_files(tmp_path, data, victim):
    coll = VectorCollection(32)
    coll.upsert(list(range(500)), data[:500])
    coll.build_index(IndexSpec.create("HNSW", Metric.L2))
    coll.delete([1, 2, 3])
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


# -- incremental checkpoints ------------------------------------------------------------

COLUMNS = [ScalarColumn("n", "integer"), ScalarColumn("tag", "text")]


def _content(coll):
    """Every live row: key -> (vector bytes, its mirrored values, None for NULL)."""
    out = {}
    scalars = coll._scalars
    for key, label in coll._keys.items():
        row = [coll._vecs[label].tobytes()]
        for c in scalars.columns if scalars is not None else ():
            if not scalars.valid[c.name][label]:
                row.append(None)
            elif c.kind == "text":
                row.append(scalars.strings[c.name][int(scalars.values[c.name][label])])
            else:
                row.append(scalars.values[c.name][label].item())
        out[key] = tuple(row)
    return out


def _loads_back(coll, directory):
    loaded = VectorCollection.load(directory)
    assert _content(loaded) == _content(coll)
    s1, s2 = loaded.stats(), coll.stats()
    s1.pop("memory_bytes")
    s2.pop("memory_bytes")
    assert s1 == s2
    return loaded


def _scalars_of(keys):
    return [[k % 7 for k in keys], [None if k % 5 == 0 else f"tag{k % 11}" for k in keys]]


def test_a_save_writes_only_what_changed(tmp_path, data):
    """After a few changes, a save writes the new rows and the dead labels: every file of
    the previous save is kept as it is, and a few kB are written, not the collection."""
    coll = VectorCollection(32)
    coll.upsert(list(range(4000)), data[:4000])
    coll.build_index(IndexSpec.create("IVF_FLAT", Metric.L2, {"nlist": 16}))
    coll.save(tmp_path)
    before = {p.name: p.stat() for p in tmp_path.iterdir() if p.name != "manifest.json"}
    full = sum(st.st_size for st in before.values())
    coll.upsert(list(range(4000, 4010)), data[4000:4010])  # 10 new rows
    coll.upsert([7, 8], data[4010:4012])  # 2 rows replaced
    coll.delete([1, 2, 3])
    coll.save(tmp_path)
    after = {p.name: p.stat() for p in tmp_path.iterdir() if p.name != "manifest.json"}
    for name, st in before.items():  # neither rewritten nor removed
        assert (after[name].st_ino, after[name].st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    new = {name: st.st_size for name, st in after.items() if name not in before}
    assert sorted(new) == ["g2.dead.npy", "g2.keys.npy", "g2.vectors.npy"]
    # 12 rows of 32 floats and a key, 5 dead labels (two replaced), a header per file
    assert sum(new.values()) <= 12 * (32 * 4 + 8) + 5 * 8 + 3 * 128
    assert sum(new.values()) < full / 100
    _loads_back(coll, tmp_path)


def test_many_small_saves_stay_small(tmp_path):
    """Sixty checkpoints of a few changes each (new rows, replaced and deleted rows,
    scalar values rewritten in place, new strings; a seal, a compaction): each loads back
    as the collection was, the directory keeps a bounded number of files, and what they
    write is a small fraction of the collection."""
    from pgvec.engine.checkpoint import MAX_DELTAS

    rng = np.random.default_rng(3)
    dim = 32
    coll = VectorCollection(dim)
    coll.mirror(COLUMNS)
    start = 3000
    keys = list(range(start))
    coll.upsert(keys, rng.standard_normal((start, dim)), _scalars_of(keys))
    coll.build_index(IndexSpec.create("HNSW", Metric.L2))
    full = coll.save(tmp_path)
    written = {}
    for step in range(60):
        new = list(range(start, start + int(rng.integers(1, 40))))
        start = new[-1] + 1
        coll.upsert(new, rng.standard_normal((len(new), dim)), _scalars_of(new))
        live = [key for key, _ in coll._keys.items()]
        replaced = [int(k) for k in rng.choice(live, 3, replace=False)]
        coll.upsert(replaced, rng.standard_normal((3, dim)), _scalars_of(replaced))
        kept = [int(k) for k in rng.choice(live, 4, replace=False) if k not in replaced]
        same = np.stack([coll.get(k) for k in kept])  # the vector stays, the values change
        coll.upsert(kept, same, [[step] * len(kept), [f"step{step}"] * len(kept)])
        coll.delete([int(k) for k in rng.choice(live, 2, replace=False)])
        if step == 20:
            coll.seal()
        if step == 40:
            coll.build_index(coll.index_spec)  # compaction: renumbered, all written again
        written[step] = coll.save(tmp_path)
        if step % 10 == 9:
            _loads_back(coll, tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest["segments"]) <= 1 + np.log2(coll._n)
    assert len(manifest["dead"]) <= MAX_DELTAS and len(manifest["patches"]) <= MAX_DELTAS
    assert all(len(w["files"]) <= MAX_DELTAS for w in manifest["words"])
    assert len(list(tmp_path.iterdir())) < 100
    # a merge of trailing segments writes the most; 58 checkpoints write less than one
    # whole collection (each wrote all of it before)
    small = [w for step, w in written.items() if step not in (20, 40)]
    assert max(small) < full / 5 and sum(small) < full
    assert written[20] > full / 2  # the seal's new index
    loaded = _loads_back(coll, tmp_path)
    q = np.zeros(dim, np.float32)
    assert loaded.search(q, 10, Metric.L2)[0] == coll.search(q, 10, Metric.L2)[0]


def _changed_collection(directory, data):
    """A saved collection (with a mirror) and then changes of every kind, unsaved."""
    coll = VectorCollection(32)
    coll.mirror(COLUMNS)
    keys = list(range(600))
    coll.upsert(keys, data[:600], _scalars_of(keys))
    coll.build_index(IndexSpec.create("HNSW", Metric.L2))
    coll.delete([0, 1])
    coll.save(directory)
    saved = _content(coll)
    new = list(range(600, 620))
    coll.upsert(new, data[600:620], [[1] * 20, [f"new{k}" for k in new]])
    coll.upsert([5, 6], data[700:702], _scalars_of([5, 6]))
    coll.upsert([7], data[7:8], [[99], ["changed"]])  # rewritten in place
    coll.delete([8, 9])
    coll.seal()
    return coll, saved


def test_a_save_interrupted_at_any_file_leaves_the_previous_one(tmp_path, data, monkeypatch):
    """Fail the k-th file of an incremental save (k = 0, 1, ... up to the manifest): the
    directory still loads as the previous save, and the next save completes it."""
    from pgvec.engine import durable

    real = durable.commit
    step = 0
    while True:
        directory = tmp_path / str(step)
        coll, saved = _changed_collection(directory, data)
        calls = []

        def failing(tmp, final, calls=calls, step=step):
            if len(calls) == step:
                raise OSError("No space left on device")
            calls.append(final.name)
            return real(tmp, final)

        monkeypatch.setattr(durable, "commit", failing)
        try:
            coll.save(directory)
        except OSError:
            pass
        else:
            break  # every file and the manifest were written
        finally:
            monkeypatch.setattr(durable, "commit", real)
        assert _content(VectorCollection.load(directory)) == saved
        coll.save(directory)
        _loads_back(coll, directory)
        step += 1
    assert calls[-1] == "manifest.json"
    assert step == len(calls) >= 8  # new rows, dead labels, patch, strings, index, manifest


def _write_v1(coll, directory):
    """``coll`` in the layout of FORMAT_VERSION 1: one file of each kind, alive flags."""
    directory.mkdir()
    n = coll._n

    def entry(name):
        raw = (directory / name).read_bytes()
        return {"name": name, "size": len(raw), "crc32": zlib.crc32(raw)}

    def put(name, array):
        np.save(directory / name, array)
        return entry(name)

    files = {
        "vectors": put("g1.vectors.npy", coll._vecs[:n]),
        "alive": put("g1.alive.npy", coll._alive[:n].copy()),
        "keys": put("g1.keys.npy", coll._keys.by_label[:n]),
    }
    faiss.write_index(coll._index, str(directory / "g1.index.faiss"))
    files["index"] = entry("g1.index.faiss")
    scalars = []
    for i, c in enumerate(coll._scalars.columns):
        part = {
            "name": c.name,
            "type": c.type,
            "values": put(f"g1.scalar{i}.npy", coll._scalars.values[c.name][:n]),
            "valid": put(f"g1.valid{i}.npy", coll._scalars.valid[c.name][:n]),
        }
        if c.kind == "text":
            (directory / f"g1.words{i}.json").write_text(json.dumps(coll._scalars.strings[c.name]))
            part["words"] = entry(f"g1.words{i}.json")
        scalars.append(part)
    manifest = {
        "format_version": 1,
        "generation": 1,
        "dim": coll.dim,
        "key_kind": "int",
        "rows": n,
        "live_rows": coll.live_count,
        "sealed_upto": coll._sealed_upto,
        "index_spec": coll.index_spec.to_json(),
        "files": files,
        "scalars": scalars,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_format_1_directories_load_and_are_written_again(tmp_path, data):
    coll, _ = _changed_collection(tmp_path / "scratch", data)
    _write_v1(coll, tmp_path / "old")
    loaded = _loads_back(coll, tmp_path / "old")
    assert loaded.builds == 0
    loaded.upsert([1000], data[:1], [[1], ["x"]])
    loaded.save(tmp_path / "old")  # everything, in the current form
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["generation"] == 2
    assert not any(p.name.startswith("g1.") for p in (tmp_path / "old").iterdir())
    _loads_back(loaded, tmp_path / "old")
    loaded.delete([1000])
    assert loaded.save(tmp_path / "old") < 4000  # from here on, a dead label and a manifest
    _loads_back(loaded, tmp_path / "old")


def test_a_damaged_file_to_merge_means_writing_everything(tmp_path, data, caplog):
    coll = VectorCollection(32)
    coll.upsert(list(range(100)), data[:100])
    coll.save(tmp_path)
    coll.upsert(list(range(100, 110)), data[100:110])
    coll.save(tmp_path)
    (tmp_path / "g2.vectors.npy").write_bytes(b"damaged")
    coll.upsert(list(range(110, 130)), data[110:130])  # merged with the 10 rows of g2
    coll.save(tmp_path)
    assert "writing the whole collection again" in caplog.text
    assert [p.name for p in sorted(tmp_path.glob("*.vectors.npy"))] == ["g3.vectors.npy"]
    _loads_back(coll, tmp_path)


@pytest.mark.parametrize("str_keys", [False, True])
def test_two_live_rows_with_one_key_are_corrupt(tmp_path, data, str_keys):
    """Files whose checksums hold but that map one key to two live rows load as corrupt
    (REINDEX), not as a collection whose lookups would find either row."""
    coll = VectorCollection(32)
    coll.upsert([f"k{i}" if str_keys else i for i in range(100)], data[:100])
    coll.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = manifest["segments"][0]["keys"]
    path = tmp_path / entry["name"]
    if str_keys:
        stored = json.loads(path.read_text())
        stored[7] = stored[3]
        path.write_text(json.dumps(stored))
    else:
        stored = np.load(path)
        stored[7] = stored[3]
        np.save(path, stored)
    raw = path.read_bytes()
    entry["size"], entry["crc32"] = len(raw), zlib.crc32(raw)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptIndex, match="two live rows"):
        VectorCollection.load(tmp_path)
