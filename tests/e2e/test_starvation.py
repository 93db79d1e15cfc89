"""Index builds in the background never make searches wait: builds, loads and checkpoints
run on threads and connections of their own.

Eight builds are held half-way (the ``gate`` of test_lifecycle); meanwhile every kind of
search must answer at once: filtered (PostgreSQL evaluates the WHERE), the first search of
a table (it is loaded), a search after DDL (the catalog is read again), a new client.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import psycopg

from tests.e2e.test_lifecycle import Gate, gate, wait_state
from tests.fix_proxy import PgvecServer

__all__ = ["gate"]  # the fixture, used by name

BUILDS = 8
DIM = 8


def make_table(conn: psycopg.Connection, name: str, n: int = 300) -> np.ndarray:
    conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, tag int, embedding vector({DIM}))")
    data = np.random.default_rng(len(name)).standard_normal((n, DIM)).astype("f4")
    with conn.cursor() as cur, cur.copy(f"COPY {name} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "int4", "bytea"])
        for i, v in enumerate(data):
            copy.write_row((i, i % 2, v.tobytes()))
    return data


def test_builds_do_not_starve_searches(
    pgvec_server: PgvecServer, pconn: psycopg.Connection, gate: Gate
) -> None:
    hot = make_table(pconn, "hot")
    gate.open()
    pconn.execute("CREATE INDEX hot_idx ON hot USING hnsw (embedding)")
    gate.__init__()  # type: ignore[misc]  # closed again for the builds below
    make_table(pconn, "cold")
    for i in range(BUILDS):
        make_table(pconn, f"t{i}", 5000)
    answered: list[str] = []

    def client() -> None:
        uri = pgvec_server.uri(pconn.info.dbname)
        with psycopg.connect(uri, autocommit=True, connect_timeout=10) as c:
            for i in range(BUILDS):
                c.execute(f"CREATE INDEX CONCURRENTLY t{i}_idx ON t{i} USING hnsw (embedding)")
            answered.append("CREATE INDEX CONCURRENTLY")
            assert gate.reached.wait(30)
            time.sleep(1.0)  # every build that got a thread is held at the gate now
        with psycopg.connect(uri, autocommit=True, connect_timeout=10) as c:
            answered.append("connect")
            q = hot[5].tobytes()
            got = c.execute(
                "SELECT id FROM hot WHERE tag = 1 ORDER BY embedding <-> %s LIMIT 3", (q,)
            ).fetchall()
            assert got[0] == (5,)
            answered.append("filtered")
            got = c.execute("SELECT id FROM cold ORDER BY embedding <-> %s LIMIT 1", (q,))
            assert len(got.fetchall()) == 1
            answered.append("first search of a table")
            c.execute("CREATE TABLE unrelated (x int)")
            got = c.execute("SELECT id FROM hot ORDER BY embedding <-> %s LIMIT 1", (q,))
            assert got.fetchall() == [(5,)]
            answered.append("after DDL")
            c.execute("INSERT INTO hot VALUES (1000, 1, %s)", (q,))
            got = c.execute(
                "SELECT id FROM hot WHERE tag = 1 ORDER BY embedding <-> %s LIMIT 2", (q,)
            ).fetchall()
            assert sorted(got) == [(5,), (1000,)]
            answered.append("a write, then a filtered search")

    worker = threading.Thread(target=client, daemon=True)
    try:
        worker.start()
        worker.join(45)
        assert not worker.is_alive(), f"stalled behind the builds after {answered}"
        assert len(answered) == 6, answered
    finally:
        gate.open()
    for i in range(BUILDS):
        wait_state(pconn, "ready", f"t{i}_idx")
