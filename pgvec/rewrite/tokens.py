"""Small helpers over sqlglot tokens for the hand-written statement parsers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot.tokenizer_core import Token, TokenType


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
        if tok.token_type == TokenType.STRING or not _is_wordlike(tok.text):
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


def _is_wordlike(text: str) -> bool:
    return bool(text) and (text[0].isalpha() or text[0] == "_") and " " not in text


def quote_ident(name: str) -> str:
    """Quote an identifier when Postgres would need it."""
    if (
        name
        and name == name.lower()
        and _is_wordlike(name)
        and name.replace("_", "a").replace("$", "a").isalnum()
        and name.upper() not in _RESERVED
    ):
        return name
    return '"' + name.replace('"', '""') + '"'


_RESERVED = frozenset(
    """ALL ANALYSE ANALYZE AND ANY ARRAY AS ASC ASYMMETRIC BOTH CASE CAST CHECK COLLATE COLUMN
    CONSTRAINT CREATE CURRENT_CATALOG CURRENT_DATE CURRENT_ROLE CURRENT_TIME CURRENT_TIMESTAMP
    CURRENT_USER DEFAULT DEFERRABLE DESC DISTINCT DO ELSE END EXCEPT FALSE FETCH FOR FOREIGN
    FROM GRANT GROUP HAVING IN INITIALLY INTERSECT INTO LATERAL LEADING LIMIT LOCALTIME
    LOCALTIMESTAMP NOT NULL OFFSET ON ONLY OR ORDER PLACING PRIMARY REFERENCES RETURNING SELECT
    SESSION_USER SOME SYMMETRIC SYSTEM_USER TABLE THEN TO TRAILING TRUE UNION UNIQUE USER USING
    VARIADIC WHEN WHERE WINDOW WITH""".split()
)
