"""Broken clients and concurrent clients never take the server down or corrupt an index."""

from __future__ import annotations

import socket
import struct
import threading

import numpy as np
import psycopg
import pytest

from tests.fix_proxy import PgvecServer

Q = "SELECT id FROM t ORDER BY embedding <-> %s LIMIT 5"


def setup(pconn: psycopg.Connection, n: int = 200) -> np.ndarray:
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, embedding vector(8))")
    data = np.random.default_rng(5).standard_normal((n, 8)).astype("f4")
    with pconn.cursor() as cur:
        cur.executemany(
            "INSERT INTO t VALUES (%s, %s)", [(i, v.tobytes()) for i, v in enumerate(data)]
        )
    pconn.execute("CREATE INDEX ON t USING hnsw (embedding vector_l2_ops)")
    return data


def raw(server: PgvecServer, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(payload)
        try:
            s.recv(1024)
        except OSError:
            pass


def test_garbage_and_abandoned_connections(
    pgvec_server: PgvecServer, pconn: psycopg.Connection
) -> None:
    data = setup(pconn)
    raw(pgvec_server, b"\x00\x00\x00\x08\x12\x34\x56\x78")  # unknown protocol
    raw(pgvec_server, b"\x16\x03\x01\x00\x05hello")  # a TLS hello
    raw(pgvec_server, b"\xff" * 64)  # nonsense length
    raw(pgvec_server, struct.pack("!ii", 8, 80877103))  # SSLRequest, then hang up
    # a client that starts a COPY and disappears
    with socket.create_connection(("127.0.0.1", pgvec_server.port), timeout=5):
        pass
    conn = psycopg.connect(pgvec_server.uri(pconn.info.dbname), autocommit=True)
    conn.pgconn.send_query(b"SELECT pg_sleep(0.2); SELECT 1")
    conn.pgconn.finish()  # gone mid-query
    got = pconn.execute(Q, (data[0].tobytes(),)).fetchall()
    assert got[0] == (0,)


def test_concurrent_writers_and_searchers(
    pgvec_server: PgvecServer, pconn: psycopg.Connection
) -> None:
    data = setup(pconn)
    uri = pgvec_server.uri(pconn.info.dbname)
    errors: list[BaseException] = []

    def writer(base: int) -> None:
        try:
            with psycopg.connect(uri, autocommit=True) as c:
                for i in range(30):
                    v = np.full(8, 100 + base * 50 + i, "f4")  # distinct: no ties
                    c.execute(
                        "INSERT INTO t VALUES (%s, %s)", (10_000 + base * 100 + i, v.tobytes())
                    )
                    if i % 3 == 0:
                        c.execute("DELETE FROM t WHERE id = %s", (base * 10 + i,))
        except BaseException as exc:
            errors.append(exc)

    def searcher() -> None:
        try:
            with psycopg.connect(uri, autocommit=True) as c:
                for i in range(30):
                    assert len(c.execute(Q, (data[i].tobytes(),)).fetchall()) == 5
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in range(3)]
    threads += [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    # the index agrees exactly with the table: every row, nothing else
    rows = pconn.cursor(binary=True).execute("SELECT id, embedding FROM t").fetchall()
    keys = np.array([r[0] for r in rows])
    mat = np.stack([np.frombuffer(r[1], ">f4", offset=4) for r in rows])  # pgvector's binary form
    for q in (data[3], np.full(8, 110, "f4"), np.full(8, 200, "f4")):
        want = keys[np.argsort(np.linalg.norm(mat - q, axis=1), kind="stable")][:5]
        got = [r[0] for r in pconn.execute(Q, (q.tobytes(),)).fetchall()]
        assert sorted(got) == sorted(want.tolist())


def test_searches_during_an_index_build_stay_correct(
    pgvec_server: PgvecServer, pconn: psycopg.Connection
) -> None:
    pconn.execute("CREATE TABLE b (id int PRIMARY KEY, embedding vector(32))")
    data = np.random.default_rng(9).standard_normal((30_000, 32)).astype("f4")
    with pconn.cursor() as cur, cur.copy("COPY b FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "bytea"])
        for i, v in enumerate(data):
            copy.write_row((i, v.tobytes()))
    q = data[123]
    sql = "SELECT id FROM b ORDER BY embedding <-> %s LIMIT 3"
    assert pconn.execute(sql, (q.tobytes(),)).fetchall()[0] == (123,)  # exact, no index yet
    uri = pgvec_server.uri(pconn.info.dbname)
    building = threading.Event()
    built = threading.Event()

    def build() -> None:
        with psycopg.connect(uri, autocommit=True) as c:
            building.set()
            c.execute("CREATE INDEX ON b USING hnsw (embedding) WITH (ef_construction = 100)")
        built.set()

    t = threading.Thread(target=build)
    t.start()
    building.wait(10)
    answered_during_build = 0
    while not built.is_set():
        assert pconn.execute(sql, (q.tobytes(),)).fetchall()[0] == (123,)
        if not built.is_set():
            answered_during_build += 1
    t.join(60)
    assert answered_during_build > 0
    assert pconn.execute(sql, (q.tobytes(),)).fetchall()[0] == (123,)


@pytest.mark.parametrize("prepared", [False, True], ids=["simple", "extended"])
def test_a_bug_fails_the_statement_not_the_session(
    pconn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, prepared: bool
) -> None:
    """An unexpected exception inside pgvec (a bug) answers the statement with SQLSTATE
    XX000 and leaves the connection usable."""
    from pgvec.service.database import Database

    pconn.execute("CREATE TABLE bug (id int PRIMARY KEY, embedding vector(2))")
    pconn.execute("INSERT INTO bug VALUES (1, '[1,1]'), (2, '[2,2]')")
    real = Database.search

    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(Database, "search", broken)
    query = "SELECT id FROM bug ORDER BY embedding <-> '[2,2]' LIMIT 1"
    with pytest.raises(psycopg.errors.InternalError_) as err:
        if prepared:
            pconn.execute(query.replace("'[2,2]'", "%s"), ("[2,2]",))
        else:
            pconn.execute(query)
    assert "simulated bug" in str(err.value)
    monkeypatch.setattr(Database, "search", real)
    assert pconn.execute(query).fetchall() == [(2,)]
