#!/usr/bin/env python
"""Insert throughput with an HNSW index present, next to the same table without one.

pgvec (through `pgvec serve`) and pgvector (direct), on one PostgreSQL from the pgserver
wheel; single-row autocommit INSERTs and 1,000-row batches (executemany in a transaction).

    python scripts/bench_insert.py                  # 1,024-d, 2,000 single rows, 20 batches
    python scripts/bench_insert.py --dim 128 --single 5000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from bench_proxy import ServerProcess, bench_database, dsn_for_port, text

BATCH = 1000


def rates(
    conn: psycopg.Connection, table: str, data: np.ndarray, single: int, batches: int, as_text: bool
) -> tuple[float, float]:
    sql = f"INSERT INTO {table} VALUES (%s, %s)"
    value = (lambda v: text(v)) if as_text else (lambda v: v.tobytes())
    t0 = time.perf_counter()
    for i in range(single):
        conn.execute(sql, (i, value(data[i % len(data)])))
    single_rate = single / (time.perf_counter() - t0)
    base = single
    t0 = time.perf_counter()
    for b in range(batches):
        rows = [
            (base + b * BATCH + j, value(data[(b * BATCH + j) % len(data)])) for j in range(BATCH)
        ]
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, rows)
    batch_rate = batches * BATCH / (time.perf_counter() - t0)
    return single_rate, batch_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--single", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=20)
    args = ap.parse_args()
    data = np.random.default_rng(0).standard_normal((5000, args.dim)).astype("f4")
    results: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="pgvec-bench-") as tmp:
        bench = bench_database(Path(tmp))
        vector_type = f"vector({args.dim})"
        with psycopg.connect(bench, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            for index in (False, True):
                conn.execute("DROP TABLE IF EXISTS pv")
                conn.execute(f"CREATE TABLE pv (id bigint PRIMARY KEY, embedding {vector_type})")
                if index:
                    conn.execute("CREATE INDEX ON pv USING hnsw (embedding vector_l2_ops)")
                s, b = rates(conn, "pv", data, args.single, args.batches, True)
                results.append((f"pgvector, {'HNSW' if index else 'no index'}", s, b))
        server = ServerProcess(bench, Path(tmp) / "pgvec")
        try:
            with psycopg.connect(dsn_for_port(bench, server.port), autocommit=True) as conn:
                for index in (False, True):
                    conn.execute("DROP TABLE IF EXISTS items")
                    conn.execute(
                        f"CREATE TABLE items (id bigint PRIMARY KEY, embedding {vector_type})"
                    )
                    if index:
                        conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
                    s, b = rates(conn, "items", data, args.single, args.batches, False)
                    results.append((f"pgvec, {'HNSW' if index else 'no index'}", s, b))
                    # the index is kept up to date: a search sees every row
                    got = conn.execute("SELECT count(*) FROM items").fetchone()
                    assert got is not None and got[0] == args.single + args.batches * BATCH
        finally:
            server.stop()
    print(
        f"\n{args.dim}-d vectors, {args.single} single-row autocommit INSERTs,"
        f" {args.batches} x {BATCH}-row batches\n"
    )
    print("| table | single rows/s | batched rows/s |")
    print("|---|---:|---:|")
    for name, s, b in results:
        print(f"| {name} | {s:,.0f} | {b:,.0f} |")
    by = {name: (s, b) for name, s, b in results}
    for sys in ("pgvector", "pgvec"):
        s0, b0 = by[f"{sys}, no index"]
        s1, b1 = by[f"{sys}, HNSW"]
        print(f"{sys}: with HNSW / without = {s1 / s0:.2f} single, {b1 / b0:.2f} batched")


if __name__ == "__main__":
    main()
