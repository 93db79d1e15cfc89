"""Fixtures that run a pgvec server (proxy + engine) in front of the test cluster."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgvec.app import serve


class PgvecServer:
    """A pgvec server on an ephemeral port, run on its own event loop in a thread."""

    def __init__(self, upstream: str, data_dir: Path, *, milvus_port: int = -1) -> None:
        self.upstream = upstream
        self.data_dir = data_dir
        self.port = 0
        self.milvus_port = milvus_port  # -1: no Milvus API
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> PgvecServer:
        ready = threading.Event()

        def on_ready(port: int) -> None:
            self.port = port
            ready.set()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve(
                self.upstream,
                self.data_dir,
                "127.0.0.1",
                0,
                embedded=False,
                on_ready=on_ready,
                stop=self._stop,
                milvus_port=self.milvus_port,
            )

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:
                self._error = exc
                ready.set()

        self._thread = threading.Thread(target=run, name="pgvec-server", daemon=True)
        self._thread.start()
        ready.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(60)
        self._thread = None

    def __enter__(self) -> PgvecServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def uri(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"


@pytest.fixture
def pgvec_server(pg_uri: str, dbname: str, tmp_path: Path) -> Iterator[PgvecServer]:
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    server = PgvecServer(upstream, tmp_path / "pgvec-data").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy_uri(pgvec_server: PgvecServer, dbname: str) -> str:
    return pgvec_server.uri(dbname)


@pytest.fixture
def pconn(proxy_uri: str) -> Iterator[psycopg.Connection]:
    """An autocommit psycopg connection through pgvec."""
    with psycopg.connect(proxy_uri, autocommit=True) as c:
        yield c


class UnitOfWork(psycopg.Connection):  # type: ignore[type-arg]
    """psycopg's default (autocommit off), each ``execute()`` committed after it, as an
    application or an ORM commits its units of work: every statement runs inside
    BEGIN ... COMMIT, and a failed one is rolled back."""

    def execute(self, *args: object, **kwargs: object) -> psycopg.Cursor:  # type: ignore[override]
        try:
            cur = super().execute(*args, **kwargs)  # type: ignore[arg-type]
        except psycopg.Error:
            if not self._num_transactions:  # (inside transaction(), it rolls back itself)
                self.rollback()
            raise
        if not self._num_transactions:
            self.commit()
        return cur


@pytest.fixture
def app_role(pg_uri: str, dbname: str) -> Iterator[str]:
    """An ordinary role (no superuser, no BYPASSRLS) that owns the test database and its
    schema public, as an application's role does."""
    name = "app_" + uuid.uuid4().hex[:10]
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
        conn.execute(f'ALTER DATABASE "{dbname}" OWNER TO {name}')
    with psycopg.connect(pg_uri, dbname=dbname, autocommit=True) as conn:
        conn.execute(f"ALTER SCHEMA public OWNER TO {name}")
    yield name
    with psycopg.connect(pg_uri, dbname=dbname, autocommit=True) as conn:
        conn.execute(f"REASSIGN OWNED BY {name} TO postgres")
        conn.execute(f"DROP OWNED BY {name}")
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f"DROP ROLE {name}")


@pytest.fixture(params=["superuser", "role"], ids=["superuser-autocommit", "role-transactions"])
def pconn_both_ways(request: pytest.FixtureRequest, proxy_uri: str) -> Iterator[psycopg.Connection]:
    """A connection through pgvec, once as the superuser with autocommit on, once as an
    ordinary role with autocommit off (each statement in a transaction of its own).
    A test module runs both ways with ``from tests.fix_proxy import pconn_both_ways as pconn``.
    """
    if request.param == "superuser":
        with psycopg.connect(proxy_uri, autocommit=True) as c:
            yield c
        return
    role = request.getfixturevalue("app_role")
    with UnitOfWork.connect(proxy_uri.replace("postgres@", f"{role}@")) as c:
        yield c


@contextlib.contextmanager
def pgvector_database(pg_uri: str) -> Iterator[psycopg.Connection]:
    """Real pgvector to compare with: a fresh database of the same cluster with
    ``CREATE EXTENSION vector`` (autocommit connection to it), dropped afterwards."""
    name = "pv_" + uuid.uuid4().hex[:10]
    with psycopg.connect(pg_uri, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(pg_uri, dbname=name, autocommit=True) as c:
            c.execute("CREATE EXTENSION vector")
            yield c
    finally:
        with psycopg.connect(pg_uri, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
