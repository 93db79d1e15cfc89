"""pgvec's own connections to PostgreSQL: what they prepare stays prepared."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg

from pgvec.service.database import Database
from pgvec.sync.table import _read_changes


def _statements_survive(conn: psycopg.Connection) -> None:
    for _ in range(8):  # psycopg prepares a statement of its own after five runs
        conn.execute("SELECT 1")
    conn.execute("ROLLBACK")  # no transaction: only a warning, and the command status
    conn.execute("SELECT 1")
    assert _read_changes(conn, 0, 0, 0)[0] == []


def test_the_change_log_statement_survives_a_rollback(
    db_uri: str, dbname: str, tmp_path: Path
) -> None:
    """psycopg deallocates every prepared statement of its session after a ROLLBACK, a
    DROP or an ALTER once it prepared statements of its own; pgvec's connections (pools,
    index builds) keep the change-log statement they prepared through those. (A build
    that failed rolled back on its connection, and the next change-log read there failed
    with 'prepared statement "pgvec_changes" does not exist'.)"""

    async def main() -> None:
        db = Database(dbname, db_uri, tmp_path)
        await db.open()
        try:

            def use() -> None:
                with db.pool.connection() as conn:
                    _statements_survive(conn)
                with db.connect("test") as conn:
                    _statements_survive(conn)

            await db.run_maintenance(use)
        finally:
            await db.close()

    asyncio.run(main())
