"""SET pgvec.consistency = strong | bounded | eventually, with Milvus's meanings:
Strong sees every write committed before the search; Bounded sees writes older than a
short bound (200 ms); Eventually sees them once the background sync has run (~1 s)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from pgvec.service import database


@pytest.fixture
def pconn(pconn_both_ways: psycopg.Connection) -> psycopg.Connection:
    """Through pgvec as the superuser (autocommit) and as an ordinary role (transactions)."""
    return pconn_both_ways


NEAR = "[0.5,0.5]"
SEARCH = "SELECT id FROM pts ORDER BY embedding <-> %s LIMIT 1"


@pytest.fixture
def pts(pconn: psycopg.Connection, db_uri: str) -> psycopg.Connection:
    pconn.execute("CREATE TABLE pts (id int PRIMARY KEY, embedding vector(2))")
    pconn.execute(
        "INSERT INTO pts SELECT i, format('[%s,%s]', i, i)::vector FROM generate_series(10, 50) i"
    )
    pconn.execute("CREATE INDEX ON pts USING hnsw (embedding vector_l2_ops)")
    return pconn


def nearest(conn: psycopg.Connection) -> int:
    row = conn.execute(SEARCH, (NEAR,)).fetchone()
    assert row is not None
    return int(row[0])


def test_strong_sees_a_write_from_another_session(
    pts: psycopg.Connection, conn: psycopg.Connection
) -> None:
    assert nearest(pts) == 10
    conn.execute("INSERT INTO pts VALUES (1, pgvec.vector('[0.5,0.5]'))")  # straight to PostgreSQL
    assert nearest(pts) == 1
    conn.execute("DELETE FROM pts WHERE id = 1")
    assert nearest(pts) == 10


def test_bounded_sees_writes_older_than_the_bound(
    pts: psycopg.Connection, conn: psycopg.Connection
) -> None:
    pts.execute("SET pgvec.consistency = 'bounded'")
    assert nearest(pts) == 10
    conn.execute("INSERT INTO pts VALUES (1, pgvec.vector('[0.5,0.5]'))")
    time.sleep(0.25)
    assert nearest(pts) == 1


def test_eventually_sees_writes_after_the_background_sync(
    pts: psycopg.Connection, conn: psycopg.Connection
) -> None:
    pts.execute("SET pgvec.consistency = eventually")
    assert nearest(pts) == 10
    started = time.monotonic()
    conn.execute("INSERT INTO pts VALUES (1, pgvec.vector('[0.5,0.5]'))")
    first = nearest(pts)
    if time.monotonic() - started < 0.15:
        # no Eventually search reads the change log itself, and the background sync
        # runs only for tables unsearched for a second
        assert first == 10
    deadline = time.monotonic() + 10
    while nearest(pts) != 1:
        assert time.monotonic() < deadline, "the write never became visible"
        time.sleep(0.1)
    pts.execute("RESET pgvec.consistency")
    assert nearest(pts) == 1


def test_change_log_is_drained_without_searches(
    pts: psycopg.Connection, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes are applied and checkpointed in the background, then deleted from the log."""
    monkeypatch.setattr(database, "CHECKPOINT_SECONDS", 1.0)
    assert nearest(pts) == 10  # the table is loaded
    conn.execute("INSERT INTO pts SELECT i, pgvec.vector('[9,9]') FROM generate_series(100, 199) i")
    deadline = time.monotonic() + 15
    while True:
        row = conn.execute(
            "SELECT count(*) FROM pgvec.changes WHERE relid = 'pts'::regclass"
        ).fetchone()
        if row is not None and row[0] == 0:
            break
        assert time.monotonic() < deadline, f"{row} change rows left"
        time.sleep(0.2)


def test_unknown_level_is_an_error(pts: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
        pts.execute("SET pgvec.consistency = 'session'")
    assert "strong, bounded, eventually" in (err.value.diag.message_hint or "")
    assert nearest(pts) == 10  # the session goes on


def test_strong_survives_losing_the_change_log_connection(
    pts: psycopg.Connection, conn: psycopg.Connection
) -> None:
    """Strong searches read the change log on a connection of their own; when it is cut
    (a PostgreSQL restart, an administrator), the next search reads it again, and a write
    made meanwhile is not missed."""
    assert nearest(pts) == 10
    killed = conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (database.CHANGES_APPLICATION,),
    ).fetchall()
    assert killed == [(True,)]
    conn.execute("INSERT INTO pts VALUES (1, pgvec.vector('[0.5,0.5]'))")
    assert nearest(pts) == 1  # read from the pool, then on a new connection
    conn.execute("DELETE FROM pts WHERE id = 1")
    assert nearest(pts) == 10


def test_strong_search_survives_a_failing_change_log_read(
    pts: psycopg.Connection, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong while the change log is read on pgvec's own connection (here:
    a bug), the search does not wait for ever: it reads the log from the pool, and sees
    the write committed before it."""
    from pgvec.service import freshness

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    assert nearest(pts) == 10
    monkeypatch.setattr(freshness, "changes_of", broken)
    conn.execute("INSERT INTO pts VALUES (1, pgvec.vector('[0.5,0.5]'))")
    assert nearest(pts) == 1
    conn.execute("DELETE FROM pts WHERE id = 1")
    assert nearest(pts) == 10


def test_strong_search_racing_the_background_sync(
    pts: psycopg.Connection,
    conn: psycopg.Connection,
    db_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Strong search reads the change log and searches meanwhile. If the background
    sync applies a change between the two (a write committed before the search), the
    log then looks fully applied, but the search ran without the change: it must run
    again, not answer without the write."""
    from pgvec.sync import table

    assert nearest(pts) == 10
    conn.execute("INSERT INTO pts VALUES (1, pgvec.vector('[0.5,0.5]'))")  # committed first
    real = table.TableState.note_fresh
    raced: list[bool] = []

    def background_sync_first(self: table.TableState, *args: object) -> bool:
        if not raced:  # as if the background sync ran while the search did
            raced.append(True)
            with psycopg.connect(db_uri, autocommit=True) as sync:
                table.prepare_statements(sync)
                with self.lock:
                    self.apply_changes(sync)
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(table.TableState, "note_fresh", background_sync_first)
    assert nearest(pts) == 1
    assert raced


def test_concurrent_strong_searches_share_change_log_reads(
    pts: psycopg.Connection,
    conn: psycopg.Connection,
    proxy_uri: str,
    db_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Strong searches of many sessions at once do not queue behind one another's
    change-log read: a read serves every search that began before it was sent. And each
    search still sees what was committed before it began: every client commits a row of
    its own (straight to PostgreSQL), then searches for it through pgvec at once."""
    from pgvec.service import freshness

    sent: list[int] = []
    real = freshness.send_changes_read

    def counted(*args: object) -> None:
        sent.append(1)
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(freshness, "send_changes_read", counted)
    assert nearest(pts) == 10
    clients, rounds = 12, 15
    start = threading.Barrier(clients)
    missed: list[tuple[int, int, int]] = []

    def client(n: int) -> None:
        with (
            psycopg.connect(proxy_uri, autocommit=True) as search,
            psycopg.connect(db_uri, autocommit=True) as write,
        ):
            start.wait()
            for r in range(rounds):
                key = 1000 + n * rounds + r
                point = f"[{-100 - key},{100 + key}]"
                write.execute("INSERT INTO pts VALUES (%s, pgvec.vector(%s))", (key, point))
                row = search.execute(SEARCH, (point,)).fetchone()
                if row is None or row[0] != key:
                    missed.append((n, r, row[0] if row else -1))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    sent.clear()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert missed == []
    searches = clients * rounds
    assert len(sent) < searches * 0.8, f"{len(sent)} change-log reads for {searches} searches"
