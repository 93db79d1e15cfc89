"""Scalar columns mirrored next to a collection's vectors, one slot per label.

Milvus keeps a collection's scalar fields inside its segments so that a filter costs no
round trip to another system. pgvec does the same for the columns whose comparisons
numpy reproduces exactly (integers, floats, booleans): a top-k query whose WHERE clause
uses only those is filtered in the engine, without asking PostgreSQL for the keys it
admits. The mirror follows the change log like the vectors do, and the final join still
runs the WHERE clause in PostgreSQL, so a stale value could only ever drop a row, never
let a wrong one through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

#: format_type() names mirrored, and how they compare
KINDS: dict[str, str] = {
    "smallint": "int",
    "integer": "int",
    "bigint": "int",
    "real": "float",
    "double precision": "float",
    "boolean": "bool",
}
#: how numpy stores them. Floats are kept as float64: PostgreSQL compares a real column
#: with a numeric constant in double precision, and widening float32 to float64 is exact.
_DTYPES: dict[str, type[np.generic]] = {
    "smallint": np.int16,
    "integer": np.int32,
    "bigint": np.int64,
    "real": np.float64,
    "double precision": np.float64,
    "boolean": np.bool_,
}


@dataclass(frozen=True)
class ScalarColumn:
    """A mirrored column: its name and format_type()."""

    name: str
    type: str

    @property
    def kind(self) -> str:
        return KINDS[self.type]

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(_DTYPES[self.type])


def mirrorable(type_name: str) -> bool:
    return type_name in KINDS


class Scalars:
    """The values (and NULL flags) of some scalar columns, indexed by label.

    Like the vector matrix, the arrays are replaced, never reallocated in place, when
    they grow or are compacted; rows at or past a reader's ``n`` may be written.
    """

    def __init__(self, columns: Sequence[ScalarColumn], capacity: int) -> None:
        self.columns = tuple(columns)
        self.values: dict[str, npt.NDArray[Any]] = {
            c.name: np.zeros(capacity, c.dtype) for c in self.columns
        }
        self.valid: dict[str, Bools] = {c.name: np.zeros(capacity, np.bool_) for c in self.columns}

    def grown(self, capacity: int, n: int) -> Scalars:
        """A copy with room for ``capacity`` labels, the first ``n`` copied."""
        out = Scalars(self.columns, capacity)
        for c in self.columns:
            out.values[c.name][:n] = self.values[c.name][:n]
            out.valid[c.name][:n] = self.valid[c.name][:n]
        return out

    def compacted(self, live: I64, lo: int, hi: int) -> Scalars:
        """The labels ``live`` renumbered 0.., then labels [lo, hi) after them."""
        out = Scalars(self.columns, 0)
        for c in self.columns:
            name = c.name
            out.values[name] = np.concatenate([self.values[name][live], self.values[name][lo:hi]])
            out.valid[name] = np.concatenate([self.valid[name][live], self.valid[name][lo:hi]])
        return out

    def write(self, labels: I64 | slice, rows: Sequence[Sequence[Any]]) -> None:
        """Set the given labels from ``rows``: one sequence per column, None for NULL."""
        for c, column in zip(self.columns, rows, strict=True):
            valid = np.fromiter((v is not None for v in column), np.bool_, len(column))
            values = np.array([0 if v is None else v for v in column], dtype=c.dtype)
            self.values[c.name][labels] = values
            self.valid[c.name][labels] = valid

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.values.values()) + sum(
            a.nbytes for a in self.valid.values()
        )

    def column(self, name: str, type_name: str) -> tuple[npt.NDArray[Any], Bools] | None:
        """The arrays of column ``name`` if it is mirrored with type ``type_name``."""
        for c in self.columns:
            if c.name == name and c.type == type_name:
                return self.values[name], self.valid[name]
        return None
