"""The pgvec catalog: schema ``pgvec`` in Postgres, its install script and read helpers.

SQL side (sql/pgvec--0.1.0.sql): vector functions and operators on ``bytea``, the view
``pgvec.vector_columns``, the view ``pgvec.table_info``, the tables ``pgvec.indexes`` and
``pgvec.changes`` and the change-log triggers (``pgvec.track(regclass)``).
"""

from __future__ import annotations

from pgvec.catalog.install import SCRIPT_DIR, install, installed_version
from pgvec.catalog.models import IndexRow, TableInfo, VectorColumn
from pgvec.catalog.queries import database_oid, list_indexes, load_tables

__all__ = [
    "SCRIPT_DIR",
    "IndexRow",
    "TableInfo",
    "VectorColumn",
    "database_oid",
    "install",
    "installed_version",
    "list_indexes",
    "load_tables",
]
