"""A request's filter expression, compiled for PostgreSQL and for the engine.

The expression (``dsl`` / ``expr``, with ``expr_template_values`` for ``{name}``
placeholders) is parsed by :mod:`pgvec.milvus.expr` into pgvec's predicate model, then
rendered as parameterized SQL (``$n`` placeholders, values bound: nothing from the
client is ever spliced into SQL). The same predicate goes to the engine, which evaluates
it itself where it can.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pymilvus.grpc_gen import schema_pb2

from pgvec.filter.model import Predicate
from pgvec.filter.render import render
from pgvec.milvus.expr import FieldRef, MilvusExprError, compile_expr
from pgvec.milvus.schema import DYNAMIC, Collection
from pgvec.milvus.status import ParameterInvalid


@dataclass(frozen=True)
class Filter:
    sql: str  # a boolean SQL expression, parameters $1..$n
    values: list[bytes | None] = field(default_factory=list)
    predicate: Predicate | None = None  # None: admits every row


EVERYTHING = Filter("true")


def compile_filter(
    coll: Collection, text: str, templates: Mapping[str, schema_pb2.TemplateValue] | None = None
) -> Filter:
    if not text.strip():
        return EVERYTHING
    refs = {f.name: FieldRef(f.name, f.column_type) for f in coll.fields if not f.is_vector}
    params = {k: template_value(v) for k, v in (templates or {}).items()}
    try:
        predicate = compile_expr(
            text, refs, dynamic=DYNAMIC if coll.dynamic else None, params=params
        )
    except MilvusExprError as exc:
        raise ParameterInvalid(
            f"failed to create query plan: cannot parse expression: {text}, error: {exc}"
        ) from None
    rendered = render(predicate)
    return Filter(rendered.sql, list(rendered.values), predicate)


def template_value(v: schema_pb2.TemplateValue) -> Any:
    which = v.WhichOneof("val")
    if which is None:
        return None
    if which == "array_val":
        return _array(v.array_val)
    return getattr(v, which)


def _array(a: schema_pb2.TemplateArrayValue) -> list[Any]:
    which = a.WhichOneof("data")
    if which is None:
        return []
    if which == "array_data":
        return [_array(x) for x in a.array_data.data]
    if which == "json_data":
        import json

        return [json.loads(x) for x in a.json_data.data]
    return list(getattr(a, which).data)
