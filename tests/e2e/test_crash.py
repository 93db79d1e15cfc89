"""SIGKILL pgvec at random points of a load with concurrent updates and deletes; after a
restart the index agrees exactly with the table: nothing missing, no phantom, no stale
vector. FLAT is exact, so any disagreement is a sync or persistence bug."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psycopg

DIM = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, upstream: str, data_dir: Path, port: int) -> None:
        env = {**os.environ, "PGVEC_CHECKPOINT_CHANGES": "50", "PGVEC_CHECKPOINT_SECONDS": "0.5"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pgvec",
                "--log-level",
                "warning",
                "serve",
                "--upstream",
                upstream,
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--milvus-port",
                "-1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:  # noqa: PERF203 (polling until it listens)
                time.sleep(0.1)
        raise AssertionError("pgvec serve did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def writer(uri: str, rng: random.Random, next_id: list[int], stop: threading.Event) -> None:
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            while not stop.is_set():
                with conn.transaction():
                    rows = []
                    for _ in range(20):
                        rows.append((next_id[0], np.float32(np.random.rand(DIM)).tobytes()))
                        next_id[0] += 1
                    conn.cursor().executemany("INSERT INTO t VALUES (%s, %s)", rows)
                victim = rng.randrange(max(1, next_id[0]))
                conn.execute("DELETE FROM t WHERE id = %s", (victim,))
                conn.execute(
                    "UPDATE t SET embedding = %s WHERE id = %s",
                    (np.float32(np.random.rand(DIM)).tobytes(), rng.randrange(max(1, next_id[0]))),
                )
                conn.execute(
                    "SELECT id FROM t ORDER BY embedding <-> %s LIMIT 5",
                    (np.float32(np.random.rand(DIM)).tobytes(),),
                )
    except psycopg.Error:
        pass  # the server was killed under us


def test_sigkill_during_load(db_uri: str, tmp_path: Path) -> None:
    port = free_port()
    uri = f"postgresql://postgres@127.0.0.1:{port}/{psycopg.conninfo.conninfo_to_dict(db_uri)['dbname']}"
    data_dir = tmp_path / "pgvec"
    rng = random.Random(7)
    server = Server(db_uri, data_dir, port)
    try:
        _load_with_kills(server, db_uri, data_dir, port, uri, rng)
    except BaseException:
        server.proc.kill()
        raise


def _load_with_kills(
    server: Server, db_uri: str, data_dir: Path, port: int, uri: str, rng: random.Random
) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE t (id int PRIMARY KEY, embedding vector({DIM}))")
        conn.execute("CREATE INDEX ON t USING flat (embedding vector_l2_ops)")
    next_id = [0]
    for _ in range(5):
        stop = threading.Event()
        threads = [
            threading.Thread(target=writer, args=(uri, rng, next_id, stop)) for _ in range(2)
        ]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.5, 2.0))
        server.kill()
        stop.set()
        for t in threads:
            t.join(30)
        server.proc = Server(db_uri, data_dir, port).proc
    try:
        with psycopg.connect(db_uri) as direct:
            rows = direct.cursor(binary=True).execute("SELECT id, embedding FROM t").fetchall()
        ids = np.array([r[0] for r in rows])
        mat = np.stack([np.frombuffer(r[1], "<f4") for r in rows])
        assert len(rows) > 100
        with psycopg.connect(uri, autocommit=True) as conn:
            for q in np.random.default_rng(1).random((5, DIM), dtype=np.float32):
                got = conn.execute(
                    "SELECT id, embedding <-> %s FROM t ORDER BY embedding <-> %s LIMIT %s",
                    (q.tobytes(), q.tobytes(), len(rows) + 10),
                ).fetchall()
                dist = np.linalg.norm(mat.astype(np.float64) - q, axis=1)
                want = ids[np.argsort(dist, kind="stable")]
                assert len(got) == len(rows)  # nothing missing, no phantom
                assert [g[0] for g in got] == want.tolist()  # no stale vector
                assert np.allclose([g[1] for g in got], np.sort(dist), rtol=1e-5)
    finally:
        server.stop()
