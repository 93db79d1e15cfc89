"""Checkpoints write what changed, without holding the table: writes and Strong searches go
on while one writes its files, and a restart finds every row."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from pgvec.service import database
from tests.fix_proxy import PgvecServer

NEAREST = "SELECT id FROM items ORDER BY embedding <-> '[0,0,0,0]' LIMIT 1"


def _drained(conn: psycopg.Connection) -> None:
    """Wait until every change to items is checkpointed (and deleted from the log)."""
    deadline = time.monotonic() + 20
    while conn.execute(
        "SELECT count(*) FROM pgvec.changes WHERE relid = 'items'::regclass"
    ).fetchone() != (0,):
        assert time.monotonic() < deadline, "the change log was not drained"
        time.sleep(0.1)


def test_writes_and_strong_searches_go_on_while_a_checkpoint_writes(
    pgvec_server: PgvecServer,
    pconn: psycopg.Connection,
    conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pconn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(4))")
    pconn.execute(
        "INSERT INTO items SELECT i, pgvec.vector(ARRAY[i, i, i, i]::real[])"
        " FROM generate_series(1, 2000) i"
    )
    pconn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
    assert pconn.execute(NEAREST).fetchone() == (1,)
    # The next checkpoint stops in its first fsync until released.
    writing, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def held_fsync(fd: int) -> None:
        if not writing.is_set():
            writing.set()
            release.wait(60)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", held_fsync)
    monkeypatch.setattr(database, "CHECKPOINT_SECONDS", 0.0)
    conn.execute("INSERT INTO items VALUES (5000, pgvec.vector('[9,9,9,9]'))")
    assert pconn.execute(NEAREST).fetchone() == (1,)  # applied: a checkpoint is due
    try:
        assert writing.wait(20), "no checkpoint started"
        found: list[object] = []

        def write_and_search() -> None:
            with psycopg.connect(pgvec_server.uri(conn.info.dbname), autocommit=True) as other:
                other.execute("INSERT INTO items VALUES (0, pgvec.vector('[0,0,0,0]'))")
                found.append(other.execute(NEAREST).fetchone())  # Strong: applies the insert

        thread = threading.Thread(target=write_and_search)
        thread.start()
        thread.join(15)
        still_writing = not release.is_set()
        assert found == [(0,)], "the search waited for the checkpoint's files"
        assert still_writing
    finally:
        release.set()
    thread.join(30)


def test_a_restart_after_incremental_checkpoints_finds_every_row(
    pg_uri: str, dbname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rounds of inserts, updates (of vectors and of other columns) and deletes, each
    checkpointed: the first checkpoint's vectors stay on disk, later ones add to them, and
    a restart loads them all (and the mirrored column) as the table has them."""
    monkeypatch.setattr(database, "CHECKPOINT_SECONDS", 0.0)
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    data_dir = tmp_path / "pgvec"
    rng = np.random.default_rng(5)

    def vec() -> bytes:
        return bytes(rng.standard_normal(4).astype("<f4").tobytes())

    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, kind int, embedding vector(4))")
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO items VALUES (%s, %s, %s)",
                    [(i, i % 5, vec()) for i in range(2000)],
                )
            conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
            manifest = next((data_dir / "indexes").rglob("manifest.json"))
            first = json.loads(manifest.read_text())["segments"][0]["vectors"]["name"]
            next_id = 2000
            for _ in range(4):
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO items VALUES (%s, %s, %s)",
                        [(next_id + i, i % 5, vec()) for i in range(20)],
                    )
                next_id += 20
                ids = [int(i) for i in rng.choice(next_id, 6, replace=False)]
                for i in ids[:2]:
                    conn.execute("UPDATE items SET embedding = %s WHERE id = %s", (vec(), i))
                conn.execute("UPDATE items SET kind = 7 WHERE id = ANY(%s)", (ids[2:4],))
                conn.execute("DELETE FROM items WHERE id = ANY(%s)", (ids[4:],))
                conn.execute(NEAREST).fetchall()  # Strong: applied, so checkpointed
                with psycopg.connect(upstream, autocommit=True) as direct:
                    _drained(direct)
            written = json.loads(manifest.read_text())
    assert written["segments"][0]["vectors"]["name"] == first  # not written again
    assert len(written["segments"]) > 1 and written["dead"] and written["patches"]

    with psycopg.connect(upstream) as direct:
        rows = direct.execute("SELECT id, kind FROM items").fetchall()
    everything = "SELECT id FROM items ORDER BY embedding <-> '[0,0,0,0]' LIMIT 5000"
    filtered = "SELECT id FROM items WHERE kind = 7 ORDER BY embedding <-> '[0,0,0,0]' LIMIT 5000"
    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            conn.execute("SET pgvec.consistency = eventually")  # what was loaded, as is
            got = [r[0] for r in conn.execute(everything).fetchall()]
            sevens = [r[0] for r in conn.execute(filtered).fetchall()]
    assert sorted(got) == sorted(r[0] for r in rows)
    assert sorted(sevens) == sorted(r[0] for r in rows if r[1] == 7)
