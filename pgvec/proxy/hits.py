"""Encoding search hits as PostgreSQL arrays, for parameters or literals of the
rewritten statement they are spliced into."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from pgvec.engine.collection import Key
from pgvec.service.filtering import keys_param

_FLOAT8_OID = 701
_ARRAY_HEAD = struct.Struct("!iiiii")  # ndim, has nulls, element type, length, lower bound
_FLOAT8_ITEM = np.dtype([("len", ">i4"), ("value", ">f8")])
_NO_FLOAT8 = struct.pack("!iii", 0, 0, _FLOAT8_OID)  # an empty float8[]


def keys_array(keys: Sequence[Key]) -> str:
    return keys_param(keys).decode()


def distances_array(distances: Sequence[float | None]) -> str:
    """``{...}``; None (the distance to a NULL query vector) is NULL."""
    return "{" + ",".join("NULL" if d is None else repr(float(d)) for d in distances) + "}"


def distances_param(distances: Sequence[float | None]) -> tuple[bytes, int]:
    """The distances as a ``float8[]`` parameter value and its format code: binary (no
    float printed as text, the same doubles) unless one is NULL."""
    if any(d is None for d in distances):
        return distances_array(distances).encode(), 0
    if not distances:
        return _NO_FLOAT8, 1
    items = np.empty(len(distances), _FLOAT8_ITEM)
    items["len"] = 8
    items["value"] = distances
    return _ARRAY_HEAD.pack(1, 0, _FLOAT8_OID, len(items), 1) + items.tobytes(), 1


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
