"""Error positions in statements pgvec rewrote, moved back to the text the client sent.

PostgreSQL's ErrorResponse gives the position of the problem (field ``P``, 1-based, in
characters) in the statement it received. When that statement is pgvec's rewrite of the
client's (a vector column turned into checked bytea, a top-k turned into a join, an
operator into a function call), the position points into text the client never wrote,
and psql's ``LINE 1: ... ^`` would show the wrong place. PostgreSQL points at a token:
a name, a type, a literal. The same token is looked for in the client's text, counting
occurrences so that the n-th ``id`` of the rewrite maps to the n-th of the original; a
position that cannot be placed is left out rather than shown wrong.
"""

from __future__ import annotations

import re

from pgvec.wire import messages as m
from pgvec.wire.framing import Message

_TOKEN = re.compile(
    r'"(?:[^"]|"")*"'  # a quoted identifier
    r"|'(?:[^']|'')*'"  # a string literal
    r"|[^\W\d][\w$]*"  # a name or a keyword
    r"|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?"  # a number
)


def original_position(rewritten: str, original: str, position: int) -> int | None:
    """Where, in ``original``, the token at ``position`` of ``rewritten`` is (positions
    1-based, as PostgreSQL's); None if it is not there."""
    at = position - 1
    found = _TOKEN.match(rewritten, at) if 0 <= at < len(rewritten) else None
    if found is None:
        return None
    pattern = re.compile(_pattern(found.group()))
    before = sum(1 for _ in pattern.finditer(rewritten, 0, at))
    starts = [hit.start() for hit in pattern.finditer(original)]
    if not starts:
        return None
    return (starts[before] if before < len(starts) else starts[0]) + 1


def _pattern(token: str) -> str:
    """What stands for ``token`` in either text: a name quoted or bare (PostgreSQL folds
    a bare one to lower case; the rewrite may quote names), a literal as it is."""
    if token[0] == "'" or token[0].isdigit():
        return re.escape(token)
    if token[0] == '"':
        name = token[1:-1].replace('""', '"')
        if not _FOLDED.fullmatch(name):
            return re.escape(token)
    else:
        name = token.lower()
    return re.escape('"' + name + '"') + "|" + _word(name)


def _word(name: str) -> str:
    return r"(?i:(?<![\w$\"])" + re.escape(name) + r"(?![\w$\"]))"


_FOLDED = re.compile(r"[a-z_][a-z0-9_$]*")


def relocated(msg: Message, rewritten: str, original: str) -> Message:
    """An ErrorResponse or NoticeResponse about ``rewritten``, its position moved to
    ``original`` (or dropped where it cannot be placed)."""
    if b"\0P" not in msg.body and not msg.body.startswith(b"P"):
        return msg
    fields = m.error_fields(msg.body)
    value = fields.get("P")
    if value is None or not value.isdigit():
        return msg
    moved = original_position(rewritten, original, int(value))
    if moved is None:
        del fields["P"]
    else:
        fields["P"] = str(moved)
    return Message(msg.type, m.encode_fields(msg.type, fields)[5:])
