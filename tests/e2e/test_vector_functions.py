"""pgvector's functions, operators, aggregates and casts through pgvec, against real
pgvector (the extension pgserver ships, in a database of its own in the same cluster) on
the same rows: same values, same column names, same errors. What pgvector 0.6 lacks
(l2_normalize, subvector, ||) is checked against numpy."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from tests.fix_proxy import pgvector_database

ROWS = [
    (1, 1, "[1,2,3]"),
    (2, 1, "[-1,0.5,2]"),
    (3, 2, "[0,-0,1]"),
    (4, 2, "[1,2,3]"),
    (5, 2, None),
    (6, 3, "[-2.5,1e-3,4]"),
    (7, 3, "[1,2,3.5]"),
]
SETUP = [
    "CREATE TABLE items (id bigint PRIMARY KEY, cat integer, embedding vector(3))",
    "INSERT INTO items VALUES "
    + ", ".join(f"({i}, {c}, {'NULL' if v is None else repr(v)})" for i, c, v in ROWS),
]


@pytest.fixture
def pgvector(pg_uri: str) -> Iterator[psycopg.Connection[Any]]:
    """Real pgvector: a database of its own with the extension, the same rows."""
    with pgvector_database(pg_uri) as real, psycopg.connect(real.info.dsn) as conn:
        for sql in SETUP:
            conn.execute(sql)
        conn.commit()
        yield conn


@pytest.fixture
def pgvec(proxy_uri: str) -> Iterator[psycopg.Connection[Any]]:
    """The same rows through pgvec (psycopg's defaults: autocommit off)."""
    with psycopg.connect(proxy_uri) as conn:
        for sql in SETUP:
            conn.execute(sql)
        conn.commit()
        yield conn


def _run(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> tuple[list[str], list]:
    try:
        cur = conn.execute(sql, params)
        names = [d.name for d in cur.description or []]
        return names, cur.fetchall()
    finally:
        conn.rollback()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


QUERIES = [
    # functions, NULLs included
    "SELECT id, l2_distance(embedding, '[1,1,1]'), cosine_distance(embedding, '[1,1,1]'),"
    " inner_product('[1,1,1]', embedding), l1_distance(embedding, '[1,1,1]')"
    " FROM items ORDER BY id",
    "SELECT id, vector_dims(embedding), vector_norm(embedding) FROM items ORDER BY id",
    "SELECT vector_dims('[1,2,3,4]'::vector), vector_norm('[3,4]')",
    # operators, in the select list and in WHERE
    "SELECT id, embedding <-> '[1,1,1]', embedding <#> '[1,1,1]', embedding <=> '[1,1,1]'"
    " FROM items WHERE embedding <-> '[1,1,1]' < 3 ORDER BY id",
    "SELECT id, embedding + '[1,2,3]', embedding - '[1,2,3]', embedding * '[1,2,3]'"
    " FROM items ORDER BY id",
    "SELECT id, embedding + embedding AS twice FROM items ORDER BY id",
    "SELECT '[1,2]'::vector + '[3,4]'::vector, '[1,2]'::vector * '[3,4]'",
    # aggregates
    "SELECT avg(embedding), sum(embedding) FROM items",
    "SELECT cat, avg(embedding) AS mean, sum(embedding) FROM items GROUP BY cat ORDER BY cat",
    "SELECT avg(embedding) FROM items WHERE false",
    "SELECT avg(embedding) FILTER (WHERE cat = 1) FROM items",
    # casts
    "SELECT '[1,2,3]'::vector, '[1.5, 2.25]'::vector(2), CAST('[1]' AS vector)",
    "SELECT ARRAY[1,2,3]::vector, ARRAY[1.5,2.5]::real[]::vector,"
    " ARRAY[0.1,0.2]::double precision[]::vector, ARRAY[1.25,0.1]::numeric[]::vector",
    "SELECT id, embedding::real[] FROM items ORDER BY id",
    "SELECT id, embedding::vector(3) FROM items ORDER BY id",
    # a vector's text form (pgvector-python's own tests read vectors back this way)
    "SELECT '[1.5,2,3]'::vector::text, CAST('[1,-0.25]'::vector AS varchar)",
    "SELECT id, embedding::text, CAST(embedding AS varchar(6)) FROM items ORDER BY id",
    # distances to NULL are NULL
    "SELECT id, embedding <-> NULL, NULL <=> embedding, l2_distance(embedding, NULL)"
    " FROM items ORDER BY id",
    "SELECT id, embedding <-> NULL AS d FROM items ORDER BY embedding <-> NULL, id LIMIT 3",
    # cosine distances of parallel vectors are 0, never below
    "SELECT id, embedding <=> '[1,2,3]', embedding <=> '[2,4,6]' FROM items ORDER BY id",
    "SELECT id, embedding <=> '[2,4,6]' AS d FROM items ORDER BY embedding <=> '[2,4,6]', id"
    " LIMIT 3",
    # comparisons and ordering by value
    "SELECT id FROM items WHERE embedding = '[1,2,3]' ORDER BY id",
    "SELECT id FROM items WHERE embedding = '[0,0,1]' ORDER BY id",
    "SELECT id FROM items WHERE embedding <> '[1,2,3]' ORDER BY id",
    "SELECT id FROM items WHERE embedding < '[1,2,3]' ORDER BY id",
    "SELECT id FROM items WHERE embedding >= '[1,2,3]' ORDER BY id",
    "SELECT id, embedding FROM items ORDER BY embedding, id",
    "SELECT id FROM items ORDER BY embedding DESC NULLS LAST, id",
    "SELECT a.id, b.id FROM items a JOIN items b ON a.embedding = b.embedding AND a.id < b.id"
    " ORDER BY 1, 2",
    "SELECT embedding, count(*) FROM items GROUP BY embedding ORDER BY embedding",
    "SELECT count(*) FROM (SELECT DISTINCT embedding FROM items) AS d",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_same_as_pgvector(
    sql: str, pgvec: psycopg.Connection[Any], pgvector: psycopg.Connection[Any]
) -> None:
    want = _run(pgvector, sql)
    got = _run(pgvec, sql)
    assert got[0] == want[0], "column names"
    assert _same(got[1], want[1]), f"{got[1]} != {want[1]}"


PARAM_QUERIES = [
    ("SELECT id, l2_distance(embedding, %s) FROM items ORDER BY id", ("[1,1,1]",)),
    ("SELECT id, embedding - %s::vector FROM items ORDER BY id", ("[1,1,1]",)),
    ("SELECT id FROM items WHERE embedding = %s ORDER BY id", ("[1,2,3]",)),
    ("SELECT %s::vector(2)", ("[1,2]",)),
    ("SELECT %s::vector::text", ("[1.5,2,3]",)),
]


@pytest.mark.parametrize(("sql", "params"), PARAM_QUERIES)
def test_parameters_same_as_pgvector(
    sql: str, params: tuple[str, ...], pgvec: psycopg.Connection[Any], pgvector: Any
) -> None:
    want = _run(pgvector, sql, params)
    got = _run(pgvec, sql, params)
    assert got[0] == want[0]
    assert _same(got[1], want[1]), f"{got[1]} != {want[1]}"


ERRORS = [
    "SELECT l2_distance(embedding, '[1,2]') FROM items",
    "SELECT embedding + '[1,2]' FROM items",
    "SELECT embedding <-> '[1,2]' FROM items",
    "SELECT '[1,2]'::vector(3)",
    "SELECT ARRAY[1,2]::vector(3)",
    "SELECT '[3e38]'::vector + '[3e38]'::vector",
    "SELECT '[1,a]'::vector",
    "SELECT ARRAY[1,NULL]::real[]::vector",
    "SELECT '{{1,2},{3,4}}'::real[]::vector",
]


@pytest.mark.parametrize("sql", ERRORS)
def test_errors_as_pgvector(
    sql: str, pgvec: psycopg.Connection[Any], pgvector: psycopg.Connection[Any]
) -> None:
    with pytest.raises(psycopg.Error) as want:
        _run(pgvector, sql)
    with pytest.raises(psycopg.Error) as got:
        _run(pgvec, sql)
    assert got.value.sqlstate == want.value.sqlstate
    assert got.value.diag.message_primary == want.value.diag.message_primary


def _vec(text: str) -> np.ndarray:
    return np.array([float(x) for x in text.strip("[]").split(",")], dtype=np.float32)


def test_pgvector_07_functions(pgvec: psycopg.Connection[Any]) -> None:
    """l2_normalize, subvector and || (pgvector 0.7): against numpy."""
    names, rows = _run(
        pgvec,
        "SELECT id, l2_normalize(embedding), subvector(embedding, 2, 2),"
        " embedding || '[9]' AS cat, subvector(embedding, -1, 3) FROM items ORDER BY id",
    )
    assert names == ["id", "l2_normalize", "subvector", "cat", "subvector"]
    for (_, _, text), (_, norm, sub, cat, head) in zip(ROWS, rows, strict=True):
        if text is None:
            assert (norm, sub, cat, head) == (None, None, None, None)
            continue
        v = _vec(text)
        want = (v.astype(np.float64) / np.sqrt((v.astype(np.float64) ** 2).sum())).astype("f4")
        assert np.array_equal(_vec(norm), want)
        assert np.array_equal(_vec(sub), v[1:3])
        assert np.array_equal(_vec(cat), np.append(v, np.float32(9)))
        assert np.array_equal(_vec(head), v[:1])
    assert _run(pgvec, "SELECT l2_normalize('[0,0]')")[1] == [("[0,0]",)]
    with pytest.raises(psycopg.errors.DataException, match="at least 1 dimension"):
        _run(pgvec, "SELECT subvector('[1,2,3]'::vector, 4, 1)")


PSQL_SCRIPT = """\
CREATE TABLE items (id bigserial PRIMARY KEY, embedding vector(3));
INSERT INTO items (embedding) VALUES ('[1,2,3]'), ('[4,5,6]'), ('[-1,0.5,2]');
SELECT id, embedding <-> '[3,1,2]' AS distance FROM items ORDER BY id;
SELECT avg(embedding) FROM items;
SELECT sum(embedding), avg(embedding) AS mean FROM items WHERE id < 3;
SELECT vector_dims(embedding), vector_norm(embedding) FROM items ORDER BY id;
SELECT embedding + '[1,1,1]', embedding * '[2,2,2]' FROM items ORDER BY id;
SELECT '[1,2,3]'::vector, ARRAY[1,2,3]::vector, '[1,2,3]'::vector::real[];
SELECT id FROM items ORDER BY embedding;
SELECT * FROM items WHERE embedding = '[4,5,6]';
"""


def test_psql_session_as_pgvector(pg_uri: str, proxy_uri: str) -> None:
    """pgvector's README functions, through the real psql: output equal to pgvector's."""
    with pgvector_database(pg_uri) as real:
        outputs = [
            subprocess.run(
                ["/usr/bin/psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", uri],
                input=PSQL_SCRIPT,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            for uri in (psycopg.conninfo.make_conninfo(pg_uri, dbname=real.info.dbname), proxy_uri)
        ]
    want, got = outputs
    assert got == want


def test_cosine_distance_of_parallel_vectors_is_zero(pgvec: psycopg.Connection[Any]) -> None:
    """pgvector keeps the similarity within [-1, 1]: a vector's cosine distance to a
    multiple of itself is 0, exactly, in a top-k as in the select list (pgvector-python's
    test_vector_cosine_distance compares with 0 exactly)."""
    pgvec.execute("CREATE TABLE par (id bigint PRIMARY KEY, e vector(3))")
    pgvec.execute("INSERT INTO par VALUES (1, '[1,1,1]'), (2, '[2,2,2]'), (3, '[1,1,2]')")
    pgvec.commit()
    for sql in (
        "SELECT e <=> '[1,1,1]' FROM par ORDER BY id",
        "SELECT e <=> '[1,1,1]' AS d FROM par ORDER BY e <=> '[1,1,1]', id LIMIT 5",
    ):
        got = [r[0] for r in _run(pgvec, sql)[1]]
        assert got[:2] == [0.0, 0.0] and got[2] == pytest.approx(0.0571909584), (sql, got)


POSITIONED = [
    # PostgreSQL's errors about statements pgvec rewrote point where pgvector's do
    "CREATE TABLE r9 (id bigserial PRIMARY KEY, embedding vector(3), half halfvec(3))",
    "SELECT idd, embedding <-> '[1,1,1]' AS d FROM items ORDER BY embedding <-> '[1,1,1]' LIMIT 3",
    "SELECT id, embedding <=> '[1,1,1]' FROM items WHERE cat = 'x' ORDER BY id",
    "SELECT id, embedding::text FROM itemz",
]


@pytest.mark.parametrize("sql", POSITIONED)
@pytest.mark.parametrize("extended", [False, True], ids=["simple", "extended"])
def test_error_positions_as_pgvector(
    sql: str, extended: bool, pgvec: psycopg.Connection[Any], pgvector: psycopg.Connection[Any]
) -> None:
    def position(conn: psycopg.Connection[Any]) -> tuple[str | None, str | None]:
        with pytest.raises(psycopg.Error) as err:
            try:
                if extended:
                    conn.execute(sql, prepare=True)
                else:
                    conn.execute(sql.encode())  # bytes: psycopg's simple-query path
            finally:
                conn.rollback()
        return err.value.sqlstate, err.value.diag.statement_position

    want = position(pgvector)
    assert want[1] is not None
    assert position(pgvec) == want
