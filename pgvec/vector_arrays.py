"""Arrays of vectors (pgvector's ``vector[]``) on the wire.

pgvec stores such a column as ``bytea[]`` (each element a vector's float32 bytes, as a
vector column stores it). Clients send and read pgvector's forms: in text, an array
literal of pgvector's text forms, ``{"[1,2,3]","[4,5,6]"}``; in binary, PostgreSQL's
array format whose element type is the vector type and whose elements are in pgvector's
binary format. These functions turn one form into the other, element by element,
keeping the array's shape (dimensions, bounds, NULLs).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

import numpy as np

from pgvec import vectors
from pgvec.errors import InvalidVector

_HEADER = struct.Struct("!iiI")  # ndim, has-nulls flag, element type OID
_INT = struct.Struct("!i")

#: a bytea element of PostgreSQL's array text output (hex format, quoted: ``"\\x..."``)
_HEX_ELEMENT = re.compile(rb'"\\\\x([0-9a-fA-F]*)"')

Element = Callable[[bytes], bytes]


def text_out(value: bytes) -> bytes:
    """PostgreSQL's text form of a ``bytea[]`` -> pgvector's of a ``vector[]``."""

    def element(match: re.Match[bytes]) -> bytes:
        text = vectors.to_text(np.frombuffer(bytes.fromhex(match[1].decode()), "<f4"))
        # quoted where PostgreSQL's array output quotes: a vector of several values
        return ('"' + text + '"' if "," in text else text).encode()

    return _HEX_ELEMENT.sub(element, value)


def binary_out(value: bytes, element_oid: int, element: Element) -> bytes:
    """PostgreSQL's binary form of a ``bytea[]`` -> a ``vector[]``'s (element type
    ``element_oid``, the vector type's), each element as ``element`` gives it."""
    return _map_binary(value, element_oid, element)


def binary_in(value: bytes, dim: int | None) -> bytes:
    """A ``vector[]`` parameter in binary format -> the ``bytea[]`` PostgreSQL reads."""

    def element(data: bytes) -> bytes:
        if data[:1] == b"[" and data[-1:] == b"]":
            # text in binary format: how asyncpg sends a str element of pgvector's type
            # (an enum's label to it) when no vector codec is registered. (pgvector's binary
            # form never starts with "[": that would be over 23,000 dimensions.)
            return vectors.to_bytes(vectors.parse_text(data.decode("utf-8", "replace"), dim))
        return vectors.to_bytes(vectors.from_pgvector_binary(data, dim))

    try:
        return _map_binary(value, vectors.BYTEA_OID, element)
    except struct.error:
        raise InvalidVector("invalid binary data for an array of vectors") from None


def text_in(value: bytes, dim: int | None) -> bytes:
    """A ``vector[]`` parameter in text format (``{"[1,2]","[3,4]"}``) -> the ``bytea[]``
    text PostgreSQL reads (``{"\\\\x0000803f..."}``)."""
    text = value.decode("utf-8", "replace")
    out: list[str] = []
    i, n, depth = 0, len(text), 0
    if text.startswith("["):  # explicit bounds: [1:2]={...}
        eq = text.find("=")
        if eq < 0:
            raise _malformed(text)
        out.append(text[: eq + 1])
        i = eq + 1
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "{":
            depth += 1
            out.append(c)
            i += 1
        elif c in "},":
            if c == "}":
                depth -= 1
            out.append(c)
            i += 1
        elif depth == 0:
            raise _malformed(text)
        else:
            element, i = _element(text, i)
            if element is None:
                out.append("NULL")
            else:
                vec = vectors.parse_text(element, dim)
                out.append('"\\\\x' + vectors.to_bytes(vec).hex() + '"')
    if depth != 0 or not out or out[-1] != "}":
        raise _malformed(text)
    return "".join(out).encode()


def _element(text: str, i: int) -> tuple[str | None, int]:
    """One element of an array literal at ``text[i]``: its value (None for NULL) and
    where the text after it starts."""
    if text[i] == '"':
        chars: list[str] = []
        i += 1
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            chars.append(text[i])
            i += 1
        if i >= len(text):
            raise _malformed(text)
        return "".join(chars), i + 1
    j = i
    while j < len(text) and text[j] not in ",}":
        j += 1
    word = text[i:j].strip()  # (an unquoted vector of several values is cut at its commas)
    return (None if word.upper() == "NULL" else word), j


def _malformed(text: str) -> InvalidVector:
    return InvalidVector(f'malformed array literal: "{text[:200]}"')


def _map_binary(value: bytes, elem_oid: int, element: Element) -> bytes:
    ndim, flags, _ = _HEADER.unpack_from(value, 0)
    if ndim < 0 or ndim > 6:
        raise struct.error("bad dimensions")
    pos = _HEADER.size + 8 * ndim
    parts = [_HEADER.pack(ndim, flags, elem_oid), value[_HEADER.size : pos]]
    while pos < len(value):
        (length,) = _INT.unpack_from(value, pos)
        pos += 4
        if length < 0:
            parts.append(_INT.pack(-1))
            continue
        if pos + length > len(value):
            raise struct.error("short element")
        out = element(value[pos : pos + length])
        parts.append(_INT.pack(len(out)))
        parts.append(out)
        pos += length
    return b"".join(parts)
