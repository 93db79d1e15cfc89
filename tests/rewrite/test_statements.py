from __future__ import annotations

import struct

import pytest

from pgvec.errors import (
    DatatypeMismatch,
    DimensionMismatch,
    FeatureNotSupported,
    InvalidParameter,
    InvalidVector,
    NonFiniteVector,
    UndefinedColumn,
    UndefinedObject,
)
from pgvec.rewrite import (
    Catalog,
    CopyIn,
    CopyOut,
    CreateIndex,
    DropIndex,
    Extension,
    Knn,
    Passthrough,
    Reindex,
    Rewriter,
    Rewritten,
    SetParam,
    rewrite,
)
from pgvec.rewrite.decision import IndexAction

HEX123 = "'\\x0000803f0000004000004040'::bytea"


@pytest.mark.parametrize(
    "sql",
    [
        "SAVEPOINT s1",
        "LISTEN x",
        "NOTIFY x, 'x'",
        "DEALLOCATE ALL",
        "CREATE TABLE t (id bigserial PRIMARY KEY, name text)",
        "SELECT point(1,2) <-> point(3,4)",
        "SELECT point(1,2) <-> point(3,4) FROM items",
        "SELECT 1",
        "SELECT * FROM items WHERE id = $1",
        "SELECT to_tsquery('a') <-> to_tsquery('b')",
        "SET search_path = app",
        "SET LOCAL statement_timeout = 5",
        "SHOW hnsw.ef_search",
        "CREATE INDEX ON items (price)",
        "CREATE INDEX ON unknown USING hnsw (e)",
        "SELECT '[1,2' FROM",  # does not parse: fail open
        "INSERT INTO cats VALUES (1, '[1,2]')",
    ],
)
def test_passthrough(sql: str, catalog: Catalog) -> None:
    assert rewrite(sql, catalog) == Passthrough()


def test_prefilter(catalog: Catalog) -> None:
    assert not catalog.may_concern("SELECT 1 FROM other_items_x WHERE a = 'b'")
    assert catalog.may_concern("select * from ITEMS")
    assert catalog.may_concern("select a <#> b")
    assert catalog.may_concern("set local hnsw.ef_search = 3")
    assert catalog.may_concern("create index on t using ivfflat (x)")
    assert not catalog.may_concern("SELECT itemsx FROM t")


def test_create_table_keeps_rest(catalog: Catalog) -> None:
    sql = 'CREATE TABLE t (id bigserial PRIMARY KEY, "Emb" vector (3) NOT NULL, e2 VECTOR(2))'
    d = rewrite(sql, catalog)
    assert d == Rewritten(
        'CREATE TABLE t (id bigserial PRIMARY KEY, "Emb" bytea NOT NULL CONSTRAINT '
        '"Emb_pgvec_dims" CHECK (pgvec.is_vector("Emb", 3)), e2 bytea CONSTRAINT '
        "e2_pgvec_dims CHECK (pgvec.is_vector(e2, 2)))",
        {},
    )


def test_alter_table_add_column(catalog: Catalog) -> None:
    d = rewrite("ALTER TABLE items ADD COLUMN IF NOT EXISTS e vector(4)", catalog)
    assert d == Rewritten(
        "ALTER TABLE items ADD COLUMN IF NOT EXISTS e bytea CONSTRAINT e_pgvec_dims "
        "CHECK (pgvec.is_vector(e, 4))",
        {},
    )


def test_arrays_of_vectors(catalog: Catalog) -> None:
    """``vector[]`` and its other spellings: a bytea[] whose elements are vectors."""
    d = rewrite(
        "CREATE TABLE t (a vector(3)[], b vector[2][2] NOT NULL, c vector ARRAY,"
        " d vector ARRAY[4])",
        catalog,
    )
    assert d == Rewritten(
        "CREATE TABLE t (a bytea[] CONSTRAINT a_pgvec_dims CHECK (pgvec.is_vector_array(a, 3)),"
        " b bytea[] NOT NULL CONSTRAINT b_pgvec_dims CHECK (pgvec.is_vector_array(b)),"
        " c bytea[] CONSTRAINT c_pgvec_dims CHECK (pgvec.is_vector_array(c)),"
        " d bytea[] CONSTRAINT d_pgvec_dims CHECK (pgvec.is_vector_array(d)))",
        {},
    )
    d = rewrite("ALTER TABLE items ADD e2 vector(2)[]", catalog)
    assert d == Rewritten(
        "ALTER TABLE items ADD e2 bytea[] CONSTRAINT e2_pgvec_dims"
        " CHECK (pgvec.is_vector_array(e2, 2))",
        {},
    )


def test_casts_to_arrays_of_vectors(catalog: Catalog) -> None:
    """``::vector[]`` of an ARRAY of vectors, of a parameter, of anything else (by its
    text); the result columns are arrays of vectors to show as such."""
    d = rewrite("SELECT ARRAY[$1, '[1,2,3]']::vector(3)[]", catalog)
    assert d == Rewritten(
        f'SELECT pgvec.vector_array_typmod(CAST(ARRAY[$1, {HEX123}] AS BYTEA[]), 3) AS "array"',
        {1: 3},
        frozenset({"array"}),
    )
    d = rewrite("SELECT $1::vector[] AS a", catalog)
    assert d == Rewritten("SELECT CAST($1 AS BYTEA[]) AS a", {}, frozenset({"a"}), {1: None})
    # an element that is no vector: the whole array is read from its text, no parameter
    # taken for a vector
    d = rewrite("SELECT ARRAY[$1, title]::vector[] FROM items", catalog)
    assert d == Rewritten(
        'SELECT pgvec.vector_array(CAST(ARRAY[$1, title] AS TEXT[])) AS "array" FROM items',
        {},
        frozenset({"array"}),
    )


def test_vector_without_dimension(catalog: Catalog) -> None:
    """pgvector's `vector` with no dimension: any dimension per row (LangChain's default)."""
    d = rewrite("CREATE TABLE t (e vector, id int, f vector NOT NULL)", catalog)
    assert d == Rewritten(
        "CREATE TABLE t (e bytea CONSTRAINT e_pgvec_dims CHECK (pgvec.is_vector(e)), id int,"
        " f bytea NOT NULL CONSTRAINT f_pgvec_dims CHECK (pgvec.is_vector(f)))",
        {},
    )
    d = rewrite("ALTER TABLE items ADD e2 vector", catalog)
    assert d == Rewritten(
        "ALTER TABLE items ADD e2 bytea CONSTRAINT e2_pgvec_dims CHECK (pgvec.is_vector(e2))", {}
    )


def test_alter_column_type_vector(catalog: Catalog) -> None:
    """A vector column's dimension changes with its CHECK; the bytes stay."""
    d = rewrite("ALTER TABLE items ALTER COLUMN embedding TYPE vector(1536)", catalog)
    assert d == Rewritten(
        "ALTER TABLE items DROP CONSTRAINT IF EXISTS embedding_pgvec_dims,"
        " ADD CONSTRAINT embedding_pgvec_dims CHECK (pgvec.is_vector(embedding, 1536))",
        {},
    )
    d = rewrite("ALTER TABLE app.docs ALTER vec SET DATA TYPE vector, ADD x int", catalog)
    assert d == Rewritten(
        "ALTER TABLE app.docs DROP CONSTRAINT IF EXISTS vec_pgvec_dims,"
        " ADD CONSTRAINT vec_pgvec_dims CHECK (pgvec.is_vector(vec)), ADD x int",
        {},
    )


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("ALTER TABLE items ALTER COLUMN embedding TYPE vector(3)[]", FeatureNotSupported),
        ("ALTER TABLE items ALTER COLUMN title TYPE vector(3)", FeatureNotSupported),
        ("ALTER TABLE items ALTER embedding TYPE vector(3) USING embedding", FeatureNotSupported),
        ("ALTER TABLE items ALTER COLUMN embedding TYPE vector(0)", InvalidParameter),
        ("CREATE TABLE t (e vector(0))", InvalidParameter),
        ("CREATE TABLE t (e vector(16001))", InvalidParameter),
        ("INSERT INTO items VALUES (1, 'a', 2, '[1,2]')", DimensionMismatch),
        ("INSERT INTO items VALUES (1, 'a', 2, '[1,x,2]')", InvalidVector),
        ("INSERT INTO items VALUES (1, 'a', 2, '1,2,3')", InvalidVector),
        ("INSERT INTO items VALUES (1, 'a', 2, '[1,NaN,2]')", NonFiniteVector),
        ("INSERT INTO items VALUES (1, 'a', 2, '[1,inf,2]')", NonFiniteVector),
        ("SELECT id FROM items ORDER BY embedding <-> '[1,2]' LIMIT 1", DimensionMismatch),
        ("SET hnsw.ef_search = 0", InvalidParameter),
        ("SET hnsw.ef_search = abc", InvalidParameter),
        ("SET ivfflat.probes TO 40000", InvalidParameter),
        # pgvector's index on a column that is not a vector: PostgreSQL's errors
        ("CREATE INDEX ON items USING hnsw (title)", UndefinedObject),
        ("CREATE INDEX ON items USING ivfflat (title vector_l2_ops)", DatatypeMismatch),
        ("CREATE INDEX ON items USING hnsw (nosuch vector_l2_ops)", UndefinedColumn),
    ],
)
def test_errors(sql: str, error: type[Exception], catalog: Catalog) -> None:
    with pytest.raises(error):
        rewrite(sql, catalog)


def test_error_messages(catalog: Catalog) -> None:
    with pytest.raises(InvalidVector, match=r'invalid input syntax for type vector: "\[1,x\]"'):
        rewrite("UPDATE items SET embedding = '[1,x]'", catalog)
    with pytest.raises(DimensionMismatch, match="expected 3 dimensions, not 2"):
        rewrite("UPDATE items SET embedding = '[1,2]'", catalog)
    with pytest.raises(NonFiniteVector, match="NaN not allowed in vector"):
        rewrite("UPDATE items SET embedding = '[1,2,nan]'", catalog)
    with pytest.raises(
        InvalidParameter, match=r'invalid value for parameter "hnsw\.ef_search": "abc"'
    ):
        rewrite("SET hnsw.ef_search = 'abc'", catalog)
    with pytest.raises(
        InvalidParameter,
        match=r'0 is outside the valid range for parameter "hnsw.ef_search" \(1 \.\. 1000\)',
    ):
        rewrite("SET hnsw.ef_search = 0", catalog)


def test_insert_literal_and_param(catalog: Catalog) -> None:
    d = rewrite("INSERT INTO items VALUES (1, 'a', 2, '[1,2,3]'), (2, 'b', 3, $1)", catalog)
    expected = f"INSERT INTO items VALUES (1, 'a', 2, {HEX123}), (2, 'b', 3, $1)"
    assert d == Rewritten(expected, {1: 3})
    assert struct.unpack("<3f", bytes.fromhex("0000803f0000004000004040")) == (1.0, 2.0, 3.0)


def test_insert_select(catalog: Catalog) -> None:
    """INSERT ... SELECT: a literal or parameter of its select list bound for a vector
    column is a vector, as in VALUES (PostgreSQL would read the literal as bytea)."""
    d = rewrite(
        "INSERT INTO items SELECT i, 'a', 2, '[1,2,3]' FROM generate_series(1, 2) i", catalog
    )
    assert d == Rewritten(
        f"INSERT INTO items SELECT i, 'a', 2, {HEX123} FROM generate_series(1, 2) i", {}
    )
    d = rewrite("INSERT INTO items (embedding, id) SELECT $1 AS e, 5", catalog)
    assert d == Rewritten("INSERT INTO items (embedding, id) SELECT $1 AS e, 5", {1: 3})


def test_parameters_without_spaces(catalog: Catalog) -> None:
    """``$1,$2``: sqlglot alone takes it for a dollar-quoted string; PostgreSQL, and
    pgvec, for two parameters (a string holding the same text stays as written)."""
    d = rewrite("INSERT INTO items (id,title,embedding) VALUES ($1,'$1,$2',$2)", catalog)
    assert d == Rewritten("INSERT INTO items (id,title,embedding) VALUES ($1,'$1,$2',$2)", {2: 3})
    d = rewrite("INSERT INTO items (id,embedding) VALUES ($1,'[1,2,3]')", catalog)
    assert d == Rewritten(f"INSERT INTO items (id,embedding) VALUES ($1,{HEX123})", {})


def test_insert_column_list_cast_and_conflict(catalog: Catalog) -> None:
    sql = (
        "INSERT INTO items (embedding, id) VALUES ('[1,2,3]'::vector(3), $2), ($1::vector, 3)"
        " ON CONFLICT (id) DO UPDATE SET embedding = CAST('[1,2,3]' AS vector) RETURNING id"
    )
    d = rewrite(sql, catalog)
    assert d == Rewritten(
        f"INSERT INTO items (embedding, id) VALUES ({HEX123}, $2), ($1, 3)"
        f" ON CONFLICT (id) DO UPDATE SET embedding = {HEX123} RETURNING id",
        {1: 3},
    )


def test_insert_schema_qualified(catalog: Catalog) -> None:
    d = rewrite("INSERT INTO app.docs (key, vec) VALUES ('k', '[1, 2]')", catalog)
    assert d == Rewritten(
        "INSERT INTO app.docs (key, vec) VALUES ('k', '\\x0000803f00000040'::bytea)", {}
    )


def test_update(catalog: Catalog) -> None:
    assert rewrite("UPDATE items SET embedding = $1 WHERE id = $2", catalog) == Rewritten(
        "UPDATE items SET embedding = $1 WHERE id = $2", {1: 3}
    )
    d = rewrite("UPDATE items SET embedding = '[1,2,3]' WHERE embedding <-> $1 < 1", catalog)
    assert d == Rewritten(
        f"UPDATE items SET embedding = {HEX123} WHERE pgvec.l2_distance(embedding, $1) < 1",
        {1: 3},
    )


@pytest.mark.parametrize(
    ("sql", "expected", "params"),
    [
        (
            "SELECT id FROM items WHERE embedding <-> $1 < 0.5",
            "SELECT id FROM items WHERE pgvec.l2_distance(embedding, $1) < 0.5",
            {1: 3},
        ),
        (
            "SELECT embedding <#> '[1,2,3]' AS ip, '[1,2,3]' <=> i.embedding, embedding <+> $2"
            " FROM items AS i",
            f"SELECT pgvec.negative_inner_product(embedding, {HEX123}) AS ip,"
            f' pgvec.cosine_distance({HEX123}, i.embedding) AS "?column?",'
            ' pgvec.l1_distance(embedding, $2) AS "?column?" FROM items AS i',
            {2: 3},
        ),
        (  # no LIMIT: not top-k, exact
            "SELECT id FROM items ORDER BY embedding <-> $1",
            "SELECT id FROM items ORDER BY pgvec.l2_distance(embedding, $1)",
            {1: 3},
        ),
        (  # DESC: not top-k
            "SELECT id FROM items ORDER BY embedding <-> $1 DESC LIMIT 3",
            "SELECT id FROM items ORDER BY pgvec.l2_distance(embedding, $1) DESC LIMIT 3",
            {1: 3},
        ),
        (  # query vector is a column: exact form
            "SELECT a.id FROM items a, items b ORDER BY a.embedding <-> b.embedding LIMIT 3",
            "SELECT a.id FROM items AS a, items AS b"
            " ORDER BY pgvec.l2_distance(a.embedding, b.embedding) LIMIT 3",
            {},
        ),
        (  # no primary key: exact form
            "SELECT v FROM nopk ORDER BY v <-> '[1,2]' LIMIT 1",
            "SELECT v FROM nopk ORDER BY pgvec.l2_distance(v, '\\x0000803f00000040'::bytea)"
            " LIMIT 1",
            {},
        ),
    ],
)
def test_exact_form(sql: str, expected: str, params: dict[int, int], catalog: Catalog) -> None:
    assert rewrite(sql, catalog) == Rewritten(expected, params)


def test_create_index(catalog: Catalog) -> None:
    d = rewrite(
        "CREATE INDEX IF NOT EXISTS my_idx ON ONLY items USING hnsw (embedding vector_cosine_ops)"
        " WITH (m = 16, ef_construction = '64')",
        catalog,
    )
    assert isinstance(d, CreateIndex)
    idx = d.index
    assert (idx.name, idx.if_not_exists, idx.method, idx.opclass) == (
        "my_idx",
        True,
        "hnsw",
        "vector_cosine_ops",
    )
    assert idx.options == {"m": "16", "ef_construction": "64"}
    assert idx.table.name == "items" and idx.column.name == "embedding"
    d = rewrite("create index on app.docs using IVFFLAT (vec)", catalog)
    assert isinstance(d, CreateIndex)
    assert d.index.name is None and d.index.default_name == "docs_vec_idx"
    assert d.index.method == "ivfflat" and d.index.opclass is None and d.index.options == {}
    assert not d.index.concurrently
    d = rewrite("CREATE INDEX CONCURRENTLY ON items USING hnsw (embedding)", catalog)
    assert isinstance(d, CreateIndex) and d.index.concurrently


def test_create_index_of_an_expression_is_not_a_column(catalog: Catalog) -> None:
    """``lower(title)`` is an expression, not a column named lower (pgvec said
    ``column "lower" does not exist``): PostgreSQL judges it."""
    assert rewrite("CREATE INDEX ON items USING hnsw (lower(title))", catalog) == Passthrough()
    with pytest.raises(FeatureNotSupported, match="does not support multicolumn indexes"):
        rewrite("CREATE INDEX ON items USING hnsw (embedding, (f(a, b)))", catalog)
    d = rewrite(
        "CREATE INDEX ON items USING hnsw (embedding) WITH (m = 4, ef_construction = 8)", catalog
    )
    assert isinstance(d, CreateIndex) and d.index.options == {"m": "4", "ef_construction": "8"}


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT pgvec.load('items_idx')", IndexAction("load", (None, "items_idx"))),
        ("select PGVEC.release('s.\"My Idx\"');", IndexAction("release", ("s", "My Idx"))),
        ("SELECT pgvec.release($1)", IndexAction("release", None, 1)),
        ("SELECT pgvec.load('a') AS x", Passthrough()),
        ("SELECT * FROM pgvec.load('a')", Passthrough()),
        ("SELECT pgvec.load('a'), 1", Passthrough()),
    ],
)
def test_load_and_release(catalog: Catalog, sql: str, expected: object) -> None:
    assert rewrite(sql, catalog) == expected


def test_drop_index(catalog: Catalog) -> None:
    assert rewrite("DROP INDEX IF EXISTS a, s.b CASCADE", catalog) == DropIndex(
        ((None, "a"), ("s", "b")), True, True
    )
    assert rewrite("drop index concurrently x", catalog) == DropIndex(((None, "x"),), False, False)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SET hnsw.ef_search = 100", SetParam("hnsw.ef_search", "100", False)),
        ("SET LOCAL hnsw.ef_search TO '40'", SetParam("hnsw.ef_search", "40", True)),
        ("set session ivfflat.probes = 10", SetParam("ivfflat.probes", "10", False)),
        ("SET pgvec.Mode = exact", SetParam("pgvec.mode", "exact", False)),
        ("SET pgvec.mode TO DEFAULT", SetParam("pgvec.mode", None, False)),
        ("RESET hnsw.ef_search", SetParam("hnsw.ef_search", None, False)),
    ],
)
def test_set_reset(sql: str, expected: SetParam, catalog: Catalog) -> None:
    assert rewrite(sql, catalog) == expected


def test_rewriter_cache(catalog: Catalog) -> None:
    rw = Rewriter(catalog, maxsize=2)
    first = rw.rewrite("SELECT id FROM items WHERE embedding <-> $1 < 1")
    assert rw.rewrite("SELECT id FROM items WHERE embedding <-> $1 < 1") is first
    with pytest.raises(DimensionMismatch):
        rw.rewrite("UPDATE items SET embedding = '[1]'")
    with pytest.raises(DimensionMismatch):
        rw.rewrite("UPDATE items SET embedding = '[1]'")
    rw.rewrite("SELECT 1")
    assert len(rw._cache) == 2


def test_prefilter_many_tables_and_odd_names() -> None:
    from pgvec.rewrite import TableInfo

    tables = {
        ("public", f"t{i}"): TableInfo(i, "public", f"t{i}", "id", "int", ("id",), {})
        for i in range(40)
    }
    tables["public", "My Table"] = TableInfo(99, "public", "My Table", None, None, (), {})
    cat = Catalog(tables, 1)
    assert cat.may_concern("select * from T7")
    assert not cat.may_concern("select * from t77")
    assert cat.may_concern('select * from "My Table"')
    assert not cat.may_concern("select 1")


@pytest.mark.parametrize(
    "prefix", ["EXPLAIN ", "explain analyze ", "EXPLAIN (ANALYZE, COSTS off) ", "EXPLAIN VERBOSE "]
)
def test_explain_shows_the_rewritten_statement(catalog: Catalog, prefix: str) -> None:
    d = rewrite(prefix + "SELECT id FROM items ORDER BY embedding <-> '[1,1,1]' LIMIT 1", catalog)
    assert isinstance(d, Knn)
    assert d.plan.template.startswith(prefix + "SELECT id FROM items JOIN unnest(")
    d = rewrite(prefix + "SELECT embedding <-> '[1,1,1]' FROM items", catalog)
    assert isinstance(d, Rewritten) and "pgvec.l2_distance(embedding" in d.sql
    assert rewrite(prefix + "SELECT 1", catalog) == Passthrough()


def test_copy_from_stdin(catalog: Catalog) -> None:
    d = rewrite("COPY items FROM STDIN", catalog)
    assert isinstance(d, CopyIn)
    assert dict(d.vector_fields) == {3: 3} and d.delimiter == "\t"
    d = rewrite("copy items (embedding, id) from stdin with (delimiter '|')", catalog)
    assert isinstance(d, CopyIn) and dict(d.vector_fields) == {0: 3} and d.delimiter == "|"
    d = rewrite("COPY items FROM STDIN (FORMAT binary)", catalog)
    assert isinstance(d, CopyIn) and d.binary and dict(d.vector_fields) == {3: 3}
    assert rewrite("COPY items TO STDOUT", catalog) == CopyOut({3: 3})
    assert rewrite("COPY items (embedding) TO STDOUT (FORMAT BINARY)", catalog) == CopyOut(
        {0: 3}, binary=True
    )
    for sql in (
        "COPY items (id) FROM STDIN",
        "COPY items (id) TO STDOUT",
        "COPY items FROM STDIN (FORMAT csv)",
        "COPY cats FROM STDIN",
    ):
        assert rewrite(sql, catalog) == Passthrough(), sql


def test_extension_vector_is_pgvecs(catalog: Catalog) -> None:
    for sql, tag in (
        ("CREATE EXTENSION vector", "CREATE EXTENSION"),
        ("create extension if not exists vector with schema public cascade", "CREATE EXTENSION"),
        ("CREATE EXTENSION \"vector\" VERSION '0.6.0'", "CREATE EXTENSION"),
        ("DROP EXTENSION IF EXISTS vector CASCADE", "DROP EXTENSION"),
        ("ALTER EXTENSION vector UPDATE", "ALTER EXTENSION"),
    ):
        assert rewrite(sql, catalog) == Extension(tag), sql
    for sql in (
        "CREATE EXTENSION pg_trgm",
        "DROP EXTENSION vector, pg_trgm",
        "CREATE TABLE v (x int)",
    ):
        assert rewrite(sql, catalog) == Passthrough(), sql


def test_reindex(catalog: Catalog) -> None:
    assert rewrite("REINDEX INDEX items_embedding_idx", catalog) == Reindex(
        (None, "items_embedding_idx")
    )
    assert rewrite("reindex (verbose) index concurrently s.i", catalog) == Reindex(
        ("s", "i"), concurrently=True
    )
    assert rewrite("REINDEX TABLE items", catalog) == Passthrough()


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "INSERT INTO items SELECT i, 't', 1, format('[%s,%s,%s]', i, i, i)::vector"
            " FROM generate_series(1, 3) AS i",
            "INSERT INTO items SELECT i, 't', 1, pgvec.vector(FORMAT('[%s,%s,%s]', i, i, i))"
            ' AS "format" FROM GENERATE_SERIES(1, 3) AS i',
        ),
        (
            "SELECT ARRAY[1, 2, 3]::vector(3)",
            'SELECT pgvec.vector_typmod(pgvec.vector(ARRAY[1, 2, 3]), 3) AS "array"',
        ),
        (
            "UPDATE items SET embedding = CAST(title AS vector) WHERE id = 1",
            "UPDATE items SET embedding = pgvec.vector(title) WHERE id = 1",
        ),
    ],
)
def test_casts_of_expressions(sql: str, expected: str, catalog: Catalog) -> None:
    """``x::vector`` of anything but a literal or $n: PostgreSQL converts it at run time."""
    d = rewrite(sql, catalog)
    assert isinstance(d, Rewritten) and d.sql == expected


def test_distance_to_a_scalar_subquery_is_exact(catalog: Catalog) -> None:
    """A vector from a scalar subquery, outside a top-k: computed exactly in SQL."""
    d = rewrite(
        "SELECT embedding <-> (SELECT embedding AS e FROM items WHERE id = 1) FROM items", catalog
    )
    assert isinstance(d, Rewritten)
    assert "pgvec.l2_distance(embedding, (SELECT embedding AS e FROM items WHERE id = 1))" in d.sql


def test_catalog_queries_see_vector_types(catalog: Catalog) -> None:
    """psql's \\d and SQLAlchemy's reflection ask format_type(atttypid, atttypmod)."""
    psql = "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
    d = rewrite(psql, catalog)
    assert d == Rewritten(
        "SELECT a.attname, pgvec.format_type(a.attrelid, a.attnum, a.atttypid, a.atttypmod)"
        " FROM pg_attribute a"
    )
    sqlalchemy = (
        "SELECT pg_catalog.format_type(pg_catalog.pg_attribute.atttypid,"
        " pg_catalog.pg_attribute.atttypmod) AS format_type FROM pg_catalog.pg_attribute"
    )
    d = rewrite(sqlalchemy, catalog)
    assert isinstance(d, Rewritten)
    assert (
        "pgvec.format_type(pg_catalog.pg_attribute.attrelid, pg_catalog.pg_attribute.attnum,"
        in d.sql
    )
    # LangChain's PGVectorStore asks information_schema.columns for a column's data_type
    langchain = (
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_name = $1 AND table_schema = $2"
    )
    assert rewrite(langchain, catalog) == Rewritten(
        "SELECT column_name, data_type FROM pgvec.information_schema_columns"
        " WHERE table_name = $1 AND table_schema = $2"
    )
    quoted = 'SELECT * FROM "information_schema"."columns" AS c'
    assert rewrite(quoted, catalog) == Rewritten(
        "SELECT * FROM pgvec.information_schema_columns AS c"
    )
    # and pg_indexes, where it looks its index up
    indexes = "SELECT tablename, indexname FROM pg_catalog.pg_indexes WHERE tablename = $1"
    assert rewrite(indexes, catalog) == Rewritten(
        "SELECT tablename, indexname FROM pgvec.pg_indexes WHERE tablename = $1"
    )
    # pg_class, where tools look an index up by its kind (and only there)
    kinds = (
        "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_class t ON t.oid = c.oid"
        " WHERE c.relkind = 'i' AND c.oid <> 'pg_class'::regclass"
    )
    assert rewrite(kinds, catalog) == Rewritten(
        "SELECT c.oid FROM pgvec.pg_class c JOIN pgvec.pg_class t ON t.oid = c.oid"
        " WHERE c.relkind = 'i' AND c.oid <> 'pg_class'::regclass"
    )
    # pg_dump asks the type's name (it dumps bytea + CHECK), and DDL is left alone;
    # asyncpg's type lookups read pg_class for composite types' columns
    for sql in (
        "SELECT array_agg(a.atttypid) FROM pg_attribute a JOIN pg_class c ON a.attrelid = c.oid",
        "SELECT pg_catalog.format_type(t.oid, a.atttypmod) AS atttypname FROM pg_type t",
        "CREATE VIEW v AS SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a",
        "SELECT table_name FROM information_schema.tables",
    ):
        assert rewrite(sql, catalog) == Passthrough(), sql
