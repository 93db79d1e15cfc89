from __future__ import annotations

import pytest

from pgvec.rewrite import Catalog, TableInfo, VectorColumn

ITEMS = TableInfo(
    relid=1001,
    schema="public",
    name="items",
    pk="id",
    pk_type="bigint",
    columns=("id", "title", "price", "embedding"),
    vectors={"embedding": VectorColumn("embedding", 4, 3)},
    column_types=("bigint", "text", "double precision", "bytea"),
)
CATS = TableInfo(1002, "public", "cats", "id", "integer", ("id", "name"), {})
DOCS = TableInfo(
    1003, "app", "docs", "key", "text", ("key", "body", "vec"), {"vec": VectorColumn("vec", 3, 2)}
)
NOPK = TableInfo(1004, "public", "nopk", None, None, ("v",), {"v": VectorColumn("v", 1, 2)})


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        {
            ("public", "items"): ITEMS,
            ("public", "cats"): CATS,
            ("app", "docs"): DOCS,
            ("public", "nopk"): NOPK,
        },
        version=1,
    )
