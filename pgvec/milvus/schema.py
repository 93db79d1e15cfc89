"""Milvus collection schemas as PostgreSQL tables, and tables as Milvus schemas.

A collection is a table in the schema of its Milvus database (``default`` is ``public``):
one column per field, the primary key as the table's primary key, JSON as ``jsonb``,
ARRAY as a PostgreSQL array, FLOAT_VECTOR (and FLOAT16 / BFLOAT16_VECTOR, widened to
float32 on the way in: exact) as the same checked ``bytea`` the SQL side uses,
BINARY_VECTOR as a ``bytea`` of dim / 8 bytes checked by ``pgvec.is_binary_vector``, and a
dynamic schema's extra keys in a ``jsonb`` column named ``$meta``. What the client
declared is kept in ``pgvec.collections`` and echoed by DescribeCollection; a table made
in SQL is described from its columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from psycopg import sql
from pymilvus.grpc_gen import schema_pb2

from pgvec.milvus.status import ParameterInvalid, Unsupported


class _DataTypes:
    """``schema_pb2.DataType``'s values as plain attributes: protobuf's enum wrapper looks
    each one up through a Python ``__getattr__``, dozens of times a search."""

    def __init__(self) -> None:
        self.__dict__.update(schema_pb2.DataType.items())

    def __getattr__(self, name: str) -> int:  # only reached for names the enum lacks
        raise AttributeError(f"DataType has no value {name}")

    @staticmethod
    def Name(value: int) -> str:  # protobuf's spelling
        return str(schema_pb2.DataType.Name(value))


DT = _DataTypes()
DYNAMIC = "$meta"
FLOAT_VECTORS = frozenset({DT.FloatVector, DT.Float16Vector, DT.BFloat16Vector})
#: scalar Milvus types and the PostgreSQL type of their column
SCALAR_TYPES: dict[int, str] = {
    DT.Bool: "boolean",
    DT.Int8: "smallint",
    DT.Int16: "smallint",
    DT.Int32: "integer",
    DT.Int64: "bigint",
    DT.Float: "real",
    DT.Double: "double precision",
    DT.String: "text",
    DT.JSON: "jsonb",
}
_FROM_PG: dict[str, int] = {
    "boolean": DT.Bool,
    "smallint": DT.Int16,
    "integer": DT.Int32,
    "bigint": DT.Int64,
    "real": DT.Float,
    "double precision": DT.Double,
    "jsonb": DT.JSON,
    "json": DT.JSON,
}
MAX_VARCHAR = 65535
#: Milvus's bound of an ARRAY field's max_capacity
MAX_CAPACITY = 4096
MAX_DIM = 32768
MAX_BINARY_DIM = 65536 - 8  # bits (the engine's bound: dimensions up to 65535)
FIRST_FIELD_ID = 100


@dataclass(frozen=True)
class Field:
    """One field of a collection, and the column that holds it."""

    name: str
    type: int  # schema_pb2.DataType
    column_type: str  # format_type() of the column
    dim: int = 0  # vectors
    max_length: int = 0  # VARCHAR, and VARCHAR elements of an ARRAY
    element_type: int = 0  # ARRAY
    max_capacity: int = 0  # ARRAY (0: not checked, a table made in SQL)
    primary: bool = False
    auto_id: bool = False
    nullable: bool = False
    field_id: int = 0

    @property
    def is_vector(self) -> bool:
        return bool(self.type in FLOAT_VECTORS or self.type == DT.BinaryVector)

    @property
    def is_binary(self) -> bool:
        return bool(self.type == DT.BinaryVector)

    @property
    def is_array(self) -> bool:
        return bool(self.type == DT.Array)


@dataclass(frozen=True)
class Collection:
    """A collection as a request sees it: its table, fields and Milvus state."""

    relid: int
    schema_name: str  # PostgreSQL schema (the Milvus database)
    table: str
    name: str  # as the client named it (an alias resolves to the table's name)
    fields: tuple[Field, ...]
    proto: schema_pb2.CollectionSchema
    dynamic: bool = False
    consistency: int = 2  # Bounded, Milvus's default
    loaded: bool = False
    released: frozenset[str] = frozenset()  # partitions of a loaded collection released
    created_ts: int = 0
    properties: Mapping[str, str] = field(default_factory=dict)
    registered: bool = False  # created through the Milvus API (has a pgvec.collections row)

    @cached_property
    def pk(self) -> Field:
        return next(f for f in self.fields if f.primary)

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @cached_property
    def vectors(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.is_vector)

    @cached_property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema_name, self.table)


def _params(f: schema_pb2.FieldSchema) -> dict[str, str]:
    return {kv.key: kv.value for kv in f.type_params}


def _int_param(f: schema_pb2.FieldSchema, key: str) -> int:
    value = _params(f).get(key)
    if value is None:
        raise ParameterInvalid(f"type param({key}) should be specified for the field({f.name})")
    try:
        return int(value)
    except ValueError:
        raise ParameterInvalid(
            f"the value of type param({key}) of field({f.name}) must be an integer, got {value}"
        ) from None


def field_of(f: schema_pb2.FieldSchema, field_id: int) -> Field:
    """The Field a FieldSchema declares (checked as Milvus checks it)."""
    kind = f.data_type
    if kind in SCALAR_TYPES:
        column = SCALAR_TYPES[kind]
        return Field(
            f.name,
            kind,
            column,
            primary=f.is_primary_key,
            auto_id=f.autoID,
            nullable=f.nullable,
            field_id=field_id,
        )
    if kind == DT.VarChar:
        n = _int_param(f, "max_length")
        if not 0 < n <= MAX_VARCHAR:
            raise ParameterInvalid(
                f"the maximum length specified for the field({f.name}) should be in "
                f"(0, {MAX_VARCHAR}], but got {n} instead"
            )
        return Field(
            f.name,
            kind,
            f"character varying({n})",
            max_length=n,
            primary=f.is_primary_key,
            auto_id=f.autoID,
            nullable=f.nullable,
            field_id=field_id,
        )
    if kind in FLOAT_VECTORS:
        dim = _int_param(f, "dim")
        if not 0 < dim <= MAX_DIM:
            raise ParameterInvalid(
                f"invalid dimension: {dim} of field {f.name}. "
                f"float vector dimension should be in range 2 ~ {MAX_DIM}"
            )
        return Field(f.name, kind, "bytea", dim=dim, nullable=f.nullable, field_id=field_id)
    if kind == DT.BinaryVector:
        dim = _int_param(f, "dim")
        if not 0 < dim <= MAX_BINARY_DIM or dim % 8:
            raise ParameterInvalid(
                f"invalid dimension: {dim} of field {f.name}. binary vector dimension should"
                f" be multiple of 8 and in range 8 ~ {MAX_BINARY_DIM}"
            )
        return Field(f.name, kind, "bytea", dim=dim, nullable=f.nullable, field_id=field_id)
    if kind == DT.Array:
        element = f.element_type
        if element == DT.VarChar:
            n = _int_param(f, "max_length")
            column = f"character varying({n})[]"
        elif element in SCALAR_TYPES and element != DT.JSON:
            n = 0
            column = SCALAR_TYPES[element] + "[]"
        else:
            raise ParameterInvalid(
                f"element type {DT.Name(element)} of field {f.name} is not supported in an array"
            )
        capacity = 0
        if "max_capacity" in _params(f):
            capacity = _int_param(f, "max_capacity")
            if not 0 < capacity <= MAX_CAPACITY:
                raise ParameterInvalid(
                    f"the maximum capacity specified for a Array should be in (0, "
                    f"{MAX_CAPACITY}], but got {capacity} instead (field {f.name})"
                )
        return Field(
            f.name,
            kind,
            column,
            max_length=n,
            element_type=element,
            max_capacity=capacity,
            nullable=f.nullable,
            field_id=field_id,
        )
    raise Unsupported(
        f"data type {DT.Name(kind)} of field {f.name} is not supported by pgvec yet",
    )


def check_schema(proto: schema_pb2.CollectionSchema) -> tuple[Field, ...]:
    """The fields of a schema a client sends to CreateCollection, as Milvus checks them."""
    fields = []
    names: set[str] = set()
    for i, f in enumerate(proto.fields):
        if f.is_dynamic or f.name == DYNAMIC:
            continue
        if not f.name or f.name in names:
            raise ParameterInvalid(
                f"duplicated field name {f.name}" if f.name else "field name should not be empty"
            )
        names.add(f.name)
        fields.append(field_of(f, f.fieldID or FIRST_FIELD_ID + i))
    primaries = [f for f in fields if f.primary]
    if len(primaries) != 1:
        raise ParameterInvalid(
            "primary key is not specified"
            if not primaries
            else "there are more than one primary key"
        )
    pk = primaries[0]
    if pk.type not in (DT.Int64, DT.VarChar):
        raise ParameterInvalid("the data type of primary key should be Int64 or VarChar")
    if pk.auto_id and pk.type != DT.Int64:
        raise ParameterInvalid("only int64 primary key can be auto-generated")
    if proto.autoID and not pk.auto_id and pk.type == DT.Int64:
        fields[fields.index(pk)] = Field(**{**pk.__dict__, "auto_id": True})
    if not any(f.is_vector for f in fields):
        raise ParameterInvalid("schema does not contain vector field")
    return tuple(fields)


def create_table(
    schema_name: str,
    table: str,
    proto: schema_pb2.CollectionSchema,
    fields: Sequence[Field],
    partitioning: tuple[Sequence[sql.Composable], sql.Composable] | None = None,
) -> sql.Composed:
    """CREATE TABLE for a collection's schema; ``partitioning``: the columns and primary
    key to add and the PARTITION BY clause (:func:`pgvec.milvus.partitions.partitioning`)."""
    by_name = {f.name: f for f in proto.fields}
    columns: list[sql.Composable] = []
    for f in fields:
        parts: list[sql.Composable] = [sql.Identifier(f.name), sql.SQL(" " + f.column_type)]
        if f.primary:
            parts.append(sql.SQL(" PRIMARY KEY" if partitioning is None else " NOT NULL"))
            if f.auto_id:
                parts.append(sql.SQL(" DEFAULT pgvec.next_id()"))
        default = default_value(by_name[f.name])
        if default is not None:
            parts.append(sql.SQL(" DEFAULT {}").format(sql.Literal(default)))
        if not f.nullable and not f.primary:
            parts.append(sql.SQL(" NOT NULL"))
        if f.type == DT.Int8:
            parts.append(sql.SQL(" CHECK ({} BETWEEN -128 AND 127)").format(sql.Identifier(f.name)))
        if f.is_vector:
            check = "is_binary_vector" if f.is_binary else "is_vector"
            parts.append(
                sql.SQL(" CHECK (pgvec.{}({}, {}))").format(
                    sql.SQL(check), sql.Identifier(f.name), sql.Literal(f.dim)
                )
            )
        columns.append(sql.Composed(parts))
    if proto.enable_dynamic_field:
        columns.append(sql.SQL("{} jsonb NOT NULL DEFAULT '{{}}'").format(sql.Identifier(DYNAMIC)))
    suffix: sql.Composable = sql.SQL("")
    if partitioning is not None:
        columns.extend(partitioning[0])
        suffix = partitioning[1]
    return sql.SQL("CREATE TABLE {} ({}){}").format(
        sql.Identifier(schema_name, table), sql.SQL(", ").join(columns), suffix
    )


def default_value(f: schema_pb2.FieldSchema) -> object:
    """The field's default value, or None."""
    if not f.HasField("default_value"):
        return None
    which = f.default_value.WhichOneof("data")
    if which is None:
        return None
    value = getattr(f.default_value, which)
    return json.dumps(json.loads(value)) if which == "json_data" else value


def with_field_ids(proto: schema_pb2.CollectionSchema) -> schema_pb2.CollectionSchema:
    """The schema as DescribeCollection answers it: fields numbered from 100, as Milvus
    numbers them, and the dynamic field's ``$meta`` column left out, as pymilvus sent it."""
    out = schema_pb2.CollectionSchema()
    out.CopyFrom(proto)
    for i, f in enumerate(out.fields):
        if not f.fieldID:
            f.fieldID = FIRST_FIELD_ID + i
    return out


# ------------------------------------------------------------ tables made in SQL


@dataclass(frozen=True)
class ColumnRow:
    name: str
    type: str  # format_type()
    not_null: bool
    dim: int  # > 0 for vector columns
    binary: bool = False  # a binary vector column (dim in bits)


def described(
    name: str, columns: Sequence[ColumnRow], pk: str | None
) -> tuple[tuple[Field, ...], schema_pb2.CollectionSchema, bool]:
    """Fields, schema and dynamic flag of a table made in SQL."""
    fields: list[Field] = []
    proto = schema_pb2.CollectionSchema(name=name)
    dynamic = False
    for i, c in enumerate(columns):
        if c.name == DYNAMIC and c.type == "jsonb":
            dynamic = True
            continue
        f = _field_of_column(c, c.name == pk, FIRST_FIELD_ID + i)
        fields.append(f)
        proto.fields.append(to_proto(f))
    proto.enable_dynamic_field = dynamic
    return tuple(fields), proto, dynamic


def _field_of_column(c: ColumnRow, primary: bool, field_id: int) -> Field:
    nullable = not c.not_null and not primary
    if c.dim > 0:
        kind = DT.BinaryVector if c.binary else DT.FloatVector
        return Field(c.name, kind, c.type, dim=c.dim, nullable=nullable, field_id=field_id)
    base, _, modifier = c.type.partition("(")
    if c.type.endswith("[]"):
        element = c.type[:-2]
        ebase, _, emod = element.partition("(")
        if ebase == "character varying":
            n = int(emod.rstrip(")")) if emod else MAX_VARCHAR
            return Field(
                c.name,
                DT.Array,
                c.type,
                max_length=n,
                element_type=DT.VarChar,
                nullable=nullable,
                field_id=field_id,
            )
        etype = _FROM_PG.get(ebase, DT.VarChar)
        return Field(
            c.name,
            DT.Array,
            c.type,
            element_type=etype,
            max_length=MAX_VARCHAR,
            nullable=nullable,
            field_id=field_id,
        )
    if base in _FROM_PG:
        return Field(
            c.name, _FROM_PG[base], c.type, primary=primary, nullable=nullable, field_id=field_id
        )
    n = int(modifier.rstrip(")")) if base == "character varying" and modifier else MAX_VARCHAR
    # any other type reads as its text form
    return Field(
        c.name,
        DT.VarChar,
        c.type,
        max_length=n,
        primary=primary,
        nullable=nullable,
        field_id=field_id,
    )


def to_proto(f: Field) -> schema_pb2.FieldSchema:
    out = schema_pb2.FieldSchema(
        fieldID=f.field_id,
        name=f.name,
        data_type=f.type,
        is_primary_key=f.primary,
        autoID=f.auto_id,
        nullable=f.nullable,
    )
    if f.dim:
        out.type_params.add(key="dim", value=str(f.dim))
    if f.max_length and (f.type == DT.VarChar or f.element_type == DT.VarChar):
        out.type_params.add(key="max_length", value=str(f.max_length))
    if f.is_array:
        out.element_type = f.element_type
        out.type_params.add(key="max_capacity", value=str(MAX_CAPACITY))
    return out
