"""Search settings of a session and the filter pre-pass of a top-k query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import psycopg
from psycopg import generators, pq

from pgvec.errors import InvalidParameter, UpstreamError

CONSISTENCY_LEVELS = ("strong", "bounded", "eventually")
_BOOLEANS = {"on": True, "true": True, "yes": True, "1": True}
_BOOLEANS |= {"off": False, "false": False, "no": False, "0": False}

#: Every search setting and its default as PostgreSQL shows it (SHOW, current_setting()).
#: hnsw.ef_search and ivfflat.probes show pgvector's defaults; at those values pgvec
#: searches with its own (:data:`pgvec.engine.spec.EF_SEARCH_DEFAULT`,
#: :func:`pgvec.engine.spec.default_nprobe`), which reach pgvector's recall on FAISS.
DEFAULTS: Mapping[str, str] = {
    "hnsw.ef_search": "40",
    "ivfflat.probes": "1",
    "pgvec.consistency": "strong",
    "pgvec.engine_filter": "on",
    # DISKANN's search list (Milvus's search_list); widened to k when smaller
    "pgvec.diskann_search_list": "100",
}


def _engine_int(name: str, value: str | None) -> int | None:
    """An integer setting for the engine; None (the engine's default) at pgvector's."""
    if value is None or value.strip() in ("", DEFAULTS[name]):
        return None
    try:
        return int(value.strip().strip("'\""))
    except ValueError:
        raise InvalidParameter(f'invalid value for parameter "{name}": "{value}"') from None


@dataclass
class SearchSettings:
    """Per-session search knobs, set with SET like pgvector's."""

    ef_search: int | None = None
    probes: int | None = None
    consistency: str = "strong"
    #: evaluate a WHERE clause over mirrored scalar columns in the engine when it can
    engine_filter: bool = True
    diskann_search_list: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_values(cls, values: Mapping[str, str | None]) -> SearchSettings:
        """The settings of a session whose ``current_setting(name, true)`` are ``values``
        (None or empty: the default)."""
        settings = cls()
        for name, value in values.items():
            settings.apply(name, value or None)
        return settings

    @staticmethod
    def check(name: str, value: str | None) -> None:
        """Raise InvalidParameter unless ``SET name = value`` is valid."""
        SearchSettings().apply(name, value)

    def apply(self, name: str, value: str | None) -> None:
        """Mirror ``SET name = value`` (``None`` for RESET)."""
        name = name.lower()
        if name in ("hnsw.ef_search", "ivfflat.probes"):
            number = _engine_int(name, value)
            if name == "hnsw.ef_search":
                self.ef_search = number
            else:
                self.probes = number
        elif name == "pgvec.diskann_search_list":
            self.diskann_search_list = _engine_int(name, value)
        elif name == "pgvec.consistency":
            level = "strong" if value is None else value.strip("'\"").lower()
            if level not in CONSISTENCY_LEVELS:
                raise InvalidParameter(
                    f'invalid value for parameter "pgvec.consistency": "{value}"',
                    hint="Available values: strong, bounded, eventually.",
                )
            self.consistency = level
        elif name == "pgvec.engine_filter":
            word = "on" if value is None else value.strip("'\"").lower()
            if word not in _BOOLEANS:
                raise InvalidParameter(
                    f'parameter "pgvec.engine_filter" requires a Boolean value, not "{value}"'
                )
            self.engine_filter = _BOOLEANS[word]
        elif value is None:
            self.extra.pop(name, None)
        else:
            self.extra[name] = value

    def search_options(self) -> dict[str, int]:
        opts: dict[str, int] = {}
        if self.ef_search is not None:
            opts["ef_search"] = self.ef_search
        if self.probes is not None:
            opts["probes"] = self.probes
        if self.diskann_search_list is not None:
            opts["search_list"] = self.diskann_search_list
        return opts


@dataclass(frozen=True)
class FilterArgs:
    """The statements returning the keys a WHERE clause admits (all of them, and those of
    a candidate array given as one more parameter), with the client's values."""

    sql: str
    probe_sql: str | None
    values: list[bytes | None]
    types: list[int]
    formats: list[int]


class ClientSQL(Protocol):
    """Runs SQL derived from a client's statement in that client's own session (its role,
    snapshot, transaction and settings). The SQL frontend runs it on the client's backend
    connection; anything else runs it on a connection opened as the client."""

    async def rows(
        self,
        sql: str,
        values: Sequence[bytes | None],
        types: Sequence[int],
        formats: Sequence[int],
        *,
        binary: bool,
    ) -> list[list[bytes | None]]:
        """The rows ``sql`` returns, each value in text (or binary, if ``binary``) format;
        raises on PostgreSQL's error."""
        ...


class ConnectionSQL:
    """``ClientSQL`` over a psycopg connection opened as the client."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def rows(
        self,
        sql: str,
        values: Sequence[bytes | None],
        types: Sequence[int],
        formats: Sequence[int],
        *,
        binary: bool,
    ) -> list[list[bytes | None]]:
        pgconn = self._conn.pgconn
        pgconn.send_query_params(
            sql.encode(), list(values), list(types), list(formats), int(binary)
        )
        results = await self._conn.wait(generators.execute(pgconn))
        res = results[-1]
        if res.status != pq.ExecStatus.TUPLES_OK:
            code = (res.error_field(pq.DiagnosticField.SQLSTATE) or b"XX000").decode()
            msg = (res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode()
            raise UpstreamError(code, msg)
        return [[res.get_value(i, j) for j in range(res.nfields)] for i in range(res.ntuples)]
