"""Bytes between a client and PostgreSQL through pgvec: whatever way they arrive (in one
packet with the startup, in a burst, to a client that is not reading), the client gets
them all, in order, and pgvec holds only a bounded amount of them.

After startup pgvec moves both sockets from asyncio streams to its own transport
callbacks (pgvec.proxy.transports); these tests hold it to what the streams did."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgvec.wire import messages as m
from pgvec.wire.framing import frame
from tests.e2e.raw_client import RawClient
from tests.fix_proxy import PgvecServer

ROWS = 200_000
WIDTH = 1000  # bytes of each row's value: 200 MB of result in all
BIG = f"SELECT repeat('x', {WIDTH}) FROM generate_series(1, {ROWS})"


def _startup(user: str, dbname: str) -> bytes:
    body = struct.pack("!i", 196608)
    body += f"user\0{user}\0database\0{dbname}\0\0".encode()
    return struct.pack("!i", len(body) + 4) + body


def _messages(sock: socket.socket, until_ready: int) -> list[tuple[bytes, bytes]]:
    """Messages up to the ``until_ready``-th ReadyForQuery (bodies of DataRows kept)."""
    out: list[tuple[bytes, bytes]] = []
    buf = bytearray()
    while until_ready:
        chunk = sock.recv(1 << 16)
        assert chunk, "pgvec closed the connection"
        buf += chunk
        while len(buf) >= 5 and len(buf) >= 1 + struct.unpack_from("!i", buf, 1)[0]:
            n = struct.unpack_from("!i", buf, 1)[0]
            t, body = bytes(buf[:1]), bytes(buf[5 : 1 + n])
            del buf[: 1 + n]
            out.append((t, body))
            if t == b"Z":
                until_ready -= 1
    return out


def test_startup_and_queries_in_one_packet(pgvec_server: PgvecServer, dbname: str) -> None:
    """A client may send its first statements right behind its startup packet: they are
    answered once the session is ready, in order."""
    with socket.create_connection(("127.0.0.1", pgvec_server.port), timeout=30) as sock:
        queries = b"".join(m.Query(f"SELECT {i}").encode() for i in range(1, 4))
        extended = (
            m.Parse("", "SELECT $1::int + 1", []).encode()
            + m.Bind("", "", [], [b"41"], []).encode()
            + m.execute("")
            + m.SYNC
        )
        sock.sendall(_startup("postgres", dbname) + queries + extended)
        replies = _messages(sock, until_ready=5)
    assert (b"R", struct.pack("!i", 0)) in replies  # trust: AuthenticationOk
    rows = [m.data_row(body)[0] for t, body in replies if t == b"D"]
    assert rows == [b"1", b"2", b"3", b"42"]
    assert not [t for t, _ in replies if t == b"E"]


def test_a_burst_of_pipelined_statements(proxy_uri: str) -> None:
    """Ten thousand Bind/Execute/Sync sent at once, far more than one socket read, each
    answered in order."""
    client = RawClient(proxy_uri)
    try:
        client.send(m.Parse("s", "SELECT $1::int * 2", []).encode(), m.SYNC)
        client.until_ready()
        n = 10_000
        batch = b"".join(
            m.Bind("", "s", [], [str(i).encode()], []).encode() + m.execute("") + m.SYNC
            for i in range(n)
        )
        client.send(batch)
        got = [r.detail for r in client.until_ready(n) if r.type == "D"]
        assert got == [(str(2 * i).encode(),) for i in range(n)]
    finally:
        client.close()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_client_that_does_not_read_holds_postgres_back(
    db_uri: str, tmp_path: Path, loop: str
) -> None:
    """A client asks for 200 MB of rows and reads none for a while: pgvec stops reading
    from PostgreSQL instead of holding the rows (its memory stays within tens of MB),
    and every row arrives once the client reads. The session then goes on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgvec", "--log-level", "warning", "serve", "--upstream", db_uri,
         "--data-dir", str(tmp_path), "--port", str(port), "--milvus-port", "-1",
         "--event-loop", loop],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        uri = make_conninfo(db_uri, host="127.0.0.1", port=port)
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(uri).close()
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        server = psutil.Process(proc.pid)
        dbname = str(psycopg.conninfo.conninfo_to_dict(db_uri)["dbname"])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            sock.sendall(_startup("postgres", dbname))
            _messages(sock, until_ready=1)
            before = server.memory_info().rss
            sock.sendall(m.Query(BIG).encode())
            time.sleep(3)  # PostgreSQL produces 200 MB in well under that
            held = server.memory_info().rss - before
            assert held < 64 << 20, f"pgvec holds {held >> 20} MB of a result nobody reads"
            count = size = 0
            buf = bytearray()
            done = False
            while not done:
                chunk = sock.recv(1 << 20)
                assert chunk
                buf += chunk
                at = 0
                while len(buf) - at >= 5:
                    n = struct.unpack_from("!i", buf, at + 1)[0]
                    if len(buf) - at < 1 + n:
                        break
                    t = buf[at : at + 1]
                    if t == b"D":
                        count += 1
                        size += n - 4 - 2 - 4  # field count and the value's length word
                    elif t == b"E":
                        raise AssertionError(bytes(buf[at : at + 1 + n]))
                    elif t == b"Z":
                        done = True
                    at += 1 + n
                del buf[:at]
            assert (count, size) == (ROWS, ROWS * WIDTH)
            sock.sendall(m.Query("SELECT 'still here'").encode())
            replies = _messages(sock, until_ready=1)
            assert [m.data_row(b) for t, b in replies if t == b"D"] == [[b"still here"]]
            sock.sendall(frame(b"X", b""))
    finally:
        proc.terminate()
        proc.wait(30)
