"""A restore's statements on schema ``pgvec``: pgvec's own objects, which it installed.

A dump of a database pgvec serves (pg_dump, plain or custom format) holds schema
``pgvec`` like any other: its functions, operators, catalog tables and their rows, the
change-log triggers of vector tables. Restored through pgvec into a fresh database, where
pgvec installed its schema when the restore connected, those statements would clash
(``schema "pgvec" already exists``) or carry stale OIDs. So they are answered without
running:

- ``CREATE``/``ALTER``/``COMMENT ON`` of an object in schema pgvec (or of the schema),
  a trigger that runs a pgvec function (the change-log triggers: pgvec installs them
  again when it builds the table's index), ``setval`` of a pgvec sequence: :class:`Restored`;
- ``COPY pgvec.<table> FROM stdin``: :class:`RestoreCopy`; the proxy reads the rows of
  ``pgvec.indexes`` and builds those indexes on the restored tables.

GRANT and REVOKE on pgvec's objects run (they change nothing, or warn). A dump's
``CREATE TYPE <schema>.vector AS ENUM ()`` (pgvec's placeholder type) creates the type
only where it is missing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlglot.tokenizer_core import Token, TokenType

from pgvec.rewrite.decision import RestoreCopy, Restored, Rewritten
from pgvec.rewrite.tokens import TokenCursor, quote_ident

SCHEMA = "pgvec"

#: words between CREATE and the kind of object
_CREATE_MODIFIERS = frozenset(
    {"OR", "REPLACE", "UNLOGGED", "TEMP", "TEMPORARY", "GLOBAL", "LOCAL", "RECURSIVE"}
)
#: kinds of object whose name follows them (two-word kinds end in the second word)
_KINDS = frozenset(
    {
        "SCHEMA",
        "FUNCTION",
        "PROCEDURE",
        "AGGREGATE",
        "OPERATOR",
        "TABLE",
        "VIEW",
        "SEQUENCE",
        "TYPE",
        "DOMAIN",
        "COLLATION",
        "CONVERSION",
        "STATISTICS",
        "MATERIALIZED",
        "FOREIGN",
        "TEXT",
        "CLASS",
        "FAMILY",
        "INDEX",
        "COLUMN",
    }
)
_SECOND = frozenset({"VIEW", "TABLE", "SEARCH", "CLASS", "FAMILY", "CONFIGURATION", "DICTIONARY"})

_SETVAL = re.compile(
    r"^\s*select\s+(?:pg_catalog\s*\.\s*)?setval\s*\(\s*'(?:\"?pgvec\"?)\.", re.IGNORECASE
)


def rewrite_restore(sql: str, tokens: Sequence[Token]) -> Restored | RestoreCopy | Rewritten | None:
    """The decision for a statement on pgvec's own objects; None for any other."""
    cur = TokenCursor(tokens)
    head = cur.word()
    if head == "CREATE":
        return _create(tokens)
    if head == "ALTER":
        cur.next()
        if _names_pgvec_object(cur):
            return Restored(f"ALTER {tokens[1].text.upper()}")
        return None
    if head == "COMMENT" and cur.accept("COMMENT", "ON"):
        if _names_pgvec_object(cur):
            return Restored("COMMENT")
        return None
    if head == "COPY":
        return _copy(tokens)
    if head == "SELECT" and _SETVAL.match(sql):
        return Restored("SELECT 1")
    return None


def _names_pgvec_object(cur: TokenCursor) -> bool:
    """After CREATE/ALTER/COMMENT ON: whether the object named is pgvec's (or is the
    schema pgvec itself)."""
    kind = cur.word()
    if kind not in _KINDS:
        return False
    cur.next()
    if cur.word() in _SECOND:
        cur.next()
    cur.accept("IF NOT EXISTS") or cur.accept("IF EXISTS")
    cur.accept("CONCURRENTLY")
    cur.accept("ONLY")
    if kind == "SCHEMA":
        if cur.ident() != SCHEMA:
            return False
        tok = cur.peek()
        return tok is None or tok.token_type != TokenType.DOT
    return _at_pgvec_name(cur)


def _at_pgvec_name(cur: TokenCursor) -> bool:
    """Whether ``pgvec.`` comes next."""
    first = cur.ident()
    tok = cur.peek()
    return first == SCHEMA and tok is not None and tok.token_type == TokenType.DOT


def _create(tokens: Sequence[Token]) -> Restored | Rewritten | None:
    cur = TokenCursor(tokens)
    cur.next()
    while cur.word() in _CREATE_MODIFIERS:
        cur.next()
    kind = cur.word()
    if kind == "SCHEMA":
        start = cur.i
        cur.next()
        cur.accept("IF NOT EXISTS")
        if cur.ident() == SCHEMA:
            return Restored("CREATE SCHEMA")
        cur.i = start
    if kind in ("UNIQUE", "INDEX"):
        return _create_index(cur)
    if kind in ("TRIGGER", "CONSTRAINT"):
        return _create_trigger(cur)
    if kind == "TYPE":
        placeholder = _placeholder_type(tokens)
        if placeholder is not None:
            return placeholder
    if kind in _KINDS:
        probe = TokenCursor(tokens)
        probe.i = cur.i
        if _names_pgvec_object(probe):
            return Restored(f"CREATE {kind}")
    return None


def _create_index(cur: TokenCursor) -> Restored | None:
    """``CREATE [UNIQUE] INDEX [name] ON [ONLY] pgvec.x ...``."""
    while (tok := cur.next()) is not None:
        plain = tok.token_type not in (TokenType.STRING, TokenType.IDENTIFIER)
        if plain and tok.text.upper() == "ON":
            cur.accept("ONLY")
            return Restored("CREATE INDEX") if _at_pgvec_name(cur) else None
    return None


def _create_trigger(cur: TokenCursor) -> Restored | None:
    """A trigger on a pgvec table, or one that runs a pgvec function."""
    while (tok := cur.next()) is not None:
        if tok.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
            continue
        word = tok.text.upper()
        if word == "ON" and _at_pgvec_name(cur):
            return Restored("CREATE TRIGGER")
        if word in ("FUNCTION", "PROCEDURE") and _at_pgvec_name(cur):
            return Restored("CREATE TRIGGER")
    return None


def _placeholder_type(tokens: Sequence[Token]) -> Rewritten | None:
    """``CREATE TYPE [s.]vector AS ENUM ()``: created only where it is missing."""
    cur = TokenCursor(tokens)
    if not cur.accept("CREATE", "TYPE"):
        return None
    name = cur.qualified_name()
    if name is None or name[1] != "vector" or not cur.accept("AS", "ENUM"):
        return None
    opened, closed = cur.next(), cur.next()
    if (
        opened is None
        or closed is None
        or opened.token_type != TokenType.L_PAREN
        or closed.token_type != TokenType.R_PAREN
        or not cur.done
    ):
        return None
    qualified = quote_ident("vector") if name[0] is None else f"{quote_ident(name[0])}.vector"
    return Rewritten(
        "DO $pgvec$BEGIN "
        f"IF to_regtype('{qualified}') IS NULL THEN CREATE TYPE {qualified} AS ENUM (); "
        "END IF; END$pgvec$"
    )


def _copy(tokens: Sequence[Token]) -> RestoreCopy | None:
    """``COPY pgvec.<table> [(columns)] FROM stdin`` (text format, as pg_dump writes)."""
    cur = TokenCursor(tokens)
    cur.next()
    name = cur.qualified_name()
    if name is None or name[0] != SCHEMA:
        return None
    columns: list[str] = []
    tok = cur.peek()
    if tok is not None and tok.token_type == TokenType.L_PAREN:
        cur.next()
        while (t := cur.peek()) is not None and t.token_type != TokenType.R_PAREN:
            if t.token_type == TokenType.COMMA:
                cur.next()
                continue
            column = cur.ident()
            if column is None:
                return None
            columns.append(column)
        cur.next()
    if not cur.accept("FROM") or not cur.accept("STDIN") or not cur.done:
        return None
    return RestoreCopy(name[1], tuple(columns))
