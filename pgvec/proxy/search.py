"""A rewritten top-k query as the core's search request: its plan, the session's search
settings and the client's parameter values become a neutral :class:`SearchRequest`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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


async def knn(
    db: Database, request: SearchRequest, sql: ClientSQL
) -> tuple[list[Key], list[float]]:
    """The hits of a request for one query vector."""
    [hits] = await db.search(request, sql)
    return hits
