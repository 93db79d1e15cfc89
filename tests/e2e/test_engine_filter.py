"""WHERE clauses on integer, float and boolean columns are evaluated by the engine over its
mirror of those columns, with PostgreSQL's answers: the same rows as PostgreSQL's own
evaluation of the WHERE clause, followed by exact search. The mirror follows writes made
straight in PostgreSQL, survives restarts, and steps aside when the schema changes."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from tests.fix_proxy import PgvecServer


@pytest.fixture
def pconn(pconn_both_ways: psycopg.Connection) -> psycopg.Connection:
    """Through pgvec as the superuser (autocommit) and as an ordinary role (transactions)."""
    return pconn_both_ways


ROWS, DIM, K = 2000, 8, 10
ENGINE = "filter evaluated in the engine"


def _row(i: int, rng: np.random.Generator) -> tuple[object, ...]:
    n = None if i % 17 == 0 else i % 100
    big = None if i % 19 == 0 else (i - 1000) * 10**15
    r = [math.nan, math.inf, -math.inf, None][i % 4] if i % 50 < 4 else float(i % 10) / 10
    d = None if i % 23 == 0 else i / 7
    b = None if i % 13 == 0 else i % 3 == 0
    s = i % 7
    cat = None if i % 11 == 0 else "abcde"[i % 5] * (1 + i % 2)
    tag = ["red", "green", "blue", "", " red"][i % 5]
    vec = rng.standard_normal(DIM).astype("f4")
    return (i, n, big, r, d, b, s, cat, tag, vec)


@pytest.fixture
def loaded(pconn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    rng = np.random.default_rng(5)
    pconn.execute(
        "CREATE TABLE items (id int PRIMARY KEY, n int, big bigint, r real,"
        " d double precision, b boolean, s smallint, cat text, tag varchar(8),"
        f" embedding vector({DIM}))"
    )
    with pconn.cursor().copy("COPY items FROM STDIN (FORMAT BINARY)") as copy:
        types = ["int4", "int4", "int8", "float4", "float8", "bool", "int2", "text", "varchar"]
        copy.set_types([*types, "bytea"])
        for i in range(ROWS):
            row = _row(i, rng)
            copy.write_row((*row[:-1], row[-1].tobytes()))  # type: ignore[union-attr]
    pconn.execute("CREATE INDEX ON items USING flat (embedding vector_l2_ops)")
    yield pconn


def truth(
    conn: psycopg.Connection, where: str, params: tuple[object, ...], q: np.ndarray
) -> list[int]:
    """PostgreSQL's own rows for ``where`` (no vector operator: passed through as is),
    ranked by exact distance."""
    rows = conn.execute(f"SELECT id, embedding FROM items WHERE {where}", params).fetchall()
    if not rows:
        return []
    ids = np.array([r[0] for r in rows])
    vecs = np.stack([np.array(r[1].strip("[]").split(","), "f4") for r in rows])
    order = np.lexsort((ids, np.linalg.norm(vecs - q, axis=1)))
    return ids[order][:K].tolist()


#: (WHERE clause, parameters[, False if the engine must leave it to PostgreSQL])
WHERES: list[tuple[str, tuple[object, ...]] | tuple[str, tuple[object, ...], bool]] = [
    ("n = %s", (42,)),
    ("n <> %s", (42,)),
    ("n > 2.5 AND n <= 10", ()),
    ("n BETWEEN -1 AND 3", ()),
    ("NOT (n BETWEEN 5 AND 95)", ()),
    ("n IN (1, 2, NULL)", ()),
    ("n NOT IN (1, 2, NULL)", ()),  # never true
    ("n NOT IN (1, 2)", ()),
    ("n IS NULL", ()),
    ("n IS NOT NULL AND s = 3", ()),
    ("n = '7'", ()),
    ("n = %s::bigint", ("7",)),
    ("big > %s", (10**17,)),
    ("big < -999000000000000000", ()),
    ("r = 0.1", ()),  # real widened to double: 0.1f <> 0.1
    ("r = 0.1::real", ()),
    ("r = %s", (0.5,)),
    ("r > 0.5", ()),  # NaN is above every number
    ("r < 'Infinity'", ()),
    ("r = 'NaN'", ()),
    ("d < %s OR b", (20.0,)),
    ("NOT b", ()),
    ("b = %s AND n < 50", (True,)),
    ("b IS NULL OR n IS NULL", ()),
    ("(s = 1 OR s = 2) AND NOT (n > 50)", ()),
    ("5 < n AND 10 > n", ()),
    ("id < 30", ()),
    ("n = ANY(%s)", ([1, 2, 300],)),
    ("n = ANY(%s) OR n IS NULL", ([4, None],)),
    ("NOT (n = ANY(%s))", ([1, None],)),  # never true
    ("NOT (n = ANY(%s))", ([1, 2],)),
    ("big = ANY(%s::bigint[])", ([(1 - 1000) * 10**15, 7],)),
    ("r = ANY(%s)", ([0.5, math.nan],)),
    ("s = ANY(ARRAY[1, 2])", ()),
    ("s = ANY('{3, NULL}')", ()),
    ("cat = %s", ("bb",)),
    ("cat <> 'a' AND n < 30", ()),
    ("cat IN ('cc', 'ee', NULL)", ()),
    ("cat IS NULL OR tag = 'red'", ()),
    ("tag = ' red'", ()),  # spaces count in text and varchar
    ("tag = ''", ()),
    ("cat = ANY(%s)", (["a", "dd", "zz"],)),
    ("cat = %s::text", ("e",)),
    ("cat = 'nowhere'", ()),
    # found in review: PostgreSQL's rules for these differ from one comparison per item
    ("r IN (0.1, 0.2)", (), False),  # compared as real: left to PostgreSQL
    ("n BETWEEN SYMMETRIC 60 AND 40", ()),
    ("tag = ANY(%s)", (["", "red"],)),
    ("NOT (tag = ANY('{\"\",red}'))", ()),
    ("cat = ANY('{\\b,cc}')", (), False),  # a backslash: left to PostgreSQL
    ("NOT (n = ANY('{}')) AND n IS NULL", ()),
    ("NOT (n = ANY(%s::int[])) AND n IS NULL", ([],)),
    ("n < 1e1000", ()),
]


@pytest.mark.parametrize("placeholder", ["%s", "%b"], ids=["text", "binary"])
@pytest.mark.parametrize(
    ("where", "params", "in_engine"),
    [(*case, True)[:3] for case in WHERES],
    ids=[case[0] for case in WHERES],
)
def test_engine_filter_agrees_with_postgres(
    loaded: psycopg.Connection,
    where: str,
    params: tuple[object, ...],
    in_engine: bool,
    placeholder: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same rows whether the engine or PostgreSQL evaluates the WHERE clause, with
    parameters sent as text and as binary."""
    caplog.set_level(logging.DEBUG, logger="pgvec.service.database")
    q = np.random.default_rng(len(where)).standard_normal(DIM).astype("f4")
    want = truth(loaded, where, params, q)
    where = where.replace("%s", placeholder)
    sql = f"SELECT id FROM items WHERE {where} ORDER BY embedding <-> %s, id LIMIT {K}"
    for engine in ("on", "off"):
        loaded.execute(f"SET pgvec.engine_filter = {engine}")
        caplog.clear()
        got = [r[0] for r in loaded.execute(sql, (*params, q.tobytes())).fetchall()]
        assert got == want, f"engine_filter = {engine}"
        assert (ENGINE in caplog.text) == (engine == "on" and in_engine)


@pytest.mark.parametrize(
    "where",
    [
        "abs(n) = 3",  # a function
        "n + 1 = 4",  # arithmetic
        "n = 3.7::int",  # a cast PostgreSQL rounds
        "cat < 'c'",  # text order is the collation's
        "cat = 'a' COLLATE \"C\"",
        "tag = 'red'::varchar(2)",  # a cast that truncates
        "id IN (SELECT id FROM items WHERE n = 3)",  # a subquery
    ],
)
def test_other_filters_stay_with_postgres(
    loaded: psycopg.Connection, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pgvec.service.database")
    q = np.zeros(DIM, "f4")
    got = loaded.execute(
        f"SELECT id FROM items WHERE {where} ORDER BY embedding <-> %s, id LIMIT {K}",
        (q.tobytes(),),
    ).fetchall()
    assert [r[0] for r in got] == truth(loaded, where, (), q)
    assert ENGINE not in caplog.text


def test_bad_parameter_gets_postgres_error(loaded: psycopg.Connection) -> None:
    """A value PostgreSQL rejects is left to PostgreSQL, which says why."""
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        loaded.execute(
            "SELECT id FROM items WHERE n = %s::text::int ORDER BY embedding <-> %s LIMIT 5",
            ("2.5", np.zeros(DIM, "f4").tobytes()),
        )
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        loaded.execute(
            "SELECT id FROM items WHERE s = '99999' ORDER BY embedding <-> %s LIMIT 5",
            (np.zeros(DIM, "f4").tobytes(),),
        )
    assert loaded.execute("SELECT count(*) FROM items").fetchone() == (ROWS,)


def test_mirror_follows_writes_made_straight_in_postgres(
    loaded: psycopg.Connection, db_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pgvec.service.database")
    q = np.zeros(DIM, "f4")
    sql = f"SELECT id FROM items WHERE n = %s ORDER BY embedding <-> %s LIMIT {K}"
    before = [r[0] for r in loaded.execute(sql, (5, q.tobytes())).fetchall()]
    with psycopg.connect(db_uri, autocommit=True) as direct:
        direct.execute("UPDATE items SET n = 5 WHERE id < 40")  # scalar only
        direct.execute("UPDATE items SET n = 6 WHERE id = %s", (before[0],))
        direct.execute("DELETE FROM items WHERE id = %s", (before[1],))
    got = [r[0] for r in loaded.execute(sql, (5, q.tobytes())).fetchall()]
    assert got == truth(loaded, "n = %s", (5,), q)
    assert before[0] not in got and before[1] not in got
    assert ENGINE in caplog.text


def test_schema_changes(
    loaded: psycopg.Connection, db_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A column added or dropped straight in PostgreSQL, and one retyped through pgvec."""
    caplog.set_level(logging.DEBUG, logger="pgvec.service.database")
    q = np.zeros(DIM, "f4")

    def search(where: str) -> list[int]:
        sql = f"SELECT id FROM items WHERE {where} ORDER BY embedding <-> %s, id LIMIT {K}"
        return [r[0] for r in loaded.execute(sql, (q.tobytes(),)).fetchall()]

    assert search("n = 3") == truth(loaded, "n = 3", (), q)
    with psycopg.connect(db_uri, autocommit=True) as direct:
        # dropped without pgvec seeing the DDL: searches and sync must not break
        direct.execute("ALTER TABLE items DROP COLUMN d")
        direct.execute("INSERT INTO items (id, n, embedding) VALUES (5000, 3, %s)", (q.tobytes(),))
    got = search("n = 3")
    assert got[0] == 5000 and got == truth(loaded, "n = 3", (), q)
    loaded.execute("ALTER TABLE items ADD COLUMN w int DEFAULT 7")
    loaded.execute("UPDATE items SET w = 8 WHERE id % 10 = 0")
    caplog.clear()
    assert search("w = 8") == truth(loaded, "w = 8", (), q)
    assert ENGINE in caplog.text
    loaded.execute("ALTER TABLE items ALTER COLUMN w TYPE bigint USING w * 2")
    caplog.clear()
    assert search("w = 16") == truth(loaded, "w = 16", (), q)
    assert ENGINE in caplog.text


def test_mirror_survives_restart(
    pg_uri: str, dbname: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pgvec.service.database")
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    q = np.zeros(DIM, "f4")
    sql = f"SELECT id FROM items WHERE n = %s ORDER BY embedding <-> %s, id LIMIT {K}"
    rng = np.random.default_rng(5)
    with PgvecServer(upstream, tmp_path / "data").start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, n int, embedding vector({DIM}))")
            with conn.cursor().copy("COPY items FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "int4", "bytea"])
                for i in range(ROWS):
                    copy.write_row((i, i % 100, rng.standard_normal(DIM).astype("f4").tobytes()))
            conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
            want = [r[0] for r in conn.execute(sql, (3, q.tobytes())).fetchall()]
    with psycopg.connect(upstream, autocommit=True) as direct:  # while pgvec is down
        direct.execute("UPDATE items SET n = 3 WHERE id = 4")
    with PgvecServer(upstream, tmp_path / "data").start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            caplog.clear()
            got = [r[0] for r in conn.execute(sql, (3, q.tobytes())).fetchall()]
            assert ENGINE in caplog.text
            assert got == truth(conn, "n = 3", (), q) != want  # id 4 moved in


def test_engine_filter_in_a_simple_query(
    loaded: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """What psql sends: one Query message, every value a literal."""
    caplog.set_level(logging.DEBUG, logger="pgvec.service.database")
    q = np.full(DIM, 0.25, "f4")
    literal = "[" + ",".join(["0.25"] * DIM) + "]"
    got = loaded.execute(
        f"SELECT id FROM items WHERE n BETWEEN 3 AND 4 AND NOT b"
        f" ORDER BY embedding <-> '{literal}', id LIMIT {K}"
    ).fetchall()
    assert [r[0] for r in got] == truth(loaded, "n BETWEEN 3 AND 4 AND NOT b", (), q)
    assert ENGINE in caplog.text


def test_text_with_many_values_is_not_mirrored(
    pconn: psycopg.Connection, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text column of titles is left to PostgreSQL (and costs no memory); a text
    column of a few categories is mirrored."""
    from pgvec.sync import table

    monkeypatch.setattr(table, "MIRROR_TEXT_VALUES", 50)
    caplog.set_level(logging.DEBUG, logger="pgvec.service.database")
    pconn.execute(
        f"CREATE TABLE docs (id int PRIMARY KEY, title text, kind text, embedding vector({DIM}))"
    )
    rng = np.random.default_rng(9)
    with pconn.cursor().copy("COPY docs FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "text", "text", "bytea"])
        for i in range(500):
            vec = rng.standard_normal(DIM).astype("f4")
            copy.write_row((i, f"title {i}", f"kind {i % 5}", vec.tobytes()))
    pconn.execute("CREATE INDEX ON docs USING hnsw (embedding vector_l2_ops)")
    q = np.zeros(DIM, "f4").tobytes()
    for where, engine in (("title = 'title 7'", False), ("kind = 'kind 2'", True)):
        caplog.clear()
        got = pconn.execute(
            f"SELECT id FROM docs WHERE {where} ORDER BY embedding <-> %s LIMIT 3", (q,)
        ).fetchall()
        assert len(got) == (1 if where.startswith("title") else 3)
        assert (ENGINE in caplog.text) == engine
