#!/usr/bin/env python
"""Filtered top-10 from 0.01% to 50% selectivity: rows returned, recall and QPS, for pgvec
and pgvector (HNSW, and an exact scan), on the same clustered data in one PostgreSQL.

    python scripts/bench_filter.py               # 100,000 x 128, 200 queries per case
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from bench_proxy import ServerProcess, bench_database, clustered, dsn_for_port, text

CASES = (
    ("0.01%", "c10000", 10_000),
    ("0.1%", "c1000", 1000),
    ("1%", "c100", 100),
    ("10%", "c10", 10),
    ("50%", "c2", 2),
)


def run(
    conn: psycopg.Connection,
    sql: str,
    queries: np.ndarray,
    cats: np.ndarray,
    truth: list[list[int]],
    as_text: bool,
) -> tuple[float, float, float]:
    rows_returned, hits, lat = 0, 0, []
    for q, c, want in zip(queries, cats, truth, strict=True):
        arg = text(q) if as_text else q.tobytes()
        t0 = time.perf_counter()
        got = [r[0] for r in conn.execute(sql, (int(c), arg)).fetchall()]
        lat.append(time.perf_counter() - t0)
        rows_returned += len(got)
        hits += len(set(got) & set(want))
    n = len(queries)
    return rows_returned / n, hits / sum(len(w) for w in truth), n / sum(lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    data, queries = clustered(args.rows, args.dim, args.queries)
    ids = np.arange(args.rows)
    rng = np.random.default_rng(5)
    results = []
    with tempfile.TemporaryDirectory(prefix="pgvec-bench-") as tmp:
        bench = bench_database(Path(tmp))
        cases = []
        for label, col, mod in CASES:
            cats = rng.integers(0, mod, len(queries))
            truth = []
            for q, c in zip(queries, cats, strict=True):
                sel = ids[ids % mod == c]
                d = np.linalg.norm(data[sel] - q, axis=1)
                truth.append(sel[np.argsort(d)[:10]].tolist())
            cases.append((label, col, cats, truth))

        def load(conn: psycopg.Connection, table: str, vtype: str, binary: bool) -> None:
            cols = "".join(f", {col} int" for _, col, _ in CASES)
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY{cols}, embedding {vtype})")
            fmt = " (FORMAT BINARY)" if binary else ""
            with conn.cursor().copy(f"COPY {table} FROM STDIN{fmt}") as copy:
                if binary:
                    copy.set_types(["int4"] * (len(CASES) + 1) + ["bytea"])
                for i, v in enumerate(data):
                    mods = [i % mod for _, _, mod in CASES]
                    copy.write_row((i, *mods, v.tobytes() if binary else text(v)))
            conn.execute(f"CREATE INDEX ON {table} USING hnsw (embedding vector_l2_ops)")
            # the filter columns are indexed, as they would be in a real schema
            for _, col, _ in CASES:
                conn.execute(f"CREATE INDEX ON {table} ({col})")
            conn.execute(f"ANALYZE {table}")

        with psycopg.connect(bench, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("SET maintenance_work_mem = '1GB'")
            load(conn, "pv", f"vector({args.dim})", False)
            for label, col, cats, truth in cases:
                sql = (
                    f"SELECT id FROM pv WHERE {col} = %s ORDER BY embedding <-> %s::vector LIMIT 10"
                )
                results.append(
                    ("pgvector 0.6 HNSW", label, *run(conn, sql, queries, cats, truth, True))
                )
                # exact: the btree index on the filter column, then a sort by distance
                # (a new statement text, so the HNSW query's prepared plan is not reused)
                exact = (
                    f"SELECT id FROM pv WHERE {col} = %s"
                    " ORDER BY (embedding <-> %s::vector) + 0 LIMIT 10"
                )
                results.append(
                    ("pgvector exact (btree)", label, *run(conn, exact, queries, cats, truth, True))
                )
        server = ServerProcess(bench, Path(tmp) / "pgvec")
        try:
            with psycopg.connect(dsn_for_port(bench, server.port), autocommit=True) as conn:
                load(conn, "items", f"vector({args.dim})", True)
                # the filter evaluated by the engine over its mirror of the int columns
                # (the default), then by PostgreSQL (pre- or post-filtering)
                for mode, name in (("on", "pgvec"), ("off", "pgvec, filter in PostgreSQL")):
                    conn.execute(f"SET pgvec.engine_filter = {mode}")
                    for label, col, cats, truth in cases:
                        sql = (
                            f"SELECT id FROM items WHERE {col} = %s"
                            " ORDER BY embedding <-> %s LIMIT 10"
                        )
                        results.append((name, label, *run(conn, sql, queries, cats, truth, False)))
        finally:
            server.stop()
    print(
        f"\n{args.rows:,} x {args.dim} clustered vectors, filtered top-10, {args.queries}"
        " queries per case, 1 client\n"
    )
    print("| system | selectivity | rows returned (avg) | recall@10 | QPS |")
    print("|---|---|---:|---:|---:|")
    for name, label, rows, rec, qps in results:
        print(f"| {name} | {label} | {rows:.2f} | {rec:.3f} | {qps:,.0f} |")


if __name__ == "__main__":
    main()
