"""Small helpers over sqlglot tokens for the hand-written statement parsers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot.tokenizer_core import Token, TokenType

from pgvec.filter.sql import is_wordlike, quote_ident

__all__ = ["TokenCursor", "quote_ident"]


class TokenCursor:
    """A cursor over a token list; words compare case-insensitively."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    @property
    def done(self) -> bool:
        return self.i >= len(self.tokens)

    def peek(self, ahead: int = 0) -> Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def word(self, ahead: int = 0) -> str:
        tok = self.peek(ahead)
        if tok is None or tok.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
            return ""
        return tok.text.upper()

    def accept(self, *words: str) -> bool:
        """Consume the words if they come next (each may hold a space: 'IF NOT')."""
        seq = [w for word in words for w in word.split()]
        # sqlglot joins some keyword pairs into one token, e.g. 'PRIMARY KEY'
        j = self.i
        k = 0
        while k < len(seq):
            if j >= len(self.tokens):
                return False
            tok = self.tokens[j]
            if tok.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
                return False
            parts = tok.text.upper().split()
            if seq[k : k + len(parts)] != parts:
                return False
            k += len(parts)
            j += 1
        self.i = j
        return True

    def next(self) -> Token | None:
        tok = self.peek()
        if tok is not None:
            self.i += 1
        return tok

    def ident(self) -> str | None:
        """An identifier as Postgres folds it: quoted kept, unquoted lower-cased."""
        tok = self.peek()
        if tok is None:
            return None
        if tok.token_type == TokenType.IDENTIFIER:
            self.i += 1
            return tok.text
        if tok.token_type == TokenType.STRING or not is_wordlike(tok.text):
            return None
        self.i += 1
        return tok.text.lower()

    def qualified_name(self) -> tuple[str | None, str] | None:
        first = self.ident()
        if first is None:
            return None
        tok = self.peek()
        if tok is not None and tok.token_type == TokenType.DOT:
            self.i += 1
            second = self.ident()
            if second is None:
                return None
            return (first, second)
        return (None, first)
