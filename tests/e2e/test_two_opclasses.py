"""Two pgvec indexes on one vector column with different operator classes, as pgvector
allows (``vector_l2_ops`` and ``vector_cosine_ops`` on one column): each operator uses the
index of its operator class, one without an index stays exact, EXPLAIN names the index.

Every scenario runs the same statements against real pgvector 0.6 (a database of the
same cluster): its planner's choice of index is what pgvec's EXPLAIN must name, and its
sequential scan (index scans off) is the exact answer pgvec's ANN answers are measured
against (recall >= 0.9), or must equal where pgvec searches exactly.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from tests.fix_proxy import PgvecServer, pgvector_database

N, DIM, K = 3000, 16, 10
OPS = ("<->", "<=>", "<#>")


def vec(v: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def make_data(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Clustered rows whose norms vary widely, so that the nearest rows by L2, by cosine
    and by inner product differ; and query vectors near the clusters."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((30, DIM))
    rows = centers[rng.integers(0, 30, N)] + 0.3 * rng.standard_normal((N, DIM))
    rows *= rng.uniform(0.2, 5.0, (N, 1))
    queries = centers[rng.integers(0, 30, 20)] + 0.3 * rng.standard_normal((20, DIM))
    return rows.astype("f4"), queries.astype("f4")


DATA, QUERIES = make_data()


def fill(conn: psycopg.Connection) -> None:
    conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({DIM}))")
    with conn.cursor().copy("COPY items (id, embedding) FROM STDIN") as copy:
        for i, v in enumerate(DATA):
            copy.write_row((i, vec(v)))


@pytest.fixture
def pgvector(pg_uri: str) -> Iterator[psycopg.Connection]:
    """Real pgvector, the same rows, in a database of the same cluster."""
    with pgvector_database(pg_uri) as c:
        fill(c)
        c.execute("ANALYZE items")
        yield c


@pytest.fixture
def pgvec(proxy_uri: str, app_role: str) -> Iterator[psycopg.Connection]:
    """Through pgvec as an ordinary role that owns the database, psycopg's defaults
    (autocommit off), the same rows."""
    with psycopg.connect(proxy_uri.replace("postgres@", f"{app_role}@")) as c:
        fill(c)
        c.commit()
        yield c


def psql(uri: str, sql: str) -> str:
    """Statements run by psql one by one (simple protocol, autocommit)."""
    done = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", uri],
        input=sql,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def uri_of(conn: psycopg.Connection) -> str:
    info = conn.info
    return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"


def both(pgvec: psycopg.Connection, pgvector: psycopg.Connection, sql: str) -> None:
    """The same DDL on both sides: through pgvec with psql, straight into pgvector."""
    psql(uri_of(pgvec), sql)
    pgvector.execute(sql)


def top(conn: psycopg.Connection, op: str, q: np.ndarray) -> list[int]:
    rows = conn.execute(
        f"SELECT id FROM items ORDER BY embedding {op} %s LIMIT {K}", (vec(q),)
    ).fetchall()
    if not conn.autocommit:
        conn.rollback()
    return [r[0] for r in rows]


def exact(pgvector: psycopg.Connection, op: str, q: np.ndarray) -> list[int]:
    """pgvector's sequential scan: the exact answer."""
    with pgvector.transaction():
        pgvector.execute("SET LOCAL enable_indexscan = off")
        return top(pgvector, op, q)


def pgvector_index(pgvector: psycopg.Connection, op: str) -> str | None:
    """The index pgvector's planner uses for the operator, if any."""
    plan = "\n".join(
        r[0]
        for r in pgvector.execute(
            f"EXPLAIN SELECT id FROM items ORDER BY embedding {op} %s LIMIT {K}",
            (vec(QUERIES[0]),),
        )
    )
    found = re.search(r"Index Scan using (\S+) on items", plan)
    return found.group(1) if found else None


def ann_line(pgvec: psycopg.Connection, op: str) -> str:
    """pgvec's EXPLAIN line for the ANN step of a top-k with the operator."""
    lines = [
        r[0]
        for r in pgvec.execute(
            f"EXPLAIN SELECT id FROM items ORDER BY embedding {op} %s LIMIT {K}",
            (vec(QUERIES[0]),),
        )
    ]
    if not pgvec.autocommit:
        pgvec.rollback()
    return next(line.strip() for line in lines if "pgvec ANN Search" in line)


def recall(pgvec: psycopg.Connection, pgvector: psycopg.Connection, op: str) -> float:
    hits = sum(len(set(top(pgvec, op, q)) & set(exact(pgvector, op, q))) for q in QUERIES)
    return hits / (K * len(QUERIES))


def check_operators(
    pgvec: psycopg.Connection, pgvector: psycopg.Connection, indexed: dict[str, str]
) -> None:
    """Each operator of ``indexed`` (operator -> index name) uses that index in pgvector
    and in pgvec, with recall >= 0.9; the others are exact in both."""
    for op in OPS:
        name = indexed.get(op)
        assert pgvector_index(pgvector, op) == name, op
        line = ann_line(pgvec, op)
        if name is None:
            assert "exact" in line, line
            for q in QUERIES[:5]:
                assert top(pgvec, op, q) == exact(pgvector, op, q), op
        else:
            assert f"using {name} on items.embedding" in line, line
            assert "exact" not in line, line
            assert recall(pgvec, pgvector, op) >= 0.9, op


#: an HNSW index of each operator class on the same column
TWO_HNSW = (
    "CREATE INDEX items_l2 ON items USING hnsw (embedding vector_l2_ops);\n"
    "CREATE INDEX items_cos ON items USING hnsw (embedding vector_cosine_ops);\n"
)


def index_rows(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    rows = conn.execute(
        "SELECT index_name::text, column_name::text, method, metric, state FROM pgvec.indexes"
        " ORDER BY index_name"
    ).fetchall()
    if not conn.autocommit:
        conn.rollback()
    return rows


def test_each_operator_uses_the_index_of_its_operator_class(
    pgvec: psycopg.Connection, pgvector: psycopg.Connection
) -> None:
    both(pgvec, pgvector, TWO_HNSW)
    assert index_rows(pgvec) == [
        ("items_cos", "embedding", "HNSW", "COSINE", "ready"),
        ("items_l2", "embedding", "HNSW", "L2", "ready"),
    ]
    check_operators(pgvec, pgvector, {"<->": "items_l2", "<=>": "items_cos"})
    # the distances are pgvector's too
    sql = f"SELECT id, embedding <=> %s FROM items ORDER BY embedding <=> %s LIMIT {K}"
    q = vec(QUERIES[3])
    got = pgvec.execute(sql, (q, q)).fetchall()
    pgvec.rollback()
    want = dict(pgvector.execute(sql, (q, q)).fetchall())
    for key, dist in got:
        if key in want:
            assert dist == pytest.approx(want[key], abs=1e-5)


def test_hnsw_and_ivfflat_on_one_column(
    pgvec: psycopg.Connection, pgvector: psycopg.Connection
) -> None:
    both(
        pgvec,
        pgvector,
        "CREATE INDEX items_ip ON items USING hnsw (embedding vector_ip_ops);\n"
        "CREATE INDEX items_cos ON items USING ivfflat (embedding vector_cosine_ops)"
        " WITH (lists = 20);\n",
    )
    for conn in (pgvec, pgvector):
        conn.execute("SET ivfflat.probes = 8")
    pgvec.commit()
    assert [(r[0], r[2], r[3]) for r in index_rows(pgvec)] == [
        ("items_cos", "IVF_FLAT", "COSINE"),
        ("items_ip", "HNSW", "IP"),
    ]
    check_operators(pgvec, pgvector, {"<#>": "items_ip", "<=>": "items_cos"})


def test_the_same_operator_class_twice(
    pgvec: psycopg.Connection, pgvector: psycopg.Connection
) -> None:
    """pgvector allows a second index with the same operator class (it uses one of
    them); so does pgvec, which builds the one created last (test_same_opclass.py)."""
    both(pgvec, pgvector, "CREATE INDEX items_l2 ON items USING hnsw (embedding vector_l2_ops)")
    both(
        pgvec,
        pgvector,
        "CREATE INDEX items_l2_again ON items USING ivfflat (embedding vector_l2_ops)",
    )
    assert "using items_l2_again on" in ann_line(pgvec, "<->")
    both(pgvec, pgvector, "DROP INDEX items_l2_again")
    # in a transaction block, where indexes are built at commit, too
    pgvec.execute("CREATE INDEX items_ip ON items USING hnsw (embedding vector_ip_ops)")
    pgvec.execute("CREATE INDEX items_ip2 ON items USING ivfflat (embedding vector_ip_ops)")
    pgvec.commit()
    assert pgvec.execute("SELECT 1").fetchone() == (1,)  # (waits for the builds)
    assert [(r[0], r[2]) for r in index_rows(pgvec)] == [
        ("items_ip2", "IVF_FLAT"),
        ("items_l2", "HNSW"),  # in items_l2_again's place again
    ]
    psql(uri_of(pgvec), "DROP INDEX items_ip2; DROP INDEX items_ip;")
    # IF NOT EXISTS, as for an index of that name: nothing to do
    psql(
        uri_of(pgvec),
        "CREATE INDEX IF NOT EXISTS ON items USING hnsw (embedding vector_l2_ops);\n",
    )
    # another operator class is another index
    psql(
        uri_of(pgvec),
        "CREATE INDEX IF NOT EXISTS ON items USING hnsw (embedding vector_cosine_ops);\n",
    )
    assert [(r[0], r[3]) for r in index_rows(pgvec)] == [
        ("items_embedding_idx", "COSINE"),
        ("items_l2", "L2"),
    ]
    assert "using items_l2 on" in ann_line(pgvec, "<->")
    assert "using items_embedding_idx on" in ann_line(pgvec, "<=>")


def test_drop_one_keeps_the_other(
    pgvec: psycopg.Connection, pgvector: psycopg.Connection, pgvec_server: PgvecServer
) -> None:
    both(pgvec, pgvector, TWO_HNSW)
    manifests = pgvec_server.data_dir / "indexes"
    assert len(list(manifests.rglob("manifest.json"))) == 2
    both(pgvec, pgvector, "DROP INDEX items_cos")
    assert [r[0] for r in index_rows(pgvec)] == ["items_l2"]
    assert len(list(manifests.rglob("manifest.json"))) == 1
    check_operators(pgvec, pgvector, {"<->": "items_l2"})
    # and the other way round: a cosine index again, then the l2 one dropped
    both(
        pgvec, pgvector, "CREATE INDEX items_cos ON items USING hnsw (embedding vector_cosine_ops)"
    )
    both(pgvec, pgvector, "DROP INDEX items_l2")
    check_operators(pgvec, pgvector, {"<=>": "items_cos"})


def write_both(pgvec: psycopg.Connection, pgvector: psycopg.Connection) -> list[int]:
    """The same inserts, updates and deletes on both sides; returns the ids inserted."""
    rng = np.random.default_rng(9)
    new = list(range(N, N + 200))
    # each query vector itself (nearest by <-> and <=>), then rows near the queries
    near = np.tile(QUERIES, (10, 1)) * np.repeat(np.arange(1, 11), len(QUERIES))[:, None]
    near[len(QUERIES) :] += 0.1 * rng.standard_normal((len(new) - len(QUERIES), DIM))
    deleted = rng.choice(N, 300, replace=False).tolist()
    moved = rng.choice(sorted(set(range(N)) - set(deleted)), 100, replace=False).tolist()
    for conn in (pgvec, pgvector):
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO items VALUES (%s, %s)",
                [(i, vec(v)) for i, v in zip(new, near, strict=True)],
            )
            cur.execute("DELETE FROM items WHERE id = ANY(%s)", (deleted,))
            cur.executemany(
                "UPDATE items SET embedding = %s WHERE id = %s",
                [(vec(QUERIES[j % len(QUERIES)] * 0.5 + 0.01 * j), i) for j, i in enumerate(moved)],
            )
        if not conn.autocommit:
            conn.commit()
    return new


def test_writes_after_creation_reach_both_indexes(
    pgvec: psycopg.Connection, pgvector: psycopg.Connection
) -> None:
    both(pgvec, pgvector, TWO_HNSW)
    write_both(pgvec, pgvector)
    for j, q in enumerate(QUERIES[:5]):
        for op in ("<->", "<=>"):
            assert top(pgvec, op, q)[0] == exact(pgvector, op, q)[0] == N + j, op
    check_operators(pgvec, pgvector, {"<->": "items_l2", "<=>": "items_cos"})


def test_restart_brings_both_indexes_back(
    pg_uri: str,
    dbname: str,
    tmp_path: Path,
    pgvector: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    data_dir = tmp_path / "pgvec"
    ddl = (
        "CREATE INDEX items_l2 ON items USING hnsw (embedding vector_l2_ops);\n"
        "CREATE INDEX items_cos ON items USING ivfflat (embedding vector_cosine_ops)"
        " WITH (lists = 20);\n"
    )
    # pgvector's probes only steer its planner here (the exact answers are its sequential
    # scan): at probes = lists its IVF cost is a whole scan's and the planner's choice
    # between the two flips with the statistics, so pgvector keeps 8 of 20
    pgvector.execute("SET ivfflat.probes = 8")
    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname)) as conn:
            fill(conn)
            conn.commit()
            both(conn, pgvector, ddl)
            write_both(conn, pgvector)
            conn.execute("SET ivfflat.probes = 20")
            check_operators(conn, pgvector, {"<->": "items_l2", "<=>": "items_cos"})
    assert len(list((data_dir / "indexes").rglob("manifest.json"))) == 2

    caplog.clear()
    with caplog.at_level(logging.INFO):
        with PgvecServer(upstream, data_dir).start() as server:
            with psycopg.connect(server.uri(dbname)) as conn:
                conn.execute("SET ivfflat.probes = 20")
                check_operators(conn, pgvector, {"<->": "items_l2", "<=>": "items_cos"})
                # a write after the restart reaches both
                for c in (conn, pgvector):
                    c.execute("INSERT INTO items VALUES (-1, %s)", (vec(QUERIES[7] * 3),))
                    if not c.autocommit:
                        c.commit()
                for op in ("<->", "<=>"):
                    assert top(conn, op, QUERIES[7] * 3)[0] == -1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("loaded" in m and " from " in m for m in messages) == 2, messages
    assert not any("rebuilding index" in m or m.startswith("building") for m in messages)


def test_an_index_of_the_old_layout_is_upgraded(
    pg_uri: str, dbname: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A data directory of an earlier pgvec: pgvec.indexes with UNIQUE (relid, attnum)
    and the index files in <table oid>/<attnum>. The next start alters the constraint
    and moves the files; the index loads without a rebuild, and a second one with
    another operator class can be made."""
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    data_dir = tmp_path / "pgvec"
    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            fill(conn)
            conn.execute("CREATE INDEX items_l2 ON items USING hnsw (embedding vector_l2_ops)")
    [manifest] = (data_dir / "indexes").rglob("manifest.json")
    manifest.parent.rename(manifest.parent.parent / "2")  # the old layout's name
    with psycopg.connect(upstream, autocommit=True) as direct:
        direct.execute(
            "ALTER TABLE pgvec.indexes DROP CONSTRAINT indexes_relid_attnum_metric_key,"
            " ADD CONSTRAINT indexes_relid_attnum_key UNIQUE (relid, attnum)"
        )
        direct.execute("UPDATE pgvec.meta SET value = 'old' WHERE key = 'script_sha256'")

    caplog.clear()
    with caplog.at_level(logging.INFO):
        with PgvecServer(upstream, data_dir).start() as server:
            with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
                q = vec(QUERIES[0])
                assert conn.execute(
                    "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 1", (q,)
                ).fetchone() == (int(np.argmin(np.linalg.norm(DATA - QUERIES[0], axis=1))),)
                conn.execute(
                    "CREATE INDEX items_cos ON items USING hnsw (embedding vector_cosine_ops)"
                )
                assert [(r[0], r[3]) for r in index_rows(conn)] == [
                    ("items_cos", "COSINE"),
                    ("items_l2", "L2"),
                ]
                assert "using items_cos on" in ann_line(conn, "<=>")
    messages = [r.getMessage() for r in caplog.records]
    assert not any("rebuilding index" in m for m in messages), messages
    assert any("loaded" in m and " from " in m for m in messages), messages
    with psycopg.connect(upstream) as direct:
        (unique,) = direct.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'pgvec.indexes'::regclass AND contype = 'u'"
        ).fetchone() or (None,)
    assert unique == "UNIQUE (relid, attnum, metric)"
