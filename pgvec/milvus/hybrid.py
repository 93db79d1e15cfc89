"""Hybrid search: several searches of one collection (different vector fields, filters
or parameters) fused into one ranking by Milvus's rankers.

* RRF: a hit's score is the sum over the searches that found it of 1 / (k + rank),
  rank counted from 1 (k = 60 by default).
* Weighted: the sum of each search's score times its weight; with ``norm_score``
  (pymilvus's default) each score is first mapped into [0, 1] as Milvus maps it:
  L2 distances by 1 - 2 atan(d) / pi, IP by 0.5 + atan(s) / pi, COSINE by (1 + s) / 2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from pgvec.catalog.models import TableInfo
from pgvec.engine.spec import Metric
from pgvec.milvus import data
from pgvec.milvus.base import flag
from pgvec.milvus.indexes import IndexInfo
from pgvec.milvus.schema import Collection
from pgvec.milvus.search import SearchArgs, parse_args, result, search_hits
from pgvec.milvus.status import ParameterInvalid, Unsupported
from pgvec.service.database import Database

Hits = list[tuple[Any, float]]


def _rank_params(pairs: Any) -> dict[str, Any]:
    """rank_params: values are JSON (pymilvus dumps each), the scorer name plain text."""
    return {kv.key: _json(kv.value) for kv in pairs}


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def normalize(metric: Metric, score: float) -> float:
    if metric is Metric.L2:
        return 1.0 - 2.0 * math.atan(score) / math.pi
    if metric is Metric.IP:
        return 0.5 + math.atan(score) / math.pi
    return (1.0 + score) / 2.0


def fuse(
    strategy: str,
    params: Mapping[str, Any],
    per_search: Sequence[Hits],
    metrics: Sequence[Metric],
    limit: int,
) -> Hits:
    """One query's fused hits, best first."""
    scores: dict[Any, float] = {}
    if strategy == "rrf":
        k = float(params.get("k", 60))
        if not 0 < k < 16384:
            raise ParameterInvalid(f"The rank params k should be in range (0, 16384), but got {k}")
        for hits in per_search:
            for rank, (key, _) in enumerate(hits, 1):
                scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    elif strategy == "weighted":
        weights = list(params.get("weights", []))
        if len(weights) != len(per_search):
            raise ParameterInvalid(
                f"the length of weights param mismatch with ann search requests: "
                f"invalid parameter[expected={len(per_search)}][actual={len(weights)}]"
            )
        norm = bool(params.get("norm_score", True))
        for weight, hits, metric in zip(weights, per_search, metrics, strict=True):
            for key, score in hits:
                value = normalize(metric, score) if norm else score
                scores[key] = scores.get(key, 0.0) + float(weight) * value
    else:
        raise ParameterInvalid(f"unsupported rank type {strategy}")
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    return ranked[:limit]


def function_ranker(score: schema_pb2.FunctionScore) -> tuple[str, dict[str, Any]]:
    """The strategy and parameters of a reranking Function (``reranker``: weighted or
    rrf, as the RRFRanker and WeightedRanker of rank_params); Milvus's model and decay
    rerankers are refused, not ignored."""
    if len(score.functions) != 1:
        raise ParameterInvalid("a search takes one reranking function")
    fn = score.functions[0]
    params = {kv.key: _json(kv.value) for kv in fn.params}
    name = str(params.pop("reranker", "")).lower()
    if name not in ("weighted", "rrf"):
        raise Unsupported(
            f"reranker {name or fn.name!r} is not supported by pgvec yet: use weighted or rrf"
        )
    if isinstance(params.get("norm_score"), str):
        params["norm_score"] = flag(params["norm_score"])
    return name, params


async def run(
    db: Database,
    conn: psycopg.AsyncConnection[Any],
    coll: Collection,
    info: TableInfo,
    request: milvus_pb2.HybridSearchRequest,
    indexes: Sequence[IndexInfo],
    consistency: str,
    partitions: frozenset[int] | None = None,
) -> schema_pb2.SearchResultData:
    if not request.requests:
        raise ParameterInvalid("a hybrid search needs at least one search request")
    ranking = _rank_params(request.rank_params)
    strategy = str(ranking.get("strategy", "rrf")).lower()
    params = ranking.get("params") or {}
    if request.function_score.functions:  # pymilvus 3's ranker=Function(...)
        strategy, params = function_ranker(request.function_score)
    limit = int(ranking.get("limit", 10))
    offset = int(ranking.get("offset", 0))
    round_decimal = int(ranking.get("round_decimal", -1))
    outputs = data.Outputs(coll, list(request.output_fields), with_pk=True)
    keys_only = data.Outputs(coll, [], with_pk=True)
    per_search: list[list[Hits]] = []
    metrics: list[Metric] = []
    for sub in request.requests:
        args: SearchArgs = parse_args(coll, {kv.key: kv.value for kv in sub.search_params}, indexes)
        # each search's hits exist: the fused answer is read from them
        hits, _ = await search_hits(
            db,
            conn,
            coll,
            info,
            sub,
            args,
            consistency,
            keys_only,
            partitions=partitions,
            read_rows=True,
        )
        per_search.append(hits)
        metrics.append(args.metric)
    nq = {len(h) for h in per_search}
    if len(nq) != 1:
        raise ParameterInvalid("the search requests of a hybrid search differ in nq")
    fused = [
        fuse(strategy, params, [h[q] for h in per_search], metrics, limit + offset)[offset:]
        for q in range(nq.pop())
    ]
    keys = list({k for hits in fused for k, _ in hits})
    rows = await data.rows_by_key(conn, coll, outputs, keys)
    fused = [[(k, s) for k, s in hits if k in rows] for hits in fused]  # deleted meanwhile
    return result(coll, limit, round_decimal, outputs, fused, rows)
