from __future__ import annotations

import threading

import numpy as np

from pgvec.engine import IndexSpec, Metric, VectorCollection
from tests.engine.conftest import clustered


def test_search_and_upsert_during_build_and_seal():
    data = clustered(12000, 32, seed=5)
    coll = VectorCollection(32)
    coll.upsert(list(range(8000)), data[:8000])
    errors: list[BaseException] = []
    stop = threading.Event()
    progress: list[tuple[str, float]] = []

    def searcher():
        try:
            while not stop.is_set():
                q = data[np.random.randint(0, 8000)]
                keys, d = coll.search(q, 10, Metric.L2)
                assert len(keys) == 10 and np.all(np.diff(d) >= 0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def writer():
        try:
            for start in range(8000, 12000, 500):
                coll.upsert(list(range(start, start + 500)), data[start : start + 500])
                coll.delete(range(start - 8000, start - 7900))
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(2)] + [
        threading.Thread(target=writer)
    ]
    for t in threads:
        t.start()
    coll.build_index(IndexSpec.create("HNSW", Metric.L2), lambda s, f: progress.append((s, f)))
    coll.seal()
    threads[-1].join()
    coll.seal()
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert progress[-1] == ("done", 1.0)
    deleted = {k for start in range(8000, 12000, 500) for k in range(start - 8000, start - 7900)}
    assert coll.live_count == 12000 - len(deleted)
    for key in (0, 150, 11999, 9000):
        got, _ = coll.search(data[key], 1, Metric.L2)
        assert (got == [key]) == (key not in deleted)
        assert coll.contains(key) == (key not in deleted)
    assert coll.growing_count == 0
