"""Index lifecycle from the user's side: background builds (CONCURRENTLY), their progress
in pgvec.index_progress, failed and dropped builds, and releasing / loading indexes.

Some tests hold a build half-way with ``gate``: it wraps the engine's (real) FAISS add so
that the build waits at 60% until the test opens the gate, making "while it builds"
a state to assert on rather than a race.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from psycopg import generators

from pgvec.cli import main
from pgvec.engine import faiss_index
from pgvec.service import builds
from tests.fix_proxy import PgvecServer

DIM = 16
TOPK = "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 10"


class Gate:
    """Holds every index build at 60% of its FAISS add until ``open()``."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self._open = threading.Event()

    def open(self) -> None:
        self._open.set()

    def hold(self, stage: str, fraction: float) -> None:
        if stage == "add" and fraction >= 0.6 and not self._open.is_set():
            self.reached.set()
            assert self._open.wait(60), "the gate was never opened"


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate()
    real_add = faiss_index.add

    def gated_add(
        index: Any,
        spec: Any,
        vectors: Any,
        first_label: int,
        progress: Callable[[str, float], None] | None = None,
        alive: Any = None,
    ) -> None:
        def report(stage: str, fraction: float) -> None:
            if progress is not None:
                progress(stage, fraction)
            g.hold(stage, fraction)

        real_add(index, spec, vectors, first_label, report, alive)

    monkeypatch.setattr(faiss_index, "add", gated_add)
    monkeypatch.setattr(builds, "WRITE_INTERVAL", 0.0)  # every report reaches the view
    yield g
    g.open()


def load(conn: psycopg.Connection, n: int, dim: int = DIM, seed: int = 3) -> np.ndarray:
    conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({dim}))")
    data = np.random.default_rng(seed).standard_normal((n, dim)).astype("f4")
    with conn.cursor() as cur, cur.copy("COPY items FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "bytea"])
        for i, v in enumerate(data):
            copy.write_row((i, v.tobytes()))
    return data


def exact(conn: psycopg.Connection, q: np.ndarray, k: int = 10) -> list[int]:
    """The true top-k, from the table's rows as they are now (read straight from it)."""
    rows = conn.cursor(binary=True).execute("SELECT id, embedding FROM items").fetchall()
    keys = np.array([r[0] for r in rows])
    mat = np.stack([np.frombuffer(r[1], "<f4") for r in rows])
    return keys[np.argsort(np.linalg.norm(mat - q, axis=1), kind="stable")][:k].tolist()


def top(conn: psycopg.Connection, q: np.ndarray) -> list[int]:
    return [r[0] for r in conn.execute(TOPK, (q.tobytes(),)).fetchall()]


def index_state(conn: psycopg.Connection, name: str = "items_idx") -> str | None:
    row = conn.execute("SELECT state FROM pgvec.indexes WHERE index_name = %s", (name,)).fetchone()
    return None if row is None else str(row[0])


def wait_state(conn: psycopg.Connection, want: str, name: str = "items_idx") -> None:
    deadline = time.monotonic() + 120
    while (got := index_state(conn, name)) != want:
        assert time.monotonic() < deadline, f"{name} is still {got!r}, not {want!r}"
        time.sleep(0.05)


def wait_progress(conn: psycopg.Connection, phase: str) -> tuple[Any, ...]:
    """The index_progress row of the build, once it is in ``phase``."""
    deadline = time.monotonic() + 60
    while True:
        row = conn.execute(
            "SELECT index_name, table_name, column_name, command, phase, rows_done,"
            " rows_total, percent, started_at <= updated_at, elapsed > '0'"
            " FROM pgvec.index_progress"
        ).fetchone()
        if row is not None and row[4] == phase:
            return tuple(row)
        assert time.monotonic() < deadline, f"no build in phase {phase!r}: {row}"
        time.sleep(0.05)


# -- background builds --------------------------------------------------------------------


def test_create_index_concurrently_returns_at_once_and_searches_stay_exact(
    pconn: psycopg.Connection, conn: psycopg.Connection, gate: Gate
) -> None:
    data = load(pconn, 5000)
    pconn.execute("CREATE INDEX CONCURRENTLY items_idx ON items USING hnsw (embedding)")
    # back while the build waits at the gate
    assert index_state(pconn) == "building"
    assert gate.reached.wait(60)
    # the progress view, read straight from PostgreSQL (not through pgvec)
    name, table, column, command, _, done, total, percent, ordered, ticking = wait_progress(
        conn, "adding rows"
    )
    assert (name, table, column, command) == (
        "items_idx",
        "items",
        "embedding",
        "CREATE INDEX CONCURRENTLY",
    )
    assert total == 5000 and 0 < done < total and 20 < percent < 95 and ordered and ticking
    # searches meanwhile: exact, and they see writes at once
    pconn.execute("INSERT INTO items VALUES (9000, %s)", (np.full(DIM, 0.01, "f4").tobytes(),))
    pconn.execute("DELETE FROM items WHERE id < 50")
    for q in (data[7], data[60], np.zeros(DIM, "f4")):
        assert top(pconn, q) == exact(conn, q)
    gate.open()
    wait_state(pconn, "ready")
    assert conn.execute("SELECT count(*) FROM pgvec.index_progress").fetchone() == (0,)
    row = conn.execute("SELECT rows_indexed, progress, error FROM pgvec.indexes").fetchone()
    assert row == (4951, 1.0, None)
    for q in (data[60], data[4000]):
        assert top(pconn, q)[0] == exact(conn, q)[0]


def test_create_index_concurrently_with_a_real_build(
    pconn: psycopg.Connection, conn: psycopg.Connection
) -> None:
    """No gate: 20,000 x 64 rows take FAISS a few seconds, CONCURRENTLY does not wait."""
    data = load(pconn, 20_000, dim=64)
    started = time.monotonic()
    pconn.execute(
        "CREATE INDEX CONCURRENTLY items_idx ON items USING hnsw (embedding)"
        " WITH (m = 16, ef_construction = 100)"
    )
    returned = time.monotonic() - started
    assert index_state(pconn) == "building"
    pconn.execute("SET hnsw.ef_search = 200")
    searched = found = 0
    while index_state(conn) == "building":
        # exact until the index is swapped in, then approximate: nearly always itself
        found += top(pconn, data[searched])[:1] == [searched]
        searched += 1
    wait_state(conn, "ready")
    built = time.monotonic() - started
    assert searched > 0 and returned < built
    assert found >= 0.95 * searched
    assert sum(top(pconn, data[i])[:1] == [i] for i in range(100)) >= 95


def test_plain_create_index_waits_and_reports_progress(
    pgvec_server: PgvecServer, pconn: psycopg.Connection, conn: psycopg.Connection, gate: Gate
) -> None:
    load(pconn, 5000)
    done = threading.Event()
    notices: list[str] = []

    def create() -> None:
        with psycopg.connect(pgvec_server.uri(pconn.info.dbname), autocommit=True) as c:
            c.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
            c.execute("CREATE INDEX items_idx ON items USING hnsw (embedding)")
        done.set()

    t = threading.Thread(target=create)
    t.start()
    assert gate.reached.wait(60)
    assert wait_progress(conn, "adding rows")[3] == "CREATE INDEX"
    assert not done.is_set()  # the client waits for its index
    gate.open()
    t.join(60)
    assert done.is_set() and index_state(conn) == "ready"


def test_one_build_per_column(pconn: psycopg.Connection, gate: Gate) -> None:
    load(pconn, 5000)
    pconn.execute("CREATE INDEX CONCURRENTLY items_idx ON items USING hnsw (embedding)")
    assert gate.reached.wait(60)
    # another index of its operator class would supersede it, once it is built
    with pytest.raises(psycopg.errors.ObjectInUse, match='"items_idx" is being built'):
        pconn.execute("CREATE INDEX CONCURRENTLY other ON items USING hnsw (embedding)")
    with pytest.raises(psycopg.errors.ObjectInUse, match='"items_idx" is being built') as info:
        pconn.execute("REINDEX INDEX items_idx")
    assert "pgvec.index_progress" in (info.value.diag.message_hint or "")
    with pytest.raises(psycopg.errors.ObjectInUse):
        pconn.execute("SELECT pgvec.release('items_idx')")
    gate.open()
    wait_state(pconn, "ready")


def test_failed_background_build(
    pconn: psycopg.Connection,
    conn: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pgvec.engine import faiss_index
    from pgvec.errors import InvalidParameter

    data = load(pconn, 20)
    real_build = faiss_index.build

    def failing(spec, *args, **kwargs):  # type: ignore[no-untyped-def]
        if int(spec.params.get("nlist", 0)) == 10:
            raise InvalidParameter("nlist (100) must not exceed the number of rows (20)")
        return real_build(spec, *args, **kwargs)

    monkeypatch.setattr(faiss_index, "build", failing)
    with caplog.at_level(logging.ERROR):
        pconn.execute(
            "CREATE INDEX CONCURRENTLY items_idx ON items USING ivfflat (embedding)"
            " WITH (lists = 10)"
        )
        wait_state(pconn, "failed")
    state, error = conn.execute("SELECT state, error FROM pgvec.indexes").fetchone() or ()
    assert state == "failed" and "nlist (100) must not exceed the number of rows (20)" in error
    assert any("building items_idx failed" in r.getMessage() for r in caplog.records)
    # the server is fine; the column is searched exactly
    assert top(pconn, data[3]) == exact(conn, data[3])
    # another index of its operator class supersedes it (which stays a standby, as
    # PostgreSQL keeps the invalid index a failed CONCURRENTLY build leaves)
    pconn.execute("CREATE INDEX ON items USING ivfflat (embedding) WITH (lists = 2)")
    assert index_state(pconn, "items_embedding_idx") == "ready"
    assert top(pconn, data[3])[0] == 3
    pconn.execute("DROP INDEX items_idx")
    assert index_state(pconn, "items_embedding_idx") == "ready"
    assert top(pconn, data[3])[0] == 3


def test_failed_plain_build_is_an_error_and_leaves_nothing(
    pconn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pgvec.engine import faiss_index
    from pgvec.errors import InvalidParameter

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise InvalidParameter("nlist (10) cannot be trained here")

    monkeypatch.setattr(faiss_index, "build", failing)
    load(pconn, 20)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="nlist"):
        pconn.execute("CREATE INDEX items_idx ON items USING ivfflat (embedding) WITH (lists = 10)")
    assert index_state(pconn) is None


def test_ivf_over_fewer_rows_than_lists_is_searched_exactly(pconn: psycopg.Connection) -> None:
    """As pgvector builds an IVF index over too little data (and Milvus leaves such a
    segment unindexed), the index is made, and searched exactly until it can be trained."""
    data = load(pconn, 20)
    pconn.execute("CREATE INDEX items_idx ON items USING ivfflat (embedding) WITH (lists = 100)")
    assert index_state(pconn) == "ready"
    assert top(pconn, data[3])[0] == 3


def test_drop_index_during_a_build_cancels_it(
    pgvec_server: PgvecServer,
    pconn: psycopg.Connection,
    conn: psycopg.Connection,
    gate: Gate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = load(pconn, 5000)
    pconn.execute("CREATE INDEX CONCURRENTLY items_idx ON items USING hnsw (embedding)")
    assert gate.reached.wait(60)
    dropped = threading.Event()

    def drop() -> None:
        with psycopg.connect(pgvec_server.uri(pconn.info.dbname), autocommit=True) as c:
            c.execute("DROP INDEX items_idx")
        dropped.set()

    with caplog.at_level(logging.INFO):
        t = threading.Thread(target=drop)
        t.start()
        time.sleep(0.3)  # DROP waits for the build to stop at its next progress report
        gate.open()
        t.join(60)
    assert dropped.is_set()
    assert any("building items_idx was canceled" in r.getMessage() for r in caplog.records)
    assert not any("built items_idx" in r.getMessage() for r in caplog.records)
    assert index_state(conn) is None
    assert conn.execute("SELECT count(*) FROM pgvec.index_progress").fetchone() == (0,)
    assert list((pgvec_server.data_dir / "indexes").rglob("manifest.json")) == []
    assert top(pconn, data[9]) == exact(conn, data[9])
    pconn.execute("CREATE INDEX items_idx ON items USING hnsw (embedding)")  # the column is free
    assert index_state(pconn) == "ready"


def test_reindex_concurrently_keeps_serving(
    pconn: psycopg.Connection, conn: psycopg.Connection, gate: Gate
) -> None:
    data = load(pconn, 5000)
    gate.open()
    pconn.execute("CREATE INDEX items_idx ON items USING hnsw (embedding)")
    gate.__init__()  # type: ignore[misc]  # closed again for the REINDEX
    pconn.execute("REINDEX INDEX CONCURRENTLY items_idx")
    assert gate.reached.wait(60)
    assert index_state(conn) == "building"
    assert wait_progress(conn, "adding rows")[3] == "REINDEX CONCURRENTLY"
    pconn.execute("DELETE FROM items WHERE id = 11")
    assert top(pconn, data[11])[0] != 11
    assert top(pconn, data[12])[0] == 12  # the previous index answers
    gate.open()
    wait_state(conn, "ready")
    assert top(pconn, data[12])[0] == 12
    assert conn.execute("SELECT rows_indexed FROM pgvec.indexes").fetchone() == (4999,)


# -- load and release ---------------------------------------------------------------------


def test_release_and_load(
    pconn: psycopg.Connection, conn: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    data = load(pconn, 2000)
    pconn.execute("CREATE INDEX items_idx ON items USING hnsw (embedding)")
    q = data[100]
    assert top(pconn, q)[0] == 100
    assert pconn.execute("SELECT pgvec.release('items_idx')").fetchall() == [(2000,)]
    state, memory, disk = (
        conn.execute("SELECT state, memory_bytes, disk_bytes FROM pgvec.indexes").fetchone() or ()
    )
    assert (state, memory) == ("released", 0) and disk > 0
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as info:
        top(pconn, q)
    assert 'index "items_idx" is not loaded' in str(info.value)
    assert "SELECT pgvec.load('items_idx')" in (info.value.diag.message_hint or "")
    # writes go on while it is released
    pconn.execute("DELETE FROM items WHERE id = 100")
    pconn.execute("INSERT INTO items VALUES (5000, %s)", ((q + 0.001).tobytes(),))
    pconn.execute("UPDATE items SET embedding = %s WHERE id = 7", ((q + 0.002).tobytes(),))
    assert pconn.execute("SELECT pgvec.release('items_idx')").fetchone() == (2000,)  # no-op
    caplog.clear()
    with caplog.at_level(logging.INFO):
        # a parameter, and binary results, work too
        got = pconn.cursor(binary=True).execute("SELECT pgvec.load(%s)", ("items_idx",))
        assert got.fetchone() == (2000,)
    messages = [r.getMessage() for r in caplog.records]
    assert any("loaded index items_idx" in m for m in messages), messages
    assert not any("building" in m or "CREATE INDEX" in m for m in messages), messages
    state, memory = conn.execute("SELECT state, memory_bytes FROM pgvec.indexes").fetchone() or ()
    assert state == "ready" and memory > 0
    assert top(pconn, q)[:2] == [5000, 7] == exact(conn, q)[:2]
    assert 100 not in top(pconn, q)
    assert pconn.execute("SELECT pgvec.load('items_idx')").fetchone() == (2000,)  # no-op


def test_load_and_release_errors(pconn: psycopg.Connection, conn: psycopg.Connection) -> None:
    load(pconn, 50)
    with pytest.raises(psycopg.errors.UndefinedObject, match='index "nope" does not exist'):
        pconn.execute("SELECT pgvec.release('nope')")
    # straight to PostgreSQL: the function says where it runs
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="runs in the pgvec server") as e:
        conn.execute("SELECT pgvec.load('items_idx')")
    assert "Connect through pgvec" in (e.value.diag.message_hint or "")
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        conn.execute("SELECT pgvec.release('items_idx')")


def test_release_and_load_with_psql_simple_protocol(pconn: psycopg.Connection) -> None:
    load(pconn, 50)
    pconn.execute("CREATE INDEX items_idx ON items USING hnsw (embedding)")
    for sql, value in (
        ("SELECT pgvec.release('items_idx')", b"50"),
        ("SELECT pgvec.load('items_idx');", b"50"),
    ):
        pconn.pgconn.send_query(sql.encode())  # psql's simple protocol
        results = pconn.wait(generators.execute(pconn.pgconn))
        assert [r.status for r in results] == [psycopg.pq.ExecStatus.TUPLES_OK]
        assert results[0].fname(0) in (b"release", b"load")
        assert results[0].get_value(0, 0) == value


def test_released_stays_released_across_restarts(pg_uri: str, dbname: str, tmp_path: Path) -> None:
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    data_dir = tmp_path / "pgvec"
    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as c:
            data = load(c, 500)
            c.execute("CREATE INDEX items_idx ON items USING hnsw (embedding)")
            c.execute("SELECT pgvec.release('items_idx')")
            c.execute("DELETE FROM items WHERE id = 1")
    with psycopg.connect(upstream, autocommit=True) as direct:  # pgvec is down
        direct.execute("INSERT INTO items VALUES (600, %s)", ((data[2] + 0.001).tobytes(),))
    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as c:
            assert index_state(c) == "released"
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
                top(c, data[1])
            c.execute("SELECT pgvec.load('items_idx')")
            assert top(c, data[1])[0] != 1
            assert top(c, data[2])[:2] == [2, 600]
    with PgvecServer(upstream, data_dir).start() as server:  # loaded stays loaded
        with psycopg.connect(server.uri(dbname), autocommit=True) as c:
            assert index_state(c) == "ready"
            assert top(c, data[2])[:2] == [2, 600]


# -- pgvec status -------------------------------------------------------------------------


def test_status_shows_builds_in_progress(
    pgvec_server: PgvecServer, pconn: psycopg.Connection, gate: Gate
) -> None:
    load(pconn, 5000)
    pconn.execute("CREATE INDEX CONCURRENTLY items_idx ON items USING hnsw (embedding)")
    assert gate.reached.wait(60)
    status = ["status", "--data-dir", str(pgvec_server.data_dir)]
    result = CliRunner().invoke(main, status)
    assert result.exit_code == 0, result.output
    assert "builds in progress" in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("items_idx") and "%" in x)
    assert "CREATE INDEX CONCURRENTLY" in line and "adding rows" in line and "/5000" in line

    threading.Timer(1.0, gate.open).start()
    result = CliRunner().invoke(main, [*status, "--watch"])
    assert result.exit_code == 0, result.output
    assert "items_idx on items" in result.output and "ready" in result.output
    assert "100%" in result.output and "all builds ended." in result.output
    result = CliRunner().invoke(main, status)
    assert "builds in progress" not in result.output
    assert "released" not in result.output
    pconn.execute("SELECT pgvec.release('items_idx')")
    result = CliRunner().invoke(main, [*status, "--watch"])
    assert "released" in result.output and "no index builds in progress." in result.output


def test_change_log_of_a_table_nobody_reads_is_emptied(
    pconn: psycopg.Connection, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index dropped while released leaves the table tracked and nothing loaded: its
    change-log rows are deleted (a later load reads the table itself), while a released
    index keeps the rows it will replay."""
    from pgvec.service import database

    monkeypatch.setattr(database, "CHECKPOINT_SECONDS", 0.5)
    data = load(pconn, 300)
    pconn.execute("CREATE INDEX items_idx ON items USING hnsw (embedding)")
    pconn.execute("SELECT pgvec.release('items_idx')")

    def logged() -> int:
        row = conn.execute("SELECT count(*) FROM pgvec.changes").fetchone()
        return int(row[0]) if row else 0

    conn.execute("UPDATE items SET embedding = embedding WHERE id < 20")
    time.sleep(2.5)
    assert logged() == 20  # kept for the load
    pconn.execute("DROP INDEX items_idx")
    conn.execute("UPDATE items SET embedding = embedding WHERE id < 30")
    deadline = time.monotonic() + 10
    while logged() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logged() == 0
    conn.execute("DELETE FROM items WHERE id = 5")
    got = [
        r[0]
        for r in pconn.execute(
            "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 2", (data[5].tobytes(),)
        )
    ]
    assert 5 not in got and got == exact(conn, data[5])[:2]
