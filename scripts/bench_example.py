#!/usr/bin/env python
"""Query by example through pgvec next to a parameter vector and next to pgvector's HNSW.

``SELECT id FROM items ORDER BY embedding <-> (SELECT embedding FROM items WHERE id = $1)
LIMIT 10``, the recommendation query, one client with psycopg, after HNSW (m=16,
ef_construction=64) on the same clustered vectors in both; reports ms per query.

    python scripts/bench_example.py                    # 100,000 x 128, 200 queries
    python scripts/bench_example.py --rows 20000 --queries 100
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from bench_proxy import (
    ServerProcess,
    bench_database,
    clustered,
    dsn_for_port,
    load_items,
    text,
)

EXAMPLE = (
    "SELECT id FROM {t} ORDER BY embedding <-> (SELECT embedding FROM {t} WHERE id = %s) LIMIT 10"
)
PARAM = "SELECT id FROM {t} ORDER BY embedding <-> %s LIMIT 10"


def timed(
    conn: psycopg.Connection, sql: str, args: list[tuple[object, ...]]
) -> tuple[float, list[list[int]]]:
    for a in args[:10]:  # warm-up
        conn.execute(sql, a).fetchall()
    lat, out = [], []
    for a in args:
        t0 = time.perf_counter()
        rows = conn.execute(sql, a).fetchall()
        lat.append(time.perf_counter() - t0)
        out.append([r[0] for r in rows])
    return float(np.median(lat) * 1000), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument(
        "--old", action="store_true", help="also time the exact scan (pgvec.l2_distance)"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data, _ = clustered(args.rows, args.dim, 0)
    ids = np.random.default_rng(1).integers(0, args.rows, args.queries)
    by_id = [(int(i),) for i in ids]
    by_vec = [(text(data[i]),) for i in ids]
    out: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="pgvec-bench-") as tmp:
        dsn = bench_database(Path(tmp), None)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(f"CREATE TABLE pv (id bigint PRIMARY KEY, embedding vector({args.dim}))")
            with conn.cursor().copy("COPY pv FROM STDIN") as copy:
                for i, v in enumerate(data):
                    copy.write_row((i, text(v)))
            conn.execute("SET maintenance_work_mem = '1GB'")
            conn.execute(
                "CREATE INDEX ON pv USING hnsw (embedding vector_l2_ops)"
                " WITH (m = 16, ef_construction = 64)"
            )
            conn.execute("VACUUM ANALYZE pv")
            ms_ex, got_ex = timed(conn, EXAMPLE.format(t="pv"), by_id)
            ms_par, _ = timed(conn, PARAM.format(t="pv").replace("%s", "%s::vector"), by_vec)
            out.append(("pgvector 0.6 HNSW", ms_ex, ms_par))
            truth_ex = got_ex
        server = ServerProcess(dsn, Path(tmp) / "pgvec")
        try:
            with psycopg.connect(dsn_for_port(dsn, server.port), autocommit=True) as conn:
                load_items(conn, data)
                conn.execute(
                    "CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)"
                    " WITH (m = 16, ef_construction = 64)"
                )
                conn.execute("ANALYZE items")
                ms_ex, got = timed(conn, EXAMPLE.format(t="items"), by_id)
                ms_par, _ = timed(conn, PARAM.format(t="items"), by_vec)
                out.append(("pgvec HNSW", ms_ex, ms_par))
                agree = np.mean(
                    [len(set(a) & set(b)) / 10 for a, b in zip(got, truth_ex, strict=True)]
                )
                if args.old:
                    exact = (
                        "SELECT id FROM items ORDER BY pgvec.l2_distance(embedding,"
                        " (SELECT embedding FROM items WHERE id = %s)) LIMIT 10"
                    )
                    ms_old, _ = timed(conn, exact, by_id[:3])
                    out.append(("pgvec before (exact scan)", ms_old, float("nan")))
        finally:
            server.stop()
    print(
        f"\n{args.rows:,} x {args.dim} clustered, {args.queries} queries, top-10, 1 client,"
        " median ms per query\n"
    )
    print("| system | query by example | parameter vector |")
    print("|---|---:|---:|")
    for name, a, b in out:
        print(f"| {name} | {a:.2f} | {b:.2f} |")
    print(f"\npgvec's answers share {agree:.3f} of pgvector's top-10 (both ANN)")


if __name__ == "__main__":
    main()
