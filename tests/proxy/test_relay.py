"""Relay._relay (server replies passed on as the bytes they came in) must do exactly what
dispatching each reply as a Message does: same bytes to the client, same bookkeeping.
Random reply streams against random pending queues, both ways, compared."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from pgvec.proxy.relay import Relay
from pgvec.proxy.textout import VectorOutput
from pgvec.wire import messages as m
from pgvec.wire.framing import FrameBuffer, Message, frame

TABLE = 16384  # a vector table: column 2 holds vectors
VECTOR = b"\\x0000803f00000040"  # [1, 2] as stored, in bytea's text form


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


def _row_description(vector: bool) -> bytes:
    fields = [m.FieldDescription("id", TABLE, 1, 20, 8, -1, 0)]
    if vector:
        fields.append(m.FieldDescription("embedding", TABLE, 2, 17, -1, -1, 0))
    return m.encode_row_description(fields)


def _replies(rng: random.Random) -> list[bytes]:
    """A stream of server messages of every kind the relay treats differently."""
    choices = [
        lambda: frame(b"1", b""),
        lambda: frame(b"2", b""),
        lambda: frame(b"3", b""),
        lambda: frame(b"n", b""),
        lambda: frame(b"s", b""),
        lambda: frame(b"I", b""),
        lambda: _row_description(rng.random() < 0.5),
        lambda: m.encode_data_row([b"1", VECTOR]),
        lambda: m.encode_data_row([b"7", None]),
        lambda: m.command_complete(rng.choice(["SELECT 1", "COMMIT", "INSERT 0 3"])),
        lambda: m.ready_for_query(rng.choice([b"I", b"T", b"E"])),
        lambda: m.error_response("42P01", 'relation "x" does not exist'),
        lambda: m.notice_response("a notice"),
        lambda: frame(b"S", b"application_name\x00x\x00"),
        lambda: frame(b"A", b"\x00\x00\x00\x01chan\x00hi\x00"),
        lambda: m.encode_parameter_description([17, 23]),
        lambda: frame(b"H", b"\x00\x00\x01\x00\x00"),
        lambda: frame(b"d", b"1\t\\x0000803f\n"),
        lambda: frame(b"c", b""),
    ]
    return [rng.choice(choices)() for _ in range(rng.randint(1, 40))]


def _expect(relay: Relay, rng: random.Random, loop: asyncio.AbstractEventLoop) -> list[Any]:
    """A random pending queue; returns the futures of its entries that have one."""
    done: list[Any] = []
    for _ in range(rng.randint(0, 12)):
        kind = rng.random()
        type_ = rng.choice([b"P", b"B", b"D", b"E", b"C", b"S", b"Q"])
        if kind < 0.1:
            relay.emit(b"emitted", extended=rng.random() < 0.5)
        elif kind < 0.2:
            relay.expect_request(type_, transform=lambda msg: b"T" + msg.type)
        elif kind < 0.3:
            relay.expect_request(type_, params=lambda oids: [o + 1 for o in oids])
        elif kind < 0.4:
            relay.expect_request(type_, statement=rng.choice(["s1", "s2"]))
        elif kind < 0.5:
            relay.expect_request(type_, portal="p", bind=("s1", [0]))
        elif kind < 0.6:
            future = loop.create_future()
            done.append(future)
            relay.expect_request(type_, portal=rng.choice(["", "p"]))
            relay._queue[-1].done = future
        elif kind < 0.7:
            future = loop.create_future()
            done.append(future)
            relay.expect_request(type_)
            relay._queue[-1].capture = []
            relay._queue[-1].done = future
        else:
            relay.expect_request(type_, portal=rng.choice([None, "", "p"]))
    return done


def _state(relay: Relay, sink: Sink, done: list[Any]) -> tuple[Any, ...]:
    results = [[(msg.type, msg.body) for msg in f.result()] if f.done() else None for f in done]
    queue = [(e.ends, e.skipped, e.portal, e.emit) for e in relay._queue]
    return (bytes(sink.data), relay.txn_status, relay.last_tag, relay.skipping, queue, results)


def _dispatching(relay: Relay, buf: FrameBuffer, out: list[bytes]) -> None:
    while (msg := buf.next_message()) is not None:
        relay._dispatch(msg, out)


@pytest.mark.parametrize("seed", range(300))
def test_relaying_bytes_equals_dispatching_messages(seed: int) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        states = []
        for how in (_dispatching, Relay._relay):
            rng = random.Random(seed)
            sink = Sink()
            output = VectorOutput(lambda: {(TABLE, 2): 2}, lambda: 90000)
            relay = Relay(sink, output)
            if rng.random() < 0.5:  # statement s1 describes a vector column
                output.statement_description("s1", Message(b"T", _row_description(True)[5:]))
            done = _expect(relay, rng, loop)
            stream = b"".join(_replies(rng))
            buf = FrameBuffer()
            at = 0
            while at < len(stream):  # in pieces, as the socket hands them over
                step = rng.randint(1, 64)
                buf.feed(stream[at : at + step])
                at += step
                out: list[bytes] = []
                how(relay, buf, out)
                sink.write(b"".join(out))
            states.append(_state(relay, sink, done))
        assert states[0] == states[1]

    asyncio.run(run())


def test_rows_of_a_portal_with_vectors_are_converted_not_spliced() -> None:
    """A portal bound to a statement whose description has a vector column: its rows
    go out in the client's form; a portal without one gets the server's bytes as they
    came in."""

    async def run() -> bytes:
        sink = Sink()
        output = VectorOutput(lambda: {(TABLE, 2): 2}, lambda: 90000)
        relay = Relay(sink, output)
        output.statement_description("s1", Message(b"T", _row_description(True)[5:]))
        for portal, statement in (("p", "s1"), ("q", "s2")):
            relay.expect_request(b"B", portal=portal, bind=(statement, [0]))
            relay.expect_request(b"E", portal=portal)
        relay.expect_request(b"S")
        row = m.encode_data_row([b"1", VECTOR])
        stream = frame(b"2", b"") + row + m.command_complete("SELECT 1")
        stream += frame(b"2", b"") + row + m.command_complete("SELECT 1") + m.ready_for_query(b"I")
        buf = FrameBuffer()
        buf.feed(stream)
        out: list[bytes] = []
        relay._relay(buf, out)
        return b"".join(out)

    got = asyncio.run(run())
    converted = m.encode_data_row([b"1", b"[1,2]"])
    assert got.count(converted) == 1  # portal p
    assert got.count(m.encode_data_row([b"1", VECTOR])) == 1  # portal q, as it came
