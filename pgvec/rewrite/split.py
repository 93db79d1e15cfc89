"""Split a simple-Query string on top-level semicolons, keeping the original text."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot.tokenizer_core import TokenType

from pgvec.rewrite.dialect import tokenize


@dataclass(frozen=True)
class Piece:
    text: str  # == sql[start:end], byte for byte (the semicolon excluded)
    start: int
    end: int


def split_statements(sql: str) -> list[Piece]:
    """Statements of ``sql``; pieces holding no token (only blanks/comments) are left out.

    If the text cannot be tokenized the whole string is one piece (Postgres will judge it).
    """
    try:
        tokens = tokenize(sql)
    except Exception:  # sqlglot raises TokenError and, on odd input, others
        return [Piece(sql, 0, len(sql))] if sql.strip() else []
    pieces: list[Piece] = []
    start = 0
    has_token = False
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            if has_token:
                pieces.append(Piece(sql[start : tok.start], start, tok.start))
            start = tok.end + 1
            has_token = False
        else:
            has_token = True
    if has_token:
        pieces.append(Piece(sql[start:], start, len(sql)))
    return pieces
