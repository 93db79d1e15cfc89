"""Which binary form of vectors an asyncpg client can read.

pgvec's ``vector`` type is an enum to PostgreSQL (no role but a superuser can create a
base type). asyncpg decodes an enum in binary format as its label, text; with
pgvector-python's ``register_vector`` it decodes pgvector's binary form instead. Both ask
for binary results, so the Bind cannot tell them apart; what asyncpg looked up can:

- without a codec for the type, asyncpg introspects the type's OID the first time a
  result or parameter has it (its query over ``typeinfo_tree``): such a session gets
  vectors as text in binary format, as asyncpg gets pgvector's without a codec;
- ``set_type_codec('vector', ...)`` (register_vector) first looks the type up by name
  (asyncpg's TYPE_BY_NAME query): from then on the session gets pgvector's binary form.

An array of vectors (``vector[]``) asyncpg looks up by its OID together with its
element type, so a lookup of that array alone says "no codec" only until the session
registered one.

Every other client gets pgvector's binary form in binary format.
"""

from __future__ import annotations

import struct
from enum import Enum

_OIDS = struct.Struct("!iiI")


class Lookup(Enum):
    BY_OID = "by_oid"  # asyncpg's INTRO_LOOKUP_TYPES: $1 = oid[]
    BY_NAME = "by_name"  # asyncpg's TYPE_BY_NAME: $1 = type name, $2 = schema


def lookup_kind(sql: str) -> Lookup | None:
    """Whether ``sql`` is one of asyncpg's type lookups (cheap: substring tests)."""
    if "typeinfo_tree" in sql and "WITH RECURSIVE" in sql:
        return Lookup.BY_OID
    if "t.typname = $1 AND ns.nspname = $2" in sql:
        return Lookup.BY_NAME
    return None


def oid_array(value: bytes, fmt: int) -> list[int]:
    """An ``oid[]`` parameter's values (binary or text format); [] if unreadable."""
    try:
        if fmt == 0:
            body = value.decode().strip("{}")
            return [int(x) for x in body.split(",") if x]
        ndim, _flags, _elem = _OIDS.unpack_from(value, 0)
        if ndim != 1:
            return []
        (n,) = struct.unpack_from("!i", value, 12)
        pos, out = 20, []
        for _ in range(n):
            (length,) = struct.unpack_from("!i", value, pos)
            pos += 4
            if length == 4:
                out.append(struct.unpack_from("!I", value, pos)[0])
            pos += max(length, 0)
        return out
    except (ValueError, struct.error, UnicodeDecodeError):
        return []
