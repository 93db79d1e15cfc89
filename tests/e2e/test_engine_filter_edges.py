"""Edge cases of engine-evaluated WHERE clauses, found in review: PostgreSQL's type
resolution, float32 rounding, array literals, string settings, encodings. Each answer
must be PostgreSQL's, whether the engine evaluates the clause or leaves it to PostgreSQL."""

from __future__ import annotations

import time

import numpy as np
import psycopg
import pytest


@pytest.fixture
def pconn(pconn_both_ways: psycopg.Connection) -> psycopg.Connection:
    """Through pgvec as the superuser (autocommit) and as an ordinary role (transactions)."""
    return pconn_both_ways


ONE_UP = float(np.nextafter(np.float32(1), np.float32(2)))  # 1.0000001192092896
MID = "1.00000005960464477539062501"  # just above the float32 midpoint 1 + 2**-24


@pytest.fixture
def edge(pconn: psycopg.Connection) -> psycopg.Connection:
    pconn.execute(
        "CREATE TABLE e (id int PRIMARY KEY, r real, d double precision,"
        " big bigint, cat text, embedding vector(2))"
    )
    vals = [  # (r, d, big, cat)
        (1.0, None, 9007199254740992, "true"),
        (ONE_UP, None, 9007199254740993, "1000"),
        (16777216.0, None, 7, "x\\y"),
        (0.5, None, 8, ""),
        (0.1, None, 9, "a"),
        (0.2, 0.1, 10, "b"),
    ]
    with pconn.cursor().copy("COPY e FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "float4", "float8", "int8", "text", "bytea"])
        for i, v in enumerate(vals):
            copy.write_row((i, *v, np.array([i, 0], "f4").tobytes()))
    pconn.execute("CREATE INDEX ON e USING flat (embedding vector_l2_ops)")
    return pconn


@pytest.mark.parametrize(
    ("where", "params"),
    [
        (f"r = '{MID}'", ()),  # PG strtof: ONE_UP; engine float() then float32: 1.0
        ("r = %s::real", (MID,)),
        (f"r = ANY('{{{MID}}}')", ()),
        ("big IN (9007199254740993, 1.5::float8)", ()),  # common type float8
        ("big IN (%s, %s)", (9007199254740993, 1.5)),
        ("big = ANY(ARRAY[9007199254740993, 1.5::float8])", ()),
        ("r IN (16777217, 0.5)", ()),  # common type real
        ("r IN (%s, %s)", (16777217, 1)),
        ("cat = true::text", ()),  # engine looks up 'True'
        ("cat = 1e3::text", ()),  # engine looks up '1E+3'
        ("cat = ANY(%s)", ([""],)),  # sent as {""}: engine reads NULL
    ],
)
def test_agrees_with_postgres(
    edge: psycopg.Connection, where: str, params: tuple[object, ...]
) -> None:
    want = sorted(r[0] for r in edge.execute(f"SELECT id FROM e WHERE {where}", params))
    got = sorted(
        r[0]
        for r in edge.execute(
            f"SELECT id FROM e WHERE {where} ORDER BY embedding <-> %s LIMIT 100",
            (*params, np.zeros(2, "f4").tobytes()),
        )
    )
    assert got == want


def test_undeclared_parameter_typed_at_first_use(pconn: psycopg.Connection) -> None:
    """$1 (sent untyped) is real in PostgreSQL (its first use); the engine reads it as
    double for d. Near rows the engine wrongly admits crowd out the right ones."""
    pconn.execute(
        "CREATE TABLE c (id int PRIMARY KEY, r real, d double precision, embedding vector(2))"
    )
    with pconn.cursor().copy("COPY c FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "float4", "float8", "bytea"])
        for i in range(70):
            near = i < 50
            copy.write_row(
                (
                    i,
                    [0.1, 0.2][i % 2] if near else 5.0,
                    None if near else 0.1,
                    np.array([i * 0.01 if near else 10 + i, 0], "f4").tobytes(),
                )
            )
    pconn.execute("CREATE INDEX ON c USING flat (embedding vector_l2_ops)")
    q = np.zeros(2, "f4").tobytes()
    for where, params in [
        ("d = %(v)s OR r = %(v)s", {"v": "0.1"}),  # PG: $1 double; r = 0.1::float8
        ("NOT (r IN (0.1, 0.2))", {}),  # PG: float4 comparison
        ("r = ANY(ARRAY[5.0, '0.2'])", {}),  # PG: numeric[]; '0.2' is not 0.2::real
    ]:
        got = [
            r[0]
            for r in pconn.execute(
                f"SELECT id FROM c WHERE {where} ORDER BY embedding <-> %(q)s, id LIMIT 10",
                {**params, "q": q},
            )
        ]
        assert got == list(range(50, 60)), where


def test_non_utf8_client_encoding(edge: psycopg.Connection, proxy_uri: str) -> None:
    """A LATIN1 parameter is left to PostgreSQL, which reads it in the client's own
    session and encoding: PostgreSQL's answer, not an error."""
    edge.execute("INSERT INTO e (id, cat, embedding) VALUES (100, 'é', '[0,0]')")
    with psycopg.connect(proxy_uri, autocommit=True) as conn:
        conn.execute("SET client_encoding = 'LATIN1'")
        rows = conn.execute(
            "SELECT id, cat FROM e WHERE cat = %s ORDER BY embedding <-> %s LIMIT 3",
            ("é", np.zeros(2, "f4").tobytes()),
        ).fetchall()
        assert rows == [(100, "é")]


def test_huge_numeric_literal_is_quick(edge: psycopg.Connection) -> None:
    edge.execute("ALTER TABLE e ADD COLUMN n int DEFAULT 1")
    start = time.monotonic()
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):  # PostgreSQL's own answer
        edge.execute(
            "SELECT id FROM e WHERE n < 1e1000000 ORDER BY embedding <-> %s LIMIT 3",
            (np.zeros(2, "f4").tobytes(),),
        )
    assert time.monotonic() - start < 5  # int(Decimal('1E+1000000')) in the engine: ~25 s
