"""DISKANN: Microsoft DiskANN's disk index (diskannpy) as the sealed part of a collection.

``build_disk_index`` writes a Vamana graph with the full vectors on disk and PQ codes
kept in memory; ``StaticDiskIndex`` searches it from disk. Like the FAISS indexes, its
ids are the collection's labels [0, ntotal).

- Files: an index is a directory ``diskann.<token>`` of files ``ann_*`` (the prefix
  diskannpy expects), built inside the collection's directory when it has one (else a
  temporary directory removed with the index) and never modified afterwards. A save
  records each file's size and CRC in the manifest (copying the files into the save
  directory first when they are elsewhere); a load checks them and reopens the index.
  Directories no manifest names and no open index uses are removed by the next save.
- Metrics: diskannpy's disk index supports "l2" and "mips" (its own MIPS-to-L2
  transform); COSINE is L2 over unit vectors. Scores are re-ranked exactly by the
  collection, so distances follow the engine's conventions as FLAT's do.
- Deletes and filters: DiskANN has no ID selector. A search fetches more candidates
  (by 1 / selectivity) and drops labels the selector refuses, doubling until it has
  enough; when it comes up short the collection searches the admitted rows exactly.
- The index cannot grow: sealing the growing rows rebuilds it (with compaction).
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pgvec.engine import durable
from pgvec.engine.spec import IndexSpec, Metric, SearchParams
from pgvec.errors import EngineError, FeatureNotSupported

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Progress = Callable[[str, float], None]

PREFIX = "ann"
DIR = re.compile(r"^diskann\.[0-9a-f]{32}$")
#: diskannpy's build leaves a copy of the input and of the in-memory graph: not needed
#: to search from disk
_SCRATCH = ("ann_vectors.bin", "ann_mem.index.data")
#: DiskANN needs rows to train its PQ codebooks; fewer rows are searched exactly
MIN_ROWS = 256
#: the most candidates one search asks DiskANN for before giving up on a filter
MAX_FETCH = 8192
SEARCH_THREADS = max(1, min(8, os.cpu_count() or 1))

#: directories of the indexes open in this process (never removed as stale)
_open: set[str] = set()
_open_lock = threading.Lock()


def _diskannpy() -> Any:
    """The diskannpy module, imported on first use: pgvec runs without it.

    It is not a dependency in pyproject.toml: diskannpy 0.7.0 (the only release with a
    CPython 3.11 wheel) declares ``numpy==1.25``, and resolving that downgrades numpy
    below what faiss-cpu and pandas (pymilvus) need. Its wheel works with numpy 2.
    """
    try:
        import diskannpy
    except ImportError as exc:
        raise FeatureNotSupported(
            "index type DISKANN needs the diskannpy package",
            hint="Install it without its numpy pin: pip install --no-deps diskannpy==0.7.0",
        ) from exc
    return diskannpy


def _metric_name(metric: Metric) -> str:
    return "mips" if metric is Metric.IP else "l2"  # COSINE: L2 over unit vectors


def _prepare(vectors: F32, metric: Metric) -> F32:
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric is Metric.COSINE:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = np.divide(out, np.where(norms > 0, norms, 1), dtype=np.float32)
    return out


def _raw_gb(n: int, dim: int) -> float:
    return n * dim * 4 / 2**30


class DiskAnnIndex:
    """An open DiskANN disk index over labels [0, ntotal) in ``directory``."""

    def __init__(self, directory: Path, spec: IndexSpec, d: int, ntotal: int, temp: bool) -> None:
        self.directory = directory
        self.spec = spec
        self.d = d
        self.ntotal = ntotal
        key = str(directory)
        with _open_lock:
            _open.add(key)
        weakref.finalize(self, _close, key, temp)
        ratio = float(spec.params["search_cache_budget_gb_ratio"])
        node_bytes = d * 4 + (int(spec.params["max_degree"]) + 1) * 4
        cached = min(ntotal, int(ratio * _raw_gb(ntotal, d) * 2**30 / node_bytes))
        try:
            self.index: Any = _diskannpy().StaticDiskIndex(
                index_directory=str(directory),
                num_threads=SEARCH_THREADS,
                num_nodes_to_cache=cached,
                index_prefix=PREFIX,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineError(f"opening the DISKANN index in {directory} failed: {exc}") from exc

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.name.startswith(PREFIX + "_"))

    def memory_bytes(self) -> int:
        pq = self.directory / f"{PREFIX}_pq_compressed.bin"
        return pq.stat().st_size if pq.exists() else 0

    def search(
        self, query: F32, kk: int, params: SearchParams, boost: float, bitmap: Any
    ) -> tuple[I64, F32]:
        """Up to kk labels that ``bitmap`` (packed, little-endian; None: all) admits,
        nearest first by DiskANN's scores, with those scores."""
        q = _prepare(query.reshape(1, -1), self.spec.metric)
        fetch = min(self.ntotal, max(kk, math.ceil(kk * boost)))
        while True:
            width = params.search_list_for(fetch)
            res = self.index.batch_search(
                q, k_neighbors=fetch, complexity=width, num_threads=1, beam_width=2
            )
            ids = res.identifiers[0].astype(np.int64)
            dists = res.distances[0].astype(np.float32)
            keep = ids < self.ntotal
            if bitmap is not None:
                safe = np.where(keep, ids, 0)
                keep &= ((bitmap[safe >> 3] >> (safe & 7)) & 1).astype(np.bool_)
            ids, dists = ids[keep], dists[keep]
            _, first = np.unique(ids, return_index=True)  # DiskANN may repeat an id
            if len(first) < len(ids):
                first.sort()
                ids, dists = ids[first], dists[first]
            if len(ids) >= kk or fetch >= min(self.ntotal, MAX_FETCH):
                return ids[:kk], dists[:kk]
            fetch = min(self.ntotal, MAX_FETCH, fetch * 2)


def _close(key: str, temp: bool) -> None:
    with _open_lock:
        _open.discard(key)
    if temp:
        shutil.rmtree(key, ignore_errors=True)


def build(
    spec: IndexSpec, vectors: F32, dim: int, home: Path | None, progress: Progress | None = None
) -> DiskAnnIndex | None:
    """A DiskANN disk index over ``vectors`` (labels 0..n-1), built in a new directory in
    ``home`` (a temporary one if None); None when there are too few rows for one."""
    n = len(vectors)
    if n < MIN_ROWS:
        return None
    temp = home is None
    parent = Path(tempfile.mkdtemp(prefix="pgvec-diskann-")) if home is None else home
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / f"diskann.{uuid.uuid4().hex}"
    staging = final.with_name(final.name + ".tmp")
    threads = int(spec.params.get("num_build_thread", 0)) or os.cpu_count() or 1
    raw = _raw_gb(n, dim)
    if progress is not None:
        progress("build", 0.0)
    module = _diskannpy()
    try:
        staging.mkdir()
        module.build_disk_index(
            data=_prepare(vectors, spec.metric),
            distance_metric=_metric_name(spec.metric),
            index_directory=str(staging),
            complexity=int(spec.params["search_list_size"]),
            graph_degree=int(spec.params["max_degree"]),
            search_memory_maximum=max(float(spec.params["pq_code_budget_gb_ratio"]) * raw, 1e-6),
            build_memory_maximum=max(1.0, 4 * raw),
            num_threads=threads,
            pq_disk_bytes=0,
            index_prefix=PREFIX,
        )
        for name in _SCRATCH:
            (staging / name).unlink(missing_ok=True)
        for path in staging.iterdir():
            durable.commit(path, path)  # fsync each file
        os.replace(staging, final)
        durable.fsync_dir(parent)
    except (RuntimeError, ValueError, MemoryError, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise EngineError(f"building the DISKANN index failed: {exc}") from exc
    finally:
        if temp:
            shutil.rmtree(staging, ignore_errors=True)
    index = DiskAnnIndex(final, spec, dim, n, temp)
    if temp:  # the temporary parent goes with the index
        weakref.finalize(index, shutil.rmtree, str(parent), True)
    if progress is not None:
        progress("done", 1.0)
    return index


def persist(index: DiskAnnIndex, directory: Path) -> dict[str, Any]:
    """The manifest entry of ``index`` saved in ``directory`` (its files copied there
    first when they are elsewhere)."""
    target = directory / index.directory.name
    if index.directory != target and not target.exists():
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for path in index.files():
            try:
                os.link(path, staging / path.name)
            except OSError:
                shutil.copyfile(path, staging / path.name)
            durable.commit(staging / path.name, staging / path.name)
        os.replace(staging, target)
        durable.fsync_dir(directory)
    files = []
    for path in index.files():
        entry = durable.commit(target / path.name, target / path.name)
        entry["name"] = f"{target.name}/{path.name}"
        files.append(entry)
    return {"kind": "diskann", "dir": target.name, "rows": index.ntotal, "files": files}


def open_saved(directory: Path, entry: dict[str, Any], spec: IndexSpec, dim: int) -> DiskAnnIndex:
    """Reopen a saved index after checking its files; ValueError if they don't match."""
    name = str(entry["dir"])
    if not DIR.match(name):
        raise ValueError(f"{name} is not a DISKANN index directory")
    for file in entry["files"]:
        durable.checked(directory, file)
    try:
        return DiskAnnIndex(directory / name, spec, dim, int(entry["rows"]), temp=False)
    except EngineError as exc:
        raise ValueError(str(exc)) from exc


def remove_stale(directory: Path, keep: set[str]) -> None:
    """Remove the index directories in ``directory`` that neither a name in ``keep`` nor
    an open index uses (builds in progress end in ``.tmp`` and are left alone)."""
    with _open_lock:
        busy = set(_open)
    for path in directory.iterdir():
        if DIR.match(path.name) and path.name not in keep and str(path) not in busy:
            shutil.rmtree(path, ignore_errors=True)
