"""The protocol paths PostgreSQL clients use, through pgvec, against PostgreSQL's own
replies: errors inside extended-protocol batches, pipelines without a Sync (Flush),
portals and their result descriptions, and psycopg's pipeline mode."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from pgvec.wire import messages as m
from tests.e2e.raw_client import RawClient, Reply, bind, close, describe, parse

KNN = "SELECT id FROM items ORDER BY embedding <-> $1 LIMIT 2"
FILTERED = "SELECT id FROM items WHERE id > $2 ORDER BY embedding <-> $1 LIMIT 2"
FAILING = "SELECT id FROM items WHERE id / 0 > $2 ORDER BY embedding <-> $1 LIMIT 2"
LOAD = "SELECT pgvec.load('items_embedding_idx')"
#: statements PostgreSQL answers with the same replies as pgvec answers the top-k ones
#: (PostgreSQL alone has no vector type for the parameter)
LIKE_POSTGRES = {
    KNN: "SELECT id FROM items WHERE $1::text <> '' ORDER BY id LIMIT 2",
    FILTERED: "SELECT id FROM items WHERE id > $2::int AND $1::text <> '' ORDER BY id LIMIT 2",
}


@pytest.fixture
def items(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(2))")
    pconn.execute(
        "INSERT INTO items SELECT i, format('[%s,%s]', i, i)::vector FROM generate_series(1, 50) i"
    )
    pconn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
    pconn.execute("CREATE TABLE plain (id int PRIMARY KEY, b bytea)")
    pconn.execute("INSERT INTO plain VALUES (1, '\\x0000803f')")


@pytest.fixture
def pgvec(proxy_uri: str, items: None) -> Iterator[RawClient]:
    client = RawClient(proxy_uri)
    yield client
    client.close()


@pytest.fixture
def postgres(db_uri: str, items: None) -> Iterator[RawClient]:
    client = RawClient(db_uri)
    yield client
    client.close()


def shape(replies: list[Reply]) -> list[tuple[str, object]]:
    """What must be equal: message types, error codes, command tags, statuses."""
    return [(r.type, r.detail if r.type in ("E", "C", "Z") else None) for r in replies]


SKIPPED_AFTER_ERROR = {
    "plain": [parse("SELEC 1"), bind(), describe("P"), m.execute(), m.SYNC],
    "later statements": [
        parse("SELECT 1"),
        bind(),
        describe("P"),
        m.execute(),
        parse("SELECT 1/0"),
        bind(),
        m.execute(),
        parse("SELECT 2"),
        bind(),
        m.execute(),
        m.SYNC,
        parse("SELECT 3"),
        bind(),
        m.execute(),
        m.SYNC,
    ],
    "intercepted load": [
        parse("SELEC"),
        parse(LOAD),
        bind(),
        describe("P"),
        m.execute(),
        m.SYNC,
    ],
    "intercepted load, named": [
        parse("SELEC"),
        parse(LOAD, "s1"),
        describe("S", "s1"),
        bind(statement="s1"),
        m.execute(),
        m.SYNC,
        parse("SELECT 1"),
        bind(),
        m.execute(),
        m.SYNC,
    ],
    "top-k": [parse("SELEC"), parse(KNN), bind([b"[1,1]"]), m.execute(), m.SYNC],
    "top-k, then an error": [
        parse(KNN),
        bind([b"[1,1]"]),
        m.execute(),
        parse("SELECT 1/0"),
        bind(),
        m.execute(),
        parse(KNN),
        bind([b"[1,1]"]),
        m.execute(),
        m.SYNC,
    ],
    "filtered top-k": [
        parse("SELECT 1/0"),
        bind(),
        m.execute(),
        parse(FILTERED),
        bind([b"[1,1]", b"3"]),
        m.execute(),
        m.SYNC,
    ],
}


@pytest.mark.parametrize("case", list(SKIPPED_AFTER_ERROR))
def test_replies_after_an_error_match_postgres(
    pgvec: RawClient, postgres: RawClient, case: str
) -> None:
    messages = SKIPPED_AFTER_ERROR[case]
    syncs = messages.count(m.SYNC)
    plain = [
        next((parse(LIKE_POSTGRES[sql]) for sql in LIKE_POSTGRES if msg == parse(sql)), msg)
        for msg in messages
    ]
    got = []
    for client, sent in ((postgres, plain), (pgvec, messages)):
        client.send(*sent)
        got.append(shape(client.until_ready(syncs)))
    assert got[1] == got[0]
    # and the session goes on
    pgvec.send(parse("SELECT 42"), bind(), m.execute(), m.SYNC)
    assert pgvec.until_ready()[2] == Reply("D", (b"42",))


def test_error_in_the_filter_fails_the_bind(pgvec: RawClient) -> None:
    """The filter runs when the Bind arrives, so its error answers the Bind (as a bad
    parameter value does in PostgreSQL); then everything up to the Sync is skipped."""
    pgvec.send(
        parse(FAILING),
        bind([b"[1,1]", b"3"]),
        describe("P"),
        m.execute(),
        parse("SELECT 2"),
        bind(),
        m.execute(),
        m.SYNC,
        parse("SELECT 3"),
        bind(),
        m.execute(),
        m.SYNC,
    )
    assert shape(pgvec.until_ready(2)) == [
        ("1", None),
        ("E", "22012"),
        ("Z", "I"),
        ("1", None),
        ("2", None),
        ("D", None),
        ("C", "SELECT 1"),
        ("Z", "I"),
    ]


def test_intercepted_statement_in_a_pipeline_without_sync(pgvec: RawClient) -> None:
    """The replies owed before an intercepted statement come without the client's Sync:
    pgvec flushes the server itself."""
    pgvec.send(
        parse("SELECT 1"),
        bind(),
        m.execute(),
        parse(LOAD),
        bind(),
        m.execute(),
        parse(FILTERED),
        bind([b"[1,1]", b"40"]),
        m.execute(),
        m.FLUSH,
    )
    replies = pgvec.read(11)
    assert [r.type for r in replies] == ["1", "2", "D", "C", "1", "2", "D", "C", "1", "2", "D"]
    assert replies[6] == Reply("D", (b"50",))
    assert replies[10] == Reply("D", (b"41",))
    pgvec.send(m.SYNC)
    assert [r.type for r in pgvec.until_ready()] == ["D", "C", "Z"]


def test_execute_without_describe_never_uses_a_stale_description(pgvec: RawClient) -> None:
    # the unnamed portal first returns a vector column (shown as text) ...
    pgvec.send(parse("SELECT id, embedding FROM items WHERE id = 1"), bind(), describe("P"))
    pgvec.send(m.execute(), m.SYNC)
    assert pgvec.until_ready()[3] == Reply("D", (b"1", b"[1,1]"))
    # ... then a bytea column at the same position, executed without a Describe
    for begin in (False, True):
        if begin:
            pgvec.send(parse("BEGIN"), bind(), m.execute(), m.SYNC)
            pgvec.until_ready()
            pgvec.send(parse("SELECT id, embedding FROM items WHERE id = 1"), bind())
            pgvec.send(describe("P"), m.execute(), m.SYNC)
            pgvec.until_ready()
        pgvec.send(parse("SELECT id, b FROM plain"), bind(), m.execute(), m.SYNC)
        replies = pgvec.until_ready()
        assert replies[2] == Reply("D", (b"1", b"\\x0000803f")), begin


def test_closed_portal_forgets_its_description(pgvec: RawClient) -> None:
    pgvec.send(parse("BEGIN"), bind(), m.execute(), m.SYNC)
    pgvec.until_ready()
    pgvec.send(parse("SELECT id, embedding FROM items WHERE id = 2"), bind(portal="p"))
    pgvec.send(describe("P", "p"), m.execute("p"), close("P", "p"), m.SYNC)
    assert [r.type for r in pgvec.until_ready()] == ["1", "2", "T", "D", "C", "3", "Z"]
    pgvec.send(parse("SELECT id, b FROM plain"), bind(portal="p"), m.execute("p"), m.SYNC)
    assert pgvec.until_ready()[2] == Reply("D", (b"1", b"\\x0000803f"))


def test_psycopg_pipeline_mixing_intercepted_statements(proxy_uri: str, items: None) -> None:
    q = np.array([10.2, 10.2], "f4")
    with psycopg.connect(proxy_uri) as conn, conn.pipeline() as pipeline:
        conn.execute("SET hnsw.ef_search = 60")
        knn = conn.execute("SELECT id FROM items ORDER BY embedding <-> %s LIMIT 3", (q.tobytes(),))
        filtered = conn.execute(
            "SELECT id FROM items WHERE id %% 2 = %s ORDER BY embedding <-> %s LIMIT 3",
            (1, q.tobytes()),
        )
        load = conn.execute(LOAD)
        plain = conn.execute("SELECT count(*) FROM items")
        pipeline.sync()
        assert [r[0] for r in knn.fetchall()] == [10, 11, 9]
        assert [r[0] for r in filtered.fetchall()] == [11, 9, 13]
        assert load.fetchone() == (50,)
        assert plain.fetchone() == (50,)


@pytest.mark.parametrize("autocommit", [True, False])
def test_psycopg_pipeline_with_create_index(proxy_uri: str, items: None, autocommit: bool) -> None:
    """CREATE INDEX in a pipeline, between other statements and with no Sync before it:
    built at once (autocommit) or when the transaction commits. (In autocommit, a write
    to the same table earlier in the same Sync batch holds a lock the build's triggers
    wait for: 55006 after 10 s. Not covered here.)"""
    q = np.array([10.2, 10.2], "f4")
    with psycopg.connect(proxy_uri, autocommit=autocommit) as conn:
        conn.execute("CREATE TABLE more (id int PRIMARY KEY, embedding vector(2))")
        conn.execute(
            "INSERT INTO more SELECT i, format('[%s,%s]', i, i)::vector"
            " FROM generate_series(1, 30) i"
        )
        conn.commit()
        with conn.pipeline() as pipeline:
            conn.execute("SET pgvec.consistency = 'strong'")
            before = conn.execute(
                "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 2", (q.tobytes(),)
            )
            conn.execute("CREATE INDEX more_idx ON more USING hnsw (embedding vector_l2_ops)")
            load = conn.execute(LOAD)
            pipeline.sync()
            assert [r[0] for r in before.fetchall()] == [10, 11]
            assert load.fetchone() == (50,)
        conn.commit()
        after = conn.execute(
            "SELECT id FROM more ORDER BY embedding <-> %s LIMIT 3", (q.tobytes(),)
        ).fetchall()
        assert [r[0] for r in after] == [10, 11, 9]
        state = conn.execute("SELECT state FROM pgvec.indexes WHERE index_name = 'more_idx'")
        assert state.fetchone() == ("ready",)
