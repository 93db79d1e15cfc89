"""The rows a client's open transaction wrote, searched next to the index.

pgvec's index holds committed rows only (the change log is read in pgvec's own
snapshot), but a top-k inside a transaction must see that transaction's own inserts,
updates and deletes, as PostgreSQL would. The change-log triggers record them in the
same transaction, so the client's own session can read them back
(``pgvec.own_changes``, which shows nothing of other transactions). Those keys are
searched exactly, over their current vectors read in the client's snapshot, filter
applied; the index's answer is taken without them, and the two are merged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pgvec.catalog.models import TableInfo, VectorColumn
from pgvec.engine.collection import Key
from pgvec.engine.distances import exact_distances
from pgvec.engine.spec import Metric
from pgvec.filter.sql import quote_ident
from pgvec.service.filtering import keys_param, probe
from pgvec.service.request import FilterSpec
from pgvec.service.search import ClientSQL

OID_OID = 26


@dataclass(frozen=True)
class OwnRows:
    """What the client's transaction wrote to one table."""

    #: every key it inserted, updated or deleted (the index's view of them is stale)
    keys: frozenset[Key]
    #: it truncated the table: no row of the index is current
    truncated: bool
    #: those of ``keys`` that exist now and pass the filter, with their distances
    hits: tuple[tuple[Key, float], ...]

    @property
    def excluded(self) -> int:
        """How many of the index's hits this may take away."""
        return len(self.keys)

    def merge(
        self, keys: list[Key], dists: list[float], want: int
    ) -> tuple[list[Key], list[float]]:
        """The index's hits without stale keys, merged with this transaction's rows."""
        merged = (
            []
            if self.truncated
            else [(k, d) for k, d in zip(keys, dists, strict=True) if k not in self.keys]
        )
        merged.extend(self.hits)
        merged.sort(key=lambda h: (np.isnan(h[1]), h[1]))
        merged = merged[:want]
        return [k for k, _ in merged], [d for _, d in merged]


async def own_rows(
    sql: ClientSQL,
    table: TableInfo,
    column: VectorColumn,
    query: np.ndarray,
    metric: Metric,
    filt: FilterSpec | None,
    parse_key: Callable[[str], Key],
) -> OwnRows | None:
    """The rows of ``table`` the client's open transaction wrote; None if it wrote none."""
    rows = await sql.rows(
        "SELECT key FROM pgvec.own_changes($1)",
        [str(table.relid).encode()],
        [OID_OID],
        [0],
        binary=False,
    )
    if not rows:
        return None
    truncated = any(r[0] is None for r in rows)
    keys = frozenset(parse_key(r[0].decode()) for r in rows if r[0] is not None)
    ordered = sorted(keys, key=str)
    if filt is not None and ordered:
        ordered = [k for k in ordered if k in await probe(sql, filt, ordered)]
    hits: list[tuple[Key, float]] = []
    if ordered:
        assert table.pk is not None and table.pk_type is not None
        pk = quote_ident(table.pk)
        found = await sql.rows(
            f"SELECT t.{pk}::text, t.{quote_ident(column.name)}"
            f" FROM {quote_ident(table.schema)}.{quote_ident(table.name)} t"
            f" WHERE t.{pk} = ANY($1::{table.pk_type}[])",
            [keys_param(ordered)],
            [0],
            [0],
            binary=True,
        )
        present = [(r[0], r[1]) for r in found if r[0] is not None and r[1] is not None]
        if present:
            dtype = "u1" if metric.binary else "<f4"
            vecs = np.stack([np.frombuffer(v, dtype) for _, v in present])
            dists = exact_distances(vecs, query, metric)
            hits = [
                (parse_key(k.decode()), float(d)) for (k, _), d in zip(present, dists, strict=True)
            ]
    return OwnRows(keys, truncated, tuple(hits))
