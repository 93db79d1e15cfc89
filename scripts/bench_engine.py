"""Benchmark pgvec's engine against raw FAISS: HNSW build, search latency, recall@10.

    PYTHONPATH=. python scripts/bench_engine.py [--n 100000] [--dim 128] [--queries 1000]
        [--rounds 3] [--threads 1]

Search latencies are single queries (batch size 1); raw FAISS and the engine are timed
alternately for --rounds rounds and the best round of each is kept, so that load from
other processes hits both alike.

Data: clustered Gaussian vectors (100 centres, sigma 0.3 per dimension); queries are
held-out points from the same distribution; ground truth by exact L2 search.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from pgvec.engine import IndexSpec, Metric, SearchParams, VectorCollection, configure_threads


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 100) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (clusters, dim)).astype(np.float32)
    which = rng.integers(0, clusters, n)
    return (centers[which] + rng.normal(0, 0.3, (n, dim))).astype(np.float32)


def recall(found: list[list[int]], truth: np.ndarray, k: int) -> float:
    hits = sum(len(set(f) & set(t[:k].tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (k * len(found))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", "--rows", dest="n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2, help="builds of each, best time kept")
    ap.add_argument("--rounds", type=int, default=3, help="search timings, best kept")
    args = ap.parse_args()
    threads = configure_threads(args.threads)
    points = clustered(args.n + args.queries, args.dim)
    data, queries = points[: args.n], points[args.n :]
    k = args.k
    print(f"n={args.n} dim={args.dim} queries={args.queries} k={k} omp_threads={threads}")

    flat = faiss.IndexFlatL2(args.dim)
    flat.add(data)
    _, truth = flat.search(queries, k)

    # Builds alternate (raw, engine, raw, engine, ...) so load on the machine hits both.
    raw_build = eng_build = float("inf")
    coll = VectorCollection(args.dim)
    t0 = time.perf_counter()
    coll.upsert(list(range(args.n)), data)
    upsert_s = time.perf_counter() - t0
    spec = IndexSpec.create("HNSW", Metric.L2, {"M": 16, "efConstruction": 64})
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        raw = faiss.IndexHNSWFlat(args.dim, 16)
        raw.hnsw.efConstruction = 64
        raw.add(data)
        raw_build = min(raw_build, time.perf_counter() - t0)
        t0 = time.perf_counter()
        coll.build_index(spec)
        eng_build = min(eng_build, time.perf_counter() - t0)

    raw.hnsw.efSearch = 40
    params = SearchParams(ef_search=40)
    raw_ms = eng_ms = float("inf")
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        raw_found = [raw.search(q.reshape(1, -1), k)[1][0].tolist() for q in queries]
        raw_ms = min(raw_ms, (time.perf_counter() - t0) * 1000 / len(queries))
        t0 = time.perf_counter()
        eng_found = [coll.search(q, k, Metric.L2, params)[0] for q in queries]
        eng_ms = min(eng_ms, (time.perf_counter() - t0) * 1000 / len(queries))

    # a small growing segment (rows upserted after the build, searched exactly)
    grow_n = max(1, min(1000, args.n // 100))
    coll.upsert(list(range(args.n, args.n + grow_n)), clustered(grow_n, args.dim, seed=2))
    grow_ms = float("inf")
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for q in queries:
            coll.search(q, k, Metric.L2, params)
        grow_ms = min(grow_ms, (time.perf_counter() - t0) * 1000 / len(queries))

    # with 10% of rows deleted (selector path) and a 30% random filter
    rng = np.random.default_rng(1)
    dead = rng.choice(args.n, args.n // 10, replace=False)
    coll.delete(dead.tolist())
    t0 = time.perf_counter()
    for q in queries:
        coll.search(q, k, Metric.L2, params)
    del_ms = (time.perf_counter() - t0) * 1000 / len(queries)
    allowed = set(rng.choice(args.n, int(args.n * 0.3), replace=False).tolist())
    t0 = time.perf_counter()
    for q in queries[:200]:
        coll.search(q, k, Metric.L2, params, allowed=allowed)
    filt_ms = (time.perf_counter() - t0) * 1000 / 200

    print(
        f"raw faiss HNSW : build {raw_build:6.2f} s  search {raw_ms:6.3f} ms/query  "
        f"recall@{k} {recall(raw_found, truth, k):.4f}"
    )
    print(
        f"pgvec engine   : build {eng_build:6.2f} s  search {eng_ms:6.3f} ms/query  "
        f"recall@{k} {recall(eng_found, truth, k):.4f}  (upsert {upsert_s:.2f} s)  "
        f"{eng_ms / raw_ms:.2f}x raw"
    )
    print(f"pgvec engine   : +{grow_n} growing rows {grow_ms:.3f} ms/query")
    print(
        f"pgvec engine   : 10% deleted {del_ms:.3f} ms/query; "
        f"+30% filter (set of {len(allowed)} keys) {filt_ms:.3f} ms/query"
    )


if __name__ == "__main__":
    main()
