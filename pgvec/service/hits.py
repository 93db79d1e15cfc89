"""Encoding search hits as PostgreSQL array text, for parameters or literals."""

from __future__ import annotations

from collections.abc import Sequence

from pgvec.engine.collection import Key


def _element(key: Key) -> str:
    if isinstance(key, int):
        return str(key)
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def keys_array(keys: Sequence[Key]) -> str:
    return "{" + ",".join(_element(k) for k in keys) + "}"


def distances_array(distances: Sequence[float]) -> str:
    return "{" + ",".join(repr(float(d)) for d in distances) + "}"


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
