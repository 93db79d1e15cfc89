"""asyncpg's type lookups, as the proxy recognises them (pgvec/proxy/codecs.py)."""

from __future__ import annotations

import struct

from asyncpg import introspection

from pgvec.proxy.codecs import Lookup, lookup_kind, oid_array


def test_asyncpgs_own_queries_are_recognised() -> None:
    assert lookup_kind(introspection.INTRO_LOOKUP_TYPES) is Lookup.BY_OID
    assert lookup_kind(introspection.INTRO_LOOKUP_TYPES_13) is Lookup.BY_OID
    assert lookup_kind(introspection.TYPE_BY_NAME) is Lookup.BY_NAME
    assert lookup_kind("SELECT oid FROM pg_type WHERE typname = 'vector'") is None


def test_oid_arrays() -> None:
    binary = struct.pack("!iiIii", 1, 0, 26, 3, 1) + b"".join(
        struct.pack("!iI", 4, oid) for oid in (16384, 25, 99999)
    )
    assert oid_array(binary, 1) == [16384, 25, 99999]
    assert oid_array(b"{16384,25}", 0) == [16384, 25]
    assert oid_array(b"\x00", 1) == []
