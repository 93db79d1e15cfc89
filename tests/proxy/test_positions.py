"""Error positions moved from pgvec's rewrite of a statement back to the client's text."""

from __future__ import annotations

from pgvec.proxy.positions import original_position, relocated
from pgvec.wire import messages as m
from pgvec.wire.framing import Message

ORIGINAL = "SELECT idd, v <-> '[1,2]' FROM t WHERE id = 1 AND idd > 0"
REWRITTEN = (
    'SELECT "idd", pgvec.l2_distance(v, \'\\x0000\') AS "?column?" FROM t WHERE id = 1 AND idd > 0'
)


def at(text: str, needle: str, nth: int = 0) -> int:
    start = -1
    for _ in range(nth + 1):
        start = text.index(needle, start + 1)
    return start + 1


def test_a_name_maps_to_the_same_occurrence() -> None:
    assert original_position(REWRITTEN, ORIGINAL, at(REWRITTEN, "idd", 1)) == at(ORIGINAL, "idd", 1)
    assert original_position(REWRITTEN, ORIGINAL, at(REWRITTEN, "FROM t")) == at(ORIGINAL, "FROM")


def test_names_match_whole_words_only() -> None:
    assert original_position("SELECT id FROM t", "SELECT idd, id FROM t", 8) == 13


def test_what_the_client_did_not_write_has_no_position() -> None:
    assert original_position(REWRITTEN, ORIGINAL, at(REWRITTEN, "pgvec")) is None
    assert original_position(REWRITTEN, ORIGINAL, len(REWRITTEN) + 5) is None
    assert original_position(REWRITTEN, ORIGINAL, 0) is None


def test_relocated_moves_or_drops_the_field() -> None:
    def error(position: int) -> Message:
        raw = m.error_response("42703", 'column "idd" does not exist', position=position)
        return Message(raw[:1], raw[5:])

    moved = m.error_fields(relocated(error(at(REWRITTEN, "idd")), REWRITTEN, ORIGINAL).body)
    assert moved["P"] == str(at(ORIGINAL, "idd"))
    assert moved["M"] == 'column "idd" does not exist'
    dropped = m.error_fields(relocated(error(at(REWRITTEN, "l2_")), REWRITTEN, ORIGINAL).body)
    assert "P" not in dropped
