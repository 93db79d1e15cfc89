"""Building, extending and searching the FAISS index of a collection.

FAISS ids are always the collection's labels (row positions):

* HNSW (IndexHNSWFlat) numbers rows sequentially and cannot remove them, so *every*
  position in [0, sealed_upto) is added, dead ones included; dead rows are hidden at
  search time by an IDSelectorBitmap. A build compacts the collection first, so only
  rows that die after a build cost graph memory until the next build.
* IVF indexes add live rows with ``add_with_ids``.
* FLAT has no FAISS object: the stored matrix is searched exactly.
* An HNSW index keeps no copy of the vectors: its flat storage is pointed at the
  collection's own rows (:func:`share_vectors`), so a loaded index costs the graph on
  top of the vectors the collection holds anyway. A COSINE index does so when the rows
  are unit length already (most embedding models'); otherwise it holds the normalized
  rows FAISS needs, a second copy.
* Binary vectors (uint8 rows of packed bits): BIN_FLAT is exact like FLAT; BIN_IVF_FLAT
  is an IndexBinaryIVF, whose clustering and lists FAISS builds. FAISS's binary IVF
  takes no IDSelector and knows only Hamming distance, so an unfiltered HAMMING search
  is FAISS's own, and any other (JACCARD, deletes, a filter) probes the same lists
  itself: every eligible row of the nprobe nearest lists is a candidate, scored
  exactly by the caller (see :func:`_probe_binary`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from pgvec.engine import diskann_index
from pgvec.engine.spec import IndexSpec, Metric, SearchParams
from pgvec.errors import EngineError, InvalidParameter

faiss: Any = _faiss  # the SWIG module is only partly typed
log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

ADD_CHUNK = 20000
PROGRESS_CHUNK = 1000
#: while someone watches, rows are added in chunks of a twentieth. FAISS's HNSW add runs
#: a level at a time over the rows it is given, so small chunks leave cores idle:
#: 100,000 x 128 took 9.2 s in chunks of 2,000 (a fiftieth) and 8.4 s in chunks of 5,000
PROGRESS_STEPS = 20
TRAIN_PER_LIST = 256  # FAISS's own k-means sample cap (max_points_per_centroid)
FEW_PER_LIST = 39  # FAISS's min_points_per_centroid: fewer rows a list train poor lists


def configure_threads(n: int | None = None) -> int:
    """Set FAISS's OpenMP thread count (process-wide); default: all CPUs.

    Builds parallelise over rows; a single-query search barely uses OpenMP, so a server
    running many concurrent searches on a thread pool may prefer ``configure_threads(1)``
    to avoid oversubscription. Returns the number set.
    """
    count = n if n is not None else (os.cpu_count() or 1)
    faiss.omp_set_num_threads(max(1, int(count)))
    return max(1, int(count))


def faiss_metric(metric: Metric) -> int:
    if metric is Metric.L2 or metric.binary:  # binary: unused (FAISS's are Hamming)
        return int(faiss.METRIC_L2)
    if metric is Metric.L1:
        return int(faiss.METRIC_L1)
    return int(faiss.METRIC_INNER_PRODUCT)  # IP, and COSINE on normalised vectors


def prepare(vectors: F32, metric: Metric) -> F32:
    """Rows as FAISS must see them: contiguous float32, unit length for COSINE; packed
    bits as they are."""
    if metric.binary:
        packed: F32 = np.ascontiguousarray(vectors, dtype=np.uint8)
        return packed
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric is Metric.COSINE:
        out = out.copy()
        faiss.normalize_L2(out)
    return out


def _report(progress: Progress | None, stage: str, fraction: float) -> None:
    if progress is not None:
        progress(stage, fraction)


def build(
    spec: IndexSpec,
    vectors: F32,
    dim: int,
    progress: Progress | None = None,
    home: Path | None = None,
) -> Any:
    """A FAISS index over all rows of ``vectors`` with ids 0..n-1 (None for FLAT); for
    DISKANN a disk index built in ``home`` (see diskann_index.py)."""
    n = len(vectors)
    if spec.exact:
        _report(progress, "done", 1.0)
        return None
    if spec.index_type == "DISKANN":
        return diskann_index.build(spec, vectors, dim, home, progress)
    metric = faiss_metric(spec.metric)
    index: Any
    quantizer: Any
    try:
        if spec.index_type == "HNSW":
            index = faiss.IndexHNSWFlat(dim, int(spec.params["M"]), metric)
            index.hnsw.efConstruction = int(spec.params["efConstruction"])
        else:
            nlist = int(spec.params["nlist"])
            if n < nlist:
                raise InvalidParameter(
                    f"nlist ({nlist}) must not exceed the number of rows ({n})",
                    hint="Load more rows before building the index, or choose fewer lists.",
                )
            if spec.index_type == "IVF_PQ" and n < 1 << int(spec.params["nbits"]):
                codes = 1 << int(spec.params["nbits"])
                raise InvalidParameter(
                    f"IVF_PQ with nbits {spec.params['nbits']} trains {codes} codes per"
                    f" sub-vector and needs at least {codes} rows ({n} given)",
                    hint="Load more rows before building the index, or choose a smaller nbits.",
                )
            if spec.metric.binary:
                quantizer = faiss.IndexBinaryFlat(dim)
            elif metric == faiss.METRIC_L2:
                quantizer = faiss.IndexFlatL2(dim)
            else:
                quantizer = faiss.IndexFlatIP(dim)
            if spec.index_type == "BIN_IVF_FLAT":
                index = faiss.IndexBinaryIVF(quantizer, dim, nlist)
            elif spec.index_type == "IVF_FLAT":
                index = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
            elif spec.index_type == "IVF_SQ8":
                index = faiss.IndexIVFScalarQuantizer(
                    quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, metric
                )
            else:
                m, nbits = int(spec.params["m"]), int(spec.params["nbits"])
                index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, nbits, metric)
            index.own_fields = True
            quantizer.this.disown()
            _report(progress, "train", 0.0)
            if n < FEW_PER_LIST * nlist:
                log.warning(
                    "%s: %d lists trained on %d rows; with fewer than %d rows a list the lists"
                    " are poor and recall suffers (choose fewer lists, or build after loading)",
                    spec.index_type, nlist, n, FEW_PER_LIST,
                )  # fmt: skip
            _quiet(index)
            sample_size = min(n, TRAIN_PER_LIST * nlist)
            if sample_size < n:
                pick = np.random.default_rng(1234).choice(n, sample_size, replace=False)
                sample = prepare(vectors[np.sort(pick)], spec.metric)
            else:
                sample = prepare(vectors, spec.metric)
            index.train(sample)
        add(index, spec, vectors, 0, progress)
    except (RuntimeError, MemoryError) as exc:
        raise EngineError(f"building the {spec.index_type} index failed: {exc}") from exc
    _report(progress, "done", 1.0)
    return index


def _quiet(index: Any) -> None:
    """No k-means warnings on stderr from FAISS: pgvec logs a training set that is too
    small itself (FAISS prints one per k-means run, PQ's sub-quantizers included)."""
    index.cp.min_points_per_centroid = 1
    pq = getattr(index, "pq", None)
    if pq is not None:
        pq.cp.min_points_per_centroid = 1


def add(
    index: Any,
    spec: IndexSpec,
    vectors: F32,
    first_label: int,
    progress: Progress | None = None,
    alive: Bools | None = None,
) -> None:
    """Add rows labelled first_label.. (HNSW: all of them; IVF: the live ones)."""
    n = len(vectors)
    if spec.index_type == "HNSW" and index.ntotal != first_label:
        raise EngineError(f"HNSW holds {index.ntotal} rows, cannot add label {first_label}")
    # smaller chunks when someone watches: progress every 2-5% (and a chance to cancel)
    step = (
        ADD_CHUNK if progress is None else min(ADD_CHUNK, max(PROGRESS_CHUNK, n // PROGRESS_STEPS))
    )
    for start in range(0, n, step):
        stop = min(n, start + step)
        _report(progress, "add", start / max(n, 1))
        chunk = prepare(vectors[start:stop], spec.metric)
        if spec.index_type == "HNSW":
            index.add(chunk)
            continue
        ids = np.arange(first_label + start, first_label + stop, dtype=np.int64)
        if alive is not None:
            live = alive[start:stop]
            chunk, ids = np.ascontiguousarray(chunk[live]), ids[live]
        if len(ids):
            index.add_with_ids(chunk, ids)


def clone(index: Any) -> Any:
    """A copy of a FAISS index, to extend while the original serves searches: it owns
    its vectors even where the original shares the collection's (:func:`share_vectors`)."""
    if isinstance(index, faiss.IndexBinary):
        return faiss.clone_binary_index(index)
    copy = faiss.clone_index(index)
    if isinstance(index, faiss.IndexHNSW):
        codes = faiss.downcast_index(copy.storage).codes
        if not getattr(codes, "is_owned", True):  # the clone views the original's rows: copy them
            owned = faiss.UInt8Vector()
            faiss.copy_array_to_vector(_codes_view(codes), owned)
            codes.owned_data.swap(owned)
            codes.is_owned = True
            _point(codes, codes.owned_data.data(), codes.owned_data.size())
    return copy


def _codes_view(codes: Any) -> npt.NDArray[np.uint8]:
    """The bytes of a FAISS MaybeOwnedVector<uint8_t>, without copying."""
    size = int(codes.size())
    if not size:
        return np.empty(0, np.uint8)
    out: npt.NDArray[np.uint8] = faiss.rev_swig_ptr(codes.data(), size)
    return out


def _point(codes: Any, pointer: Any, size: int) -> None:
    codes.view_data, codes.view_size = (None, 0) if codes.is_owned else (pointer, size)
    codes.c_ptr, codes.c_size = pointer, size


#: how far from 1 a row's squared norm may be for a COSINE index to view it as stored:
#: the walk of the graph then differs from one over the normalized rows by far less than
#: HNSW's own approximation, and the hits are ranked by exact distances afterwards
UNIT_TOLERANCE = 1e-4


def share_vectors(index: Any, spec: IndexSpec, rows: F32, sqnorms: F32 | None = None) -> bool:
    """Point an HNSW index's stored vectors at ``rows`` (the collection's rows for its
    labels 0..ntotal-1, which must not change while the index lives) and free its own
    copy; the index object keeps ``rows`` alive. For COSINE, FAISS stores unit-length
    rows: only when every row already is (``sqnorms``, as with most embedding models).
    False, sharing nothing, where that does not hold or ``rows`` does not match what
    the index holds (checked on a sample of rows)."""
    if spec.index_type != "HNSW" or spec.metric.binary or not isinstance(index, faiss.IndexHNSW):
        return False
    n = int(index.ntotal)
    if n == 0 or len(rows) < n or rows.dtype != np.float32 or not rows.flags.c_contiguous:
        return False
    unit = spec.metric is Metric.COSINE
    if unit and (
        sqnorms is None or len(sqnorms) < n or float(np.abs(sqnorms[:n] - 1).max()) > UNIT_TOLERANCE
    ):
        return False
    codes = faiss.downcast_index(index.storage).codes
    if not hasattr(codes, "is_owned"):  # older FAISS: a plain std::vector, nothing to share
        return False
    if not codes.is_owned:
        return _shared_rows(index) is rows
    mine = rows[:n]
    flat = mine.reshape(-1).view(np.uint8)
    held = _codes_view(codes)
    if held.size != flat.size:
        return False
    sample = np.unique(np.linspace(0, n - 1, num=min(n, 64)).astype(np.int64))
    theirs = held.view(np.float32).reshape(n, -1)[sample]
    if unit:
        if not np.allclose(theirs, mine[sample], rtol=0, atol=1e-3):
            return False
    elif not np.array_equal(theirs, mine[sample]):
        return False
    pointer = faiss.swig_ptr(flat)
    codes.owned_data.swap(faiss.UInt8Vector())  # frees FAISS's copy
    codes.is_owned = False
    _point(codes, pointer, flat.size)
    # FAISS's own way to keep Python objects alive as long as an index object
    index.referenced_objects = [*getattr(index, "referenced_objects", ()), _SharedRows(mine)]
    return True


class _SharedRows:
    """The collection rows an index views (in its ``referenced_objects``)."""

    def __init__(self, rows: F32) -> None:
        self.rows = rows


def _shared_rows(index: Any) -> F32 | None:
    for ref in getattr(index, "referenced_objects", ()):
        if isinstance(ref, _SharedRows):
            return ref.rows
    return None


@functools.cache
def _malloc_trim() -> Any:
    path = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(path), "malloc_trim", None) if path else None
    except OSError:
        return None


def trim_heap() -> None:
    """Give the C heap's free pages back to the OS (glibc's malloc_trim; elsewhere a
    no-op). A build frees hundreds of megabytes of temporaries in blocks small enough to
    stay in the heap, where they would count as the process's memory until reused."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def vectors_shared(index: Any) -> bool:
    """Whether ``index`` views the collection's rows instead of holding its own copy."""
    return _shared_rows(index) is not None


def fetch_factor(spec: IndexSpec) -> int:
    """Candidates fetched per result; lossy codes are re-ranked with exact distances."""
    return {"IVF_PQ": 4, "IVF_SQ8": 2}.get(spec.index_type, 1)


class Selector:
    """An IDSelectorBitmap over a packed (little-endian) bitmap of allowed labels.

    Immutable once built; keeps the bitmap alive for FAISS and caches one
    SearchParameters object per ef / nprobe value that carries it.
    """

    def __init__(self, bitmap: npt.NDArray[np.uint8]) -> None:
        self.bitmap = bitmap
        self.sel = faiss.IDSelectorBitmap(len(bitmap) * 8, faiss.swig_ptr(bitmap))
        self.params: dict[tuple[bool, int], Any] = {}


_PLAIN_PARAMS: dict[tuple[bool, int], Any] = {}  # SearchParameters without a selector
_PARAMS_CACHE_MAX = 256


def _search_params(hnsw: bool, value: int, selector: Selector | None) -> Any:
    """SearchParameters (read-only for FAISS, so shared between threads), cached."""
    cache = _PLAIN_PARAMS if selector is None else selector.params
    sp = cache.get((hnsw, value))
    if sp is None:
        if hnsw:
            sp = faiss.SearchParametersHNSW(efSearch=value)
        else:
            sp = faiss.SearchParametersIVF(nprobe=value)
        if selector is not None:
            sp.sel = selector.sel
        if len(cache) < _PARAMS_CACHE_MAX:
            cache[(hnsw, value)] = sp
    return sp


def search(
    index: Any,
    spec: IndexSpec,
    query: F32,
    kk: int,
    params: SearchParams,
    bitmap: npt.NDArray[np.uint8] | None = None,
    boost: float = 1.0,
    selector: Selector | None = None,
) -> I64:
    """Labels of up to kk candidates from the FAISS index (no -1 padding).

    Only labels set in ``bitmap`` (or ``selector``) are returned; neither: all labels.
    """
    if selector is None and bitmap is not None:
        selector = Selector(bitmap)
    return search_scored(index, spec, query, kk, params, boost, selector)[0]


def search_scored(
    index: Any,
    spec: IndexSpec,
    query: F32,
    kk: int,
    params: SearchParams,
    boost: float = 1.0,
    selector: Selector | None = None,
) -> tuple[I64, F32]:
    """Like :func:`search`, with FAISS's float32 scores (squared L2, or inner product)."""
    if spec.index_type == "DISKANN":
        bitmap = None if selector is None else selector.bitmap
        hits: tuple[I64, F32] = index.search(query, kk, params, boost, bitmap)
        return hits
    if spec.index_type == "BIN_IVF_FLAT":
        return _search_binary(index, spec, query, kk, params, boost, selector)
    if spec.index_type == "HNSW":
        ef = params.ef_for(kk)
        if boost != 1.0:
            ef = max(int(ef * boost), kk)
        sp = _search_params(True, ef, selector)
    else:
        nlist = int(spec.params["nlist"])
        nprobe = min(nlist, math.ceil(params.nprobe_for(nlist) * boost))
        sp = _search_params(False, nprobe, selector)
    q = prepare(query.reshape(1, -1), spec.metric)
    # search_c is what Index.search wraps; calling it directly skips the wrapper's
    # per-call argument checks (a few microseconds of a ~0.1 ms query).
    dists = np.empty(kk, np.float32)
    found: I64 = np.empty(kk, np.int64)
    index.search_c(1, faiss.swig_ptr(q), kk, faiss.swig_ptr(dists), faiss.swig_ptr(found), sp)
    if kk and found[-1] < 0:  # FAISS pads a short answer with -1 at the end
        keep = found >= 0
        found, dists = found[keep], dists[keep]
    return found, dists


def _search_binary(
    index: Any,
    spec: IndexSpec,
    query: F32,
    kk: int,
    params: SearchParams,
    boost: float,
    selector: Selector | None,
) -> tuple[I64, F32]:
    """Candidates of an IndexBinaryIVF: FAISS's top kk by Hamming distance when that is
    the metric and nothing is filtered out, else every eligible row of the probed lists
    (more than kk, possibly: the caller ranks them by exact distance)."""
    nlist = int(spec.params["nlist"])
    nprobe = min(nlist, math.ceil(params.nprobe_for(nlist) * boost))
    q = prepare(query.reshape(1, -1), spec.metric)
    if spec.metric is Metric.HAMMING and selector is None:
        # integer distances tie often: a margin lets the caller's (distance, label)
        # order pick among the tied rows as an exact search would
        kk = min(int(index.ntotal), 2 * kk + 16)
        dists = np.empty(kk, np.int32)
        found: I64 = np.empty(kk, np.int64)
        sp = _search_params(False, nprobe, None)
        index.search_c(1, faiss.swig_ptr(q), kk, faiss.swig_ptr(dists), faiss.swig_ptr(found), sp)
        keep = found >= 0
        return found[keep], dists[keep].astype(np.float32)
    found = _probe_binary(index, q, nprobe, selector)
    return found, np.full(len(found), np.nan, np.float32)  # scores: the caller's to compute


def _probe_binary(index: Any, q: F32, nprobe: int, selector: Selector | None) -> I64:
    """The ids in the ``nprobe`` lists nearest to ``q`` that ``selector`` admits."""
    _, lists = index.quantizer.search(q, nprobe)
    invlists = index.invlists
    parts = []
    for list_no in lists[0].tolist():
        size = invlists.list_size(list_no) if list_no >= 0 else 0
        if size:
            parts.append(faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy())
    ids: I64 = np.concatenate(parts) if parts else np.empty(0, np.int64)
    if selector is not None and len(ids):
        bits = (selector.bitmap[ids >> 3] >> (ids & 7).astype(np.uint8)) & 1
        ids = ids[bits.astype(np.bool_)]
    return ids


def exact_l2(spec: IndexSpec) -> bool:
    """Whether FAISS's own scores are exact L2 distances (uncompressed vectors)."""
    return spec.metric is Metric.L2 and spec.index_type in ("HNSW", "IVF_FLAT")


def memory_estimate(spec: IndexSpec | None, index: Any, dim: int) -> int:
    if index is None or spec is None:
        return 0
    n = int(index.ntotal)
    if spec.index_type == "DISKANN":
        return int(index.memory_bytes())
    if spec.index_type == "HNSW":
        vectors = 0 if vectors_shared(index) else dim * 4
        # level 0 holds 2M neighbour ids a row, the levels above about one more; plus
        # its offset and level
        return n * (vectors + int(spec.params["M"]) * 2 * 4 + 16)
    nlist = int(spec.params["nlist"])
    if spec.index_type == "BIN_IVF_FLAT":
        return n * (dim // 8 + 8) + nlist * dim // 8
    if spec.index_type == "IVF_FLAT":
        code = dim * 4
    elif spec.index_type == "IVF_SQ8":
        code = dim
    else:
        code = (int(spec.params["m"]) * int(spec.params["nbits"]) + 7) // 8
    return n * (code + 8) + nlist * dim * 4
