"""Rewriting pgvector-style SQL for pgvec (pure code: no I/O)."""

from pgvec.rewrite.catalog import Catalog, TableInfo, VectorColumn
from pgvec.rewrite.decision import (
    CopyIn,
    CreateIndex,
    Decision,
    DropIndex,
    IndexDef,
    Knn,
    KnnPlan,
    Passthrough,
    Reindex,
    Rewritten,
    SetParam,
)
from pgvec.rewrite.rewriter import Rewriter, rewrite
from pgvec.rewrite.split import Piece, split_statements

__all__ = [
    "Catalog",
    "CopyIn",
    "CreateIndex",
    "Decision",
    "DropIndex",
    "IndexDef",
    "Knn",
    "KnnPlan",
    "Passthrough",
    "Piece",
    "Reindex",
    "Rewriter",
    "Rewritten",
    "SetParam",
    "TableInfo",
    "VectorColumn",
    "rewrite",
    "split_statements",
]
