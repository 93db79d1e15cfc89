from __future__ import annotations

import struct

import pytest

from pgvec.rewrite import Catalog, Knn, KnnPlan, rewrite

HIT_JOIN = (
    "JOIN unnest(CAST({ids} AS bigint[]), CAST({dists} AS float8[]))"
    " AS __pgvec_hit(__pgvec_key, __pgvec_dist) ON items.id = __pgvec_hit.__pgvec_key"
    " AND items.embedding IS NOT NULL"
)


def _plan(sql: str, catalog: Catalog) -> KnnPlan:
    d = rewrite(sql, catalog)
    assert isinstance(d, Knn), d
    return d.plan


def test_brief_example(catalog: Catalog) -> None:
    p = _plan(
        "SELECT id, title, embedding <-> '[1,1,2]' AS distance FROM items WHERE price > $1"
        " ORDER BY embedding <-> $2 LIMIT 2",
        catalog,
    )
    assert p.template == (
        "SELECT id, title, pgvec.l2_distance(embedding, '\\x0000803f0000803f00000040'::bytea)"
        f" AS distance FROM items {HIT_JOIN} WHERE price > $1"
        " ORDER BY __pgvec_hit.__pgvec_dist LIMIT 2"
    )
    # the key is unique in its own table: no DISTINCT
    assert p.filter_sql == "SELECT items.id FROM items WHERE price > $1"
    assert p.probe_sql == (
        "SELECT items.id FROM items WHERE (price > $1) AND items.id = ANY(CAST($2 AS bigint[]))"
    )
    assert p.filter_params == (1,)
    assert (p.query_param, p.query_literal, p.operator) == (2, None, "<->")
    assert (p.limit, p.limit_param, p.offset, p.offset_param) == (2, None, 0, None)
    assert p.vector_params == {2: 3}
    assert (p.table.name, p.alias, p.column.name) == ("items", "items", "embedding")
    assert p.render("$3", "$4").count("CAST($3 AS bigint[]), CAST($4 AS float8[])") == 1


def test_literal_query_select_star(catalog: Catalog) -> None:
    p = _plan("SELECT * FROM items ORDER BY embedding <=> '[1,2,3]' LIMIT 5", catalog)
    assert p.template == (
        f"SELECT items.* FROM items {HIT_JOIN} ORDER BY __pgvec_hit.__pgvec_dist LIMIT 5"
    )
    assert p.query_literal == struct.pack("<3f", 1, 2, 3) and p.query_param is None
    assert p.filter_sql is None and p.filter_params == ()
    assert p.operator == "<=>"


def test_unaliased_distance_and_reversed_operands(catalog: Catalog) -> None:
    p = _plan("SELECT id, embedding <-> $1 FROM items ORDER BY $1 <-> embedding LIMIT 5", catalog)
    assert p.template == (
        'SELECT id, __pgvec_hit.__pgvec_dist AS "?column?" FROM items '
        f"{HIT_JOIN} ORDER BY __pgvec_hit.__pgvec_dist LIMIT 5"
    )


def test_order_by_alias_and_where_range(catalog: Catalog) -> None:
    p = _plan(
        "SELECT id, embedding <-> $1 AS d FROM items WHERE embedding <-> $1 < 2 ORDER BY d, id"
        " LIMIT 5",
        catalog,
    )
    assert p.template == (
        f"SELECT id, __pgvec_hit.__pgvec_dist AS d FROM items {HIT_JOIN}"
        " WHERE pgvec.l2_distance(embedding, $1) < 2 ORDER BY __pgvec_hit.__pgvec_dist, id LIMIT 5"
    )
    assert p.filter_sql == ("SELECT items.id FROM items WHERE pgvec.l2_distance(embedding, $1) < 2")
    assert p.filter_vector_params == {1: 3}


def test_join_positional_order_limit_offset_params(catalog: Catalog) -> None:
    p = _plan(
        "SELECT i.id, c.name, embedding <#> $3 FROM items i JOIN cats c ON c.id = i.id"
        " WHERE c.name = $2 ORDER BY 3 LIMIT $4 OFFSET $1",
        catalog,
    )
    assert p.template == (
        'SELECT i.id, c.name, __pgvec_hit.__pgvec_dist AS "?column?" FROM items AS i'
        " JOIN unnest(CAST({ids} AS bigint[]), CAST({dists} AS float8[]))"
        " AS __pgvec_hit(__pgvec_key, __pgvec_dist) ON i.id = __pgvec_hit.__pgvec_key"
        " AND i.embedding IS NOT NULL JOIN cats AS c ON c.id = i.id WHERE c.name = $2"
        " ORDER BY __pgvec_hit.__pgvec_dist"
        " LIMIT $4 OFFSET $1"
    )
    assert p.alias == "i" and p.operator == "<#>"
    assert (p.limit, p.limit_param, p.offset, p.offset_param) == (None, 4, 0, 1)
    assert p.filter_sql == (
        "SELECT DISTINCT i.id FROM items AS i JOIN cats AS c ON c.id = i.id WHERE c.name = $1"
    )
    assert p.probe_sql == (
        "SELECT DISTINCT i.id FROM items AS i JOIN cats AS c ON c.id = i.id"
        " WHERE (c.name = $1) AND i.id = ANY(CAST($2 AS bigint[]))"
    )
    assert p.filter_params == (2,)


def test_filter_renumbering(catalog: Catalog) -> None:
    p = _plan(
        "SELECT id FROM items WHERE price > $5 AND title = $2 AND price < $5"
        " ORDER BY embedding <-> $1 LIMIT 3 OFFSET 7",
        catalog,
    )
    assert p.filter_sql == (
        "SELECT items.id FROM items WHERE price > $1 AND title = $2 AND price < $1"
    )
    assert p.probe_sql is not None and p.probe_sql.endswith(
        "AND items.id = ANY(CAST($3 AS bigint[]))"
    )
    assert p.filter_params == (5, 2)
    assert p.offset == 7


def test_star_with_join(catalog: Catalog) -> None:
    p = _plan(
        "SELECT * FROM cats, items WHERE cats.id = items.id ORDER BY embedding <-> $1 LIMIT 1",
        catalog,
    )
    assert p.template.startswith("SELECT cats.*, items.* FROM cats, items JOIN unnest(")


def test_cte(catalog: Catalog) -> None:
    p = _plan(
        "WITH k AS (SELECT id FROM items ORDER BY embedding <-> $1 LIMIT 3) SELECT * FROM k",
        catalog,
    )
    assert p.template == (
        f"WITH k AS (SELECT id FROM items {HIT_JOIN} ORDER BY __pgvec_hit.__pgvec_dist LIMIT 3)"
        " SELECT * FROM k"
    )


def test_subquery_and_only_one_knn(catalog: Catalog) -> None:
    p = _plan(
        "SELECT * FROM (SELECT id FROM items ORDER BY embedding <-> $1 LIMIT 3) s"
        " WHERE EXISTS (SELECT 1 FROM items x ORDER BY x.embedding <-> $1 LIMIT 1)",
        catalog,
    )
    assert p.template.count("unnest(") == 1
    assert "pgvec.l2_distance(x.embedding, $1)" in p.template


def test_schema_qualified_text_pk(catalog: Catalog) -> None:
    p = _plan("SELECT key FROM app.docs d ORDER BY d.vec <+> '[1,2]' LIMIT 10", catalog)
    assert "CAST({ids} AS text[])" in p.template and "ON d.key = __pgvec_hit.__pgvec_key" in (
        p.template
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM items ORDER BY embedding <-> $1 LIMIT 3",
        "SELECT title FROM items GROUP BY title ORDER BY min(embedding <-> $1) LIMIT 3",
        "SELECT DISTINCT title FROM items ORDER BY embedding <-> $1 LIMIT 3",
    ],
)
def test_not_knn_shapes(sql: str, catalog: Catalog) -> None:
    assert not isinstance(rewrite(sql, catalog), Knn)


# ------------------------------------------------------------- engine-evaluated filters


def test_engine_filter_from_where(catalog: Catalog) -> None:
    from decimal import Decimal

    from pgvec.filter.model import And, AnyOf, Column, Compare, Const, IsNull, Not, Or, Param

    p = _plan(
        "SELECT id FROM items i WHERE (i.price > $1 OR price IS NULL) AND NOT id IN (1, -2)"
        " AND price BETWEEN 0.5 AND '10' AND $2::bigint <> id ORDER BY embedding <-> $3 LIMIT 5",
        catalog,
    )
    price, key = Column("price", "double precision"), Column("id", "bigint")
    assert p.engine_filter == And(
        (
            And(
                (
                    And(
                        (
                            Or((Compare(price, ">", Param(1)), IsNull(price))),
                            Not(AnyOf(key, (Const(1), Const(-2)), with_column=True)),
                        )
                    ),
                    And(
                        (
                            Compare(price, ">=", Const(Decimal("0.5"))),
                            Compare(price, "<=", Const("10")),
                        )
                    ),
                )
            ),
            Compare(key, "<>", Param(2, "bigint")),
        )
    )
    assert p.filter_params == (1, 2)


@pytest.mark.parametrize(
    "where",
    [
        "title < 'x'",  # the order of text is the collation's
        "abs(price) > 1",
        "price + 1 > 2",
        "price > (SELECT 1)",
        "c.id = 1",  # another table's column
        "price::numeric(4, 1) = 1",
        "price = 1.5::numeric(3, 1)",
    ],
)
def test_engine_filter_left_to_postgres(catalog: Catalog, where: str) -> None:
    join = " JOIN cats c ON c.id = items.id" if where.startswith("c.") else ""
    p = _plan(
        f"SELECT id FROM items{join} WHERE {where} ORDER BY embedding <-> $1 LIMIT 5", catalog
    )
    assert p.filter_sql is not None and p.engine_filter is None


def test_engine_filter_any(catalog: Catalog) -> None:
    from pgvec.filter.model import And, AnyOf, Column, Compare, Const, Or, Param

    key = Column("id", "bigint")

    def engine(where: str) -> object:
        sql = f"SELECT id FROM items WHERE {where} ORDER BY embedding <-> $9 LIMIT 5"
        return _plan(sql, catalog).engine_filter

    assert engine("id = ANY($1)") == AnyOf(key, Param(1))
    assert engine("id = ANY($1::int[])") == AnyOf(key, Param(1, "integer"))
    assert engine("id = ANY('{1,2}')") == AnyOf(key, Const("{1,2}"))
    assert engine("id = ANY(ARRAY[1, 2])") == AnyOf(key, (Const(1), Const(2)))
    assert engine("id IN (3)") == Compare(key, "=", Const(3))
    assert engine("id BETWEEN SYMMETRIC 5 AND 1") == Or(
        (
            And((Compare(key, ">=", Const(5)), Compare(key, "<=", Const(1)))),
            And((Compare(key, ">=", Const(1)), Compare(key, "<=", Const(5)))),
        )
    )
    assert engine("id = ANY(ARRAY[$1, 2])") is None  # the array's type comes from $1
    assert engine("id = ANY(ARRAY['1', 2])") is None
    assert engine("id = $1 OR price = $1") is None  # $1 typed at its first use
    assert engine("id = 'a\\b'") is None  # standard_conforming_strings may be off
    assert engine("id = true::text") is None
    assert engine("id <> ALL($1)") is None
    assert engine("id < ANY($1)") is None
