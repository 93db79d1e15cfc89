"""Milvus index RPCs over pgvec indexes: one index per vector field, built by the engine.

``CreateIndex`` becomes what ``CREATE INDEX ... USING hnsw`` does in SQL, under the name
``<collection>_<index name or field>_idx``; DescribeIndex reports any pgvec index of the
table, including those made in SQL. Load and release act on the table's indexes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from pgvec.catalog.models import TableInfo
from pgvec.engine.spec import Metric, option_names
from pgvec.errors import PgvecError
from pgvec.filter.sql import object_name
from pgvec.milvus.schema import Collection, Field
from pgvec.milvus.status import IndexNotFound, ParameterInvalid
from pgvec.service.database import Database

log = logging.getLogger(__name__)

#: Milvus index types and the method pgvec builds for each
METHODS = {
    "FLAT": "flat",
    "IVF_FLAT": "ivf_flat",
    "IVF_SQ8": "ivf_sq8",
    "IVF_PQ": "ivf_pq",
    "HNSW": "hnsw",
    "AUTOINDEX": "hnsw",
    "DISKANN": "diskann",
    "BIN_FLAT": "bin_flat",
    "BIN_IVF_FLAT": "bin_ivf_flat",
}
#: the index types of binary vector fields (AUTOINDEX there: BIN_IVF_FLAT, as Milvus)
BINARY_METHODS = frozenset({"bin_flat", "bin_ivf_flat"})
_TYPES = {
    "flat": "FLAT",
    "ivf_flat": "IVF_FLAT",
    "ivfflat": "IVF_FLAT",
    "ivf_sq8": "IVF_SQ8",
    "ivf_pq": "IVF_PQ",
    "hnsw": "HNSW",
    "diskann": "DISKANN",
    "bin_flat": "BIN_FLAT",
    "bin_ivf_flat": "BIN_IVF_FLAT",
}
_STATES = {
    "building": common_pb2.InProgress,
    "ready": common_pb2.Finished,
    "released": common_pb2.Finished,
    "failed": common_pb2.Failed,
}

#: a partitioned table's index stands for its leaves' (one each): its rows are theirs,
#: and it is building or failed while one of theirs is
_INDEXES_SQL = """
SELECT i.index_name::text, i.column_name::text, i.method, i.metric, i.options,
       coalesce(l.state, i.state), coalesce(l.rows, i.rows_indexed), coalesce(l.error, i.error),
       coalesce(l.progress, i.progress), i.milvus_params
FROM pgvec.indexes i
LEFT JOIN LATERAL (
    SELECT CASE WHEN bool_or(x.state = 'failed') THEN 'failed'
                WHEN bool_or(x.state = 'building') THEN 'building'
                WHEN bool_or(x.state = 'released') THEN 'released'
                ELSE 'ready' END AS state,
           sum(x.rows_indexed) AS rows, min(x.error) AS error, min(x.progress) AS progress
    FROM pg_partition_tree(i.relid) t
    JOIN pgvec.indexes x ON x.relid = t.relid AND x.attnum = i.attnum AND x.metric = i.metric
    WHERE t.isleaf AND t.relid <> i.relid
    HAVING count(*) > 0
) l ON true
WHERE i.relid = %s ORDER BY i.attnum
"""


@dataclass(frozen=True)
class IndexInfo:
    pg_name: str
    field: str
    method: str
    metric: str
    options: Mapping[str, Any]
    state: str
    rows: int
    error: str | None
    progress: float
    #: what a Milvus client asked for: the index type as given, AlterIndex's properties
    milvus: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def milvus_name(self, table: str) -> str:
        given = self.milvus.get("index_name")
        if given:
            return given
        prefix, suffix = f"{table}_", "_idx"  # (an index made before the name was kept)
        if self.pg_name.startswith(prefix) and self.pg_name.endswith(suffix):
            return self.pg_name[len(prefix) : -len(suffix)] or self.field
        return self.pg_name


async def list_indexes(conn: psycopg.AsyncConnection[Any], coll: Collection) -> list[IndexInfo]:
    cur = await conn.execute(_INDEXES_SQL, (coll.relid,))
    return [
        IndexInfo(
            r[0], r[1], r[2], r[3], r[4] or {}, r[5], int(r[6]), r[7], float(r[8]), r[9] or {}
        )
        for r in await cur.fetchall()
    ]


def parse_index_params(
    params: Mapping[str, str], binary: bool = False
) -> tuple[str, Metric, dict[str, str]]:
    """(method, metric, options) of CreateIndex's ``extra_params``, for a float vector
    field or (``binary``) a binary one."""
    index_type = params.get("index_type", "AUTOINDEX").upper()
    method = METHODS.get(index_type)
    if method is None:
        raise ParameterInvalid(f"invalid index type: {params.get('index_type')}")
    if binary and index_type == "AUTOINDEX":
        method = "bin_ivf_flat"
    elif (method in BINARY_METHODS) != binary:
        kind = "BinaryVector" if binary else "FloatVector"
        raise ParameterInvalid(f"data type {kind} can't build with this index {index_type}")
    default = "HAMMING" if binary else "COSINE" if index_type == "AUTOINDEX" else "L2"
    name = params.get("metric_type", default)
    other = Metric.__members__.get(name.strip().upper())
    if other is not None and other.binary != binary:  # Milvus's words for the mix-up
        kind = "binary" if binary else "float"
        raise ParameterInvalid(f"{kind} vector index does not support metric type: {other.value}")
    metric = Metric.from_name(name, binary=binary)
    if metric is Metric.L1:
        raise ParameterInvalid("metric type L1 is not supported by the Milvus API")
    options: dict[str, str] = {}
    raw = params.get("params")
    if raw:
        try:
            inner = json.loads(raw)
        except ValueError:
            raise ParameterInvalid(f"index params are not JSON: {raw}") from None
        if not isinstance(inner, dict):
            raise ParameterInvalid(f"index params must be a JSON object: {raw}")
        options.update(
            {k: str(v) for k, v in inner.items() if k not in ("metric_type", "index_type")}
        )
    for key, value in params.items():  # the legacy flat form: {"nlist": "16", ...}
        if key not in ("index_type", "metric_type", "params"):
            options.setdefault(key, value)
    # Milvus ignores what the index type does not use (pymilvus's own examples give
    # FLAT and HNSW an nlist); SQL's CREATE INDEX ... WITH refuses it, as PostgreSQL does
    known = option_names(method)
    ignored = sorted(k for k in options if k.lower() not in known)
    if ignored:
        log.debug("index %s ignores %s", index_type, ", ".join(ignored))
    return method, metric, {k: v for k, v in options.items() if k.lower() in known}


def same_index(
    existing: IndexInfo, method: str, metric: Metric, options: Mapping[str, str]
) -> bool:
    return (
        _TYPES.get(existing.method, existing.method.upper()) == _TYPES.get(method, method.upper())
        and existing.metric.upper() == metric.value
        and all(str(existing.options.get(k)) == v for k, v in options.items())
    )


def describe(index: IndexInfo, table: str) -> milvus_pb2.IndexDescription:
    out = milvus_pb2.IndexDescription(
        index_name=index.milvus_name(table),
        field_name=index.field,
        indexed_rows=index.rows,
        total_rows=index.rows,
        state=_STATES.get(index.state, common_pb2.InProgress),
        index_state_fail_reason=index.error or "",
    )
    asked = dict(index.milvus)
    asked.pop("index_name", None)
    kind = asked.pop("index_type", None) or _TYPES.get(index.method, index.method.upper())
    out.params.add(key="index_type", value=kind)
    if index.metric:  # (a scalar index has none, nor parameters)
        out.params.add(key="metric_type", value=index.metric.upper())
        out.params.add(key="params", value=json.dumps(dict(index.options), separators=(",", ":")))
    for key, value in asked.items():
        out.params.add(key=key, value=str(value))
    return out


def pg_name(table: str, index_name: str) -> str:
    """The PostgreSQL name of a collection's index: ``<collection>_<index name>_idx``,
    cut as PostgreSQL would to fit its 63 bytes (the Milvus name is kept beside it)."""
    return object_name(table, index_name, "idx")


async def set_milvus_params(
    conn: psycopg.AsyncConnection[Any], coll: Collection, index: str, params: Mapping[str, str]
) -> None:
    """Keep what a client asked for of index ``index`` (its PostgreSQL name)."""
    await conn.execute(
        "SELECT pgvec.set_milvus_index_params(%s::oid::regclass, %s, %s::jsonb)",
        (coll.relid, index, json.dumps(dict(params))),
    )


def pick(indexes: list[IndexInfo], table: str, index_name: str, field_name: str) -> list[IndexInfo]:
    chosen = [
        i
        for i in indexes
        if (not index_name or index_name in (i.milvus_name(table), i.pg_name))
        and (not field_name or i.field == field_name)
    ]
    if not chosen:
        raise IndexNotFound(f"index not found[collection={table}]")
    return chosen


async def table_info(db: Database, relid: int) -> TableInfo:
    """The engine's view of a collection's table (read again once if not there yet)."""
    for attempt in range(2):
        info = (await db.catalog()).tables.get(relid)
        if info is not None:
            return info
        if attempt == 0:
            db.note_ddl()
    raise PgvecError(f"table {relid} is not a vector table")


def vector_field(coll: Collection, name: str) -> Field:
    if not name:
        vectors = coll.vectors
        if len(vectors) != 1:
            raise ParameterInvalid(
                "multiple anns_fields exist, please specify a anns_field in search_params"
            )
        return vectors[0]
    f = coll.field(name)
    if f is None:
        raise ParameterInvalid(f"field {name} not exist")
    if not f.is_vector:
        raise ParameterInvalid(f"field {name} is not a vector field")
    return f
