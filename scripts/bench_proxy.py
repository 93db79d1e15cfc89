#!/usr/bin/env python
"""Top-k through pgvec (proxy + FAISS) next to pgvector and raw FAISS, on the same data.

Loads N random-but-clustered vectors into one PostgreSQL (the pgserver wheel, which ships
pgvector), builds HNSW (m=16, ef_construction=64) in both, then runs single-client
top-10 queries with psycopg and reports build seconds, QPS, latency and recall@10.

    python scripts/bench_proxy.py                 # 100,000 x 128, 1,000 queries
    python scripts/bench_proxy.py --rows 20000 --queries 200
    python scripts/bench_proxy.py --skip-pgvector --profile /tmp/topk.txt   # py-spy on the server
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np
import psutil
import psycopg


def clustered(rows: int, dim: int, queries: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(10, rows // 1000), dim)).astype("f4")
    assign = rng.integers(0, len(centers), rows + queries)
    points = centers[assign] + 0.35 * rng.standard_normal((rows + queries, dim)).astype("f4")
    return points[:rows].astype("f4"), points[rows:].astype("f4")


def exact_topk(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    index = faiss.IndexFlatL2(data.shape[1])
    index.add(data)
    _, ids = index.search(queries, k)
    return ids


def recall(got: list[list[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(g) & set(t.tolist())) for g, t in zip(got, truth, strict=True))
    return hits / truth.size


def text(v: np.ndarray) -> str:
    return "[" + ",".join(map(str, v.tolist())) + "]"


def run_queries(
    conn: psycopg.Connection, sql: str, queries: np.ndarray, as_text: bool, k: int
) -> tuple[list[list[int]], list[float]]:
    out: list[list[int]] = []
    lat: list[float] = []
    for q in queries[:20]:  # warm-up (prepared statements, caches)
        conn.execute(sql, (text(q) if as_text else q.tobytes(), k)).fetchall()
    for q in queries:
        arg = text(q) if as_text else q.tobytes()
        t0 = time.perf_counter()
        rows = conn.execute(sql, (arg, k)).fetchall()
        lat.append(time.perf_counter() - t0)
        out.append([r[0] for r in rows])
    return out, lat


def summary(name: str, build: float | None, lat: list[float], rec: float) -> dict[str, object]:
    a = np.array(lat) * 1000
    return {
        "system": name,
        "build_s": build,
        "qps": len(lat) / a.sum() * 1000,
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "recall@10": rec,
    }


def profile(pid: int, out: str, seconds: int | None = None) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` (every thread, native frames off) for ``seconds``, or
    until sent SIGINT."""
    exe = shutil.which("py-spy")
    if exe is None:
        raise SystemExit("py-spy not found: pip install py-spy")
    cmd = [exe, "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
           "--output", out, "--nonblocking"]  # fmt: skip
    if seconds is not None:
        cmd += ["--duration", str(seconds)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_us(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far, in microseconds."""
    times = psutil.Process(pid).cpu_times()
    return (times.user + times.system) * 1e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``pgvec serve`` in its own process, as users run it."""

    def __init__(
        self, upstream: str, data_dir: Path, extra: Sequence[str] = (), quiet: bool = False
    ) -> None:
        """``quiet``: without the banner on stdout (warnings still go to stderr). The Milvus
        API is off unless ``extra`` names a --milvus-port (its default port may be taken)."""
        self.port = free_port()
        if "--milvus-port" not in extra:
            extra = [*extra, "--milvus-port", "-1"]
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pgvec",
                "--log-level",
                "warning",
                "serve",
                "--upstream",
                upstream,
                "--data-dir",
                str(data_dir),
                "--port",
                str(self.port),
                *extra,
            ],
            stdout=subprocess.DEVNULL if quiet else None,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:  # noqa: PERF203 (polling until it listens)
                time.sleep(0.2)
        raise RuntimeError("pgvec serve did not start")

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stop(self) -> None:
        self._proc.send_signal(signal.SIGTERM)
        self._proc.wait(60)


def bench_pgvector(
    dsn: str, data: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int
) -> tuple[dict[str, object], float]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        load = load_pv(conn, data)
        conn.execute("SET maintenance_work_mem = '1GB'")
        t0 = time.perf_counter()
        conn.execute(
            "CREATE INDEX ON pv USING hnsw (embedding vector_l2_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )
        build = time.perf_counter() - t0
        got, lat = run_queries(
            conn, "SELECT id FROM pv ORDER BY embedding <-> %s::vector LIMIT %s", queries, True, k
        )
        conn.execute("DROP TABLE pv")
    return summary("pgvector 0.6 (direct)", build, lat, recall(got, truth)), load


def load_pv(conn: psycopg.Connection, data: np.ndarray) -> float:
    """CREATE EXTENSION vector and TABLE pv (id, embedding vector(d)) straight in
    PostgreSQL (real pgvector) and COPY the rows in text form; returns the COPY's seconds."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    conn.execute(f"CREATE TABLE pv (id bigint PRIMARY KEY, embedding vector({data.shape[1]}))")
    t0 = time.perf_counter()
    with conn.cursor().copy("COPY pv FROM STDIN") as copy:
        for i, v in enumerate(data):
            copy.write_row((i, text(v)))
    return time.perf_counter() - t0


def load_items(conn: psycopg.Connection, data: np.ndarray) -> float:
    """CREATE TABLE items (id, embedding vector(d)) through pgvec and COPY the rows in
    binary form (the raw float32 bytes); returns the seconds the COPY took."""
    conn.execute(f"CREATE TABLE items (id bigint PRIMARY KEY, embedding vector({data.shape[1]}))")
    t0 = time.perf_counter()
    with conn.cursor().copy("COPY items FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "bytea"])
        for i, v in enumerate(data):
            copy.write_row((i, v.tobytes()))
    return time.perf_counter() - t0


def bench_pgvec(
    dsn: str,
    data_dir: Path,
    data: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    k: int,
    spy: str | None = None,
) -> tuple[list[dict[str, object]], float]:
    """``spy``: a file for py-spy's samples of the server during the text-parameter run."""
    server = ServerProcess(dsn, data_dir)
    uri = dsn_for_port(dsn, server.port)
    out = []
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            load = load_items(conn, data)
            t0 = time.perf_counter()
            conn.execute(
                "CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)"
                " WITH (m = 16, ef_construction = 64)"
            )
            build = time.perf_counter() - t0
            sql = "SELECT id FROM items ORDER BY embedding <-> %s LIMIT %s"
            sampler = profile(server.pid, spy) if spy else None
            before = cpu_us(server.pid)
            got, lat = run_queries(conn, sql, queries, True, k)
            used = (cpu_us(server.pid) - before) / len(queries)
            if sampler is not None:
                sampler.send_signal(signal.SIGINT)
                sampler.wait(60)
            row = summary("pgvec (proxy, text param)", build, lat, recall(got, truth))
            out.append({**row, "server_cpu_us": used})
            got, lat = run_queries(conn, sql, queries, False, k)
            out.append(summary("pgvec (proxy, bytea param)", None, lat, recall(got, truth)))
            conn.execute("SET pgvec.consistency = 'eventually'")
            got, lat = run_queries(conn, sql, queries, False, k)
            out.append(summary("pgvec (bytea, eventually)", None, lat, recall(got, truth)))
    finally:
        server.stop()
    return out, load


def bench_faiss(
    data: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int
) -> dict[str, object]:
    index = faiss.IndexHNSWFlat(data.shape[1], 16)
    index.hnsw.efConstruction = 64
    t0 = time.perf_counter()
    index.add(data)
    build = time.perf_counter() - t0
    index.hnsw.efSearch = 40
    lat, got = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, ids = index.search(q[None, :], k)
        lat.append(time.perf_counter() - t0)
        got.append(ids[0].tolist())
    return summary("raw FAISS HNSW (in-process)", build, lat, recall(got, truth))


def bench_database(tmp: Path, dsn: str | None = None) -> str:
    """DSN of a fresh database ``bench`` on ``dsn``, or on a pgserver cluster in ``tmp``."""
    if dsn is None:
        from pgserver.postgres_server import get_server

        dsn = get_server(tmp / "pg", cleanup_mode="stop").get_uri()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS bench")
        admin.execute("CREATE DATABASE bench")
    return psycopg.conninfo.make_conninfo(dsn, dbname="bench")


def dsn_for_port(dsn: str, port: int) -> str:
    dbname = psycopg.conninfo.conninfo_to_dict(dsn).get("dbname", "postgres")
    return f"postgresql://postgres@127.0.0.1:{port}/{dbname}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--dsn", help="use this PostgreSQL (needs pgvector) instead of pgserver")
    ap.add_argument("--skip-pgvector", action="store_true", help="only pgvec and raw FAISS")
    ap.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy's samples of pgvec's server during the text-parameter queries (raw)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    data, queries = clustered(args.rows, args.dim, args.queries)
    truth = exact_topk(data, queries, args.k)
    results = []
    load_pv = 0.0
    with tempfile.TemporaryDirectory(prefix="pgvec-bench-") as tmp:
        bench_dsn = bench_database(Path(tmp), args.dsn)
        if not args.skip_pgvector:
            row, load_pv = bench_pgvector(bench_dsn, data, queries, truth, args.k)
            results.append(row)
        rows, load_pgvec = bench_pgvec(
            bench_dsn, Path(tmp) / "pgvec", data, queries, truth, args.k, args.profile
        )
        results += rows
        results.append(bench_faiss(data, queries, truth, args.k))

    print(
        f"\n{args.rows:,} x {args.dim} clustered vectors, {args.queries} queries, top-{args.k},"
        f" 1 client; load: pgvector {load_pv:.1f}s (COPY text), pgvec {load_pgvec:.1f}s"
        " (COPY binary)\n"
    )
    print(f"| {'system':28} | build s | QPS   | p50 ms | p99 ms | recall@10 |")
    print(f"|{'-' * 30}|---------|-------|--------|--------|-----------|")
    for r in results:
        b = f"{r['build_s']:.1f}" if r["build_s"] is not None else "-"
        print(
            f"| {r['system']:28} | {b:>7} | {r['qps']:5.0f} | {r['p50_ms']:6.2f} |"
            f" {r['p99_ms']:6.2f} | {r['recall@10']:9.3f} |"
        )
    for r in results:
        if "server_cpu_us" in r:
            print(f"{r['system']}: pgvec's server spent {r['server_cpu_us']:.0f} us of CPU a query")
    if args.profile:
        print(f"py-spy's samples of that run: {args.profile}")
    if not args.skip_pgvector:
        base = results[0]
        for r in results[1:-1]:
            print(f"{r['system']}: QPS x{r['qps'] / base['qps']:.2f} of pgvector")
        print(f"HNSW build: pgvec/pgvector = {results[1]['build_s'] / base['build_s']:.2f}")


if __name__ == "__main__":
    main()
