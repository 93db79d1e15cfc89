"""Database.search over a neutral SearchRequest, without the SQL proxy: a batch of query
vectors, filtered in the engine or by PostgreSQL, as a second frontend would send it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import psycopg

from pgvec.engine.spec import Metric
from pgvec.filter.model import Column, Compare, Param
from pgvec.service.database import Database
from pgvec.service.request import FilterSpec, SearchRequest
from pgvec.service.search import ConnectionSQL

ROWS, DIM = 200, 4


def _exact(vecs: np.ndarray, q: np.ndarray, admitted: np.ndarray, k: int) -> list[int]:
    ids = np.flatnonzero(admitted)
    return ids[np.argsort(np.linalg.norm(vecs[ids] - q, axis=1))][:k].tolist()


def test_a_batch_of_vectors_with_a_filter(
    conn: psycopg.Connection, db_uri: str, dbname: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((ROWS, DIM)).astype("f4")
    queries = vecs[:3] + 0.01

    async def main() -> list[list[list[int]]]:
        db = Database(dbname, db_uri, tmp_path)
        await db.open()
        try:
            conn.execute(
                "CREATE TABLE t (id int PRIMARY KEY, m int, v bytea CHECK (pgvec.is_vector(v, 4)))"
            )
            with conn.cursor().copy("COPY t FROM STDIN") as copy:
                for i in range(ROWS):
                    copy.write_row((i, i % 3, vecs[i].tobytes()))
            db.note_ddl()
            table = next(iter((await db.catalog()).tables.values()))
            answers = []
            async with await psycopg.AsyncConnection.connect(db_uri, autocommit=True) as c:
                for engine_filter in (True, False):
                    request = SearchRequest(
                        table=table,
                        column=table.vectors["v"],
                        vectors=queries,
                        k=5,
                        metric=Metric.L2,
                        filter=FilterSpec(
                            "SELECT id FROM t WHERE m = $1",
                            "SELECT id FROM t WHERE m = $1 AND id = ANY($2::int[])",
                            [b"1"],
                            [0],
                            [0],
                            Compare(Column("m", "integer"), "=", Param(1)),
                        ),
                        engine_filter=engine_filter,
                    )
                    found = await db.search(request, ConnectionSQL(c))
                    answers.append([[int(k) for k in keys[:5]] for keys, _ in found])
            return answers
        finally:
            await db.close(checkpoint=False)

    admitted = np.arange(ROWS) % 3 == 1
    want = [_exact(vecs, q, admitted, 5) for q in queries]
    in_engine, in_postgres = asyncio.run(main())
    assert in_engine == want
    assert in_postgres == want
