"""Property tests of the framing and the message decoders: any bytes, split anywhere.

However a byte stream is cut into reads, the FrameBuffer yields the same messages and
then either waits for more or raises ProtocolViolation at the same point. A length
that is out of bounds is refused from its header alone, before its body is waited for
and without allocating it. Decoders given any body return a message or raise
ProtocolViolation, never another exception.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgvec.errors import PgvecError
from pgvec.wire import messages as m
from pgvec.wire.framing import (
    FRONTEND_LIMITS,
    MAX_MESSAGE,
    MAX_STARTUP,
    FrameBuffer,
    Message,
    ProtocolViolation,
    frame,
)
from tests.fuzzing import fuzz_settings

Limits = dict[bytes, int] | None
LIMITS: list[Limits] = [None, dict(FRONTEND_LIMITS)]

frontend_types = st.sampled_from(sorted(FRONTEND_LIMITS))
any_type = st.binary(min_size=1, max_size=1)
messages = st.lists(
    st.builds(Message, st.one_of(frontend_types, any_type), st.binary(max_size=300)),
    max_size=20,
)
cuts = st.lists(st.integers(min_value=0), max_size=30)


def chunks(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at ``points`` (taken modulo its length), in order."""
    at = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(at)]


def drain(pieces: list[bytes], limits: Limits) -> tuple[list[Message], bool, int]:
    """Feed ``pieces`` one read at a time: the messages, whether the stream was refused,
    and how many bytes wait for more."""
    buf = FrameBuffer(limits)
    out: list[Message] = []
    for piece in pieces:
        buf.feed(piece)
        try:
            while (msg := buf.next_message()) is not None:
                out.append(msg)
        except ProtocolViolation:
            return out, True, len(buf)
    return out, False, len(buf)


@fuzz_settings(300)
@given(messages, cuts)
def test_valid_messages_come_back_however_the_stream_is_split(
    msgs: list[Message], points: list[int]
) -> None:
    data = b"".join(x.raw for x in msgs)
    assert drain(chunks(data, points), None) == (msgs, False, 0)
    if all(x.type in FRONTEND_LIMITS for x in msgs):
        assert drain(chunks(data, points), dict(FRONTEND_LIMITS)) == (msgs, False, 0)


def _damage(data: bytes, at: int, junk: bytes) -> bytes:
    at %= len(data) + 1
    return data[:at] + junk + data[at + len(junk) :]


streams = st.one_of(
    st.binary(max_size=600),
    # mostly well-formed streams, then damaged: a byte flipped, a cut, a bad length
    st.tuples(messages, st.integers(min_value=0), st.binary(max_size=6)).map(
        lambda t: _damage(b"".join(x.raw for x in t[0]), t[1], t[2])
    ),
)


@fuzz_settings(300)
@given(streams, cuts, st.sampled_from(LIMITS))
def test_any_byte_stream_splits_the_same_way_or_is_refused_at_the_same_point(
    data: bytes, points: list[int], limits: Limits
) -> None:
    whole = drain([data], limits)
    split = drain(chunks(data, points), limits)
    assert split[:2] == whole[:2]
    assert sum(len(x.raw) for x in whole[0]) <= len(data)
    if not whole[1]:  # accepted: what is left is an incomplete message
        assert split[2] == whole[2] == len(data) - sum(len(x.raw) for x in whole[0])


def _header(type_: bytes, length: int) -> bytes:
    return type_ + struct.pack("!i", length)


def _refused_from_header(header: bytes, next_: Callable[[FrameBuffer], object]) -> None:
    tracemalloc.start()
    try:
        buf = FrameBuffer(dict(FRONTEND_LIMITS))
        buf.feed(header)
        with pytest.raises(ProtocolViolation):
            next_(buf)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, peak


@fuzz_settings(200)
@given(
    st.sampled_from(sorted(FRONTEND_LIMITS)),
    st.one_of(
        st.integers(-(1 << 31), 3),
        st.integers(10_001, (1 << 31) - 1),
        st.sampled_from([-1, 0, 3, 1 << 30, (1 << 31) - 1, -(1 << 31)]),
    ),
)
def test_absurd_lengths_are_refused_from_the_header_alone(type_: bytes, length: int) -> None:
    if 4 <= length <= FRONTEND_LIMITS[type_]:
        return  # a length this type may have
    _refused_from_header(_header(type_, length), FrameBuffer.next_message)


@pytest.mark.parametrize(
    ("type_", "length"),
    [
        (b"S", 1 << 29),  # a Sync cannot be 512 MB long
        (b"E", 10_001),
        (b"p", 65_536),
        (b"Q", (1 << 30) - 1),  # over PostgreSQL's 1 GB allocation limit
        (b"Q", 0x7FFF_FFFF),
        (b"Q", -1),
        (b"\x00", 5),  # not a message a client may send
        (b"Z", 5),
    ],
)
def test_frontend_limits(type_: bytes, length: int) -> None:
    _refused_from_header(_header(type_, length), FrameBuffer.next_message)


def test_a_long_message_of_a_large_type_waits_without_allocating() -> None:
    tracemalloc.start()
    try:
        buf = FrameBuffer(dict(FRONTEND_LIMITS))
        buf.feed(_header(b"Q", 1 << 29) + b"SELECT")
        assert buf.next_message() is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, peak


def test_server_replies_have_no_per_type_limits() -> None:
    buf = FrameBuffer()
    buf.feed(frame(b"D", b"x" * 20_000))
    assert buf.next_message() == Message(b"D", b"x" * 20_000)
    buf.feed(_header(b"D", MAX_MESSAGE + 1))
    with pytest.raises(ProtocolViolation):
        buf.next_message()


@fuzz_settings(200)
@given(st.one_of(st.integers(-(1 << 31), 7), st.integers(MAX_STARTUP + 1, (1 << 31) - 1)))
def test_absurd_startup_lengths_are_refused_from_the_length_alone(length: int) -> None:
    _refused_from_header(struct.pack("!i", length), FrameBuffer.next_startup)


@fuzz_settings(300)
@given(st.binary(max_size=MAX_STARTUP + 100), cuts)
def test_startup_packets_split_anywhere(data: bytes, points: list[int]) -> None:
    def first(pieces: list[bytes]) -> tuple[bytes | None, bool]:
        buf = FrameBuffer(dict(FRONTEND_LIMITS))
        for piece in pieces:
            buf.feed(piece)
            try:
                body = buf.next_startup()
            except ProtocolViolation:
                return None, True
            if body is not None:
                return body, False
        return None, False

    assert first(chunks(data, points)) == first([data])


def test_protocol_violation_is_a_pgvec_error() -> None:
    assert issubclass(ProtocolViolation, PgvecError)
    assert ProtocolViolation.sqlstate == "08P01"


DECODERS: list[Callable[[bytes], object]] = [
    m.Query.decode,
    m.Parse.decode,
    m.Bind.decode,
    m.bind_names,
    m.Describe.decode,
    m.Close.decode,
    m.execute_portal,
    m.startup_parameters,
]


def _decode_or_refuse(body: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(ProtocolViolation):
            decode(body)


#: bodies that get past two strings (names, or a name and a query) to the counts and lengths
past_two_strings = st.tuples(
    st.binary(max_size=10), st.binary(max_size=30), st.binary(max_size=40)
).map(lambda t: t[0].replace(b"\0", b"") + b"\0" + t[1].replace(b"\0", b"") + b"\0" + t[2])


@fuzz_settings(400)
@given(st.one_of(st.binary(max_size=200), past_two_strings))
def test_decoders_refuse_malformed_bodies_with_protocol_violation(body: bytes) -> None:
    _decode_or_refuse(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"S",
        b"\0",
        b"\0\0",  # Parse: no parameter count
        b"\0\0\x00",  # half a count
        b"\0\0\x00\x02\x00\x00\x00\x17",  # two parameter types, one given
        b"p\0s\0\x00\x01\x00\x01\x00\x01\x00\x00\x00\x08abc",  # Bind: value cut short
        b"p\0s\0\x00\x00\x00\x01\xff",  # Bind: half a value length
    ],
)
def test_truncated_bodies(body: bytes) -> None:
    _decode_or_refuse(body)


text = st.text(st.characters(blacklist_characters="\0"), max_size=30)


@fuzz_settings(200)
@given(text, text, st.lists(st.integers(0, (1 << 32) - 1), max_size=10))
def test_parse_round_trips(name: str, sql: str, types: list[int]) -> None:
    assert m.Parse.decode(m.Parse(name, sql, types).encode()[5:]) == m.Parse(name, sql, types)


@fuzz_settings(200)
@given(
    text,
    text,
    st.lists(st.sampled_from([0, 1]), max_size=5),
    st.lists(st.one_of(st.none(), st.binary(max_size=20)), max_size=5),
    st.lists(st.sampled_from([0, 1]), max_size=5),
)
def test_bind_round_trips(
    portal: str,
    statement: str,
    formats: list[int],
    params: list[bytes | None],
    results: list[int],
) -> None:
    bind = m.Bind(portal, statement, formats, params, results)
    assert m.Bind.decode(bind.encode()[5:]) == bind


def drain_frames(pieces: list[bytes], limits: Limits) -> tuple[list[Message], bool, int]:
    """``drain`` as the relays read: every complete message of a read at once
    (FrameBuffer.frames), then consumed."""
    buf = FrameBuffer(limits)
    out: list[Message] = []
    for piece in pieces:
        buf.feed(piece)
        try:
            while found := buf.frames():
                got = [Message(t, buf.body(a, b)) for t, a, b in found]
                assert buf.span(found[0][1], found[-1][2]) == b"".join(x.raw for x in got)
                out += got
                buf.consume(found[-1][2])
        except ProtocolViolation:
            return out, True, len(buf)
    return out, False, len(buf)


@fuzz_settings(300)
@given(streams, cuts, st.sampled_from(LIMITS))
def test_frames_finds_what_next_message_finds(
    data: bytes, points: list[int], limits: Limits
) -> None:
    """The relays' way through a read (all its messages at once) takes the same messages
    and refuses the same stream at the same point as one message at a time."""
    assert drain_frames(chunks(data, points), limits) == drain(chunks(data, points), limits)


@fuzz_settings(300)
@given(
    st.one_of(
        st.binary(max_size=120),
        past_two_strings,
        st.builds(
            m.Bind,
            text,
            text,
            st.lists(st.sampled_from([0, 1]), max_size=5),
            st.lists(st.one_of(st.none(), st.binary(max_size=20)), max_size=5),
            st.lists(st.sampled_from([0, 1]), max_size=5),
        ).map(lambda b: b.encode()[5:]),
    ),
    st.integers(min_value=0, max_value=200),
)
def test_bind_names_accepts_what_bind_decode_accepts(body: bytes, cut: int) -> None:
    """The pass-through's Bind check (names only) refuses exactly the Binds a full decode
    refuses, and reads the same names."""
    for data in (body, body[:cut]):
        _same_names_or_refused(data)


def _same_names_or_refused(body: bytes) -> None:
    try:
        bind = m.Bind.decode(body)
    except ProtocolViolation:
        with pytest.raises(ProtocolViolation):
            m.bind_names(body)
    else:
        assert m.bind_names(body) == (bind.portal, bind.statement)
