"""Scalar columns mirrored next to a collection's vectors, one slot per label.

Milvus keeps a collection's scalar fields inside its segments so that a filter costs no
round trip to another system. pgvec does the same for the columns whose comparisons
numpy reproduces exactly (integers, floats, booleans, and text compared for equality
under a deterministic collation): a top-k query whose WHERE clause uses only those is
filtered in the engine, without asking PostgreSQL for the keys it admits. The mirror
follows the change log like the vectors do, and the final join still runs the WHERE
clause in PostgreSQL, so a stale value could only ever drop a row, never let a wrong one
through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pgvec.filter.types import KINDS, base_type, kind_of, mirrorable

__all__ = ["KINDS", "ScalarColumn", "Scalars", "base_type", "kind_of", "mirrorable"]

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

#: how numpy stores the types mirrored (:data:`pgvec.filter.types.KINDS`). Floats are kept
#: as float64: PostgreSQL compares a real column with a numeric constant in double
#: precision, and widening float32 to float64 is exact.
#: Text is dictionary-encoded: an int32 code per label, the strings once per column.
_DTYPES: dict[str, type[np.generic]] = {
    "smallint": np.int16,
    "integer": np.int32,
    "bigint": np.int64,
    "real": np.float64,
    "double precision": np.float64,
    "boolean": np.bool_,
    "text": np.int32,
    "character varying": np.int32,
}


@dataclass(frozen=True)
class ScalarColumn:
    """A mirrored column: its name and format_type()."""

    name: str
    type: str

    @property
    def kind(self) -> str:
        return kind_of(self.type)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(_DTYPES[base_type(self.type)])


class Scalars:
    """The values (and NULL flags) of some scalar columns, indexed by label.

    Like the vector matrix, the arrays are replaced, never reallocated in place, when
    they grow or are compacted; rows at or past a reader's ``n`` may be written. A text
    column's dictionary only grows, so copies share it.
    """

    def __init__(
        self,
        columns: Sequence[ScalarColumn],
        capacity: int,
        words: dict[str, dict[str, int]] | None = None,
        strings: dict[str, list[str]] | None = None,
    ) -> None:
        self.columns = tuple(columns)
        self.values: dict[str, npt.NDArray[Any]] = {
            c.name: np.zeros(capacity, c.dtype) for c in self.columns
        }
        self.valid: dict[str, Bools] = {c.name: np.zeros(capacity, np.bool_) for c in self.columns}
        #: per text column: string -> code
        self.words: dict[str, dict[str, int]] = {
            c.name: (words or {}).get(c.name, {}) for c in self.columns if c.kind == "text"
        }
        #: per text column: code -> string (only appended: a save reads a prefix of it)
        self.strings: dict[str, list[str]] = {}
        for name, dictionary in self.words.items():
            known = (strings or {}).get(name)
            self.strings[name] = list(dictionary) if known is None else known

    def grown(self, capacity: int, n: int) -> Scalars:
        """A copy with room for ``capacity`` labels, the first ``n`` copied."""
        out = Scalars(self.columns, capacity, self.words, self.strings)
        for c in self.columns:
            out.values[c.name][:n] = self.values[c.name][:n]
            out.valid[c.name][:n] = self.valid[c.name][:n]
        return out

    def compacted(self, live: I64, lo: int, hi: int, capacity: int = 0) -> Scalars:
        """The labels ``live`` renumbered 0.., then labels [lo, hi) after them, with room
        for ``capacity`` labels (at least those)."""
        n = len(live) + hi - lo
        out = Scalars(self.columns, max(capacity, n), self.words, self.strings)
        for c in self.columns:
            name = c.name
            for mine, theirs in ((out.values, self.values), (out.valid, self.valid)):
                mine[name][: len(live)] = theirs[name][live]
                mine[name][len(live) : n] = theirs[name][lo:hi]
        return out

    def without(self, names: set[str]) -> Scalars:
        """The same mirror without the given columns."""
        out = Scalars([c for c in self.columns if c.name not in names], 0, self.words, self.strings)
        for c in out.columns:
            out.values[c.name], out.valid[c.name] = self.values[c.name], self.valid[c.name]
        return out

    def write(self, labels: I64 | slice, rows: Sequence[Sequence[Any]]) -> None:
        """Set the given labels from ``rows``: one sequence per column, None for NULL."""
        for c, column in zip(self.columns, rows, strict=True):
            valid = np.fromiter((v is not None for v in column), np.bool_, len(column))
            words = self.words.get(c.name)
            if words is not None:
                strings = self.strings[c.name]
                codes: list[int] = []
                for v in column:
                    code = 0 if v is None else words.get(v)
                    if code is None:  # a new string: the next code
                        code = words[v] = len(words)
                        strings.append(v)
                    codes.append(code)
                values = np.array(codes, dtype=c.dtype)
            else:
                values = np.array([0 if v is None else v for v in column], dtype=c.dtype)
            self.values[c.name][labels] = values
            self.valid[c.name][labels] = valid

    def code(self, name: str, text: str) -> int | None:
        """The code of ``text`` in text column ``name``; None if no row ever had it."""
        return self.words[name].get(text)

    def distinct(self, name: str) -> int:
        """How many different strings text column ``name`` has held."""
        return len(self.words[name])

    @property
    def nbytes(self) -> int:
        arrays = sum(a.nbytes for a in self.values.values())
        arrays += sum(a.nbytes for a in self.valid.values())
        # a dict entry and a str object each cost about 50 bytes beyond the characters
        return arrays + sum(len(w) + 100 for d in self.words.values() for w in d)

    def column(self, name: str, type_name: str) -> tuple[npt.NDArray[Any], Bools] | None:
        """The arrays of column ``name`` if it is mirrored with type ``type_name``."""
        for c in self.columns:
            if c.name == name and c.type == type_name:
                return self.values[name], self.valid[name]
        return None
