"""EXPLAIN of a top-k query: the ANN step pgvec ran, added to the plan the client sees.

PostgreSQL explains the rewritten statement, where the ANN step is only the function
scan over the hit arrays (``unnest(...) __pgvec_hit``). pgvec adds what it did before:
the index, its type and metric, the search parameters, k and the candidates asked for,
the hits it found and how long that took. The lines go under the function scan's line
(text format only; other formats pass unchanged).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from pgvec.catalog.models import IndexRow
from pgvec.engine.spec import IndexSpec, Metric, SearchParams
from pgvec.rewrite.decision import KnnPlan
from pgvec.rewrite.rules.query import HIT
from pgvec.service.database import candidates
from pgvec.service.request import SearchRequest
from pgvec.wire import messages as m
from pgvec.wire.framing import Message


@dataclass(frozen=True)
class AnnStep:
    """What one top-k search did, for EXPLAIN."""

    plan: KnnPlan
    request: SearchRequest
    index: IndexRow | None
    hits: int
    ms: float
    null_query: bool = False

    def lines(self) -> list[str]:
        plan, request, row = self.plan, self.request, self.index
        table = f"{plan.table.name}.{plan.column.name}"
        k = request.k
        asked = candidates(k)
        params = SearchParams.create(request.params)
        if row is None:
            head = f"pgvec ANN Search on {table}: no pgvec index, exact scan"
            knobs = f"k={k} candidates={asked}"
        else:
            exact = Metric[row.metric.upper()] is not request.metric
            how = " (exact: the index is for another operator)" if exact else ""
            head = (
                f"pgvec ANN Search using {row.index_name} on {table}"
                f" ({row.method.lower()}, {row.metric.lower()}){how}"
            )
            knobs = f"k={k} candidates={asked}" + _knobs(row, params, asked)
        if plan.query_sql is not None:
            query = "scalar subquery, evaluated first"
        elif plan.query_param is not None:
            query = f"parameter ${plan.query_param}"
        else:
            query = "constant"
        if self.null_query:
            query += " (NULL: rows in no particular order)"
        lines = [head, f"  Query Vector: {query}", f"  Search: {knobs}"]
        if plan.filter_sql is not None:
            lines.append("  Filter: the WHERE clause shapes the search (pre- or post-filtering)")
        lines.append(f"  Hits: {self.hits}  Search Time: {self.ms:.3f} ms")
        return lines


def index_used(
    rows: Sequence[IndexRow], relid: int, attnum: int, metric: Metric
) -> IndexRow | None:
    """The index a search of the column by ``metric`` used: the one of its operator class,
    else another of the column's (searched exactly), else None."""
    mine = [r for r in rows if r.relid == relid and r.attnum == attnum]
    return next((r for r in mine if r.metric.upper() == metric.name), mine[0] if mine else None)


def _knobs(row: IndexRow, params: SearchParams, k: int) -> str:
    try:
        spec = IndexSpec.create(row.method, Metric[row.metric.upper()], row.options)
    except Exception:  # an index recorded with options this version refuses
        return ""
    kind = spec.index_type.upper()
    if "HNSW" in kind:
        return f" ef_search={params.ef_for(k)}"
    if "IVF" in kind:
        nlist = int(spec.params.get("nlist", 0) or 0)
        return f" probes={params.nprobe_for(nlist) if nlist else params.nprobe}"
    if "DISKANN" in kind:
        return f" search_list={params.search_list_for(k)}"
    return ""


class PlanLines:
    """A relay transform for the replies to EXPLAINs: adds each top-k's ANN lines.

    ``steps``: one entry per EXPLAIN in the order they run, the lines to add (None for
    an EXPLAIN of anything else)."""

    def __init__(self, steps: Sequence[list[str] | None]) -> None:
        self._steps: deque[list[str] | None] = deque(steps)
        self._done = False

    def __call__(self, msg: Message) -> bytes | None:
        lines = self._steps[0] if self._steps else None
        if lines is None:
            if msg.type == b"C" and msg.body.startswith(b"EXPLAIN") and self._steps:
                self._steps.popleft()
            return msg.raw
        if msg.type == b"D" and not self._done:
            [value] = m.data_row(msg.body)[:1] or [None]
            text = value.decode("utf-8", "replace") if value is not None else ""
            if "Function Scan on " in text and HIT in text:
                arrow = text.find("->")
                indent = " " * (arrow + 6 if arrow >= 0 else len(text) - len(text.lstrip()) + 2)
                self._done = True
                return msg.raw + _rows(indent, lines)
            return msg.raw
        if msg.type == b"C" and msg.body.startswith(b"EXPLAIN"):
            self._steps.popleft()
            extra = b"" if self._done else _rows("", lines)
            self._done = False
            return extra + msg.raw
        return msg.raw


def _rows(indent: str, lines: list[str]) -> bytes:
    return b"".join(m.encode_data_row([(indent + line).encode()]) for line in lines)
