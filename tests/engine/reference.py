"""Brute-force numpy reference in pgvector's distance convention."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pgvec.engine import Metric


def distances(x: npt.NDArray[np.floating], q: npt.NDArray[np.floating], metric: Metric):
    x = np.asarray(x, np.float64)
    q = np.asarray(q, np.float64)
    if metric is Metric.L2:
        return np.linalg.norm(x - q, axis=1)
    if metric is Metric.IP:
        return -(x @ q)
    if metric is Metric.L1:
        return np.abs(x - q).sum(axis=1)
    return 1 - (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))


def topk(x, keys, q, k, metric):
    d = distances(x, q, metric)
    order = np.argsort(d, kind="stable")[:k]
    return [keys[i] for i in order], d[order]
