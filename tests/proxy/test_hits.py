"""Search hits as the array parameters of a rewritten statement, read back by PostgreSQL."""

from __future__ import annotations

import math

import numpy as np
import psycopg
import pytest
from psycopg.pq import Format

from pgvec.proxy.hits import distances_param


@pytest.mark.parametrize(
    "distances",
    [
        [],
        [0.0],
        [float(x) for x in np.random.default_rng(1).random(18).astype(np.float32)],
        [1e-300, -0.0, 3.4028234663852886e38, math.inf, 12345.678901234567],
        [0.5, None, 2.0],  # NULL: the distances to a NULL query vector
    ],
)
def test_distances_reach_postgresql_as_the_same_doubles(
    conn: psycopg.Connection, distances: list[float | None]
) -> None:
    value, fmt = distances_param(distances)
    res = conn.pgconn.exec_params(
        b"SELECT CAST($1 AS float8[])::text, cardinality(CAST($1 AS float8[]))",
        [value],
        [1022],
        [fmt],
    )
    assert res.status == psycopg.pq.ExecStatus.TUPLES_OK, res.error_message
    assert fmt == (Format.TEXT if None in distances else Format.BINARY)
    text, count = res.get_value(0, 0), res.get_value(0, 1)
    assert text is not None and count is not None
    assert int(count) == len(distances)
    got = [None if v == "NULL" else float(v) for v in text.decode().strip("{}").split(",") if v]
    assert got == distances
