#!/usr/bin/env python
"""Stalls while a large collection checkpoints.

One table of ``--rows`` random ``--dim``-d vectors with an IVF_FLAT (or HNSW) index, on a
PostgreSQL from the pgserver wheel, behind ``pgvec serve`` with a checkpoint due every
``--every`` seconds. For ``--seconds``, one thread sends single-row autocommit INSERTs and
another Strong top-10 searches, both through the proxy; a third reads the index
directory's manifest and counts the checkpoints and the bytes each one wrote (the files
of the manifest's own generation). Prints the latency of each kind of statement
(median, p99, max: the longest stall) and the bytes written per checkpoint.

    python scripts/bench_checkpoint.py                      # 1M x 32, IVF_FLAT, 60 s
    python scripts/bench_checkpoint.py --rows 100000 --seconds 20

Run it from the root of the checkout to measure: the server is ``python -m pgvec``, which
imports pgvec from the current directory (copy the script into another checkout's
scripts/ to measure that one).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from bench_proxy import ServerProcess, bench_database, dsn_for_port

_GEN = re.compile(r"^g(\d+)\.")


def load(conn: psycopg.Connection, rows: int, dim: int) -> None:
    """COPY the rows straight into PostgreSQL, in batches of random vectors."""
    rng = np.random.default_rng(0)
    with conn.cursor().copy("COPY items FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "bytea"])
        for start in range(0, rows, 100_000):
            block = rng.standard_normal((min(100_000, rows - start), dim)).astype("<f4")
            for i, v in enumerate(block):
                copy.write_row((start + i, v.tobytes()))


def files_of(node: Any) -> list[tuple[str, int]]:
    """Every {"name", "size"} entry in a manifest, at any depth."""
    if isinstance(node, dict):
        if "name" in node and "size" in node:
            return [(str(node["name"]), int(node["size"]))]
        return [f for value in node.values() for f in files_of(value)]
    if isinstance(node, list):
        return [f for value in node for f in files_of(value)]
    return []


def watch(directory: Path, stop: threading.Event, out: list[tuple[int, int, int, float]]) -> None:
    """Append (generation, bytes written, bytes referenced, when) for each manifest seen."""
    seen = 0
    while not stop.is_set():
        for path in directory.rglob("manifest.json"):
            try:
                manifest = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            gen = int(manifest.get("generation", 0))
            if gen <= seen:
                continue
            seen = gen
            files = files_of(manifest)
            new = sum(size for name, size in files if (m := _GEN.match(name)) and int(m[1]) == gen)
            referenced = sum(size for _, size in files)
            out.append((gen, new + path.stat().st_size, referenced, time.perf_counter()))
        time.sleep(0.02)


def timed(uri: str, stop: threading.Event, out: list[tuple[float, float]], work: Any) -> None:
    """Append (latency, when it ended) for each call of ``work``."""
    with psycopg.connect(uri, autocommit=True) as conn:
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            work(conn, i)
            t1 = time.perf_counter()
            out.append((t1 - t0, t1))
            i += 1


def describe(name: str, timed: list[tuple[float, float]]) -> str:
    if not timed:
        return f"{name}: none"
    ms = sorted(x * 1000 for x, _ in timed)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{name}: {len(ms)} in all, median {statistics.median(ms):.1f} ms,"
        f" p99 {p99:.1f} ms, max {ms[-1]:.0f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--index", choices=["ivfflat", "hnsw"], default="ivfflat")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=2.0, help="PGVEC_CHECKPOINT_SECONDS")
    args = ap.parse_args()
    os.environ["PGVEC_CHECKPOINT_SECONDS"] = str(args.every)
    os.environ["PGVEC_CHECKPOINT_CHANGES"] = "1000000000"  # by time only
    where = subprocess.run(
        [sys.executable, "-c", "import pgvec; print(pgvec.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"pgvec serve runs {Path(where.stdout.strip()).parent}")
    with tempfile.TemporaryDirectory(prefix="pgvec-bench-") as tmp:
        upstream = bench_database(Path(tmp))
        data_dir = Path(tmp) / "pgvec"
        server = ServerProcess(upstream, data_dir)
        uri = dsn_for_port(upstream, server.port)
        try:
            with psycopg.connect(uri, autocommit=True) as conn:
                conn.execute(
                    f"CREATE TABLE items (id bigint PRIMARY KEY, embedding vector({args.dim}))"
                )
            t0 = time.perf_counter()
            with psycopg.connect(upstream, autocommit=True) as direct:
                load(direct, args.rows, args.dim)
            print(f"loaded {args.rows} x {args.dim} in {time.perf_counter() - t0:.0f}s")
            t0 = time.perf_counter()
            with psycopg.connect(uri, autocommit=True) as conn:
                options = "lists = 1000" if args.index == "ivfflat" else "m = 16"
                conn.execute(
                    f"CREATE INDEX items_idx ON items USING {args.index}"
                    f" (embedding vector_l2_ops) WITH ({options})"
                )
            print(f"built {args.index} in {time.perf_counter() - t0:.0f}s")
            rng = np.random.default_rng(1)
            vectors = rng.standard_normal((4096, args.dim)).astype("<f4")

            def insert(conn: psycopg.Connection, i: int) -> None:
                conn.execute(
                    "INSERT INTO items VALUES (%s, %s)",
                    (args.rows + i, vectors[i % len(vectors)].tobytes()),
                )

            def search(conn: psycopg.Connection, i: int) -> None:
                conn.execute(
                    "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 10",
                    (vectors[(i * 7) % len(vectors)].tobytes(),),
                ).fetchall()

            stop = threading.Event()
            inserts: list[tuple[float, float]] = []
            searches: list[tuple[float, float]] = []
            checkpoints: list[tuple[int, int, int, float]] = []
            threads = [
                threading.Thread(target=timed, args=(uri, stop, inserts, insert)),
                threading.Thread(target=timed, args=(uri, stop, searches, search)),
                threading.Thread(target=watch, args=(data_dir / "indexes", stop, checkpoints)),
            ]
            time.sleep(2)  # the build saved the collection; let the server settle
            for t in threads:
                t.start()
            time.sleep(args.seconds)
            stop.set()
            for t in threads:
                t.join()
        finally:
            server.stop()
    print(
        f"{args.rows} x {args.dim}, {args.index}, checkpoint every {args.every}s,"
        f" {args.seconds:.0f}s of single-row INSERTs and Strong searches"
    )
    print(describe("INSERT", inserts))
    print(describe("search", searches))
    during = checkpoints[1:]  # the first one seen may predate the run
    if during:
        written = [w for _, w, _, _ in during]
        print(
            f"checkpoints: {len(during)}, bytes written per checkpoint: median"
            f" {statistics.median(written):,.0f}, max {max(written):,}"
            f" (of {during[-1][2]:,} referenced)"
        )
    # Where the longest stalls were: a stall caused by a checkpoint ends about when the
    # checkpoint's manifest appears (read every 20 ms).
    seen = [when for *_, when in checkpoints]
    print("longest five, and how far each ended from the nearest checkpoint's manifest:")
    stalls = [(lat, end, "INSERT") for lat, end in inserts]
    stalls += [(lat, end, "search") for lat, end in searches]
    for lat, end, name in sorted(stalls, reverse=True)[:5]:
        gap = min((abs(end - when) for when in seen), default=float("nan"))
        print(f"  {name} {lat * 1000:.0f} ms, {gap * 1000:.0f} ms from a manifest")


if __name__ == "__main__":
    main()
