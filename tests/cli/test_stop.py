"""Stopping ``pgvec up`` whatever state it is in: Ctrl-C after its PostgreSQL died, and
``pgvec down`` / ``pgvec up`` after pgvec itself was killed (SIGKILL), which leaves the
embedded PostgreSQL running with nobody to stop it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import psycopg

from tests.cli.test_cli import _run, _start, data_dir, free_port

__all__ = ["data_dir"]  # the fixture, used by name


def postmasters(data_dir: Path) -> list[psutil.Process]:
    """The PostgreSQL server processes running on the embedded cluster of ``data_dir``."""
    pgdata = str(data_dir / "pg")
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and any(pgdata in part for part in cmdline):
            found.append(proc)
    return found


def kill_postmasters(data_dir: Path) -> None:
    for proc in postmasters(data_dir):
        proc.kill()


def wait_gone(procs: list[psutil.Process], timeout: float = 30) -> None:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    assert not alive, f"still running: {alive}"


def fill(port: int) -> None:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, embedding vector(2))")
        c.execute("INSERT INTO items VALUES (1, '[1,1]'), (2, '[2,2]') ON CONFLICT DO NOTHING")
        c.execute("CREATE INDEX IF NOT EXISTS items_idx ON items USING hnsw (embedding)")
        c.execute("INSERT INTO items VALUES (3, '[3,3]') ON CONFLICT DO NOTHING")
        assert c.execute("SELECT id FROM items ORDER BY embedding <-> '[3,3]' LIMIT 1").fetchall()


def test_ctrl_c_exits_even_after_postgres_died(data_dir: Path) -> None:
    port = free_port()
    proc = _start(data_dir, port)
    try:
        fill(port)
        servers = postmasters(data_dir)
        assert len(servers) == 1
        servers[0].kill()  # the embedded PostgreSQL dies
        wait_gone(servers)
        time.sleep(1.5)  # pgvec's background work meets the dead server
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        assert time.monotonic() - started < 8, proc.stdout.read() if proc.stdout else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_postmasters(data_dir)


def test_down_stops_the_postgres_of_a_killed_pgvec(data_dir: Path) -> None:
    port = free_port()
    proc = _start(data_dir, port)
    try:
        fill(port)
        servers = postmasters(data_dir)
        assert len(servers) == 1
        proc.kill()  # SIGKILL: pgvec cannot stop its PostgreSQL
        proc.wait(30)
        assert servers[0].is_running()
        down = _run("down", "--data-dir", str(data_dir))
        assert down.returncode == 0, down.stdout + down.stderr
        assert "embedded PostgreSQL" in down.stdout
        wait_gone(servers, 10)
        assert postmasters(data_dir) == []
        assert _run("status", "--data-dir", str(data_dir)).returncode == 3
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_postmasters(data_dir)


def test_up_reuses_the_postgres_of_a_killed_pgvec_and_down_stops_it(data_dir: Path) -> None:
    port = free_port()
    proc = _start(data_dir, port)
    try:
        fill(port)
        servers = postmasters(data_dir)
        assert len(servers) == 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc = _start(data_dir, port)  # attaches to the running PostgreSQL
        assert postmasters(data_dir) == servers
        fill(port)  # the data and the index are there
        down = _run("down", "--data-dir", str(data_dir))
        assert down.returncode == 0, down.stdout + down.stderr
        proc.wait(30)
        wait_gone(servers, 10)
        assert postmasters(data_dir) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_postmasters(data_dir)
