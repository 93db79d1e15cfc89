"""Encoding search hits as PostgreSQL array text, for parameters or literals of the
rewritten statement they are spliced into."""

from __future__ import annotations

from collections.abc import Sequence

from pgvec.engine.collection import Key
from pgvec.service.filtering import keys_param


def keys_array(keys: Sequence[Key]) -> str:
    return keys_param(keys).decode()


def distances_array(distances: Sequence[float | None]) -> str:
    """``{...}``; None (the distance to a NULL query vector) is NULL."""
    return "{" + ",".join("NULL" if d is None else repr(float(d)) for d in distances) + "}"


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
