"""The catalog snapshot the rewriter works from (filled by the proxy from the database)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property

from pgvec.catalog.models import TableInfo, VectorColumn
from pgvec.filter.sql import NAMEDATALEN

__all__ = ["Catalog", "TableInfo", "VectorColumn"]


_FIXED = re.compile(
    r"<->|<=>|<\#>|<\+>"
    r"|\bvector\b"
    r"|'\["
    r"|\busing\s+(?:hnsw|ivfflat|flat|ivf_flat|ivf_sq8|ivf_pq|diskann)\b"
    r"|\b(?:set|reset|show)\s+(?:(?:session|local)\s+)?\"?(?:hnsw|ivfflat|pgvec)\"?\s*\."
    r"|\bdrop\s+index\b"
    r"|\breindex\b"
    # a catalog query asking a column's type (rules/reflection.py)
    r"|\bformat_type\s*\([^)]*atttypid"
    r"|\binformation_schema\"?\s*\.\s*\"?columns\b|\bpg_indexes\b|\bpg_class\b"
    r"|\bpg_(?:available_)?extensions?\b|\bpg_available_extension_versions\b"
    r"|\batttypmod\b"
    r"|\bpgvec\s*\.\s*(?:load|release)\s*\("
    # a restore's statements on pgvec's own objects (rules/restore.py)
    r"|\bpgvec\b\s*\.|\bschema\s+(?:if\s+not\s+exists\s+)?pgvec\b"
)


@dataclass(frozen=True)
class Catalog:
    tables: Mapping[tuple[str, str], TableInfo]
    version: int = 0
    #: lower-cased names of functions with a VOLATILE overload: a filter calling one
    #: must run exactly once per row, so it is not split into a pre-pass and a join
    volatile: frozenset[str] = frozenset()
    #: (schema, name) of relations that are not vector tables but are named like one:
    #: earlier in the search path, such a relation hides the vector table
    others: frozenset[tuple[str, str]] = frozenset()
    #: the client's effective search path (``current_schemas(true)``); None where it is
    #: not known, and then a name in one schema only means that table
    search_path: tuple[str, ...] | None = None
    #: OIDs of tables whose vector columns the client's open transaction made: no index
    #: holds them before the commit, so their top-k is computed exactly, in SQL
    exact: frozenset[int] = frozenset()

    def lookup(self, name: str, schema: str | None = None) -> TableInfo | None:
        """The table ``schema.name``, or the one an unqualified ``name`` means: the first
        relation of that name along the search path, if it is a vector table."""
        if schema is not None:
            if schema == "pg_temp" and self.search_path is not None:
                schema = next((s for s in self.search_path if s.startswith("pg_temp_")), schema)
            return self.tables.get((schema, name))
        if self.search_path is not None:
            for s in self.search_path:
                table = self.tables.get((s, name))
                if table is not None or (s, name) in self.others:
                    return table
            return None
        schemas = self._schemas.get(name, ())
        if len(schemas) == 1:
            return self.tables.get((schemas[0], name))
        return self.tables.get(("public", name))

    @cached_property
    def _schemas(self) -> dict[str, tuple[str, ...]]:
        """The schemas holding a relation of each vector table's name."""
        found: dict[str, list[str]] = {}
        for schema, name in [*self.tables, *self.others]:
            found.setdefault(name, []).append(schema)
        return {name: tuple(schemas) for name, schemas in found.items()}

    @cached_property
    def ambiguous(self) -> tuple[str, ...]:
        """Lower-cased names of vector tables that more than one schema holds a relation
        of: what an unqualified one means depends on the search path."""
        return tuple(sorted({n.lower() for n, s in self._schemas.items() if len(s) > 1}))

    def needs_search_path(self, sql: str) -> bool:
        """Whether ``sql`` may name a table whose meaning depends on the search path."""
        if not self.ambiguous:
            return False
        low = sql.lower()
        return any(name in low for name in self.ambiguous)

    def with_search_path(self, path: tuple[str, ...] | None) -> Catalog:
        return replace(self, search_path=path)

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
        others: frozenset[tuple[str, str]] = frozenset(),
        exact: frozenset[int] = frozenset(),
    ) -> Catalog:
        return cls({t.qualified: t for t in tables}, version, volatile, others, exact=exact)


# substrings one of which every statement of interest holds (checked on lower-cased text)
_GATE = re.compile(
    r"<->|<=>|<#>|<\+>|'\[|vector|hnsw|ivfflat|pgvec|flat|ivf_|index|atttypid|information_schema"
    r"|extension|atttypmod|pg_class"
)
_WORD = re.compile(r"[^\W\d][\w$]*")
_MANY = 16


class _Matcher:
    def __init__(self, names: set[str]) -> None:
        # a name as long as PostgreSQL keeps one: any longer word it begins names it too
        simple = {n for n in names if _WORD.fullmatch(n) and len(n.encode()) < NAMEDATALEN - 1}
        self.names = frozenset(simple)
        self.odd = tuple(names - simple)  # quoted or cut names: substring test
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
