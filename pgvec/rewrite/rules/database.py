"""DROP DATABASE and its kin: which database a statement needs no one connected to.

PostgreSQL refuses to drop, rename or copy (CREATE DATABASE ... TEMPLATE) a database
other sessions are connected to, and pgvec's own connections (its pool, its change-log
connection) are such sessions. The proxy asks :func:`database_to_let_go` about every
statement and closes what pgvec holds of that database before PostgreSQL sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import TokenType

from pgvec.rewrite.dialect import tokenize
from pgvec.rewrite.tokens import TokenCursor

_GATE = re.compile(r"\b(?:drop|alter|create)\s+database\b", re.IGNORECASE)


@dataclass(frozen=True)
class LetGo:
    """A database a statement drops (``dropping``), renames or copies."""

    name: str
    dropping: bool = True
    force: bool = False  # DROP DATABASE ... WITH (FORCE): its sessions are ended


def database_to_let_go(sql: str) -> LetGo | None:
    """``DROP DATABASE [IF EXISTS] x [[WITH] (FORCE)]``, ``ALTER DATABASE x RENAME TO y``
    or ``CREATE DATABASE y ... TEMPLATE [=] x ...``, as one statement: x."""
    if not _GATE.search(sql):
        return None
    try:
        tokens = [t for t in tokenize(sql) if t.token_type != TokenType.SEMICOLON]
    except SqlglotError:
        return None
    cur = TokenCursor(tokens)
    if cur.accept("DROP", "DATABASE"):
        return _drop(cur)
    if cur.accept("ALTER", "DATABASE"):
        name = cur.ident()
        return LetGo(name, dropping=False) if name is not None and cur.accept("RENAME") else None
    if cur.accept("CREATE", "DATABASE"):
        while (tok := cur.next()) is not None:
            if tok.token_type != TokenType.STRING and tok.text.upper() == "TEMPLATE":
                if (eq := cur.peek()) is not None and eq.token_type == TokenType.EQ:
                    cur.next()
                name = cur.ident()
                return None if name is None else LetGo(name, dropping=False)
    return None


def _drop(cur: TokenCursor) -> LetGo | None:
    cur.accept("IF EXISTS")
    name = cur.ident()
    if name is None:
        return None
    force = False
    cur.accept("WITH")
    tok = cur.peek()
    if tok is not None and tok.token_type == TokenType.L_PAREN:
        cur.next()
        while (tok := cur.next()) is not None and tok.token_type != TokenType.R_PAREN:
            force = force or tok.text.upper() == "FORCE"
    return LetGo(name, force=force) if cur.done else None
