"""Rewriting pgvector-style SQL for pgvec (pure code: no I/O)."""

from pgvec.rewrite.catalog import Catalog, TableInfo, VectorColumn
from pgvec.rewrite.decision import (
    CopyIn,
    CopyOut,
    CreateIndex,
    Decision,
    DropIndex,
    Extension,
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
    "CopyOut",
    "CreateIndex",
    "Decision",
    "DropIndex",
    "Extension",
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
