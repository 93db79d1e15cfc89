"""Which table an unqualified name means: the first relation of that name along the
client's search path, as in PostgreSQL (pure: no database)."""

from __future__ import annotations

from pgvec.rewrite import Catalog, TableInfo, VectorColumn
from pgvec.rewrite.decision import Passthrough, Rewritten
from pgvec.rewrite.rewriter import Rewriter


def table(relid: int, schema: str, dim: int) -> TableInfo:
    return TableInfo(
        relid, schema, "items", "id", "integer", ("id", "v"), {"v": VectorColumn("v", 2, dim)}
    )


PUBLIC, APP = table(1, "public", 3), table(2, "app", 2)
ONLY_APP = TableInfo(3, "app", "docs", "id", "integer", ("id", "v"), {"v": VectorColumn("v", 2, 2)})


def catalog(path: tuple[str, ...] | None = None) -> Catalog:
    tables = [PUBLIC, APP, ONLY_APP]
    cat = Catalog.from_tables(tables, 1, others=frozenset({("plain", "items")}))
    return cat.with_search_path(path)


def test_path_decides() -> None:
    assert catalog(("pg_catalog", "public")).lookup("items") is PUBLIC
    assert catalog(("pg_catalog", "app", "public")).lookup("items") is APP
    assert catalog(("pg_catalog", "public", "app")).lookup("items") is PUBLIC


def test_a_relation_that_is_not_a_vector_table_hides_the_one_after_it() -> None:
    assert catalog(("plain", "public")).lookup("items") is None
    assert catalog(("public", "plain")).lookup("items") is PUBLIC


def test_schema_not_in_path() -> None:
    assert catalog(("pg_catalog", "public")).lookup("docs") is None
    assert catalog(("pg_catalog", "public")).lookup("docs", "app") is ONLY_APP


def test_unknown_path() -> None:
    cat = catalog()
    assert cat.ambiguous == ("items",)
    assert cat.needs_search_path("INSERT INTO Items VALUES (1, '[1,2,3]')")
    assert not cat.needs_search_path("INSERT INTO docs VALUES (1, '[1,2]')")
    assert cat.lookup("docs") is ONLY_APP  # one schema only: no path needed
    assert cat.lookup("items") is PUBLIC  # ambiguous: what pgvec did before


def test_pg_temp() -> None:
    temp = table(4, "pg_temp_3", 2)
    cat = Catalog.from_tables([PUBLIC, temp], 1).with_search_path(
        ("pg_temp_3", "pg_catalog", "public")
    )
    assert cat.lookup("items") is temp
    assert cat.lookup("items", "pg_temp") is temp


def test_rewriter_caches_by_path() -> None:
    rw = Rewriter(catalog())
    sql = "INSERT INTO items VALUES (1, '[1,2]')"
    assert isinstance(rw.rewrite(sql, ("app",)), Rewritten)
    assert isinstance(rw.rewrite(sql, ("plain", "app")), Passthrough)
    assert isinstance(rw.rewrite(sql, ("app",)), Rewritten)
