"""Vector values in their three spellings: pgvector text, float arrays, and pgvec's bytea.

The stored form is little-endian float32 without a header (``np.asarray(v, "<f4")``).
"""

from __future__ import annotations

import struct

import numpy as np

from pgvec.errors import (
    DataError,
    DimensionMismatch,
    InvalidVector,
    NonFiniteVector,
    TooManyDimensions,
)

# Type OIDs of parameter values the proxy converts into vectors.
BYTEA_OID = 17
BYTEA_ARRAY_OID = 1001
TEXT_OID = 25
UNKNOWN_OID = 0
FLOAT4_ARRAY_OID = 1021
FLOAT8_ARRAY_OID = 1022
NUMERIC_ARRAY_OID = 1231
ARRAY_OIDS = frozenset({FLOAT4_ARRAY_OID, FLOAT8_ARRAY_OID, NUMERIC_ARRAY_OID, 1005, 1007, 1016})


def check_finite(v: np.ndarray) -> None:
    if not np.isfinite(v).all():
        if np.isnan(v).any():
            raise NonFiniteVector("NaN not allowed in vector")
        raise NonFiniteVector("infinite value not allowed in vector")


def check_dim(v: np.ndarray, dim: int | None) -> None:
    if dim is not None and v.shape[0] != dim:
        raise DimensionMismatch(f"expected {dim} dimensions, not {v.shape[0]}")


#: pgvector's limit for the vector type; pgvec's engine has none below it
MAX_DIM = 16000
_F32_MAX = float(np.finfo(np.float32).max)


def parse_text(text: str, dim: int | None = None, *, braces: bool = False) -> np.ndarray:
    """Parse pgvector's text form ``'[1,2.5,3]'`` (and ``{...}`` array text if ``braces``),
    with pgvector's errors (messages, details and SQLSTATEs as ``vector_in`` raises them).
    """
    s = text.strip()
    pairs = {"[": "]", "{": "}"} if braces else {"[": "]"}
    if not s or s[0] not in pairs:
        raise _malformed(text, 'Vector contents must start with "[".')
    close = pairs[s[0]]
    body = s[1:]
    if body.lstrip().startswith(close):
        raise DimensionMismatch("vector must have at least 1 dimension")
    end = body.find(close)
    items = (body if end < 0 else body[:end]).split(",")
    try:
        if "_" in s:  # float() takes 1_000; vector_in does not
            raise ValueError(s)
        values = np.array([float(item) for item in items], dtype=np.float64)
    except ValueError:
        raise _item_error(text, items, end < 0) from None
    if not np.isfinite(values).all() or (np.abs(values) > _F32_MAX).any():
        bad = values[~np.isfinite(values) | (np.abs(values) > _F32_MAX)][0]
        if np.isnan(bad):
            raise NonFiniteVector("NaN not allowed in vector")
        raise NonFiniteVector("infinite value not allowed in vector")
    if end < 0:
        raise _malformed(text, "Unexpected end of input.")
    if body[end + 1 :].strip():
        raise _malformed(text, "Junk after closing right brace.")
    out = values.astype("<f4")
    if out.shape[0] > MAX_DIM:
        raise TooManyDimensions(f"vector cannot have more than {MAX_DIM} dimensions")
    check_dim(out, dim)
    return out


def _item_error(text: str, items: list[str], unterminated: bool) -> DataError:
    """The error vector_in raises for the first item that is not a finite number."""
    for i, item in enumerate(items):
        item = item.strip()
        if not item:
            if unterminated and i == len(items) - 1:
                return _malformed(text, "Unexpected end of input.")
            return _malformed(text)
        try:
            if "_" in item:
                raise ValueError(item)
            value = float(item)
        except ValueError:
            break
        if value != value:
            return NonFiniteVector("NaN not allowed in vector")
        if abs(value) > _F32_MAX:
            return NonFiniteVector("infinite value not allowed in vector")
    return InvalidVector(f'invalid input syntax for type vector: "{text}"')


def _malformed(text: str, detail: str | None = None) -> InvalidVector:
    return InvalidVector(f'malformed vector literal: "{text}"', detail=detail)


def parse_vector_text(text: str, dim: int | None = None) -> bytes:
    """pgvector's text input as the stored bytes (little-endian float32)."""
    return to_bytes(parse_text(text, dim))


def to_bytes(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype="<f4").tobytes()


def from_bytes(data: bytes, dim: int | None = None) -> np.ndarray:
    if len(data) % 4:
        raise InvalidVector(f"vector bytea length {len(data)} is not a multiple of 4")
    v = np.frombuffer(data, dtype="<f4")
    check_dim(v, dim)
    check_finite(v)
    return v


def to_text(v: np.ndarray) -> str:
    """pgvector's text output: shortest float32 round-trip spelling."""
    parts = []
    for x in np.asarray(v, dtype=np.float32):
        r = repr(float(x))
        # shortest repr that round-trips *as float32*
        for digits in range(1, 10):
            cand = f"{float(x):.{digits}g}"
            if np.float32(cand) == x:
                r = cand
                break
        parts.append(r)
    return "[" + ",".join(parts) + "]"


def to_pgvector_binary(stored: bytes) -> bytes:
    """The stored bytes as pgvector's binary wire format: int16 dimensions, int16 unused
    (0), then the values as big-endian float4 (what ``vector_send`` writes)."""
    values = np.frombuffer(stored, "<f4").astype(">f4")
    return struct.pack("!hh", len(stored) // 4, 0) + values.tobytes()


def is_pgvector_binary(data: bytes, dim: int | None = None) -> bool:
    """Whether ``data`` has pgvector's binary framing (and ``dim`` values, if given).

    The stored form of a vector of ``dim`` values is 4 bytes shorter, so the two are told
    apart by length when the dimension is known; without it, by the header alone.
    """
    if len(data) < 8 or (len(data) - 4) % 4:
        return False
    n, unused = struct.unpack_from("!hh", data, 0)
    return unused == 0 and n == (len(data) - 4) // 4 and (dim is None or n == dim)


def from_pgvector_binary(data: bytes, dim: int | None = None) -> np.ndarray:
    """pgvector's binary wire format -> float32 values (checked like any input)."""
    if not is_pgvector_binary(data):
        raise InvalidVector("invalid binary data for type vector")
    v = np.frombuffer(data, ">f4", offset=4).astype("<f4")
    check_dim(v, dim)
    check_finite(v)
    return v


def bytea_hex(v: np.ndarray) -> str:
    """The bytea text (hex) form, as sent in a text-format parameter."""
    return "\\x" + to_bytes(v).hex()


def bytea_literal(v: np.ndarray | bytes) -> str:
    """A SQL literal for the vector: ``'\\x...'::bytea``."""
    data = v if isinstance(v, bytes) else to_bytes(v)
    return "'\\x" + data.hex() + "'::bytea"


def _binary_array(data: bytes) -> np.ndarray:
    ndim, _flags, elem_oid = struct.unpack_from("!iiI", data, 0)
    if ndim == 0:
        raise DimensionMismatch("vector must have at least 1 dimension")
    if ndim != 1:
        raise InvalidVector("a vector parameter must be a one-dimensional array")
    (n, _lb) = struct.unpack_from("!ii", data, 12)
    pos = 20
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        (length,) = struct.unpack_from("!i", data, pos)
        pos += 4
        if length < 0:
            raise InvalidVector("a vector cannot contain NULL")
        chunk = data[pos : pos + length]
        pos += length
        if elem_oid == 701:
            out[i] = struct.unpack("!d", chunk)[0]
        elif elem_oid == 700:
            out[i] = struct.unpack("!f", chunk)[0]
        elif elem_oid in (20, 23, 21):
            out[i] = int.from_bytes(chunk, "big", signed=True)
        else:
            raise InvalidVector(f"cannot read a vector from an array of type oid {elem_oid}")
    return out


def from_param(
    value: bytes, fmt: int, type_oid: int, dim: int | None = None, face_oid: int | None = None
) -> np.ndarray:
    """Decode a Bind parameter that stands for a vector.

    Text format: pgvector text ``[..]``, array text ``{..}`` or bytea hex ``\\x..``.
    Binary format: pgvector's (``type_oid`` is the vector type, or the value has its
    framing and length), bytea (the stored bytes) or a float/int array.
    """
    if fmt == 0:
        text = value.decode("utf-8", "replace")
        if text.startswith("\\x"):
            try:
                raw = bytes.fromhex(text[2:])
            except ValueError:
                raise InvalidVector(f'invalid input syntax for type vector: "{text}"') from None
            return from_bytes(raw, dim)
        return parse_text(text, dim, braces=True)
    if type_oid in ARRAY_OIDS:
        v64 = _binary_array(value)
        check_finite(v64)
        v = v64.astype("<f4")
        check_dim(v, dim)
        return v
    if is_pgvector_binary(value, dim) and (dim is not None or type_oid != BYTEA_OID):
        return from_pgvector_binary(value, dim)
    if type_oid != BYTEA_OID and value[:1] == b"[" and value[-1:] == b"]":
        # text in binary format: how asyncpg sends a str for pgvector's type (as an
        # enum's label) when no vector codec is registered
        return parse_text(value.decode("utf-8", "replace"), dim)
    if type_oid == face_oid:
        return from_pgvector_binary(value, dim)
    return from_bytes(value, dim)
