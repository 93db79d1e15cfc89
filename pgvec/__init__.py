"""pgvec: a vector database layered on PostgreSQL."""

__version__ = "0.1.0"
