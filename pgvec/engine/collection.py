"""VectorCollection: all vectors of one (table, vector column), plus at most one index (a
column with indexes of two operator classes has a collection for each).

Rows live in an append-only matrix (float32, or uint8 of packed bits for a binary
collection, searched by HAMMING or JACCARD); a row's position is its *label* (int64),
which is also its FAISS id. An update appends a new row and marks the old label dead;
a delete marks it dead. Labels [0, sealed_upto) are covered by the FAISS index (the
sealed part); later rows form the growing part, searched exactly. ``build_index``
compacts (drops dead rows, renumbers) and rebuilds; ``seal`` adds the growing rows to
a clone of the index. Both work on snapshots outside the lock and swap under it, so
searches and upserts never wait for a build.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pgvec.engine import faiss_index
from pgvec.engine.distances import exact_candidates, exact_topk, popcount, rank
from pgvec.engine.faiss_index import Progress, Selector
from pgvec.engine.journal import Journal
from pgvec.engine.keys import (
    INT64_MAX,
    INT64_MIN,
    ByLabel,
    IntKeys,
    Key,
    KeyMap,
    keys_at,
    new_map,
)
from pgvec.engine.predicate import Unsupported, Where
from pgvec.engine.scalars import ScalarColumn, Scalars
from pgvec.engine.spec import IndexSpec, Metric, SearchParams
from pgvec.errors import (
    DimensionMismatch,
    EngineError,
    InvalidParameter,
    NonFiniteVector,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pgvec.engine.persist import Saved

__all__ = ["Key", "VectorCollection", "check_finite"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

#: ``allowed`` sets of at most this many floats (rows x dim: 16,384 rows of 128-d, about
#: 1 ms) or 1% of live rows are searched exactly. A graph walk restricted to a small set
#: needs a wide search, and misses rows when the set lies away from the query.
EXACT_FILTER_FLOATS = 2_097_152
#: collections of at most this many stored rows (a filter mask costs ~15 us per 100k)
#: may be searched without a thread hop (see ``quick``)
QUICK_ROWS = 2_000_000


def check_finite(vectors: npt.NDArray[Any]) -> None:
    if not np.isfinite(vectors).all():
        if np.isnan(vectors).any():
            raise NonFiniteVector("NaN not allowed in vector")
        raise NonFiniteVector("infinite value not allowed in vector")


def _capacity(cap: int, need: int) -> int:
    """Rows to allocate: ``cap`` (at least 16) doubled until it holds ``need``."""
    cap = max(cap, 16)
    while cap < need:
        cap *= 2
    return cap


def _joined(capacity: int, *parts: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``parts`` concatenated at the start of a zeroed array of ``capacity`` rows: the
    rows past them cost no memory until written (calloc'd pages)."""
    first = parts[0]
    out: npt.NDArray[Any] = np.zeros((capacity, *first.shape[1:]), first.dtype)
    at = 0
    for part in parts:
        out[at : at + len(part)] = part
        at += len(part)
    return out


@dataclass
class _Snapshot:
    vecs: F32
    sqnorms: F32
    keys: ByLabel
    n: int
    index: Any
    spec: IndexSpec | None
    sealed_upto: int


@dataclass
class _SealedView:
    """What a search may see of the sealed part [0, sealed_upto) at its snapshot."""

    eligible: int  # eligible labels in the sealed range
    selector: Selector | None  # None: every sealed label is eligible
    mask: Bools | None  # eligibility per sealed label; None: derive from the selector


class VectorCollection:
    """Vectors of ``dim`` float32 values, or (``binary``) of ``dim`` bits, packed into
    dim / 8 bytes, most significant bit first (numpy's packbits, Milvus's byte order)."""

    def __init__(self, dim: int, binary: bool = False) -> None:
        if not 1 <= dim <= 65535:
            raise InvalidParameter(f"dimension {dim} out of range", detail="Valid: 1..65535.")
        if binary and dim % 8:
            raise InvalidParameter(f"binary vector dimension {dim} is not a multiple of 8")
        self._dim = int(dim)
        self._binary = bool(binary)
        #: the stored row: its element type and count
        self.row_dtype: np.dtype[Any] = np.dtype(np.uint8 if binary else np.float32)
        self.width = self._dim // 8 if binary else self._dim
        self._lock = threading.RLock()
        self._build_lock = threading.Lock()  # one build / seal at a time
        self._save_lock = threading.Lock()  # one save at a time (see checkpoint.py)
        self._journal = Journal()  # what changed since the last save
        self._saved: Saved | None = None  # the manifest this object last wrote or read
        self._key_kind: str | None = None
        self._scalars: Scalars | None = None  # mirrored scalar columns (see mirror())
        self._reset_rows(16)
        self._index: Any = None
        self._spec: IndexSpec | None = None
        self._sealed_upto = 0
        self._index_serial = 0  # bumped whenever another FAISS index is installed
        # Dead labels in [0, sealed_upto), kept up to date by every write, so that a
        # search without deletes there needs no O(n) work and no FAISS selector.
        self._dead_sealed = 0
        self._sealed_version = 0  # bumped whenever the sealed range's liveness changes
        self._selector: tuple[int, Selector] | None = None  # cached per _sealed_version
        self._epoch = 0  # bumped by clear(): in-flight builds are discarded
        self.builds = 0  # FAISS indexes built by this object (not loaded)
        #: where disk-based indexes (DISKANN) are built: the directory this collection
        #: is saved to, if known (else a temporary directory)
        self.home: Path | None = None

    def _reset_rows(self, capacity: int) -> None:
        self._vecs: F32 = np.zeros((capacity, self.width), self.row_dtype)
        self._sqnorms: F32 = np.zeros(capacity, np.float32)
        self._alive: Bools = np.zeros(capacity, np.bool_)
        self._keys: KeyMap = IntKeys()  # another kind once the first key is seen
        self._n = 0

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def binary(self) -> bool:
        return self._binary

    @property
    def row_bytes(self) -> int:
        """Bytes of one stored vector (its bytea value): 4 x dim, or dim / 8 if binary."""
        return self.width * self.row_dtype.itemsize

    def from_bytes(self, data: bytes, rows: int) -> F32:
        """``rows`` stored vectors from their concatenated bytea values."""
        dtype = "u1" if self._binary else "<f4"
        out: F32 = np.frombuffer(data, dtype).reshape(rows, self.width)
        return out

    def norms(self, vecs: F32) -> F32:
        """What ``_sqnorms`` holds per row: squared norms, or popcounts if binary."""
        if self._binary:
            return popcount(vecs).astype(np.float32)  # type: ignore[arg-type]
        out: F32 = np.einsum("ij,ij->i", vecs, vecs)
        return out

    @property
    def key_kind(self) -> str | None:
        return self._key_kind

    @property
    def live_count(self) -> int:
        return len(self._keys)

    @property
    def growing_count(self) -> int:
        with self._lock:
            if self._spec is None or self._spec.exact:
                return 0
            return len(self._keys) - (self._sealed_upto - self._dead_sealed)

    @property
    def index_spec(self) -> IndexSpec | None:
        return self._spec

    @property
    def scalar_columns(self) -> tuple[ScalarColumn, ...] | None:
        """The mirrored scalar columns; None when there is no complete mirror."""
        scalars = self._scalars
        return None if scalars is None else scalars.columns

    def contains(self, key: Key) -> bool:
        with self._lock:
            return self._keys.get(key) is not None

    def get(self, key: Key) -> F32 | None:
        with self._lock:
            label = self._keys.get(key)
            return None if label is None else self._vecs[label].copy()

    # ------------------------------------------------------------------ writes
    def _check_keys(self, keys: Sequence[Key]) -> list[Key]:
        if (
            len(keys) > 64
            and self._key_kind != "str"
            and all(type(key) is int for key in keys)
            and INT64_MIN <= min(keys) <= max(keys) <= INT64_MAX  # type: ignore[operator]
        ):  # a batch of Python ints (a load): checked as a whole
            if self._key_kind is None:
                self._first_keys("int")
            return list(keys)
        out: list[Key] = []
        for key in keys:
            if isinstance(key, str):
                kind = "str"
            elif isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
                key = int(key)
                if not INT64_MIN <= key <= INT64_MAX:
                    raise InvalidParameter(f"key {key} is out of range for bigint")
                kind = "int"
            else:
                raise InvalidParameter(f"unsupported key type {type(key).__name__}")
            if self._key_kind is None:
                self._first_keys(kind)
            elif kind != self._key_kind:
                raise InvalidParameter(
                    f"key {key!r} is a {kind}, this collection has {self._key_kind} keys"
                )
            out.append(key)
        return out

    def _first_keys(self, kind: str) -> None:
        """Under the lock: the collection's first keys (no rows yet) are of ``kind``."""
        self._key_kind = kind
        self._keys = new_map(kind)

    def _check_vectors(self, vectors: npt.ArrayLike) -> F32:
        if self._binary:
            return self._check_bits(vectors, 2)
        arr = np.asarray(vectors)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != self._dim:
            got = arr.shape[-1] if arr.ndim else 0
            raise DimensionMismatch(f"expected {self._dim} dimensions, not {got}")
        check_finite(arr)
        with np.errstate(over="ignore"):
            out = np.ascontiguousarray(arr, dtype=np.float32)
        check_finite(out)  # float64 values beyond float32's range
        return out

    def _check_bits(self, vectors: npt.ArrayLike | bytes, ndim: int) -> F32:
        """Binary rows as a contiguous uint8 matrix (ndim 2) or row (ndim 1): packed bytes
        (uint8 arrays, or ``bytes`` of one or more whole rows)."""
        if isinstance(vectors, (bytes, bytearray, memoryview)):
            arr = np.frombuffer(bytes(vectors), np.uint8)
            if len(arr) % self.width == 0 and len(arr):
                arr = arr.reshape(-1, self.width)
        else:
            arr = np.asarray(vectors)
            if arr.dtype != np.uint8:
                raise InvalidParameter(f"binary vectors are packed bytes (uint8), not {arr.dtype}")
        if arr.ndim == 1 and ndim == 2:
            arr = arr.reshape(1, -1)
        if arr.ndim == 2 and ndim == 1 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != ndim or arr.shape[-1] != self.width:
            got = arr.shape[-1] * 8 if arr.ndim else 0
            raise DimensionMismatch(f"expected {self._dim} dimensions, not {got}")
        out: F32 = np.ascontiguousarray(arr)
        return out

    def upsert(
        self,
        keys: Sequence[Key],
        vectors: npt.ArrayLike,
        scalars: Sequence[Sequence[Any]] | None = None,
    ) -> None:
        """Insert or replace rows; duplicate keys in one call: the last one wins.

        ``scalars`` holds the rows' values of the mirrored scalar columns, one sequence
        per column (see ``mirror``); without them the mirror is dropped.
        """
        vecs = self._check_vectors(vectors)
        with self._lock:
            keys = self._check_keys(keys)
            if len(keys) != len(vecs):
                raise InvalidParameter(f"{len(keys)} keys but {len(vecs)} vectors")
            if self._scalars is not None and (
                scalars is None or len(scalars) != len(self._scalars.columns)
            ):
                self._scalars = None  # incomplete from here on: filters go to PostgreSQL
                self._journal.restart()
            if scalars is not None and self._scalars is None:
                scalars = None
            keys, vecs, scalars = self._in_place(keys, vecs, scalars)
            n, m = self._n, len(keys)
            if not m:
                return
            self._ensure_capacity(n + m)
            if self._scalars is not None:
                assert scalars is not None
                self._scalars.write(slice(n, n + m), scalars)
            self._vecs[n : n + m] = vecs
            self._sqnorms[n : n + m] = self.norms(vecs)
            self._alive[n : n + m] = True
            self._died([old for old in self._keys.append(keys) if old is not None])
            self._n = n + m

    def unmirror(self, names: set[str]) -> None:
        """Stop mirroring the given scalar columns."""
        with self._lock:
            if self._scalars is not None and any(c.name in names for c in self._scalars.columns):
                self._scalars = self._scalars.without(names)
                self._journal.restart()

    def distinct_values(self, name: str) -> int:
        """How many different strings mirrored text column ``name`` has held."""
        with self._lock:
            scalars = self._scalars
            return 0 if scalars is None or name not in scalars.words else scalars.distinct(name)

    def _in_place(
        self, keys: list[Key], vecs: F32, scalars: Sequence[Sequence[Any]] | None
    ) -> tuple[list[Key], F32, Sequence[Sequence[Any]] | None]:
        """Under the lock: rows whose vector is unchanged (an UPDATE of other columns)
        stay where they are, in the index, with their mirrored values rewritten; returns
        the rest, to be appended."""
        present, at = self._keys.present(keys)
        if not len(present) or len(set(keys)) != len(keys):
            return keys, vecs, scalars
        same = np.all(self._vecs[at] == vecs[present], axis=1)
        if not same.any():
            return keys, vecs, scalars
        kept = present[same].tolist()
        if self._scalars is not None:
            assert scalars is not None
            self._scalars.write(at[same], [[column[i] for i in kept] for column in scalars])
            self._journal.note_touched(at[same].tolist(), self._n)
        moved = np.ones(len(keys), np.bool_)
        moved[kept] = False
        rest = np.flatnonzero(moved).tolist()
        if scalars is not None:
            scalars = [[column[i] for i in rest] for column in scalars]
        return [keys[i] for i in rest], vecs[moved], scalars

    def reserve(self, rows: int) -> None:
        """Room for ``rows`` stored rows in all (a load that knows how many are coming):
        one allocation instead of doublings that copy what came before. Memory beyond
        the rows written is not resident until used."""
        with self._lock:
            self._ensure_capacity(rows)

    def _ensure_capacity(self, need: int) -> None:
        cap = len(self._vecs)
        if need <= cap:
            return
        cap = _capacity(cap, need)
        # New arrays: searches holding the old ones keep a consistent view. An index
        # viewing the old rows keeps them alive until seal() installs one that views
        # these (builds leave room to grow, so this is rare).
        n = self._n
        self._vecs, self._sqnorms, self._alive = (
            _joined(cap, self._vecs[:n]),
            _joined(cap, self._sqnorms[:n]),
            _joined(cap, self._alive[:n]),
        )
        if self._scalars is not None:
            self._scalars = self._scalars.grown(cap, self._n)

    def mirror(
        self,
        columns: Sequence[ScalarColumn],
        keys: Sequence[Key] = (),
        values: Sequence[Sequence[Any]] = (),
    ) -> None:
        """Mirror ``columns`` from now on, with the values of the given keys' rows (one
        sequence per column; rows of other keys read NULL). Later upserts carry them."""
        with self._lock:
            scalars = Scalars(columns, len(self._vecs))
            pos, at = self._keys.present(keys)
            if len(pos) and columns:
                scalars.write(at, [[col[i] for i in pos.tolist()] for col in values])
            self._scalars = scalars
            self._journal.restart()

    def delete(self, keys: Iterable[Key]) -> int:
        """Remove rows by key; returns how many existed."""
        keys = list(keys)
        with self._lock:
            labels = self._keys.remove(keys)
            self._died(labels)
        return len(labels)

    def _died(self, labels: list[int]) -> None:
        """Under the lock: the rows of ``labels`` (which were live) are dead."""
        if not labels:
            return
        self._alive[labels] = False
        self._journal.died.extend(labels)
        dead_sealed = sum(label < self._sealed_upto for label in labels)
        if dead_sealed:
            self._dead_sealed += dead_sealed
            self._sealed_version += 1
            self._selector = None

    def _set_index(self, index: Any, spec: IndexSpec | None, sealed_upto: int) -> None:
        """Under the lock: install the index state and recount the sealed range."""
        if index is not self._index:
            self._index_serial += 1
            if index is not None and spec is not None:
                # rows below sealed_upto never change in place: the index may view them
                faiss_index.share_vectors(
                    index, spec, self._vecs[:sealed_upto], self._sqnorms[:sealed_upto]
                )
        self._index, self._spec, self._sealed_upto = index, spec, sealed_upto
        self._dead_sealed = sealed_upto - int(np.count_nonzero(self._alive[:sealed_upto]))
        self._sealed_version += 1
        self._selector = None

    def clear(self) -> None:
        """Remove every row and the FAISS index; the index spec stays (rebuilt by seal)."""
        with self._lock:
            self._reset_rows(16)
            if self._scalars is not None:  # the mirror keeps its columns, emptied
                self._scalars = Scalars(self._scalars.columns, 16)
            self._key_kind = None
            self._set_index(None, self._spec, 0)
            self._epoch += 1
            self._journal.restart()

    # ------------------------------------------------------------------ index
    def build_index(self, spec: IndexSpec, progress: Progress | None = None) -> None:
        """Compact the rows and build ``spec`` over all live rows (searches continue)."""
        spec = spec.for_dim(self._dim)
        with self._build_lock:
            if spec.index_type != "HNSW" and "nlist" in spec.params:
                with self._lock:
                    live = len(self._keys)
                if live < int(spec.params["nlist"]):
                    # too few rows to train nlist lists (Milvus leaves such a segment
                    # unindexed, pgvector builds anyway): searched exactly until seal()
                    # finds enough rows to train on
                    log.info(
                        "%d rows are too few for %s lists: searched exactly until there are more",
                        live,
                        spec.params["nlist"],
                    )
                    with self._lock:
                        self._set_index(None, spec, 0)
                    faiss_index._report(progress, "done", 1.0)
                    return
            self._build_locked(spec, progress)

    def _build_locked(self, spec: IndexSpec, progress: Progress | None) -> None:
        with self._lock:
            n0, epoch = self._n, self._epoch
            vecs, keys = self._vecs, self._keys
            live = np.flatnonzero(self._alive[:n0])
        faiss_index._report(progress, "snapshot", 0.0)
        new_vecs = vecs[live]
        new_keys = keys.taken(live)
        index = faiss_index.build(spec, new_vecs, self._dim, progress, self.home)
        m = len(live)
        with self._lock:
            if self._epoch != epoch:
                raise EngineError("index build aborted: the collection was cleared meanwhile")
            n1 = self._n
            tail = n1 - n0
            # Replay what happened since the snapshot: deaths of snapshot rows, new rows.
            died = live[~self._alive[live]]
            new_alive = np.ones(m, np.bool_)
            if len(died):
                pos = np.searchsorted(live, died)
                new_alive[pos] = False
                new_keys.drop(pos)
            # with room to grow, so that inserts do not move the rows the index views
            cap = _capacity(16, m + tail + max(16, (m + tail) // 2))
            self._vecs = _joined(cap, new_vecs, self._vecs[n0:n1])
            del new_vecs
            self._sqnorms = _joined(cap, self._sqnorms[live], self._sqnorms[n0:n1])
            self._alive = _joined(cap, new_alive, self._alive[n0:n1])
            if self._scalars is not None:
                self._scalars = self._scalars.compacted(live, n0, n1, cap)
            if new_keys.kind != self._keys.kind:
                # the snapshot had no rows, and its map no kind yet: the rows written
                # since chose it (text keys)
                new_keys = new_map(self._key_kind)
            tail_keys = keys_at(self._keys.by_label, np.arange(n0, n1, dtype=np.int64))
            new_keys.append(tail_keys, self._alive[m : m + tail])
            self._keys = new_keys
            self._n = m + tail
            self._set_index(index, spec, m)
            self._journal.restart()  # labels renumbered: the next save writes them all
            self.builds += 1
        del vecs, index
        faiss_index.trim_heap()  # the snapshot and FAISS's copy of the rows are freed

    def expect_index(self, spec: IndexSpec) -> None:
        """Keep ``spec`` without building it yet, as clear() does: rows are searched
        exactly until seal() builds the index (once there are enough of them)."""
        with self._lock:
            if self._index is None:
                self._set_index(None, spec.for_dim(self._dim), 0)

    def drop_index(self) -> None:
        with self._lock:
            self._set_index(None, None, 0)

    def needs_seal(self) -> bool:
        """True when the growing part is large enough to be worth adding to the index."""
        if self._spec is None or self._spec.exact:
            return False
        return self.growing_count > max(1000, self._sealed_upto // 10)

    def needs_compaction(self) -> bool:
        """True when dead rows exceed 20% of the stored rows (call build_index)."""
        with self._lock:
            dead = self._n - len(self._keys)
            return self._spec is not None and dead > max(1000, self._n // 5)

    def seal(self, progress: Progress | None = None) -> bool:
        """Add growing rows to a clone of the index and swap it in; False if nothing to do."""
        with self._build_lock:
            with self._lock:
                spec, index, s0, n1 = self._spec, self._index, self._sealed_upto, self._n
                vecs, alive, epoch = self._vecs, self._alive[s0:n1].copy(), self._epoch
            if spec is None or spec.exact or n1 == s0:
                return False
            if index is None or spec.index_type == "DISKANN":
                # after clear(): build afresh once there are enough rows; DISKANN cannot
                # grow, so it is rebuilt (and the rows compacted)
                if "nlist" in spec.params and int(alive.sum()) < int(spec.params["nlist"]):
                    return False
                self._build_locked(spec, progress)
                return True
            clone = faiss_index.clone(index)
            faiss_index.add(clone, spec, vecs[s0:n1], s0, progress, alive)
            with self._lock:
                if self._epoch != epoch:
                    return False
                self._set_index(clone, self._spec, n1)
            del clone, index
            faiss_index.trim_heap()
            return True

    def stats(self) -> dict[str, Any]:
        with self._lock:
            spec, n, live = self._spec, self._n, len(self._keys)
            sealed = self._sealed_upto
            sealed_live = sealed - self._dead_sealed
            scalars = self._scalars
            mem = (
                n * (self.row_bytes + 5)  # the room beyond n is not resident until used
                + self._keys.nbytes
                + faiss_index.memory_estimate(spec, self._index, self._dim)
                + (0 if scalars is None else scalars.nbytes)
            )
        return {
            "dim": self._dim,
            "live_rows": live,
            "sealed_rows": sealed_live,
            "growing_rows": live - sealed_live,
            "dead_rows": n - live,
            "index_type": spec.index_type if spec else None,
            "metric": spec.metric.value if spec else None,
            "params": dict(spec.params) if spec else {},
            "memory_bytes": mem,
        }

    # ------------------------------------------------------------------ search
    def quick(self, metric: Metric) -> bool:
        """True when any search with ``metric`` costs well under a millisecond, filter
        or not: an ANN index for the metric over nearly every row, a small growing part,
        a mask over few enough rows."""
        spec = self._spec
        return (
            spec is not None
            and spec.metric is metric
            and not spec.exact
            and self._index is not None
            and self._n <= QUICK_ROWS
            and self.growing_count * self._dim <= EXACT_FILTER_FLOATS
        )

    def _check_query(self, query: npt.ArrayLike) -> F32:
        """The query as a float32 row (vectors are float32, as in pgvector), or a uint8
        row of packed bits for a binary collection."""
        if self._binary:
            return self._check_bits(query, 1)
        q = np.asarray(query)
        if q.ndim == 2 and q.shape[0] == 1:
            q = q[0]
        if q.ndim != 1 or q.shape[0] != self._dim:
            raise DimensionMismatch(f"expected {self._dim} dimensions, not {q.shape[-1]}")
        if q.dtype != np.float32 or not q.flags.c_contiguous:
            check_finite(q)
            with np.errstate(over="ignore"):
                q = np.ascontiguousarray(q, dtype=np.float32)
        # One reduction in the common case: a finite sum means finite elements.
        if not math.isfinite(float(q.sum())):
            check_finite(q)
        return q

    def _sealed_selector(self) -> Selector:
        """Under the lock: the live labels of the sealed range, cached per version."""
        cached = self._selector
        if cached is not None and cached[0] == self._sealed_version:
            return cached[1]
        bitmap = np.packbits(self._alive[: self._sealed_upto], bitorder="little")
        selector = Selector(bitmap)
        self._selector = (self._sealed_version, selector)
        return selector

    def search(
        self,
        query: npt.ArrayLike,
        k: int,
        metric: Metric,
        params: SearchParams | None = None,
        allowed: Collection[Key] | None = None,
        exact: bool = False,
        where: Where | None = None,
    ) -> tuple[list[Key], F64]:
        """The k nearest live rows (only ``allowed`` keys if given, only rows the
        mirrored scalars let ``where`` admit if given; exactly if ``exact`` or when they
        are few), nearest first. Raises ``Unsupported`` if ``where`` needs a column
        that is not mirrored.

        Distances follow pgvector: L2 Euclidean, IP negative inner product, COSINE
        1 - cosine similarity, L1 taxicab. Always min(k, eligible rows) results.
        """
        if metric.binary != self._binary:
            kind = "binary" if self._binary else "float"
            raise InvalidParameter(f"metric {metric.value} does not apply to {kind} vectors")
        q = self._check_query(query)
        if k < 0:
            raise InvalidParameter(f"LIMIT must not be negative: {k}")
        params = params or SearchParams()
        if allowed is None and where is None and k and not exact:
            simple = self._search_all_sealed(q, k, metric, params)
            if simple is not None:
                return simple
        sealed_view: _SealedView | None = None
        with self._lock:
            snap = _Snapshot(
                self._vecs,
                self._sqnorms,
                self._keys.by_label,
                self._n,
                self._index,
                self._spec,
                self._sealed_upto,
            )
            n, s = snap.n, snap.sealed_upto
            live = len(self._keys)
            index, spec = snap.index, snap.spec
            use_index = (
                not exact and index is not None and spec is not None and spec.metric is metric
            )
            if where is not None:
                if self._scalars is None:
                    raise Unsupported("the scalar columns are not mirrored")
                admitted = where.mask(self._scalars, n)
                admitted &= self._alive[:n]
                rows = np.flatnonzero(admitted)
                eligible = len(rows)
                mask = None
            elif allowed is None:
                eligible = live
                if use_index and k and eligible:
                    # Fast path: only the (small) growing part's liveness is copied.
                    dead = self._dead_sealed
                    sealed_view = _SealedView(
                        s - dead, self._sealed_selector() if dead else None, None
                    )
                    mask = self._alive[s:n].copy()
                    rows = None
                else:
                    mask = self._alive[:n].copy()
                    rows = None
            else:
                rows = self._keys.lookup(list(allowed))
                rows = rows[rows >= 0]
                rows.sort()  # ascending labels: a gather in memory order
                if len(rows) > 1 and (rows[1:] == rows[:-1]).any():
                    rows = np.unique(rows)  # a key given twice
                eligible = len(rows)
                mask = None
        if k == 0 or eligible == 0:
            return [], np.empty(0, np.float64)
        small = rows is not None and (
            exact or eligible * self._dim <= EXACT_FILTER_FLOATS or eligible < live // 100
        )
        if not use_index or small:
            if rows is not None:
                labs, dists = exact_topk(snap.vecs, snap.sqnorms, q, metric, k, rows=rows)
            else:
                assert mask is not None
                labs, dists = exact_topk(
                    snap.vecs, snap.sqnorms, q, metric, k, lo=0, hi=n, alive=mask
                )
        else:
            assert spec is not None
            if sealed_view is None:
                assert rows is not None
                full = np.zeros(n, np.bool_)
                full[rows] = True
                sealed_mask = full[:s]
                sealed_eligible = int(np.count_nonzero(sealed_mask))
                selector = None
                if sealed_eligible < s:
                    selector = Selector(np.packbits(sealed_mask, bitorder="little"))
                sealed_view = _SealedView(sealed_eligible, selector, sealed_mask)
                mask = full[s:]
            assert mask is not None
            labs, dists = self._ann(snap, spec, q, k, metric, params, sealed_view, mask)
        return keys_at(snap.keys, labs), dists

    def _search_all_sealed(
        self, q: F32, k: int, metric: Metric, params: SearchParams
    ) -> tuple[list[Key], F64] | None:
        """The common case in a few steps: every row is live and in the index, whose
        metric is the query's. None when that is not the case (or FAISS came up short)."""
        with self._lock:
            index, spec, s = self._index, self._spec, self._sealed_upto
            if (
                index is None
                or spec is None
                or spec.metric is not metric
                or self._n != s
                or self._dead_sealed
                or not s
            ):
                return None
            vecs, keys = self._vecs, self._keys.by_label
        kk = min(s, k * faiss_index.fetch_factor(spec))
        found, scores = faiss_index.search_scored(index, spec, q, kk, params)
        if len(found) < min(k, s):
            return None
        if faiss_index.exact_l2(spec):
            # FAISS computed these distances on the stored float32 vectors, in order (as
            # pgvector does, in float32): no re-ranking needed.
            dists: F64 = np.sqrt(np.maximum(scores, 0), dtype=np.float64)
            return keys_at(keys, found), dists
        labs, dists = rank(vecs, found, q, metric, k)
        return keys_at(keys, labs), dists

    def _ann(
        self,
        snap: _Snapshot,
        spec: IndexSpec,
        q: F32,
        k: int,
        metric: Metric,
        params: SearchParams,
        sealed: _SealedView,
        growing_mask: Bools,
    ) -> tuple[I64, F64]:
        """FAISS over the sealed part, exact over the growing part (``growing_mask``
        covers labels [sealed_upto, n)); exact distances, the k nearest."""
        s = snap.sealed_upto
        q32 = q
        found: I64 = np.empty(0, np.int64)
        if sealed.eligible:
            need = min(k, sealed.eligible)
            kk = min(sealed.eligible, k * faiss_index.fetch_factor(spec))
            # Widen the search by 1 / selectivity so a filter (or deletes) leaves about
            # as many eligible candidates as an unfiltered search would see.
            boost = min(64.0, s / sealed.eligible)
            found = faiss_index.search(
                snap.index, spec, q32, kk, params, None, boost, selector=sealed.selector
            )
            if len(found) < need:
                # The index ran out of eligible candidates: the filter is correlated with
                # the query, and a wider graph walk would return poor neighbours. Exact.
                sealed_mask = sealed.mask
                if sealed_mask is None:
                    if sealed.selector is None:
                        sealed_mask = np.ones(s, np.bool_)
                    else:
                        bits = np.unpackbits(sealed.selector.bitmap, count=s, bitorder="little")
                        sealed_mask = bits.astype(np.bool_)
                found = exact_candidates(
                    snap.vecs, snap.sqnorms, q32, metric, kk, lo=0, hi=s, alive=sealed_mask
                )
        if snap.n > s and growing_mask.any():
            # Candidates of the growing part, re-scored exactly below with the others.
            grow = exact_candidates(
                snap.vecs[s : snap.n],
                snap.sqnorms[s : snap.n],
                q32,
                metric,
                k,
                lo=0,
                hi=snap.n - s,
                alive=growing_mask,
            )
            found = np.concatenate((found, grow + s))
        # Sealed candidates are < s and growing ones >= s: distinct, no np.unique.
        return rank(snap.vecs, found, q, metric, k)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> int:
        """Write what changed since the last save to ``directory`` (everything, the first
        time), atomically, while searches and writes go on; returns the bytes written."""
        from pgvec.engine import checkpoint

        with self._save_lock:
            return checkpoint.snapshot(self, Path(directory)).write()

    @classmethod
    def load(cls, directory: Path) -> VectorCollection:
        from pgvec.engine import persist

        return persist.load(Path(directory))
