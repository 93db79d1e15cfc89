"""Exact distances in pgvector's SQL convention, and exact top-k over stored rows.

Candidate selection runs in float32 (BLAS) chunk by chunk; the winners (plus a margin)
are re-scored in float64 so that every distance pgvec returns is the exact value the
SQL operator would compute, whichever path (exact or FAISS) found the row.

Binary vectors (HAMMING, JACCARD) are uint8 rows of packed bits; ``sqnorms`` then holds
each row's popcount, and distances come from popcounts of XOR / AND (exact integers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from pgvec.engine.spec import Metric

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
#: a query row: float32 (as stored), or float64 holding float32 values
Query = F32 | F64
Bools = npt.NDArray[np.bool_]

CHUNK = 32768
_vecdot: Any = getattr(np, "vecdot", None)  # numpy >= 2.0: one ufunc call
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def popcount(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Set bits per row of packed bits."""
    counts = np.bitwise_count(rows) if hasattr(np, "bitwise_count") else _POPCOUNT8[rows]
    out: npt.NDArray[np.int64] = counts.sum(axis=-1, dtype=np.int64)
    return out


def _binary_distances(
    rows: npt.NDArray[np.uint8], query: npt.NDArray[np.uint8], metric: Metric, pop: Any = None
) -> F64:
    """HAMMING (differing bits) or JACCARD distance (1 - |a & b| / |a | b|; 1 when no
    bit is shared, as pgvector) of each row to the query; ``pop``: the rows' popcounts."""
    if metric is Metric.HAMMING:
        return popcount(rows ^ query).astype(np.float64)
    inter = popcount(rows & query)
    pop = popcount(rows) if pop is None else np.asarray(pop, np.int64)
    union = pop + popcount(query) - inter
    out: F64 = np.ones(len(rows), np.float64)
    shared = inter > 0
    out[shared] = 1.0 - inter[shared] / union[shared]
    return out


def exact_distances(rows: npt.NDArray[np.floating], query: Query, metric: Metric) -> F64:
    """SQL-convention distances between each row and the query, in float64."""
    if metric.binary:
        return _binary_distances(rows, query, metric)  # type: ignore[arg-type]
    if metric is Metric.L2:
        diff = np.subtract(rows, query, dtype=np.float64)  # float32 rows: exact promotion
        if _vecdot is not None:
            out: F64 = np.sqrt(_vecdot(diff, diff))
        else:
            out = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return out
    x = np.asarray(rows, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    if metric is Metric.IP:
        out = -(x @ query)
    elif metric is Metric.L1:
        out = np.abs(x - query).sum(axis=1)
    else:
        # pgvector's formula: dot / sqrt(|a|^2 |b|^2), kept within [-1, 1] (so that a
        # vector's distance to itself or to a multiple of it is 0, never -2e-16)
        squares = np.einsum("ij,ij->i", x, x) * float(query @ query)
        with np.errstate(divide="ignore", invalid="ignore"):
            similarity = np.clip((x @ query) / np.sqrt(squares), -1.0, 1.0)
        out = 1.0 - similarity  # NaN for zero vectors, as pgvector
    return out


def _scores(block: F32, sq: F32, q32: F32, metric: Metric) -> F32:
    """Order-preserving float32 scores (smaller is nearer); inf where undefined."""
    s: F32
    if metric.binary:
        return _binary_distances(block, q32, metric, sq).astype(np.float32)  # type: ignore[arg-type]
    if metric is Metric.L2:
        s = sq - np.float32(2.0) * (block @ q32)
    elif metric is Metric.IP:
        s = -(block @ q32)
    elif metric is Metric.L1:
        s = np.abs(block - q32).sum(axis=1).astype(np.float32, copy=False)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (-(block @ q32) / np.sqrt(sq)).astype(np.float32, copy=False)
        s[~np.isfinite(s)] = np.inf
    return s


def _best(scores: F32, labels: I64, keep: int) -> tuple[F32, I64]:
    if len(scores) > keep:
        part = np.argpartition(scores, keep - 1)[:keep]
        return scores[part], labels[part]
    return scores, labels


def exact_topk(
    vecs: F32,
    sqnorms: F32,
    query: Query,
    metric: Metric,
    k: int,
    *,
    rows: I64 | None = None,
    lo: int = 0,
    hi: int = 0,
    alive: Bools | None = None,
) -> tuple[I64, F64]:
    """Top-k labels among ``rows`` (or among live labels in [lo, hi)), nearest first."""
    if k <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    q32: F32 = query if metric.binary else query.astype(np.float32)  # type: ignore[assignment]
    labels = exact_candidates(vecs, sqnorms, q32, metric, k, rows=rows, lo=lo, hi=hi, alive=alive)
    if not len(labels):
        return labels, np.empty(0, np.float64)
    return rank(vecs, labels, query, metric, k)  # the candidates are distinct


def exact_candidates(
    vecs: F32,
    sqnorms: F32,
    q32: F32,
    metric: Metric,
    k: int,
    *,
    rows: I64 | None = None,
    lo: int = 0,
    hi: int = 0,
    alive: Bools | None = None,
) -> I64:
    """Distinct labels that include the exact top-k among ``rows`` (or among live labels
    in [lo, hi)): the best 2k+16 by float32 score, a margin against rounding."""
    keep = 2 * k + 16  # margin against float32 rounding before the float64 re-score
    cand_s: list[F32] = []
    cand_l: list[I64] = []
    if rows is not None:
        for start in range(0, len(rows), CHUNK):
            lab = rows[start : start + CHUNK]
            s = _scores(vecs.take(lab, axis=0), sqnorms.take(lab), q32, metric)
            bs, bl = _best(s, lab, keep)
            cand_s.append(bs)
            cand_l.append(bl)
    else:
        assert alive is not None
        for start in range(lo, hi, CHUNK):
            stop = min(hi, start + CHUNK)
            live = alive[start:stop]
            if not live.any():
                continue
            s = _scores(vecs[start:stop], sqnorms[start:stop], q32, metric)
            lab = np.arange(start, stop, dtype=np.int64)
            if not live.all():
                s, lab = s[live], lab[live]
            bs, bl = _best(s, lab, keep)
            cand_s.append(bs)
            cand_l.append(bl)
    if not cand_l:
        return np.empty(0, np.int64)
    if len(cand_l) == 1:
        return cand_l[0]
    _, labels = _best(np.concatenate(cand_s), np.concatenate(cand_l), keep)
    return labels


def rank(vecs: F32, labels: I64, query: Query, metric: Metric, k: int) -> tuple[I64, F64]:
    """Exact float64 distances for distinct candidate labels; the k nearest, sorted by
    (distance, label), NaN last."""
    dists = exact_distances(vecs.take(labels, axis=0), query, metric)  # take: faster
    if len(labels) <= k and _in_order(dists.tolist(), labels.tolist()):
        return labels, dists  # the usual case: FAISS's order is already exact
    order = np.lexsort((labels, dists))[:k]
    return labels[order], dists[order]


def _in_order(dists: list[float], labels: list[int]) -> bool:
    """True if (distance, label) strictly ascends (False on NaN: lexsort decides)."""
    for i in range(1, len(dists)):
        a, b = dists[i - 1], dists[i]
        if not (a < b or (a == b and labels[i - 1] < labels[i])):
            return False
    return True
