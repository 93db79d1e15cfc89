"""The per-(table, vector column) index engine: pure numpy + FAISS + files, no database."""

from pgvec.engine.collection import Key, VectorCollection
from pgvec.engine.faiss_index import configure_threads, trim_heap
from pgvec.engine.spec import INDEX_TYPES, IndexSpec, Metric, SearchParams

__all__ = [
    "INDEX_TYPES",
    "IndexSpec",
    "Key",
    "Metric",
    "SearchParams",
    "VectorCollection",
    "configure_threads",
    "trim_heap",
]
