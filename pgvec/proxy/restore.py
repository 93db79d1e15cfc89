"""The rows of a restore's ``COPY pgvec.<table> FROM stdin``, which pgvec answers itself.

pgvec installed its own schema in the restored database already; of the dumped catalog
only the index definitions matter (``pgvec.indexes``). Each becomes the CREATE INDEX that
made it, run once its table is ready (its primary key restored: pg_dump restores
constraints after the rows), as if the client had sent it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from pgvec.engine.spec import Metric
from pgvec.rewrite.decision import RestoreCopy
from pgvec.rewrite.rules.index import VECTOR_METHODS, parse_index_name
from pgvec.rewrite.tokens import quote_ident

log = logging.getLogger(__name__)

_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def copy_field(raw: str) -> str | None:
    """One field of COPY's text format, its backslash escapes undone; None for ``\\N``."""
    if raw == "\\N":
        return None
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\" or i + 1 == len(raw):
            out.append(ch)
            i += 1
            continue
        nxt = raw[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "01234567":
            j = i + 1
            while j < len(raw) and j < i + 4 and raw[j] in "01234567":
                j += 1
            out.append(chr(int(raw[i + 1 : j], 8)))
            i = j
        elif nxt == "x" and i + 2 < len(raw) and raw[i + 2] in "0123456789abcdefABCDEF":
            j = i + 2
            while j < len(raw) and j < i + 4 and raw[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(chr(int(raw[i + 2 : j], 16)))
            i = j
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


@dataclass(frozen=True)
class RestoredIndex:
    """An index definition read from a dump's ``pgvec.indexes``."""

    name: str
    table: str | None  # the table's name as regclass wrote it; None in older dumps
    column: str
    method: str
    metric: str
    options: dict[str, object] = field(default_factory=dict)

    def create_sql(self) -> str | None:
        """The CREATE INDEX that makes this index again; None if it cannot be written."""
        qualified = parse_index_name(self.table) if self.table else None
        method = self.method.lower()
        if qualified is None or method not in VECTOR_METHODS:
            return None
        try:
            opclass = Metric[self.metric.upper()].opclass
        except KeyError:
            return None
        schema, table = qualified
        target = quote_ident(table)
        if schema is not None:
            target = f"{quote_ident(schema)}.{target}"
        sql = (
            f"CREATE INDEX {quote_ident(self.name)} ON {target} "
            f"USING {method} ({quote_ident(self.column)} {opclass})"
        )
        options = []
        for key, value in self.options.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            options.append(f"{quote_ident(key)} = {value!r}")
        return sql + (f" WITH ({', '.join(options)})" if options else "")


class RestoreSink:
    """Takes the CopyData of a restore's ``COPY pgvec.<table> FROM stdin``."""

    def __init__(self, copy: RestoreCopy) -> None:
        self.copy = copy
        self._data = bytearray()
        self.rows = 0

    def feed(self, chunk: bytes) -> None:
        self._data += chunk

    def finish(self) -> list[RestoredIndex]:
        """The index definitions among the rows (only ``pgvec.indexes`` has any)."""
        lines = [line for line in bytes(self._data).split(b"\n") if line and line != b"\\."]
        self.rows = len(lines)
        if self.copy.table != "indexes" or not self.copy.columns:
            return []
        found: list[RestoredIndex] = []
        for line in lines:
            values = [copy_field(f) for f in line.decode("utf-8", "replace").split("\t")]
            row = dict(zip(self.copy.columns, values, strict=False))
            try:
                # the standby indexes first: the index created last is the one built
                standby = json.loads(row.get("standby") or "[]")
                for made in [*standby, row]:
                    options = made.get("options") or "{}"
                    found.append(
                        RestoredIndex(
                            name=str(made["index_name"]),
                            table=row.get("rel"),
                            column=str(row["column_name"]),
                            method=str(made["method"]),
                            metric=str(row["metric"]),
                            options=dict(
                                json.loads(options) if isinstance(options, str) else options
                            ),
                        )
                    )
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("a dumped pgvec.indexes row cannot be read: %r (%s)", line, exc)
        return found
