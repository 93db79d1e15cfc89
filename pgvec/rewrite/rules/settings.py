"""SET / RESET of hnsw.ef_search, ivfflat.probes and pgvec.*."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlglot.tokenizer_core import Token, TokenType

from pgvec.errors import InvalidParameter
from pgvec.rewrite.decision import SetParam
from pgvec.rewrite.tokens import TokenCursor

_RANGES: dict[str, tuple[int, int]] = {
    "hnsw.ef_search": (1, 1000),
    "ivfflat.probes": (1, 32768),
    "pgvec.diskann_search_list": (1, 65535),
}


def _is_ours(name: str) -> bool:
    return name in _RANGES or name.startswith("pgvec.")


_RESET_RE = re.compile(r"\s*([A-Za-z_][\w$]*(?:\.[A-Za-z_][\w$]*)+)\s*", re.ASCII)


def rewrite_set(sql: str, tokens: Sequence[Token]) -> SetParam | None:
    """A SetParam for SET/RESET of one of our parameters, else None."""
    cur = TokenCursor(tokens)
    if cur.accept("RESET"):
        # the tokenizer takes RESET for a command and the rest for one string
        m = _RESET_RE.fullmatch(sql, tokens[0].end + 1)
        if m is None or not _is_ours(m.group(1).lower()):
            return None
        return SetParam(m.group(1).lower(), None, False)
    if not cur.accept("SET"):
        return None
    local = False
    if cur.accept("LOCAL"):
        local = True
    else:
        cur.accept("SESSION")
    name = _param_name(cur)
    if name is None or not _is_ours(name):
        return None
    if not (cur.accept("=") or cur.accept("TO")):
        return None
    rest = list(tokens[cur.i :])
    if not rest or any(t.token_type == TokenType.PARAMETER for t in rest):
        return None  # a parameter ($1): PostgreSQL's own syntax error (42601)
    if (
        len(rest) == 1
        and rest[0].text.upper() == "DEFAULT"
        and rest[0].token_type != (TokenType.STRING)
    ):
        return SetParam(name, None, local)
    value = _value_text(rest)
    _validate(name, value)
    return SetParam(name, value, local)


def _param_name(cur: TokenCursor) -> str | None:
    parts: list[str] = []
    while True:
        tok = cur.next()
        if tok is None or tok.token_type == TokenType.STRING:
            return None
        parts.append(tok.text.lower() if tok.token_type != TokenType.IDENTIFIER else tok.text)
        dot = cur.peek()
        if dot is None or dot.token_type != TokenType.DOT:
            break
        cur.next()
    return ".".join(parts)


def _value_text(tokens: Sequence[Token]) -> str:
    if len(tokens) == 1:
        return tokens[0].text
    if len(tokens) == 2 and tokens[0].token_type == TokenType.DASH:
        return "-" + tokens[1].text
    return ", ".join(t.text for t in tokens if t.token_type != TokenType.COMMA)


def _validate(name: str, value: str) -> None:
    bounds = _RANGES.get(name)
    if bounds is None:
        return
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidParameter(f'invalid value for parameter "{name}": "{value}"') from None
    low, high = bounds
    if not low <= number <= high:
        raise InvalidParameter(
            f'{number} is outside the valid range for parameter "{name}" ({low} .. {high})'
        )
