"""The pgvec command as a user runs it: up (embedded PostgreSQL), status, down, up again."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.conninfo import make_conninfo

from pgvec.cli import _run_loop, main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", [[], ["up"], ["serve"], ["down"], ["status"], ["install"]])
def test_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize(
    ("choice", "module"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")]
)
def test_event_loop(choice: str, module: str) -> None:
    """The server runs on uvloop unless told otherwise (`--event-loop`)."""
    seen: list[str] = []

    async def which() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])

    _run_loop(which(), choice)
    assert seen == [module]


def test_serve_on_asyncio_loop(db_uri: str, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgvec", "serve", "--upstream", db_uri, "--data-dir",
         str(tmp_path), "--port", str(port), "--milvus-port", "-1",
         "--event-loop", "asyncio"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(make_conninfo(db_uri, port=port, host="127.0.0.1")) as c:
                    assert c.execute("SELECT 1").fetchone() == (1,)
                    break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(30)


def test_install_into_existing_database(db_uri: str) -> None:
    result = CliRunner().invoke(main, ["install", "--dsn", db_uri])
    assert result.exit_code == 0, result.output
    assert "installed" in result.output
    with psycopg.connect(db_uri) as conn:
        row = conn.execute("SELECT value FROM pgvec.meta WHERE key = 'version'").fetchone()
    assert row == ("0.1.0",)


def _start(data_dir: Path, port: int, milvus_port: int = -1) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pgvec",
            "up",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--milvus-port",
            str(milvus_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(
                f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2
            ):
                return proc
        except psycopg.OperationalError:  # noqa: PERF203 (polling until it listens)
            if proc.poll() is not None:
                raise AssertionError(
                    f"pgvec up exited: {proc.stdout.read() if proc.stdout else ''}"
                ) from None
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("pgvec up did not start listening")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgvec", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's tmp_path: the embedded PostgreSQL runs as another user, and pytest
    makes its own temporary root private to root."""
    path = Path(tempfile.mkdtemp(prefix="pgvec-cli-"))
    yield path / "pgvec"
    shutil.rmtree(path, ignore_errors=True)


def test_up_status_down_up(data_dir: Path) -> None:
    from pymilvus import MilvusClient

    port, milvus_port = free_port(), free_port()
    uri = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    proc = _start(data_dir, port, milvus_port)
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, embedding vector(3))")
            conn.execute("INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]'), (3, '[1,1,1]')")
            conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
            before = conn.execute(
                "SELECT id FROM items ORDER BY embedding <-> '[1,1,2]' LIMIT 3"
            ).fetchall()
        # the same table through the Milvus API that `pgvec up` serves
        milvus = MilvusClient(uri=f"http://127.0.0.1:{milvus_port}")
        assert milvus.list_collections() == ["items"]
        hits = milvus.search("items", data=[[1, 1, 2]], limit=3)[0]
        assert [h["id"] for h in hits] == [r[0] for r in before]
        milvus.close()
        status = _run("status", "--data-dir", str(data_dir))
        assert status.returncode == 0, status.stderr
        assert "items_embedding_idx" in status.stdout
        assert "HNSW" in status.stdout and "ready" in status.stdout
        header = next(line for line in status.stdout.splitlines() if line.startswith("index"))
        assert "memory" in header and "disk" in header
        assert " kB " in status.stdout or " bytes " in status.stdout
        down = _run("down", "--data-dir", str(data_dir))
        assert down.returncode == 0 and "stopped" in down.stdout
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _run("status", "--data-dir", str(data_dir)).returncode == 3

    proc = _start(data_dir, port)
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            after = conn.execute(
                "SELECT id FROM items ORDER BY embedding <-> '[1,1,2]' LIMIT 3"
            ).fetchall()
    finally:
        _run("down", "--data-dir", str(data_dir))
        proc.wait(30)
    assert after == before == [(3,), (1,), (2,)]
    out = proc.stdout.read() if proc.stdout else ""
    assert "psql" in out  # tells the user how to connect
    assert "loaded" in out and "building" not in out
