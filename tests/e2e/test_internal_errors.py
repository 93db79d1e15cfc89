"""A bug inside pgvec fails the statement with SQLSTATE XX000, on every path, and the
same session goes on: in autocommit and inside a transaction (which the error aborts,
as any error does in PostgreSQL).

Each case makes one pgvec internal raise RuntimeError (the server runs in this process,
on its own thread), sends the statement through the path that reaches it, and checks
the client's error, the transaction state, ``SELECT 1`` on the same connection and,
with the bug gone, the statement itself.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from pgvec import vectors
from pgvec.proxy import session
from pgvec.rewrite.rewriter import Rewriter
from pgvec.service.database import Database

KNN = "SELECT id FROM t ORDER BY embedding <-> {} LIMIT 1"
LOAD = "SELECT pgvec.load(%s)"


def _bug(*args: object, **kwargs: object) -> object:
    raise RuntimeError("simulated bug")


async def _async_bug(*args: object, **kwargs: object) -> object:
    raise RuntimeError("simulated bug")


def _query(conn: psycopg.Connection) -> object:
    return conn.execute(KNN.format("'[2,2]'")).fetchall()  # no parameters: simple Query


def _extended_knn(conn: psycopg.Connection) -> object:
    return conn.execute(KNN.format("%s"), ("[2,2]",)).fetchall()


def _load(conn: psycopg.Connection) -> object:
    return conn.execute(LOAD, ("t_embedding_idx",)).fetchall()


def _copy(conn: psycopg.Connection) -> object:
    with conn.cursor() as cur, cur.copy("COPY t FROM STDIN") as copy:
        copy.write("3\t[3,3]\n4\t[4,4]\n")
    return None


# path -> (what to break, the statement that reaches it there)
PATHS: dict[str, tuple[tuple[object, str, Callable[..., object]], Callable[..., object]]] = {
    "Query": ((Rewriter, "rewrite", _bug), _query),
    "Parse": ((Rewriter, "rewrite", _bug), _extended_knn),
    "Bind": ((session, "parse_index_name", _bug), _load),
    "Describe": ((session, "_action_description", _bug), _load),
    "Execute": ((Database, "load", _async_bug), _load),
    "COPY": ((vectors, "parse_text", _bug), _copy),
}


@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "transaction"])
@pytest.mark.parametrize("path", list(PATHS))
def test_a_bug_fails_the_statement_with_xx000_and_the_session_goes_on(
    pconn: psycopg.Connection,
    proxy_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    autocommit: bool,
) -> None:
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, embedding vector(2))")
    pconn.execute("INSERT INTO t VALUES (1, '[1,1]'), (2, '[2,2]')")
    pconn.execute("CREATE INDEX t_embedding_idx ON t USING hnsw (embedding vector_l2_ops)")
    (target, name, bug), statement = PATHS[path]
    with psycopg.connect(proxy_uri, autocommit=autocommit) as conn:
        monkeypatch.setattr(target, name, bug)
        for _ in range(2):  # and again: the session stays in step with the server
            with pytest.raises(psycopg.errors.InternalError_) as info:
                statement(conn)
            assert info.value.sqlstate == "XX000"
            assert "simulated bug" in str(info.value)
            if not autocommit:
                assert conn.info.transaction_status == TransactionStatus.INERROR
                conn.rollback()
            assert conn.execute("SELECT 1").fetchone() == (1,)
            if not autocommit:
                conn.rollback()
        monkeypatch.undo()
        statement(conn)
        conn.commit()
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (4 if path == "COPY" else 2,)
    assert pconn.execute(KNN.format("'[2,2]'")).fetchall() == [(2,)]


def test_a_bad_vector_in_copy_keeps_its_sqlstate(pconn: psycopg.Connection) -> None:
    """pgvec ends a COPY it cannot convert with CopyFail; the client gets pgvec's error,
    not PostgreSQL's 57014 "COPY from stdin failed"."""
    pconn.execute("CREATE TABLE v (id int PRIMARY KEY, embedding vector(2))")
    with pytest.raises(psycopg.Error) as info, pconn.cursor() as cur:
        with cur.copy("COPY v FROM STDIN") as copy:
            copy.write("1\t[1,2]\n2\t[1,x]\n")
    assert info.value.sqlstate == "22P02"
    assert "line 2" in str(info.value)
    assert pconn.execute("SELECT count(*) FROM v").fetchone() == (0,)
