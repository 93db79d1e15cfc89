"""Arrays of vectors on the wire (pgvec.vector_arrays): pgvector's forms to the stored
``bytea[]`` and back, checked against PostgreSQL's own reading of what is produced."""

from __future__ import annotations

import struct

import numpy as np
import psycopg
import pytest

from pgvec import vector_arrays, vectors
from pgvec.errors import DimensionMismatch, InvalidVector

FACE = 90001  # the vector type's OID, as a test stands it in


def _stored(*values: float) -> str:
    """One element as PostgreSQL's text form of a bytea[] holds it."""
    return '"\\\\x' + vectors.to_bytes(np.array(values, "<f4")).hex() + '"'


@pytest.mark.parametrize(
    ("given", "stored", "shown"),
    [
        (
            '{"[1,2]","[3.5,4]"}',
            "{" + _stored(1, 2) + "," + _stored(3.5, 4) + "}",
            '{"[1,2]","[3.5,4]"}',
        ),
        ("{[1],NULL}", "{" + _stored(1) + ",NULL}", "{[1],NULL}"),
        (' { "[1, 2]" , null } ', "{" + _stored(1, 2) + ",NULL}", '{"[1,2]",NULL}'),
        ("{}", "{}", "{}"),
        ('{{"[1]"},{"[2]"}}', "{{" + _stored(1) + "},{" + _stored(2) + "}}", "{{[1]},{[2]}}"),
        ('[0:1]={"[1]","[2]"}', "[0:1]={" + _stored(1) + "," + _stored(2) + "}", "[0:1]={[1],[2]}"),
    ],
)
def test_text_both_ways(given: str, stored: str, shown: str, conn: psycopg.Connection) -> None:
    """Into the stored form, which PostgreSQL reads as that bytea[]; and PostgreSQL's
    output of it back to pgvector's (quoted as PostgreSQL quotes array elements)."""
    out = vector_arrays.text_in(given.encode(), None)
    assert out.decode() == stored
    row = conn.execute("SELECT %s::text::bytea[]::text", (stored,)).fetchone()
    assert row is not None
    assert vector_arrays.text_out(row[0].encode()).decode() == shown


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ('{"[1,2]"', "malformed array literal"),
        ('"[1,2]"', "malformed array literal"),
        ('{"[1,2]}', "malformed array literal"),
        ("{[1,2]}", "malformed vector literal"),
        ('{"[1,x]"}', "invalid input syntax for type vector"),
        ("[1:1]", "malformed array literal"),
    ],
)
def test_text_in_refuses(given: str, error: str) -> None:
    with pytest.raises(InvalidVector, match=error):
        vector_arrays.text_in(given.encode(), None)


def test_text_in_checks_the_dimension() -> None:
    with pytest.raises(DimensionMismatch, match="expected 2 dimensions, not 3"):
        vector_arrays.text_in(b'{"[1,2,3]"}', 2)


def _binary_array(elem_oid: int, elements: list[bytes | None], dims: list[int]) -> bytes:
    head = struct.pack("!iiI", len(dims), int(None in elements), elem_oid)
    head += b"".join(struct.pack("!ii", n, 1) for n in dims)
    body = b"".join(
        struct.pack("!i", -1) if e is None else struct.pack("!i", len(e)) + e for e in elements
    )
    return head + body


def test_binary_both_ways() -> None:
    a, b = np.array([1.5, 2, 3], "<f4"), np.array([4, 5, 6], "<f4")
    client = _binary_array(
        FACE,
        [vectors.to_pgvector_binary(a.tobytes()), None, vectors.to_pgvector_binary(b.tobytes())],
        [3],
    )
    stored = vector_arrays.binary_in(client, 3)
    assert stored == _binary_array(vectors.BYTEA_OID, [a.tobytes(), None, b.tobytes()], [3])
    back = vector_arrays.binary_out(stored, FACE, vectors.to_pgvector_binary)
    assert back == client


def test_binary_in_takes_text_elements() -> None:
    """asyncpg without a vector codec: a binary array whose elements are text."""
    client = _binary_array(FACE, [b"[1,2]", None], [2])
    stored = vector_arrays.binary_in(client, 2)
    assert stored == _binary_array(
        vectors.BYTEA_OID, [np.array([1, 2], "<f4").tobytes(), None], [2]
    )


def test_binary_in_refuses() -> None:
    good = _binary_array(FACE, [vectors.to_pgvector_binary(np.ones(2, "<f4").tobytes())], [1])
    with pytest.raises(DimensionMismatch, match="expected 3 dimensions, not 2"):
        vector_arrays.binary_in(good, 3)
    with pytest.raises(InvalidVector, match="invalid binary data for an array of vectors"):
        vector_arrays.binary_in(good[:-3], None)
    with pytest.raises(InvalidVector, match="invalid binary data for an array of vectors"):
        vector_arrays.binary_in(b"\x00\x00", None)
