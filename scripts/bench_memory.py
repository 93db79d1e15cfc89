#!/usr/bin/env python
"""What a loaded HNSW index costs pgvec's engine, next to FAISS's own index of the rows.

In one fresh process per case (so that nothing else moves the figures): the rows are
upserted into a VectorCollection in chunks (their input freed as it goes), the HNSW index
is built (M 16, efConstruction 64), and the process's RSS growth is set against FAISS's
serialized index of the same rows and against ``pgvec.indexes.memory_bytes``' estimate.
Then the collection is dropped and the RSS measured again (release gives it back).

    python scripts/bench_memory.py                    # 60,000 x 384, L2 and COSINE
    python scripts/bench_memory.py --rows 100000 --dim 128

COSINE rows are unit length (as embedding models give them), which lets FAISS view them
as stored; ``--raw-cosine`` measures rows that are not.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys

import numpy as np
import psutil


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def measure(rows: int, dim: int, metric_name: str, unit: bool) -> dict[str, float]:
    import faiss

    from pgvec.engine import IndexSpec, Metric, VectorCollection, faiss_index, trim_heap

    metric = Metric[metric_name]
    rng = np.random.default_rng(0)
    before = _rss()
    coll = VectorCollection(dim)
    for lo in range(0, rows, 5000):
        chunk = rng.standard_normal((min(5000, rows - lo), dim)).astype(np.float32)
        if unit:
            chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        coll.upsert(list(range(lo, lo + len(chunk))), chunk)
    coll.build_index(IndexSpec.create("HNSW", metric, {"M": 16, "efConstruction": 64}))
    loaded = _rss() - before
    faiss_bytes = len(faiss.serialize_index(coll._index))
    shared = faiss_index.vectors_shared(coll._index)
    estimate = coll.stats()["memory_bytes"]
    del coll
    trim_heap()
    released = _rss() - before
    mib = 1 << 20
    return {
        "rss_mib": loaded / mib,
        "faiss_mib": faiss_bytes / mib,
        "memory_bytes_mib": estimate / mib,
        "released_mib": released / mib,
        "shared": float(shared),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--raw-cosine", action="store_true", help="COSINE rows not unit length")
    ap.add_argument("--case", nargs=2, metavar=("METRIC", "UNIT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:  # one case, in this (fresh) process
        metric, unit = args.case
        print(json.dumps(measure(args.rows, args.dim, metric, unit == "1")))
        return
    print(f"HNSW M 16 over {args.rows:,} x {args.dim}, engine alone, one process per case\n")
    print(
        "| metric | RSS MiB | FAISS index MiB | RSS / FAISS | memory_bytes / FAISS "
        "| after release MiB | FAISS views the rows |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    cases = [("L2", "0"), ("COSINE", "0" if args.raw_cosine else "1")]
    for metric, unit in cases:
        out = subprocess.run(
            [sys.executable, __file__, "--rows", str(args.rows), "--dim", str(args.dim),
             "--case", metric, unit],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        r = json.loads(out.strip().splitlines()[-1])
        label = metric + ("" if metric == "L2" else " (unit rows)" if unit == "1" else " (raw)")
        print(
            f"| {label} | {r['rss_mib']:.1f} | {r['faiss_mib']:.1f} "
            f"| {r['rss_mib'] / r['faiss_mib']:.2f}x "
            f"| {r['memory_bytes_mib'] / r['faiss_mib']:.2f}x | {r['released_mib']:.1f} "
            f"| {'yes' if r['shared'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
