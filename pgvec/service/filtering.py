"""Filtered top-k: a WHERE clause (or a JOIN) evaluated by PostgreSQL, the ANN by FAISS.

Two ways to combine them, chosen per query by the filter's estimated selectivity:

* **pre-filter**: PostgreSQL returns every key the filter admits (one binary array), and
  the search runs over those keys only, exactly when they are few. Its cost grows with
  the number of matching rows.
* **post-filter**: the ANN returns the nearest ``c`` candidates, PostgreSQL says which of
  them pass the filter (one probe by primary key), and ``c`` grows until k pass. Its cost
  grows with 1 / selectivity.

The two cost the same at about ``sqrt(8 k n)`` matching rows out of ``n``. The estimate
is what the same filter statement admitted last time, so a prepared statement learns its
selectivity from its first execution; a filter never seen before is pre-filtered with a
cap, and passing the cap is itself the estimate. A post-filter that cannot fill k (a
filter correlated with the query) falls back to the pre-filter, so the answer always has
min(k, matching rows) rows.

Every statement here is derived from the client's SQL, so it runs through ``ClientSQL``:
in the client's own session, with its role, snapshot and settings, never on pgvec's pool.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pgvec.engine.collection import Key, VectorCollection
from pgvec.engine.spec import Metric, SearchParams
from pgvec.service.request import FilterSpec
from pgvec.service.search import ClientSQL

log = logging.getLogger(__name__)

#: binary element widths of the integer key types (pg_type OIDs int2, int4, int8)
_INT_WIDTHS = {21: 2, 23: 4, 20: 8}
#: post-filter rounds before falling back to the pre-filter
MAX_ROUNDS = 3
#: filter statements whose selectivity is remembered
MAX_REMEMBERED = 2048


@dataclass(frozen=True)
class FilteredResult:
    keys: list[Key]
    distances: list[float]
    strategy: str  # "pre" or "post", for EXPLAIN and tests


@dataclass(frozen=True)
class TopK:
    """What one filtered search asks for: the ``want`` nearest rows, never fewer than
    ``need`` (the query's LIMIT) unless fewer match; the rest are spare rows."""

    query: npt.NDArray[np.float32]
    need: int
    want: int
    metric: Metric
    params: SearchParams


def crossover(k: int, n: int) -> float:
    """Matching rows at which a pre-filter and a post-filter cost about the same."""
    return math.sqrt(8.0 * max(k, 1) * max(n, 1))


class SelectivityMemory:
    """The fraction of rows each filter statement admitted when last run (LRU-bounded)."""

    def __init__(self, size: int = MAX_REMEMBERED) -> None:
        self._size = size
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sql: str) -> float | None:
        with self._lock:
            value = self._seen.get(sql)
            if value is not None:
                self._seen.move_to_end(sql)
            return value

    def put(self, sql: str, selectivity: float) -> None:
        with self._lock:
            self._seen[sql] = min(1.0, max(0.0, selectivity))
            self._seen.move_to_end(sql)
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)


async def filtered_search(
    sql: ClientSQL,
    collection: Callable[[], Awaitable[VectorCollection]],
    rows: int,
    top: TopK,
    filt: FilterSpec,
    int_keys: bool,
    memory: SelectivityMemory,
) -> FilteredResult:
    """The nearest rows the filter admits, as ``top`` asks; the filter runs through
    ``sql``, in the client's own session.

    ``collection()`` returns the collection to search once it is up to date (the change
    log may be applied meanwhile, next to the filter query); ``rows`` is about how many
    live rows it has, for the choice of strategy.
    """
    n = max(rows, 1)
    if top.want <= 0:
        return FilteredResult([], [], "pre")
    even = crossover(top.want, n)
    estimate = memory.get(filt.sql)
    if estimate is not None and estimate * n > even:
        found = await _post_filter(sql, await collection(), top, filt, estimate)
        if found is not None:
            memory.put(filt.sql, found[1])
            return found[0]
        # The filter does not fill k from the nearest rows: it is correlated with the
        # query, and a graph walk restricted to its rows would miss. All its keys, exactly.
        cap = None
    else:
        cap = max(int(2 * even), 1000)
    keys = await fetch_keys(sql, filt, int_keys, cap)
    if cap is not None and len(keys) > cap:
        # more rows match than a pre-filter handles well: post-filter after all
        memory.put(filt.sql, len(keys) / n)
        found = await _post_filter(sql, await collection(), top, filt, len(keys) / n)
        if found is not None:
            memory.put(filt.sql, found[1])
            return found[0]
        keys = await fetch_keys(sql, filt, int_keys, None)
        cap = None
    memory.put(filt.sql, len(keys) / n)
    coll = await collection()
    hit_keys, dists = await asyncio.to_thread(
        coll.search, top.query, top.want, top.metric, top.params, keys, cap is None
    )
    return FilteredResult(list(hit_keys), [float(d) for d in dists], "pre")


async def _post_filter(
    sql: ClientSQL,
    collection: VectorCollection,
    top: TopK,
    filt: FilterSpec,
    selectivity: float,
) -> tuple[FilteredResult, float] | None:
    """Search ever more candidates until ``top.need`` pass the filter; None if that takes
    more than MAX_ROUNDS rounds or half of the rows (then pre-filtering is cheaper)."""
    n = collection.live_count
    need = top.need
    # 1.5 times the expected need, plus a little: an ANN search costs about its size
    size = min(n, max(top.want, math.ceil(1.5 * need / max(selectivity, 1e-9)) + 8))
    for _ in range(MAX_ROUNDS):
        keys, dists = await asyncio.to_thread(
            collection.search, top.query, size, top.metric, top.params
        )
        passed = await probe(sql, filt, keys)
        rate = len(passed) / max(len(keys), 1)
        hits = [(k, float(d)) for k, d in zip(keys, dists, strict=True) if k in passed]
        if len(hits) >= need or len(keys) >= n:
            hits = hits[: top.want]
            return FilteredResult([h[0] for h in hits], [h[1] for h in hits], "post"), rate
        # the candidates so far admit ``rate``: aim for twice what that predicts
        size = max(4 * size, math.ceil(2 * need / max(rate, 1e-9)))
        if size > n // 2:
            break
    log.debug("post-filter did not fill %d rows; pre-filtering %s", need, filt.sql)
    return None


async def fetch_keys(
    sql: ClientSQL, filt: FilterSpec, int_keys: bool, cap: int | None
) -> list[Key]:
    """The keys the filter admits; with ``cap``, at most cap + 1 of them."""
    inner = filt.sql if cap is None else f"{filt.sql} LIMIT {cap + 1}"
    if int_keys:
        rows = await sql.rows(
            f"SELECT array_agg(k) FROM ({inner}) f(k)",
            filt.values,
            filt.types,
            filt.formats,
            binary=True,
        )
        value = rows[0][0] if rows else None
        return [] if value is None else decode_int_array(value).tolist()
    rows = await sql.rows(inner, filt.values, filt.types, filt.formats, binary=False)
    return [r[0].decode() for r in rows if r[0] is not None]


async def probe(sql: ClientSQL, filt: FilterSpec, keys: Sequence[Key]) -> set[Key]:
    """Which of ``keys`` the filter admits."""
    if not keys:
        return set()
    assert filt.probe_sql is not None
    rows = await sql.rows(
        filt.probe_sql,
        [*filt.values, keys_param(keys)],
        [*filt.types, 0],
        [*filt.formats, 0],
        binary=False,
    )
    values = (r[0] for r in rows if r[0] is not None)
    if isinstance(keys[0], int):
        return {int(v) for v in values}
    return {v.decode() for v in values}


def keys_param(keys: Sequence[Key]) -> bytes:
    """``keys`` as a PostgreSQL array in text format, for a parameter."""
    if keys and isinstance(keys[0], int):  # the keys of a table are all of one type
        return ("{" + ",".join(map(str, keys)) + "}").encode()
    return ("{" + ",".join(_array_element(k) for k in keys) + "}").encode()


def _array_element(key: Key) -> str:
    if isinstance(key, int):
        return str(key)
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def decode_int_array(value: bytes) -> npt.NDArray[np.int64]:
    """A one-dimensional int2/int4/int8 array in PostgreSQL's binary format, without NULLs."""
    ndim, _flags, elem = np.frombuffer(value, ">i4", 3)
    if ndim == 0:
        return np.empty(0, np.int64)
    width = _INT_WIDTHS[int(elem)]
    record = np.dtype([("len", ">i4"), ("v", f">i{width}")])
    return np.frombuffer(value, record, offset=12 + 8 * int(ndim))["v"].astype(np.int64)
