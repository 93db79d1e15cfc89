"""A search request as every frontend hands it to the core, knowing no frontend.

The SQL proxy builds one from a rewritten top-k query and the session's settings; the
Milvus frontend from a ``Search`` call. The core answers it with :meth:`Database.search
<pgvec.service.database.Database.search>`; whatever SQL the request carries runs in the
client's own session (:class:`pgvec.service.search.ClientSQL`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pgvec.catalog.models import TableInfo, VectorColumn
from pgvec.engine.spec import Metric
from pgvec.filter.model import Predicate
from pgvec.filter.render import LEAF

CONSISTENCY_LEVELS = ("strong", "bounded", "session", "eventually")


@dataclass(frozen=True)
class FilterSpec:
    """A filter, as SQL the client's session runs and as a predicate the engine may
    evaluate itself.

    ``sql`` returns the keys the filter admits; ``probe_sql`` the same restricted to a
    candidate key array given as one more parameter (text format); ``values``, ``types``
    and ``formats`` are the parameters of both, as the client sent them. ``predicate``
    is the same filter in the engine's form, its ``Param`` numbered as in ``sql``; None
    when only PostgreSQL can evaluate it.
    """

    sql: str
    probe_sql: str | None
    values: Sequence[bytes | None] = ()
    types: Sequence[int] = ()
    formats: Sequence[int] = ()
    predicate: Predicate | None = None

    def for_leaf(self, relid: int | None) -> FilterSpec:
        """The filter of a partitioned table restricted to its leaf ``relid`` (None: to
        no leaf in particular, as partition pruning asks) by its :func:`leaf_condition`.
        The OID is pgvec's own number, never client input."""
        oid = "NULL::oid" if relid is None else f"{int(relid)}::oid"
        return replace(
            self,
            sql=self.sql.replace(LEAF, oid),
            probe_sql=None if self.probe_sql is None else self.probe_sql.replace(LEAF, oid),
        )


@dataclass(frozen=True)
class SearchRequest:
    """The ``k`` nearest rows of ``table`` to each query vector, by ``column``.

    ``params`` are index search parameters (``ef_search``, ``probes``, ``nprobe``,
    ``ef`` ...: what :meth:`pgvec.engine.spec.SearchParams.create` accepts).
    ``consistency``: which committed writes the search must see (strong: all committed
    before it; bounded: all but the last moments'; session and eventually: what the
    background sync applied). ``engine_filter``: the engine may evaluate the filter's
    predicate itself. ``own_writes``: the client's open transaction may have written
    rows, which the search must see. ``partitions``: of a partitioned table, the leaves
    to search (Milvus's ``partition_names``).
    """

    table: TableInfo
    column: VectorColumn
    #: (nq, dim) float32: one row per query vector
    vectors: np.ndarray
    k: int
    metric: Metric
    params: Mapping[str, int] = field(default_factory=dict)
    filter: FilterSpec | None = None
    consistency: str = "strong"
    engine_filter: bool = True
    own_writes: bool = False
    #: a partitioned table: search only these leaf partitions (OIDs); None: every leaf
    #: that partition pruning leaves
    partitions: frozenset[int] | None = None
