"""Typed rows read from the pgvec catalog."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from pgvec.errors import InvalidTableDefinition
from pgvec.filter.sql import object_name


@dataclass(frozen=True)
class VectorColumn:
    """A bytea column with a ``CHECK (pgvec.is_vector(col, dim))`` constraint (or, if
    ``binary``, ``CHECK (pgvec.is_binary_vector(col, dim))``: dim bits, packed), or with
    a pgvec index (``checked`` False: its CHECK was dropped or rewritten since).
    ``dim`` is None for a column of any dimension (pgvector's ``vector`` with no
    dimension: ``CHECK (pgvec.is_vector(col))``), which cannot be indexed."""

    name: str
    attnum: int
    dim: int | None
    checked: bool = True
    binary: bool = False

    @property
    def row_bytes(self) -> int:
        """Bytes of one value: 4 x dim (float32), or dim / 8 (binary)."""
        dim = self.fixed_dim
        return dim // 8 if self.binary else 4 * dim

    @property
    def fixed_dim(self) -> int:
        """The column's dimension; an error for a column of any dimension."""
        if self.dim is None:
            # pgvector's words, without a hint as pgvector's
            raise InvalidTableDefinition("column does not have dimensions")
        return self.dim


@dataclass(frozen=True)
class TableInfo:
    """A table with at least one vector column."""

    relid: int
    schema: str
    name: str
    pk: str | None  # the single-column primary key, None if there is none
    pk_type: str | None  # format_type() of the primary key
    columns: tuple[str, ...] = ()  # every live column, in attnum order
    vectors: Mapping[str, VectorColumn] = field(default_factory=dict)
    tracked: bool = False  # change-log triggers installed (pgvec.track())
    column_types: tuple[str, ...] = ()  # format_type() of each of ``columns``
    column_collations: tuple[int, ...] = ()  # collation OID of each (0: none)
    #: row-level security is enabled: what a role may see is the table's policies' say
    row_security: bool = False
    #: a partitioned table (relkind 'p'): it holds no rows itself, its leaf partitions
    #: do, each a table of its own (with its own OID, index and change log)
    partitioned: bool = False
    #: the OIDs of its leaf partitions, if it is partitioned
    partitions: tuple[int, ...] = ()
    #: its arrays of vectors (``vector[]`` columns: bytea[] with a CHECK), by name
    arrays: Mapping[str, VectorColumn] = field(default_factory=dict)

    @property
    def qualified(self) -> tuple[str, str]:
        return (self.schema, self.name)

    def vector_at(self, attnum: int) -> VectorColumn | None:
        """The vector column of that attnum, if it is one."""
        return next((v for v in self.vectors.values() if v.attnum == attnum), None)


class Slot(NamedTuple):
    """One collection of a table's engine state: a vector column and the metric of its
    index (a Metric name, ``L2``, ``COSINE``...), or ``""`` for a column searched
    exactly, with no index.

    pgvector allows one index per operator class on a column (``vector_l2_ops`` and
    ``vector_cosine_ops``), each used by its own operator; pgvec holds each in a
    collection of its own, saved in its own directory (:attr:`dirname`)."""

    attnum: int
    metric: str = ""

    @property
    def dirname(self) -> str:
        """The directory of its files, under its table's: ``<attnum>-<metric>``
        (``3-cosine``). Before several indexes per column it was ``<attnum>``."""
        return f"{self.attnum}-{self.metric.lower()}" if self.metric else str(self.attnum)


@dataclass(frozen=True)
class IndexRow:
    """A row of ``pgvec.indexes``."""

    index_name: str
    schema_name: str
    relid: int
    attnum: int
    column_name: str
    method: str
    metric: str
    options: dict[str, Any]
    state: str
    progress: float
    rows_indexed: int
    created_at: datetime
    updated_at: datetime
    error: str | None = None  # why the last build failed
    dim: int | None = None  # the column's dimension when the index was built
    #: the names of the other indexes of its operator class on the column, which it
    #: superseded (oldest first): recorded, not built
    standby: tuple[str, ...] = ()

    def named(self, name: str) -> bool:
        """Whether ``name`` is this index's, or one of its standby indexes'."""
        return name == self.index_name or name in self.standby

    @property
    def key(self) -> tuple[int, int, str]:
        """(table OID, attnum, metric): unique, one index per operator class of a column."""
        return (self.relid, self.attnum, self.metric.upper())

    @property
    def slot(self) -> Slot:
        return Slot(self.attnum, self.metric.upper())


@dataclass(frozen=True)
class IndexDef:
    """An index to create: CREATE INDEX in SQL, CreateIndex through Milvus."""

    name: str | None
    if_not_exists: bool
    table: TableInfo
    column: VectorColumn
    method: str
    opclass: str | None
    options: dict[str, str]
    concurrently: bool = False  # build in the background, return at once
    #: a partial index's predicate (WHERE), as written: checked, then not kept (pgvec
    #: indexes every row; a search filters by its own WHERE clause)
    where: str | None = None

    @property
    def default_name(self) -> str:
        return self.name or object_name(self.table.name, self.column.name, "idx")


@dataclass(frozen=True)
class CatalogSnapshot:
    """What a database's catalog held when last read: what frontends resolve names in."""

    #: every table with a vector column, by relid
    tables: Mapping[int, TableInfo]
    #: (schema, name) of relations that are not vector tables but are named like one
    others: frozenset[tuple[str, str]] = frozenset()
    #: lower-cased names of functions with a VOLATILE overload
    volatile: frozenset[str] = frozenset()
    #: grows by one at each read
    version: int = 0
    #: tables whose only vector columns are arrays of vectors, by relid (the SQL
    #: frontend's to rewrite; nothing of the engine's)
    array_tables: Mapping[int, TableInfo] = field(default_factory=dict)

    def find(self, relid: int, schema: str, name: str) -> TableInfo | None:
        """The table of OID ``relid``, else the one named ``schema.name``."""
        found = self.tables.get(relid)
        if found is None:
            found = next((t for t in self.tables.values() if t.qualified == (schema, name)), None)
        return found


def vector_dims(tables: Iterable[TableInfo]) -> dict[tuple[int, int], int]:
    """(table OID, attnum) -> dimension of the float vector columns of ``tables`` (the
    columns a client sees as pgvector's type; binary vectors are not) and of their arrays
    of vectors (bytea[] columns, which their type tells apart); 0 for any dimension
    (pgvector's ``vector`` with no typmod)."""
    out = {}
    for t in tables:
        for v in t.vectors.values():
            if not v.binary:
                out[t.relid, v.attnum] = v.dim or 0
        for v in t.arrays.values():
            out[t.relid, v.attnum] = v.dim or 0
    return out
