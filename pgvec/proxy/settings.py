"""The search settings of a SQL session: pgvector's ``hnsw.ef_search`` and
``ivfflat.probes`` and pgvec's own ``pgvec.*``, as SET gives them.

They belong to the SQL frontend: the core receives only what they mean for one search
(:class:`pgvec.service.request.SearchRequest`'s params, consistency and engine_filter).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pgvec.errors import InvalidParameter

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
