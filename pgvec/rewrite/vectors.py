"""Vector text ('[1,2,3]') to float32 bytes and bytea hex literals."""

from __future__ import annotations

import math
import struct

from pgvec.errors import DimensionMismatch, InvalidVector, NonFiniteVector

MAX_DIM = 16000
_F32_MAX = 3.4028234663852886e38


def parse_vector_text(text: str, dim: int | None = None) -> bytes:
    """pgvector's text input: little-endian float32 bytes, or a PgvecError."""
    body = text.strip()
    if len(body) < 2 or body[0] != "[" or body[-1] != "]" or "_" in body:
        raise InvalidVector(f'invalid input syntax for type vector: "{text}"')
    inner = body[1:-1]
    if not inner.strip():
        if dim is not None:
            raise DimensionMismatch(f"expected {dim} dimensions, not 0")
        raise DimensionMismatch("vector must have at least 1 dimension")
    try:
        values = [float(p) for p in inner.split(",")]
    except ValueError:
        raise InvalidVector(f'invalid input syntax for type vector: "{text}"') from None
    for v in values:
        if math.isnan(v):
            raise NonFiniteVector("NaN not allowed in vector")
        if math.isinf(v) or abs(v) > _F32_MAX:
            raise NonFiniteVector("infinite value not allowed in vector")
    if dim is not None and len(values) != dim:
        raise DimensionMismatch(f"expected {dim} dimensions, not {len(values)}")
    if len(values) > MAX_DIM:
        raise DimensionMismatch(f"vector cannot have more than {MAX_DIM} dimensions")
    return struct.pack(f"<{len(values)}f", *values)


def bytea_literal(data: bytes) -> str:
    """A bytea hex literal: ``'\\x0000803f'::bytea``."""
    return f"'\\x{data.hex()}'::bytea"
