"""What the rewriter decided for one statement: a closed set of frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

from pgvec.catalog.models import IndexDef as IndexDef
from pgvec.filter.model import Predicate
from pgvec.rewrite.catalog import TableInfo, VectorColumn

__all__ = [
    "CopyIn",
    "CopyOut",
    "CreateIndex",
    "Decision",
    "DropIndex",
    "Extension",
    "IndexAction",
    "IndexDef",
    "Knn",
    "KnnPlan",
    "Passthrough",
    "Reindex",
    "RestoreCopy",
    "Restored",
    "Rewritten",
    "SetParam",
]

IDS_MARK = "{ids}"
DISTS_MARK = "{dists}"


@dataclass(frozen=True)
class Passthrough:
    """Forward the client's original bytes."""


@dataclass(frozen=True)
class Rewritten:
    """Send ``sql`` instead; parameters in ``vector_params`` ($n -> dim, None: any) are
    vectors."""

    sql: str
    vector_params: Mapping[int, int | None] = field(default_factory=dict)
    #: RowDescription names of result columns whose values are vectors computed by an
    #: expression (PostgreSQL reports no table column for them)
    vector_outputs: frozenset[str] = frozenset()
    #: parameters that are arrays of vectors ($n -> their vectors' dim, None: any)
    array_params: Mapping[int, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class KnnPlan:
    table: TableInfo
    alias: str
    column: VectorColumn
    operator: str
    query_literal: bytes | None
    query_param: int | None
    limit: int | None
    limit_param: int | None
    offset: int
    offset_param: int | None
    filter_sql: str | None
    filter_params: tuple[int, ...]
    #: filter_sql restricted to the candidate keys in one more parameter, an array
    probe_sql: str | None
    #: the template's text around the two hit arrays: before ids, between, after dists
    template_parts: tuple[str, str, str]
    #: vector parameters of the template ($n -> dim), the query parameter included
    vector_params: Mapping[int, int | None] = field(default_factory=dict)
    #: vector parameters of filter_sql, numbered as in filter_sql ($i -> dim)
    filter_vector_params: Mapping[int, int | None] = field(default_factory=dict)
    #: the WHERE clause as the engine can evaluate it, parameters numbered as in
    #: filter_sql; None when PostgreSQL must evaluate it
    engine_filter: Predicate | None = None
    #: as Rewritten.vector_outputs
    vector_outputs: frozenset[str] = frozenset()
    #: the query vector is a scalar subquery: this statement returns it (one bytea)
    query_sql: str | None = None
    #: the parameters of query_sql, as numbered in the client's statement, in order
    query_params: tuple[int, ...] = ()
    #: vector parameters of query_sql ($i -> dim)
    query_vector_params: Mapping[int, int | None] = field(default_factory=dict)
    #: an EXPLAIN (text format) of the top-k: the proxy adds the ANN step to the plan
    explain: bool = False

    @property
    def template(self) -> str:
        """The final statement with ``{ids}`` and ``{dists}`` where the hit arrays go."""
        return self.render(IDS_MARK, DISTS_MARK)

    def render(self, ids: str, dists: str) -> str:
        before, between, after = self.template_parts
        return f"{before}{ids}{between}{dists}{after}"


@dataclass(frozen=True)
class Knn:
    plan: KnnPlan


@dataclass(frozen=True)
class CreateIndex:
    index: IndexDef


@dataclass(frozen=True)
class DropIndex:
    names: tuple[tuple[str | None, str], ...]
    if_exists: bool
    cascade: bool


@dataclass(frozen=True)
class SetParam:
    name: str
    value: str | None  # None: RESET
    local: bool


@dataclass(frozen=True)
class Reindex:
    """REINDEX INDEX of one index (the proxy decides whether it is pgvec's)."""

    name: tuple[str | None, str]
    concurrently: bool = False


@dataclass(frozen=True)
class IndexAction:
    """``SELECT pgvec.load('index')`` or ``SELECT pgvec.release('index')``.

    The index is named by a literal (``name``, parsed like a regclass) or by a parameter
    (``param``, 1-based), read at Bind.
    """

    action: str  # "load" | "release"
    name: tuple[str | None, str] | None
    param: int | None = None


@dataclass(frozen=True)
class CopyIn:
    """COPY ... FROM STDIN (text or binary) into a vector table: convert the rows' vectors."""

    table: str
    vector_fields: Mapping[int, int | None]  # 0-based field position -> dim (None: any)
    delimiter: str
    null: str
    binary: bool = False
    #: the fields that are arrays of vectors, as vector_fields
    array_fields: Mapping[int, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class CopyOut:
    """COPY table TO STDOUT (text or binary) of a vector table: its vectors as pgvector's."""

    vector_fields: Mapping[int, int | None]  # 0-based field position -> dim (None: any)
    binary: bool = False
    delimiter: str = "\t"
    #: the fields that are arrays of vectors, as vector_fields
    array_fields: Mapping[int, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Extension:
    """CREATE, DROP or ALTER EXTENSION vector: pgvec answers with ``tag``."""

    tag: str


@dataclass(frozen=True)
class Restored:
    """A restore's statement on pgvec's own objects (pgvec installed them): answered with
    ``tag`` without running (rules/restore.py)."""

    tag: str


@dataclass(frozen=True)
class RestoreCopy:
    """A restore's ``COPY pgvec.<table> [(columns)] FROM stdin``: pgvec reads the rows
    (index definitions, from pgvec.indexes) and stores nothing of them as they are."""

    table: str
    columns: tuple[str, ...]


Decision = Union[  # noqa: UP007
    Passthrough,
    Rewritten,
    Knn,
    CreateIndex,
    DropIndex,
    Reindex,
    IndexAction,
    SetParam,
    CopyIn,
    CopyOut,
    Extension,
    Restored,
    RestoreCopy,
]
