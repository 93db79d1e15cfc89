"""Malformed or hostile bytes close only the connection that sent them.

Raw sockets to 127.0.0.1 send truncated messages, absurd lengths, garbage after startup
and random bytes before it. Each such connection is closed by pgvec (with FATAL 08P01
where there is something to refuse), while a psycopg session with a transaction open
goes on, and new connections are still accepted.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgvec.proxy import server
from pgvec.wire import messages as m
from pgvec.wire.framing import FrameBuffer, Message, ProtocolViolation, frame
from tests.fix_proxy import PgvecServer
from tests.fuzzing import fuzz_settings

KNN = "SELECT id FROM t ORDER BY embedding <-> %s LIMIT 1"
#: how long pgvec may take to close a connection it should close
CLOSE_WITHIN = 10.0


@pytest.fixture
def witness(pconn: psycopg.Connection, proxy_uri: str) -> Iterator[psycopg.Connection]:
    """A session in the middle of a transaction while other connections misbehave."""
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, embedding vector(2))")
    pconn.execute("INSERT INTO t VALUES (1, '[1,1]'), (2, '[2,2]')")
    pconn.execute("CREATE INDEX ON t USING hnsw (embedding vector_l2_ops)")
    with psycopg.connect(proxy_uri) as conn:
        conn.execute("INSERT INTO t VALUES (3, '[3,3]')")
        yield conn


def still_works(witness: psycopg.Connection, proxy_uri: str, *, commit: bool = True) -> None:
    """The witness session sees its own uncommitted row, commits it, and a new
    connection sees it too."""
    assert witness.execute(KNN, ("[3,3]",)).fetchall() == [(3,)]
    if commit:
        witness.commit()
    with psycopg.connect(proxy_uri, autocommit=True) as fresh:
        want = [(3,)] if commit else [(2,)]
        assert fresh.execute(KNN, ("[2.9,2.9]",)).fetchall() == want


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=CLOSE_WITHIN)


def started(port: int, dbname: str) -> socket.socket:
    """A raw connection past startup: ReadyForQuery received."""
    sock = connect(port)
    body = struct.pack("!i", 3 << 16)
    body += b"user\0postgres\0database\0" + dbname.encode() + b"\0\0"
    sock.sendall(struct.pack("!i", len(body) + 4) + body)
    buf = FrameBuffer()
    while True:
        data = sock.recv(65536)
        assert data, "closed during startup"
        buf.feed(data)
        for msg in buf.messages():
            assert msg.type != b"E", m.error_fields(msg.body)
            if msg.type == b"Z":
                return sock


def closed(sock: socket.socket, *, hang_up: bool = False) -> bytes:
    """Everything pgvec sends until it closes the connection (within CLOSE_WITHIN s).
    ``hang_up``: close our side for writing first, as a client that goes away does."""
    if hang_up:
        sock.shutdown(socket.SHUT_WR)
    got = b""
    deadline = time.monotonic() + CLOSE_WITHIN
    try:
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return got
            except TimeoutError:
                break
            if not data:
                return got
            got += data
        raise AssertionError(f"connection still open after {CLOSE_WITHIN} s; got {got!r}")
    finally:
        sock.close()


def fatal_sqlstates(data: bytes) -> list[str]:
    """SQLSTATEs of the FATAL errors among the messages in ``data`` (an 'N' answering
    SSLRequest before them is skipped)."""
    buf = FrameBuffer()
    buf.feed(data.lstrip(b"N"))
    codes = []
    try:
        while (msg := buf.next_message()) is not None:
            fields = m.error_fields(msg.body) if msg.type == b"E" else {}
            if fields.get("V") == "FATAL":
                codes.append(fields.get("C", ""))
    except ProtocolViolation:
        pass
    return codes


# -- after startup ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"Q",
        b"Q\x00\x00",  # half a length
        b"Q\x00\x00\x00\x64SELECT",  # a Query cut short
        frame(b"P", b"stmt\0SELECT 1\0\x00\x00")[:-3],
    ],
    ids=["type", "half-length", "query", "parse"],
)
def test_truncated_message_then_close(
    pgvec_server: PgvecServer, dbname: str, proxy_uri: str, witness: psycopg.Connection, data: bytes
) -> None:
    sock = started(pgvec_server.port, dbname)
    sock.sendall(data)
    closed(sock, hang_up=True)
    still_works(witness, proxy_uri)


@pytest.mark.parametrize(
    ("type_", "length"),
    [
        (b"S", 1 << 29),  # a 512 MB Sync: refused at once, not buffered
        (b"E", 0x10000),
        (b"Q", 0x7FFF_FFFF),
        (b"Q", -5),
        (b"P", 2),
    ],
)
def test_absurd_length_after_startup(
    pgvec_server: PgvecServer,
    dbname: str,
    proxy_uri: str,
    witness: psycopg.Connection,
    type_: bytes,
    length: int,
) -> None:
    sock = started(pgvec_server.port, dbname)
    sock.sendall(type_ + struct.pack("!i", length) + b"SELECT 1")  # and keep it open
    assert fatal_sqlstates(closed(sock)) == ["08P01"]
    still_works(witness, proxy_uri)


@pytest.mark.parametrize(
    "data",
    [
        frame(b"P", b"s\0SELECT 1\0\x00"),  # half a parameter count
        frame(b"P", b"s\0SELECT $1\0\x00\x02\x00\x00\x00\x19"),  # 2 types, 1 given
        frame(b"B", b"\0\0\x00\x00\x00\x01\x00\x00\x00\x09abc"),  # a value cut short
        frame(b"D", b""),  # Describe without its kind
        frame(b"C", b""),  # Close without its kind
        frame(b"E", b"no terminator"),
        frame(b"\x01", b"junk"),  # no such message type
        frame(b"p", b"secret\0"),  # a password message, after startup
    ],
    ids=["parse-count", "parse-types", "bind-value", "describe", "close", "execute", "type", "p"],
)
def test_garbage_after_startup(
    pgvec_server: PgvecServer, dbname: str, proxy_uri: str, witness: psycopg.Connection, data: bytes
) -> None:
    sock = started(pgvec_server.port, dbname)
    sock.sendall(data)
    assert fatal_sqlstates(closed(sock)) == ["08P01"]
    still_works(witness, proxy_uri)


@fuzz_settings(25, deadline=3 * CLOSE_WITHIN)
@given(data=st.binary(min_size=1, max_size=300))
def test_random_bytes_after_startup(
    pgvec_server: PgvecServer, dbname: str, proxy_uri: str, witness: psycopg.Connection, data: bytes
) -> None:
    # no FunctionCall ('F'): random ones would call random server functions
    data = data.replace(b"F", b"G")
    sock = started(pgvec_server.port, dbname)
    sock.sendall(data)
    closed(sock, hang_up=True)
    still_works(witness, proxy_uri, commit=False)


# -- before startup --------------------------------------------------------------------


@fuzz_settings(25, deadline=3 * CLOSE_WITHIN)
@given(data=st.binary(min_size=1, max_size=300))
def test_random_bytes_before_startup(
    pgvec_server: PgvecServer, proxy_uri: str, witness: psycopg.Connection, data: bytes
) -> None:
    sock = connect(pgvec_server.port)
    sock.sendall(data)
    closed(sock, hang_up=True)
    still_works(witness, proxy_uri, commit=False)


@pytest.mark.parametrize(
    "length",
    [0x8000_0000, 0xFFFF_FFFF, 0x7FFF_FFFF, 10_001, 7, 0],
    ids=["2GiB", "4GiB-1", "2GiB-1", "10001", "7", "0"],
)
def test_absurd_startup_packet_length(
    pgvec_server: PgvecServer, proxy_uri: str, witness: psycopg.Connection, length: int
) -> None:
    sock = connect(pgvec_server.port)
    sock.sendall(struct.pack("!I", length) + struct.pack("!i", 3 << 16))  # and keep it open
    assert fatal_sqlstates(closed(sock)) == ["08P01"]
    still_works(witness, proxy_uri)


def test_truncated_startup_packet_then_close(
    pgvec_server: PgvecServer, proxy_uri: str, witness: psycopg.Connection
) -> None:
    sock = connect(pgvec_server.port)
    sock.sendall(struct.pack("!ii", 80, 3 << 16) + b"user\0post")
    closed(sock, hang_up=True)
    still_works(witness, proxy_uri)


def test_a_second_ssl_request_is_refused(
    pgvec_server: PgvecServer, proxy_uri: str, witness: psycopg.Connection
) -> None:
    """As in PostgreSQL: SSLRequest is answered once; asking again is a protocol error."""
    sock = connect(pgvec_server.port)
    ssl_request = struct.pack("!ii", 8, m.SSL_REQUEST)
    sock.sendall(ssl_request)
    assert sock.recv(1) == b"N"
    sock.sendall(ssl_request)
    assert fatal_sqlstates(closed(sock)) == ["08P01"]
    still_works(witness, proxy_uri)


def test_a_silent_client_is_disconnected(
    pgvec_server: PgvecServer,
    proxy_uri: str,
    witness: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that never completes its startup packet does not hold a connection
    forever (PostgreSQL's authentication_timeout)."""
    monkeypatch.setattr(server, "STARTUP_TIMEOUT", 0.5)
    sock = connect(pgvec_server.port)
    sock.sendall(struct.pack("!ii", 80, 3 << 16))
    closed(sock)
    still_works(witness, proxy_uri)


def _replies_until_ready(sock: socket.socket) -> list[Message]:
    buf = FrameBuffer()
    out: list[Message] = []
    while not out or out[-1].type != b"Z":
        data = sock.recv(65536)
        assert data, f"closed; got {out}"
        buf.feed(data)
        out += buf.messages()
    return out


@pytest.mark.parametrize(
    ("params", "formats", "message"),
    [
        ([], [], "bind message supplies 0 parameters, but prepared statement"),
        ([b"[1,1]", b"2"], [], "bind message supplies 2 parameters"),
        ([b"[1,1]"], [0, 0], "bind message has 2 parameter formats but 1 parameters"),
    ],
)
def test_a_bind_that_does_not_fit_its_statement(
    pgvec_server: PgvecServer,
    dbname: str,
    proxy_uri: str,
    witness: psycopg.Connection,
    params: list[bytes | None],
    formats: list[int],
    message: str,
) -> None:
    """Refused as PostgreSQL refuses it (ERROR 08P01), not as a pgvec bug (XX000); the
    session goes on."""
    sock = started(pgvec_server.port, dbname)
    knn = "SELECT id FROM t ORDER BY embedding <-> $1 LIMIT 1"
    bind = m.Bind("", "", formats, params, [])
    sock.sendall(m.Parse("", knn).encode() + bind.encode() + m.execute() + m.SYNC)
    errors = [m.error_fields(r.body) for r in _replies_until_ready(sock) if r.type == b"E"]
    assert [(e["V"], e["C"]) for e in errors] == [("ERROR", "08P01")]
    assert message in errors[0]["M"]
    sock.sendall(m.Query("SELECT 41 + 1").encode())
    rows = [m.data_row(r.body) for r in _replies_until_ready(sock) if r.type == b"D"]
    assert rows == [[b"42"]]
    sock.close()
    still_works(witness, proxy_uri)
