"""CREATE INDEX and DROP INDEX of pgvec indexes inside a transaction: done at its commit.

pgvec builds and drops its indexes with its own connections, outside the client's
transaction. Inside a transaction block (or a simple Query of several statements, which
is one transaction) each statement is checked at once, as PostgreSQL checks it, and
carried out, in order, once the transaction committed; nothing is left if it rolls back,
as PostgreSQL's DDL leaves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgvec.rewrite.decision import IndexDef


@dataclass(frozen=True)
class IndexDrop:
    """DROP INDEX of a pgvec index, to run at the commit."""

    schema: str | None
    name: str


Deferred = IndexDef | IndexDrop


def creates(ops: list[Deferred]) -> list[IndexDef]:
    """The CREATE INDEXes among ``ops``."""
    return [op for op in ops if isinstance(op, IndexDef)]


def dropped_names(ops: list[Deferred]) -> set[str]:
    """The names of the indexes ``ops`` drop."""
    return {op.name for op in ops if isinstance(op, IndexDrop)}


def created(ops: list[Deferred], schema: str | None, name: str) -> IndexDef | None:
    """The CREATE INDEX among ``ops`` that makes the index ``schema.name``, if any."""
    for op in reversed(ops):
        if isinstance(op, IndexDrop):
            if (op.schema, op.name) == (schema, name):
                return None
        elif op.default_name == name and schema in (None, op.table.schema):
            return op
    return None


def drop(ops: list[Deferred], schema: str | None, name: str) -> None:
    """DROP INDEX ``schema.name``: a CREATE INDEX of the same transaction is undone,
    another index is dropped at the commit."""
    made = created(ops, schema, name)
    if made is not None:
        ops.remove(made)
    else:
        ops.append(IndexDrop(schema, name))
