#!/usr/bin/env python
"""pgvec's Milvus API next to Milvus Lite, both through pymilvus, same data, one run.

Each system runs as its own server process on this machine: ``pgvec serve --milvus-port``
over a scratch PostgreSQL (the pgserver wheel) and ``python -m milvus_lite server``. The
client is the same ``MilvusClient`` code for both. Per dataset it reports, with the
ratio: insert rows/s (``insert`` in batches), index build seconds (HNSW M=16
efConstruction=64: flush + create_index until built + load), single-query search QPS
and recall@10 at each ef, a batch of 100 queries per call (QPS counted in queries),
filtered search at 1% selectivity (``cat == 7``, 100 values of ``cat``: QPS, rows
returned out of 10, recall against the exact filtered top-10), and several client
processes each doing single-query searches.

Datasets: ``clustered`` (bench_proxy's generator, L2) and ``embed`` (bench_embed's
384-d all-MiniLM-L6-v2 docstring passages, COSINE; the embeddings must be cached under
~/.cache/pgvec-bench/ or sentence-transformers installed, see bench_embed.py).

    python scripts/bench_milvus.py                    # 100,000 x 128 and 60,000 x 384
    python scripts/bench_milvus.py --dataset clustered --rows 20000 --queries 200
    python scripts/bench_milvus.py --quick            # well under a minute
    python scripts/bench_milvus.py --profile prof/    # py-spy of pgvec's server meanwhile

``--profile DIR`` records the pgvec server with py-spy during its single-query searches
(a flame graph and the raw stacks in DIR, and the top functions printed); py-spy must be
installed and allowed to attach (root, or ptrace permitted).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import multiprocessing
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from bench_proxy import ServerProcess, bench_database, clustered, exact_topk, free_port
from pymilvus import DataType, MilvusClient

log = logging.getLogger("bench_milvus")

PGVEC, LITE = "pgvec", "Milvus Lite"
COLLECTION = "bench"
CATS = 100
FILTER_CAT = 7
K = 10
BATCH_QUERIES = 100


@dataclass
class Dataset:
    name: str
    metric: str  # Milvus's metric type
    data: np.ndarray
    queries: np.ndarray
    cat: np.ndarray
    truth: np.ndarray = field(init=False)
    filtered_truth: list[list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.truth = self.exact(self.data, self.queries)
        keep = np.flatnonzero(self.cat == FILTER_CAT)
        sub = self.exact(np.ascontiguousarray(self.data[keep]), self.queries)
        self.filtered_truth = [[int(keep[i]) for i in row if i >= 0] for row in sub]

    def exact(self, data: np.ndarray, queries: np.ndarray) -> np.ndarray:
        if self.metric == "L2":
            return exact_topk(data, queries, K)
        import faiss

        index = faiss.IndexFlatIP(data.shape[1])  # unit vectors: IP is cosine
        index.add(data)
        return np.asarray(index.search(queries, K)[1])


def clustered_dataset(rows: int, queries: int) -> Dataset:
    data, qs = clustered(rows, 128, queries)
    cat = np.random.default_rng(7).integers(0, CATS, rows)
    return Dataset(f"clustered {rows:,} x 128 (L2)", "L2", data, qs, cat)


def embed_dataset(rows: int, queries: int) -> Dataset:
    """bench_embed's corpus and split: passages embedded once, cached."""
    from bench_embed import corpus, embed

    texts, _ = corpus(rows + queries)
    n_queries = min(queries, max(1, len(texts) // 10))
    vecs, took = embed(texts, 32)
    if took is not None:
        log.info("embedded %d passages in %.0fs", len(texts), took)
    perm = np.random.default_rng(0).permutation(len(texts))
    data = np.ascontiguousarray(vecs[perm[n_queries:]])
    qs = np.ascontiguousarray(vecs[perm[:n_queries]])
    cat = np.random.default_rng(7).integers(0, CATS, len(data))
    return Dataset(f"MiniLM {len(data):,} x 384 (COSINE)", "COSINE", data, qs, cat)


# -- servers ------------------------------------------------------------------------------


class LiteProcess:
    """``python -m milvus_lite server`` in its own process."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "milvus_lite",
                "server",
                "--data-dir",
                str(data_dir),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
        )
        self.pid = self._proc.pid

    def stop(self) -> None:
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def connect(uri: str, timeout: float = 60) -> MilvusClient:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return MilvusClient(uri)
        except Exception:  # noqa: PERF203 (polling until it listens)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@contextmanager
def servers(
    tmp: Path, dsn: str | None, which: Sequence[str]
) -> Iterator[dict[str, tuple[str, int]]]:
    """URI and server pid of each system."""
    started: list[Any] = []
    out: dict[str, tuple[str, int]] = {}
    try:
        if PGVEC in which:
            bench_dsn = bench_database(tmp, dsn)
            port = free_port()
            pg = ServerProcess(bench_dsn, tmp / "pgvec", ["--milvus-port", str(port)])
            started.append(pg)
            out[PGVEC] = (f"http://127.0.0.1:{port}", pg.pid)
        if LITE in which:
            lite = LiteProcess(tmp / "milvus_lite")
            started.append(lite)
            out[LITE] = (f"http://127.0.0.1:{lite.port}", lite.pid)
        yield out
    finally:
        for s in reversed(started):
            s.stop()


# -- the benchmark --------------------------------------------------------------------------


def recall(got: Sequence[Sequence[int]], truth: Sequence[Sequence[int]]) -> float:
    want = sum(len(t) for t in truth)
    hits = sum(len(set(g) & {int(x) for x in t}) for g, t in zip(got, truth, strict=True))
    return hits / want if want else 1.0


def ids_of(result: Any) -> list[list[int]]:
    return [[int(h["id"]) for h in hits] for hits in result]


@dataclass
class Profiler:
    """py-spy recording one process while a block runs."""

    out: Path | None
    pid: int

    @contextmanager
    def record(self, label: str) -> Iterator[None]:
        if self.out is None:
            yield
            return
        self.out.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        procs = [
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(self.pid),
                    "--rate",
                    "250",
                    "--format",
                    fmt,
                    "--output",
                    str(self.out / f"{label}.{ext}"),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for fmt, ext in (("flamegraph", "svg"), ("raw", "txt"))
        ]
        time.sleep(1.0)  # attached
        try:
            yield
        finally:
            for p in procs:
                p.send_signal(signal.SIGINT)
            for p in procs:
                p.wait(60)
            print_profile(self.out / f"{label}.txt")


def print_profile(raw: Path, top: int = 25) -> None:
    """Top functions by inclusive and by own samples, from py-spy's collapsed stacks."""
    if not raw.exists():
        log.warning("no profile written to %s", raw)
        return
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        count = int(n)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count
    print(f"\npy-spy {raw}: {total} samples")
    for title, counter in (("inclusive", inclusive), ("own", own)):
        print(f"-- top {top} by {title} samples")
        for name, n in counter.most_common(top):
            print(f"{100 * n / total:5.1f}%  {name}")


def single(
    client: MilvusClient, queries: np.ndarray, params: dict[str, Any], **kw: Any
) -> tuple[float, list[list[int]]]:
    for q in queries[:10]:  # warm-up
        client.search(COLLECTION, data=[q.tolist()], limit=K, search_params=params, **kw)
    got: list[list[int]] = []
    t0 = time.perf_counter()
    for q in queries:
        got += ids_of(
            client.search(COLLECTION, data=[q.tolist()], limit=K, search_params=params, **kw)
        )
    return len(queries) / (time.perf_counter() - t0), got


def batched(
    client: MilvusClient, queries: np.ndarray, params: dict[str, Any]
) -> tuple[float, list[list[int]]]:
    got: list[list[int]] = []
    client.search(COLLECTION, data=queries[:BATCH_QUERIES].tolist(), limit=K, search_params=params)
    t0 = time.perf_counter()
    for i in range(0, len(queries), BATCH_QUERIES):
        chunk = queries[i : i + BATCH_QUERIES].tolist()
        got += ids_of(client.search(COLLECTION, data=chunk, limit=K, search_params=params))
    return len(queries) / (time.perf_counter() - t0), got


def _client_worker(
    uri: str, queries: np.ndarray, params: dict[str, Any], start: Any
) -> tuple[float, float]:
    client = MilvusClient(uri)
    for q in queries[:5]:
        client.search(COLLECTION, data=[q.tolist()], limit=K, search_params=params)
    start.wait()
    t0 = time.time()
    for q in queries:
        client.search(COLLECTION, data=[q.tolist()], limit=K, search_params=params)
    return t0, time.time()


def many_clients(uri: str, queries: np.ndarray, params: dict[str, Any], n: int) -> float:
    """Queries per second of ``n`` client processes together, each one query per call."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            spans = pool.starmap(_client_worker, [(uri, queries, params, start) for _ in range(n)])
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    return n * len(queries) / wall


@dataclass
class Plan:
    efs: Sequence[int]
    batch: int
    clients: int
    profile: Path | None


def bench_system(system: str, uri: str, pid: int, ds: Dataset, plan: Plan) -> dict[str, float]:
    """Every measurement of one system on one dataset, by row label."""
    client = connect(uri)
    out: dict[str, float] = {}
    if client.has_collection(COLLECTION):
        client.drop_collection(COLLECTION)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=ds.data.shape[1])
    schema.add_field("cat", DataType.INT64)
    client.create_collection(COLLECTION, schema=schema)

    t0 = time.perf_counter()
    for i in range(0, len(ds.data), plan.batch):
        rows = [
            {"id": i + j, "vector": v, "cat": int(c)}
            for j, (v, c) in enumerate(
                zip(ds.data[i : i + plan.batch], ds.cat[i : i + plan.batch], strict=True)
            )
        ]
        client.insert(COLLECTION, rows)
    out["insert rows/s"] = len(ds.data) / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    client.flush(COLLECTION)
    index = client.prepare_index_params()
    index.add_index(
        "vector", index_type="HNSW", metric_type=ds.metric, params={"M": 16, "efConstruction": 64}
    )
    client.create_index(COLLECTION, index)
    client.load_collection(COLLECTION)
    out["index build s (flush+index+load)"] = time.perf_counter() - t0
    log.info("%s: %s loaded, %s", system, ds.name, out)

    prof = Profiler(plan.profile if system == PGVEC else None, pid)
    for ef in plan.efs:
        params = {"metric_type": ds.metric, "params": {"ef": ef}}
        if ef == plan.efs[0]:
            with prof.record(f"pgvec-single-{ds.metric.lower()}"):
                qps, got = single(client, ds.queries, params)
        else:
            qps, got = single(client, ds.queries, params)
        out[f"single-query QPS, ef={ef}"] = qps
        out[f"single-query recall@10, ef={ef}"] = recall(got, ds.truth)
    ef = plan.efs[-1]
    params = {"metric_type": ds.metric, "params": {"ef": ef}}
    qps, got = batched(client, ds.queries, params)
    out[f"batch of {BATCH_QUERIES} QPS, ef={ef}"] = qps
    out[f"batch of {BATCH_QUERIES} recall@10, ef={ef}"] = recall(got, ds.truth)
    qps, got = single(client, ds.queries, params, filter=f"cat == {FILTER_CAT}")
    out[f"filtered 1% QPS, ef={ef}"] = qps
    out[f"filtered 1% rows returned of {K}"] = float(np.mean([len(g) for g in got]))
    out[f"filtered 1% recall@10, ef={ef}"] = recall(got, ds.filtered_truth)
    if plan.clients > 1:
        params = {"metric_type": ds.metric, "params": {"ef": plan.efs[0]}}
        qps = many_clients(uri, ds.queries, params, plan.clients)
        out[f"{plan.clients} client processes QPS, ef={plan.efs[0]}"] = qps
    client.drop_collection(COLLECTION)
    client.close()
    return out


LOWER_IS_BETTER = ("index build",)


def advantage(row: str, ours: float, theirs: float) -> float | None:
    """How far pgvec is ahead: > 1 is better for pgvec, whichever way the row points."""
    if not ours or not theirs:
        return None
    if row.startswith(LOWER_IS_BETTER):
        return theirs / ours
    return ours / theirs


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"| dataset | measure | {PGVEC} | {LITE} | pgvec ahead (x) |",
        "|---|---|---:|---:|---:|",
    ]

    def fmt(v: float | None, row: str) -> str:
        if v is None:
            return "-"
        if "recall" in row or "rows returned" in row:
            return f"{v:.3f}"
        return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"

    for r in results:
        adv = r["pgvec_ahead"]
        lines.append(
            f"| {r['dataset']} | {r['measure']} | {fmt(r[PGVEC], r['measure'])} |"
            f" {fmt(r[LITE], r['measure'])} | {'-' if adv is None else f'{adv:.2f}'} |"
        )
    return "\n".join(lines)


def int_list(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", choices=("clustered", "embed", "both"), default="both")
    ap.add_argument("--rows", type=int, default=100_000, help="clustered rows")
    ap.add_argument("--embed-rows", type=int, default=60_000, help="embedded passages")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--ef", type=int_list, default=(64, 128), help="HNSW ef values, e.g. 64,128")
    ap.add_argument("--batch", type=int, default=5000, help="rows per insert call")
    ap.add_argument("--clients", type=int, default=4, help="client processes; 1 skips the row")
    ap.add_argument("--systems", default=f"{PGVEC},{LITE}", help="comma-separated")
    ap.add_argument("--dsn", help="PostgreSQL (with pgvec's needs) instead of pgserver")
    ap.add_argument("--json", type=Path, default=Path("bench_milvus.json"))
    ap.add_argument("--profile", type=Path, help="py-spy pgvec's server into this folder")
    ap.add_argument("--quick", action="store_true", help="small sizes: well under a minute")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    if args.quick:
        args.rows, args.embed_rows, args.queries, args.clients = 5000, 2000, 50, 2
        if args.dataset == "both":
            args.dataset = "clustered"
    systems = [s.strip() for s in args.systems.split(",")]
    plan = Plan(args.ef, args.batch, args.clients, args.profile)

    makers: list[Callable[[], Dataset]] = []
    if args.dataset in ("clustered", "both"):
        makers.append(lambda: clustered_dataset(args.rows, args.queries))
    if args.dataset in ("embed", "both"):
        makers.append(lambda: embed_dataset(args.embed_rows, args.queries))

    results: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="pgvec-bench-") as tmp,
        servers(Path(tmp), args.dsn, systems) as uris,
    ):
        for make in makers:
            ds = make()
            found = {s: bench_system(s, *uris[s], ds, plan) for s in systems}
            for row in next(iter(found.values())):
                ours, theirs = found.get(PGVEC, {}).get(row), found.get(LITE, {}).get(row)
                results.append(
                    {
                        "dataset": ds.name,
                        "measure": row,
                        PGVEC: ours,
                        LITE: theirs,
                        "pgvec_ahead": None
                        if ours is None or theirs is None
                        else advantage(row, ours, theirs),
                    }
                )
    print(
        f"\n{args.queries} queries, top-{K}, HNSW M=16 efConstruction=64, inserts of"
        f" {args.batch:,} rows, each system its own server process on this machine"
        f" ({multiprocessing.cpu_count()} CPUs); {time.perf_counter() - t_start:.0f}s in all\n"
    )
    print(table(results))
    args.json.write_text(
        json.dumps(
            {
                "args": vars(args) | {"json": str(args.json), "profile": str(args.profile)},
                "results": results,
            },
            indent=1,
        )
    )
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
