"""Search: a Milvus SearchRequest as pgvec's neutral search request, and its answer.

The vectors go to the engine through the service core (the same path as a SQL top-k,
filter included, in the caller's own session); the hits' output fields are read as the
caller, the filter evaluated there again (it needs the right to read its columns even
where the engine evaluated it), so a row it may not see, or one deleted meanwhile, drops
out. A search that asks
for keys alone reads no rows: PostgreSQL checks, while the engine searches, that the
caller may read the keys and that no row-level security applies to it, and deletions
reach the answer as the consistency level says. Distances follow
Milvus's conventions: L2 is the squared Euclidean distance, IP and COSINE are
similarities (larger is closer).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from pgvec.catalog.models import TableInfo
from pgvec.engine.spec import Metric
from pgvec.filter.render import leaf_condition
from pgvec.filter.sql import quoted
from pgvec.milvus import data, iterators
from pgvec.milvus.base import flag
from pgvec.milvus.filters import EVERYTHING, Filter, compile_filter
from pgvec.milvus.indexes import IndexInfo, vector_field
from pgvec.milvus.schema import DT, Collection, Field
from pgvec.milvus.status import ParameterInvalid
from pgvec.service.database import Database
from pgvec.service.partitions import hit_keys
from pgvec.service.request import FilterSpec, SearchRequest
from pgvec.service.search import ConnectionSQL

#: search parameters the engine takes, Milvus's names and pgvector's
_ENGINE_PARAMS = ("nprobe", "ef", "search_list", "probes", "ef_search")
#: most rows a range or grouping search reads before it settles for what it has
MAX_CANDIDATES = 16384
MAX_TOPK = 16384


@dataclass(frozen=True)
class SearchArgs:
    """What one search asks, parsed from ``search_params``."""

    field: Field
    metric: Metric
    limit: int
    offset: int
    engine: dict[str, int]
    radius: float | None
    range_filter: float | None
    group_by: Field | None
    group_size: int
    round_decimal: int
    #: a grouping search fills each group to group_size where the rows allow
    strict_group_size: bool = False
    #: the page a search iterator (v2) asks for
    page: iterators.Page | None = None


def parse_args(
    coll: Collection, params: Mapping[str, str], indexes: Sequence[IndexInfo]
) -> SearchArgs:
    try:
        inner = json.loads(params.get("params") or "{}")
    except ValueError:
        raise ParameterInvalid(f"search params are not JSON: {params.get('params')}") from None
    if not isinstance(inner, dict):
        raise ParameterInvalid("search params must be a JSON object")
    field = vector_field(coll, params.get("anns_field", ""))
    index = next((i for i in indexes if i.field == field.name), None)
    given = params.get("metric_type") or inner.get("metric_type")
    binary = field.is_binary
    if index is not None:
        metric = Metric.from_name(index.metric, binary=binary)
        if given and Metric.from_name(str(given), binary=binary) is not metric:
            raise ParameterInvalid(
                f"metric type not match: invalid parameter[expected={metric.value}]"
                f"[actual={str(given).upper()}]"
            )
    else:
        default = Metric.HAMMING if binary else Metric.COSINE
        metric = Metric.from_name(str(given), binary=binary) if given else default
    limit = _int(params.get("topk", "10"), "topk")
    offset = _int(params.get("offset", inner.get("offset", 0)), "offset")
    if not 0 < limit <= MAX_TOPK:
        raise ParameterInvalid(f"topk [{limit}] is invalid, it should be in range [1, {MAX_TOPK}]")
    if offset < 0 or limit + offset > MAX_TOPK:
        raise ParameterInvalid(f"top k + offset should be in range [1, {MAX_TOPK}]")
    engine = {k: _int(inner[k], k) for k in _ENGINE_PARAMS if k in inner}
    group_by = None
    group_name = params.get("group_by_field") or inner.get("group_by_field")
    if group_name:
        group_by = coll.field(str(group_name))
        if group_by is None or group_by.is_vector or group_by.type in (DT.JSON, DT.Array):
            raise ParameterInvalid(f"group by field {group_name} is not a scalar field")
    group_size = _int(params.get("group_size", inner.get("group_size", 1)), "group_size")
    if group_size < 1:
        raise ParameterInvalid(f"group_size [{group_size}] is invalid, it should be at least 1")
    return SearchArgs(
        field=field,
        metric=metric,
        limit=limit,
        offset=offset,
        engine=engine,
        radius=_float(inner.get("radius")),
        range_filter=_float(inner.get("range_filter")),
        group_by=group_by,
        group_size=group_size,
        strict_group_size=flag(params.get("strict_group_size", inner.get("strict_group_size"))),
        round_decimal=_int(params.get("round_decimal", "-1"), "round_decimal"),
        page=iterators.page_of(params),
    )


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ParameterInvalid(f"{name} [{value}] is invalid, it should be an integer") from None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def query_vectors(group: bytes, f: Field) -> np.ndarray:
    """The (nq, dim) float32 query vectors of a serialized PlaceholderGroup; (nq, dim / 8)
    uint8 packed bits for a binary vector field."""
    holder = common_pb2.PlaceholderGroup.FromString(group)
    if len(holder.placeholders) != 1:
        raise ParameterInvalid("a search takes one placeholder of query vectors")
    ph = holder.placeholders[0]
    if f.is_binary or ph.type == common_pb2.BinaryVector:
        return _binary_queries(ph, f)
    kinds = {
        common_pb2.FloatVector: "<f4",
        common_pb2.Float16Vector: "<f2",
        common_pb2.BFloat16Vector: "bf16",
    }
    dtype = kinds.get(ph.type)
    if dtype is None:
        raise ParameterInvalid(
            f"the query vectors are {common_pb2.PlaceholderType.Name(ph.type)}, "
            f"but field {f.name} holds {DT.Name(f.type)}"
        )
    rows = []
    for raw in ph.values:
        if dtype == "bf16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            v = bits.view(np.float32)
        else:
            v = np.frombuffer(raw, dtype=dtype).astype(np.float32)
        if v.size != f.dim:
            raise ParameterInvalid(
                f"the dim ({v.size}) of field data({f.name}) is not equal to schema dim ({f.dim})"
            )
        rows.append(v)
    if not rows:
        raise ParameterInvalid("no query vectors")
    out = np.vstack(rows)
    if not np.isfinite(out).all():
        raise ParameterInvalid("the query vectors hold NaN or infinite values")
    return out


def _binary_queries(ph: common_pb2.PlaceholderValue, f: Field) -> np.ndarray:
    if ph.type != common_pb2.BinaryVector or not f.is_binary:
        raise ParameterInvalid(
            f"the query vectors are {common_pb2.PlaceholderType.Name(ph.type)}, "
            f"but field {f.name} holds {DT.Name(f.type)}"
        )
    rows = []
    for raw in ph.values:
        if len(raw) * 8 != f.dim:
            raise ParameterInvalid(
                f"the dim ({len(raw) * 8}) of field data({f.name}) is not equal to schema dim"
                f" ({f.dim})"
            )
        rows.append(np.frombuffer(raw, dtype=np.uint8))
    if not rows:
        raise ParameterInvalid("no query vectors")
    return np.vstack(rows)


def milvus_score(metric: Metric, distances: np.ndarray) -> np.ndarray:
    """pgvector's distances (smaller is nearer) as Milvus's scores."""
    if metric is Metric.L2:
        return distances.astype(np.float64) ** 2
    if metric is Metric.IP:
        return -distances.astype(np.float64)
    if metric is Metric.COSINE:
        return 1.0 - distances.astype(np.float64)
    return distances.astype(np.float64)


def _in_range(args: SearchArgs, score: float) -> bool:
    """Milvus's range search: L2 keeps range_filter <= d < radius; IP and COSINE keep
    radius < s <= range_filter."""
    if args.radius is None:
        return True
    if args.metric is Metric.L2 or args.metric.binary:  # distances: smaller is nearer
        return score < args.radius and (args.range_filter is None or score >= args.range_filter)
    return score > args.radius and (args.range_filter is None or score <= args.range_filter)


async def run(
    db: Database,
    conn: psycopg.AsyncConnection[Any],
    coll: Collection,
    info: TableInfo,
    request: milvus_pb2.SearchRequest,
    args: SearchArgs,
    consistency: str,
    cursors: iterators.Cursors,
    partitions: frozenset[int] | None = None,
) -> schema_pb2.SearchResultData:
    """``partitions``: the leaves of a partitioned collection to search (None: all)."""
    outputs = data.Outputs(coll, list(request.output_fields), with_pk=True)
    hits, rows = await search_hits(
        db, conn, coll, info, request, args, consistency, outputs, cursors, partitions
    )
    out = result(coll, args.limit, args.round_decimal, outputs, hits, rows)
    if args.page is not None:
        token, bound = cursors.handed(args.page, hits[0])
        out.search_iterator_v2_results.token = token
        out.search_iterator_v2_results.last_bound = bound
    return out


async def search_hits(
    db: Database,
    conn: psycopg.AsyncConnection[Any],
    coll: Collection,
    info: TableInfo,
    request: milvus_pb2.SearchRequest,
    args: SearchArgs,
    consistency: str,
    outputs: data.Outputs,
    cursors: iterators.Cursors | None = None,
    partitions: frozenset[int] | None = None,
    read_rows: bool = False,
) -> tuple[list[list[tuple[Any, float]]], dict[Any, Any]]:
    """Each query's hits (key, Milvus score), best first, after offset; and the output
    rows of their keys. A search iterator's page (``args.page``) keeps only the hits
    past its bound, as ``cursors`` remembers it. ``read_rows``: read the rows of keys
    alone too, so that a row deleted since the engine's snapshot drops out."""
    vectors = query_vectors(request.placeholder_group, args.field)
    admit = None
    if args.page is not None:
        if cursors is None:
            raise ParameterInvalid("search iterators are not supported in a hybrid search")
        if len(vectors) != 1:
            raise ParameterInvalid("a search iterator takes one query vector")
        admit = cursors.admits(args.metric, args.page)
    where = compile_filter(coll, request.dsl, request.expr_template_values)
    if args.group_by is not None and args.group_by not in outputs.fields:
        outputs.fields.append(args.group_by)
    want = args.limit + args.offset
    refine = args.radius is not None or args.group_by is not None or admit is not None
    fetch = min(max(want * args.group_size * 4, 64), MAX_CANDIDATES) if refine else want
    sql_ = ConnectionSQL(conn)
    # Keys alone, unfiltered, need no row read, only the caller's right to read them:
    # PostgreSQL checks it while the engine searches. (A filter runs in PostgreSQL or
    # binds there, on the same connection; row-level security is a filter, and the
    # check tells of policies enabled since the catalog was read.)
    keys_only = (
        outputs.keys_only and where is EVERYTHING and not info.row_security and not read_rows
    )
    checking = [data.check_readable(sql_, coll, outputs)] if keys_only else []
    try:
        while True:
            found = await db.search(
                SearchRequest(
                    table=info,
                    column=info.vectors[args.field.name],
                    vectors=vectors,
                    k=fetch,
                    metric=args.metric,
                    params=args.engine,
                    filter=_filter_spec(coll, info, where),
                    consistency=consistency,
                    partitions=partitions,
                ),
                sql_,
            )
            if checking and await checking.pop():
                keys_only = False  # row-level security the catalog did not know yet
            if info.partitioned:  # hits are (leaf, key): the key is unique in a collection
                found = [(_keys_of(coll, ks), ds) for ks, ds in found]
            if admit is not None:  # read only the rows past the iterator's bound
                scores = [milvus_score(args.metric, np.asarray(ds)).tolist() for _, ds in found]
                keys = {
                    k
                    for (ks, _), ss in zip(found, scores, strict=True)
                    for k, s in zip(ks, ss, strict=True)
                    if admit(k, s)
                }
            else:
                keys = {k for ks, _ in found for k in ks}
            if keys_only:
                rows: Mapping[Any, Sequence[Any]] = {k: (k,) for k in keys}
            else:
                rows = await data.rows_by_key(conn, coll, outputs, list(keys), where)
            picked = [_pick(args, ks, ds, rows, outputs, admit) for ks, ds in found]
            hits = [h for h, _ in picked]
            short = any(
                not full and len(ks) >= fetch
                for (_, full), (ks, _) in zip(picked, found, strict=True)
            )
            if not refine or not short or fetch >= MAX_CANDIDATES:
                break
            fetch = min(fetch * 4, MAX_CANDIDATES)
    finally:
        if checking:  # the search failed: the connection is free again once it is read
            with contextlib.suppress(Exception):
                await checking.pop()
    return hits, dict(rows)


def _filter_spec(coll: Collection, info: TableInfo, where: Filter) -> FilterSpec | None:
    """The filter as the service core runs it: the keys it admits, in the caller's session.
    A table with row-level security always has one: its policies are a filter."""
    if where is EVERYTHING and not info.row_security:
        return None
    pk = coll.pk
    table = coll.ident.as_string(None)
    key = quoted(pk.name)
    select = f"SELECT {key} FROM {table} WHERE {where.sql}"
    if info.partitioned:  # run for one leaf at a time
        select += f" AND {leaf_condition('tableoid')}"
    cast = "bigint[]" if pk.type == DT.Int64 else "text[]"
    n = len(where.values) + 1
    values = [v if v is None or isinstance(v, bytes) else str(v).encode() for v in where.values]
    return FilterSpec(
        sql=select,
        probe_sql=f"{select} AND {key} = ANY(${n}::{cast})",
        values=values,
        types=[0] * len(values),
        formats=[0] * len(values),
        predicate=where.predicate,
    )


def _keys_of(coll: Collection, hits: Sequence[Any]) -> list[Any]:
    keys = hit_keys(hits)
    return [int(k) for k in keys] if coll.pk.type == DT.Int64 else keys


def _pick(
    args: SearchArgs,
    keys: Sequence[Any],
    distances: Sequence[float],
    rows: Mapping[Any, Sequence[Any]],
    outputs: data.Outputs,
    admit: Callable[[Any, float], bool] | None = None,
) -> tuple[list[tuple[Any, float]], bool]:
    """The hits of one query vector, after offset, and whether the candidates filled it.

    A grouping search (``group_by``) returns, as Milvus does, ``limit`` groups after
    ``offset`` groups, in the order of their best hits, each with up to ``group_size``
    hits, best first, one group after another."""
    scores = milvus_score(args.metric, np.asarray(distances, dtype=np.float64))
    out: list[tuple[Any, float]] = []
    groups: dict[Any, list[tuple[Any, float]]] = {}
    want = args.limit + args.offset
    g = outputs.fields.index(args.group_by) if args.group_by is not None else -1
    for key, score in zip(keys, scores.tolist(), strict=True):
        row = rows.get(key)
        if row is None or not _in_range(args, score):
            continue
        if admit is not None and not admit(key, score):
            continue
        if g >= 0:
            group = groups.get(row[g])
            if group is None:
                if len(groups) < want:
                    groups[row[g]] = [(key, score)]
            elif len(group) < args.group_size:
                group.append((key, score))
            continue
        if len(out) >= want:
            break
        out.append((key, score))
    if g < 0:
        return out[args.offset :], len(out) >= want
    full = len(groups) >= want and (
        not args.strict_group_size or all(len(h) >= args.group_size for h in groups.values())
    )
    return [hit for group in list(groups.values())[args.offset :] for hit in group], full


def result(
    coll: Collection,
    limit: int,
    round_decimal: int,
    outputs: data.Outputs,
    hits: Sequence[Sequence[tuple[Any, float]]],
    rows: Mapping[Any, Sequence[Any]],
) -> schema_pb2.SearchResultData:
    """The SearchResultData of each query's hits, their output fields read from ``rows``."""
    out = schema_pb2.SearchResultData(
        num_queries=len(hits), top_k=limit, primary_field_name=coll.pk.name
    )
    flat = [h for per_query in hits for h in per_query]
    out.topks.extend(len(h) for h in hits)
    keys = [k for k, _ in flat]
    if coll.pk.type == DT.Int64:
        out.ids.int_id.data.extend(keys)
    else:
        out.ids.str_id.data.extend(keys)
    scores = [s for _, s in flat]
    if round_decimal >= 0:
        scores = [round(s, round_decimal) for s in scores]
    out.scores.extend(scores)
    out.output_fields.extend(outputs.names)
    for fd in outputs.field_data([rows[k] for k in keys]):
        if fd.field_name in outputs.asked or fd.is_dynamic:
            out.fields_data.append(fd)
    return out
