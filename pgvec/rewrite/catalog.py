"""The catalog snapshot the rewriter works from (filled by the proxy from the database)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from pgvec.catalog.models import TableInfo, VectorColumn

__all__ = ["Catalog", "TableInfo", "VectorColumn"]


_FIXED = re.compile(
    r"<->|<=>|<\#>|<\+>"
    r"|\bvector\b"
    r"|'\["
    r"|\busing\s+(?:hnsw|ivfflat|flat|ivf_flat|ivf_sq8|ivf_pq)\b"
    r"|\b(?:set|reset|show)\s+(?:(?:session|local)\s+)?\"?(?:hnsw|ivfflat|pgvec)\"?\s*\."
    r"|\bdrop\s+index\b"
    r"|\breindex\b"
    r"|\bpgvec\s*\.\s*(?:load|release)\s*\("
)


@dataclass(frozen=True)
class Catalog:
    tables: Mapping[tuple[str, str], TableInfo]
    version: int = 0
    #: lower-cased names of functions with a VOLATILE overload: a filter calling one
    #: must run exactly once per row, so it is not split into a pre-pass and a join
    volatile: frozenset[str] = frozenset()

    def lookup(self, name: str, schema: str | None = None) -> TableInfo | None:
        """The table ``schema.name``; unqualified names resolve in ``public``."""
        return self.tables.get((schema or "public", name))

    @cached_property
    def _matcher(self) -> _Matcher:
        return _Matcher({t.name.lower() for t in self.tables.values()})

    def may_concern(self, sql: str) -> bool:
        """Cheap prefilter: False means the statement certainly needs no rewriting."""
        return self._matcher.match(sql)

    @classmethod
    def from_tables(
        cls,
        tables: Iterable[TableInfo],
        version: int = 0,
        volatile: frozenset[str] = frozenset(),
    ) -> Catalog:
        return cls({t.qualified: t for t in tables}, version, volatile)


# substrings one of which every statement of interest holds (checked on lower-cased text)
_GATE = re.compile(r"<->|<=>|<#>|<\+>|'\[|vector|hnsw|ivfflat|pgvec|flat|ivf_|index")
_WORD = re.compile(r"[^\W\d][\w$]*")
_MANY = 16


class _Matcher:
    def __init__(self, names: set[str]) -> None:
        simple = {n for n in names if _WORD.fullmatch(n)}
        self.names = frozenset(simple)
        self.odd = tuple(names - simple)  # names that need quoting: substring test
        self.few = tuple(
            (n, re.compile(rf"(?<![\w$]){re.escape(n)}(?![\w$])")) for n in sorted(simple)
        )

    def match(self, sql: str) -> bool:
        low = sql.lower()
        if _GATE.search(low) and _FIXED.search(low):
            return True
        if any(n in low for n in self.odd):
            return True
        if len(self.few) <= _MANY:
            return any(n in low and rx.search(low) for n, rx in self.few)
        return not self.names.isdisjoint(_WORD.findall(low))
