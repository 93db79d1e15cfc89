"""Columns of rows between Milvus's ``FieldData`` and what PostgreSQL stores.

Insert and Upsert send one ``FieldData`` per field (all rows of a column together);
Search and Query answer the same way. Values go to PostgreSQL as whole arrays
(``unnest``), vectors as the little-endian float32 ``bytea`` the SQL side uses, binary
vectors as their dim / 8 packed bytes (Milvus's ``binary_vector``, as they came).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymilvus.grpc_gen import schema_pb2

from pgvec.milvus.schema import DT, DYNAMIC, FLOAT_VECTORS, Field
from pgvec.milvus.status import ParameterInvalid

#: what stands in a result column for a null
_FILLERS: dict[int, Any] = {
    DT.Bool: False,
    DT.Int8: 0,
    DT.Int16: 0,
    DT.Int32: 0,
    DT.Int64: 0,
    DT.Float: 0.0,
    DT.Double: 0.0,
    DT.String: "",
    DT.VarChar: "",
    DT.JSON: {},
}
_SCALAR_SLOTS: dict[int, str] = {
    DT.Bool: "bool_data",
    DT.Int8: "int_data",
    DT.Int16: "int_data",
    DT.Int32: "int_data",
    DT.Int64: "long_data",
    DT.Float: "float_data",
    DT.Double: "double_data",
    DT.String: "string_data",
    DT.VarChar: "string_data",
    DT.JSON: "json_data",
}


def vectors_of(data: schema_pb2.FieldData, f: Field) -> np.ndarray:
    """The (rows, dim) float32 vectors of a vector column, checked against the field;
    (rows, dim / 8) uint8 for a binary vector field."""
    v = data.vectors
    which = v.WhichOneof("data")
    dim = v.dim
    if f.is_binary or which == "binary_vector":
        return _bits_of(v, f)
    if which == "float_vector":  # a float16 / bfloat16 field given float32: rounded
        flat = _round_to(np.asarray(v.float_vector.data, dtype=np.float32), f.type)
    elif which == "float16_vector" and f.type == DT.Float16Vector:
        flat = np.frombuffer(v.float16_vector, dtype="<f2").astype(np.float32)
    elif which == "bfloat16_vector" and f.type == DT.BFloat16Vector:
        raw = np.frombuffer(v.bfloat16_vector, dtype="<u2").astype(np.uint32) << 16
        flat = raw.view(np.float32)
    else:
        raise ParameterInvalid(
            f"the data type of field {f.name} is {DT.Name(f.type)}, "
            f"but {which or 'no vector'} data was given"
        )
    if dim != f.dim:
        raise ParameterInvalid(f"vector field '{f.name}' expected dim {f.dim}, got {dim}")
    if dim == 0 or flat.size % dim:
        raise ParameterInvalid(f"the vectors of field {f.name} do not divide into dim {dim}")
    out = flat.reshape(-1, dim)
    if not np.isfinite(out).all():
        raise ParameterInvalid(f"field {f.name} holds NaN or infinite values")
    return out


def _bits_of(v: schema_pb2.VectorField, f: Field) -> np.ndarray:
    which = v.WhichOneof("data")
    if which != "binary_vector" or not f.is_binary:
        raise ParameterInvalid(
            f"the data type of field {f.name} is {DT.Name(f.type)}, "
            f"but {which or 'no vector'} data was given"
        )
    if v.dim != f.dim:
        raise ParameterInvalid(f"vector field '{f.name}' expected dim {f.dim}, got {v.dim}")
    width = f.dim // 8
    raw = np.frombuffer(v.binary_vector, dtype=np.uint8)
    if raw.size % width:
        raise ParameterInvalid(f"the vectors of field {f.name} do not divide into dim {f.dim}")
    return raw.reshape(-1, width)


def _round_to(flat: np.ndarray, kind: int) -> np.ndarray:
    if kind == DT.Float16Vector:
        return flat.astype("<f2").astype(np.float32)
    if kind == DT.BFloat16Vector:
        bits = (flat.view(np.uint32) + 0x7FFF + ((flat.view(np.uint32) >> 16) & 1)) & 0xFFFF0000
        return bits.astype(np.uint32).view(np.float32)
    return flat


def vector_cells(vectors: np.ndarray) -> list[bytes]:
    """One ``bytea`` value per row: little-endian float32, as the SQL side stores them
    (uint8 rows of packed bits as they are)."""
    dtype = np.uint8 if vectors.dtype == np.uint8 else "<f4"
    data = np.ascontiguousarray(vectors, dtype=dtype)
    width = data.shape[1] * data.itemsize
    raw = data.tobytes()
    return [raw[i : i + width] for i in range(0, len(raw), width)]


def scalars_of(data: schema_pb2.FieldData, f: Field, rows: int, default: Any = None) -> list[Any]:
    """A scalar, JSON or ARRAY column's values (None for nulls, ``default`` where the
    field has a default value), checked against the field."""
    s = data.scalars
    if f.is_array:
        values: list[Any] = [_array_values(cell, f) for cell in s.array_data.data]
        if f.max_capacity:
            for i, v in enumerate(values):
                if len(v) > f.max_capacity:
                    raise ParameterInvalid(
                        f"the length ({len(v)}) of {i}th array exceeds max capacity"
                        f" ({f.max_capacity}) of field {f.name}"
                    )
    else:
        slot = _SCALAR_SLOTS.get(f.type)
        which = s.WhichOneof("data")
        if slot is None or which != slot:
            raise ParameterInvalid(
                f"the data type of field {f.name} is {DT.Name(f.type)}, "
                f"but {which or 'no'} data was given"
            )
        values = list(getattr(s, slot).data)
        if f.type == DT.JSON:
            values = [_json_text(v, f.name) for v in values]
        elif f.type == DT.VarChar:
            for v in values:
                if len(v) > f.max_length:
                    raise ParameterInvalid(
                        f"the length ({len(v)}) of {f.name} field exceeds max length "
                        f"({f.max_length})"
                    )
    valid = list(data.valid_data)
    if valid:
        if len(valid) != rows:
            raise ParameterInvalid(f"the valid_data of field {f.name} has the wrong length")
        if not f.nullable and default is None and not all(valid):
            raise ParameterInvalid(f"field {f.name} is not nullable, but a value is null")
        present = iter(values)
        values = [next(present) if ok else default for ok in valid]
    if len(values) != rows:
        raise ParameterInvalid(
            f"the number of rows of field {f.name} ({len(values)}) is not num_rows ({rows})"
        )
    return values


def _array_values(cell: schema_pb2.ScalarField, f: Field) -> list[Any]:
    which = cell.WhichOneof("data")
    slot = _SCALAR_SLOTS.get(f.element_type)
    if which is None:
        return []
    if slot is None or which != slot:
        raise ParameterInvalid(
            f"the element type of array field {f.name} is {DT.Name(f.element_type)}, "
            f"but {which} was given"
        )
    return list(getattr(cell, slot).data)


def _json_text(raw: bytes, name: str) -> str:
    try:
        text = raw.decode()
        json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise ParameterInvalid(f"field {name} holds invalid JSON: {raw[:40]!r}") from None
    return text


def dynamic_of(data: schema_pb2.FieldData) -> list[str]:
    """The ``$meta`` column's rows: one JSON object per row."""
    values = [_json_text(v, DYNAMIC) for v in data.scalars.json_data.data]
    for text in values:
        if not text.lstrip().startswith("{"):
            raise ParameterInvalid("the dynamic field must hold a JSON object per row")
    return values


# ------------------------------------------------------------ answers


def column_data(f: Field, values: Sequence[Any]) -> schema_pb2.FieldData:
    """A result column of ``f``, from the values psycopg read (None for NULL)."""
    out = schema_pb2.FieldData(type=f.type, field_name=f.name, field_id=f.field_id)
    if f.nullable:
        out.valid_data.extend(v is not None for v in values)
    # a null scalar keeps its place (pymilvus reads row i at i), a null vector does not
    if f.is_vector:
        present = [v for v in values if v is not None]
    else:
        filler = _FILLERS.get(f.type, [] if f.is_array else None)
        present = [filler if v is None else v for v in values]
    if f.is_binary:
        out.vectors.dim = f.dim
        out.vectors.binary_vector = b"".join(present)
        return out
    if f.type in FLOAT_VECTORS:
        out.vectors.dim = f.dim
        raw = b"".join(present)
        floats = np.frombuffer(raw, dtype="<f4")
        if f.type == DT.FloatVector:
            out.vectors.float_vector.data.extend(floats.tolist())
        elif f.type == DT.Float16Vector:
            out.vectors.float16_vector = floats.astype("<f2").tobytes()
        else:
            bits = (floats.view(np.uint32) >> 16).astype("<u2")
            out.vectors.bfloat16_vector = bits.tobytes()
        return out
    if f.is_array:
        slot = _SCALAR_SLOTS[f.element_type]
        out.scalars.array_data.element_type = f.element_type
        for v in present:
            cell = out.scalars.array_data.data.add()
            getattr(cell, slot).data.extend(v)
        return out
    slot = _SCALAR_SLOTS[f.type]
    if f.type == DT.JSON:
        present = [json.dumps(v, separators=(",", ":")).encode() for v in present]
    elif f.type in (DT.VarChar, DT.String):
        present = [v if isinstance(v, str) else str(v) for v in present]
    getattr(out.scalars, slot).data.extend(present)
    return out


def dynamic_data(objects: Sequence[dict[str, Any]]) -> schema_pb2.FieldData:
    """The ``$meta`` result column: the asked-for dynamic keys of each row."""
    out = schema_pb2.FieldData(type=DT.JSON, field_name=DYNAMIC, is_dynamic=True)
    out.scalars.json_data.data.extend(
        json.dumps(o, separators=(",", ":")).encode() for o in objects
    )
    return out
