"""The change-log connection's reader (freshness._Results): one reader registered for
the connection's life, answers taken whether they arrive before or after a search asks
for them, and a broken connection is an error, never a wait without end. On asyncio's
loop and on uvloop (what `pgvec serve` runs on)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg
import pytest
import uvloop

from pgvec.service.freshness import _Results

Runner = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    return asyncio.run if request.param == "asyncio" else uvloop.run  # type: ignore[return-value]


async def _connect(db_uri: str) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(
        db_uri, autocommit=True, application_name="test reader"
    )
    await conn.execute("SELECT 1")  # psycopg's own reader comes and goes first
    return conn


def test_answers_before_and_after_they_are_asked_for(db_uri: str, run: Runner) -> None:
    async def main() -> None:
        results = _Results(await _connect(db_uri))
        try:
            for i in range(6):
                results.conn.pgconn.send_query(f"SELECT {i}".encode())
                results.flush()
                if i % 2:  # the answer is in (libpq's buffer) before anyone asks
                    await asyncio.sleep(0.1)
                res = await asyncio.wait_for(results.result(), 10)
                assert res.get_value(0, 0) == str(i).encode()
            # an error is a result like any other
            results.conn.pgconn.send_query(b"SELECT 1/0")
            results.flush()
            res = await asyncio.wait_for(results.result(), 10)
            assert res.status == psycopg.pq.ExecStatus.FATAL_ERROR
        finally:
            results.close()
        assert results.conn.closed

    run(main())


def test_a_connection_cut_is_an_error(db_uri: str, run: Runner) -> None:
    async def main() -> None:
        results = _Results(await _connect(db_uri))
        async with await psycopg.AsyncConnection.connect(db_uri, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(%s)", (results.conn.pgconn.backend_pid,)
            )
        await asyncio.sleep(0.2)  # the reader sees the end of the connection
        with pytest.raises(psycopg.OperationalError):
            results.conn.pgconn.send_query(b"SELECT 1")
            results.flush()
            await asyncio.wait_for(results.result(), 10)
        results.close()

    run(main())


def test_a_cut_while_waiting_is_an_error(db_uri: str, run: Runner) -> None:
    async def main() -> None:
        results = _Results(await _connect(db_uri))
        results.conn.pgconn.send_query(b"SELECT pg_sleep(30)")
        results.flush()
        waiting = results.result()
        async with await psycopg.AsyncConnection.connect(db_uri, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(%s)", (results.conn.pgconn.backend_pid,)
            )
        with pytest.raises(psycopg.OperationalError):
            await asyncio.wait_for(waiting, 10)
        results.close()

    run(main())
