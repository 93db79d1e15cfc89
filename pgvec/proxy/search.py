"""A rewritten top-k query as the core's search request: its plan, the session's search
settings and the client's parameter values become a neutral :class:`SearchRequest`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pgvec import vectors
from pgvec.engine.collection import Key
from pgvec.engine.spec import Metric
from pgvec.proxy.settings import SearchSettings
from pgvec.rewrite.decision import KnnPlan
from pgvec.service.database import Database
from pgvec.service.request import FilterSpec, SearchRequest
from pgvec.service.search import ClientSQL


def search_request(
    plan: KnnPlan,
    query: np.ndarray,
    k: int,
    settings: SearchSettings,
    *,
    values: Sequence[bytes | None] = (),
    types: Sequence[int] = (),
    formats: Sequence[int] = (),
    own_writes: bool = False,
) -> SearchRequest:
    """The request for the ``k`` rows of ``plan`` nearest to ``query``; ``values``,
    ``types`` and ``formats``: the parameters of the plan's filter statement."""
    filt = None
    if plan.filter_sql:
        filt = FilterSpec(
            plan.filter_sql, plan.probe_sql, values, types, formats, plan.engine_filter
        )
    return SearchRequest(
        table=plan.table,
        column=plan.column,
        vectors=np.asarray(query, np.float32).reshape(1, -1),
        k=k,
        metric=Metric.from_operator(plan.operator),
        params=settings.search_options(),
        filter=filt,
        consistency=settings.consistency,
        engine_filter=settings.engine_filter,
        own_writes=own_writes,
    )


def null_query(plan: KnnPlan) -> np.ndarray:
    """What pgvec searches with for a NULL query vector: as pgvector's HNSW scan, the
    zero vector (for cosine, whose zero vector has no direction, the first axis). The
    distances are NULL, so the rows come in no particular order."""
    query = np.zeros(plan.column.fixed_dim, np.float32)
    if Metric.from_operator(plan.operator) is Metric.COSINE:
        query[0] = 1.0
    return query


async def query_vector(
    plan: KnnPlan,
    sql: ClientSQL,
    values: Sequence[bytes | None] = (),
    types: Sequence[int] = (),
    formats: Sequence[int] = (),
) -> np.ndarray | None:
    """The value of the plan's query-vector subquery, evaluated in the client's session
    (``values``...: its parameters); None for NULL or no row. PostgreSQL raises its own
    errors, 21000 for more than one row."""
    assert plan.query_sql is not None
    rows = await sql.rows(plan.query_sql, values, types, formats, binary=True)
    value = rows[0][0] if rows else None
    if value is None:
        return None
    return vectors.from_bytes(value, plan.column.dim)


async def knn(
    db: Database, request: SearchRequest, sql: ClientSQL
) -> tuple[list[Key], list[float]]:
    """The hits of a request for one query vector."""
    [hits] = await db.search(request, sql)
    return hits
