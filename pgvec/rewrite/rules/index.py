"""CREATE INDEX ... USING <vector method>, DROP INDEX, REINDEX and pgvec.load/release,
parsed by hand over tokens."""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import Token, TokenType

from pgvec.errors import DatatypeMismatch, FeatureNotSupported, UndefinedColumn, UndefinedObject
from pgvec.rewrite.catalog import Catalog, TableInfo
from pgvec.rewrite.decision import CreateIndex, DropIndex, IndexAction, IndexDef, Reindex
from pgvec.rewrite.dialect import tokenize
from pgvec.rewrite.tokens import TokenCursor

VECTOR_METHODS = frozenset({"hnsw", "ivfflat", "flat", "ivf_flat", "ivf_sq8", "ivf_pq", "diskann"})
#: the methods pgvector has (PostgreSQL knows no other of the above)
PGVECTOR_METHODS = frozenset({"hnsw", "ivfflat"})


def rewrite_drop_index(tokens: Sequence[Token]) -> DropIndex | None:
    cur = TokenCursor(tokens)
    if not cur.accept("DROP", "INDEX"):
        return None
    cur.accept("CONCURRENTLY")
    if_exists = cur.accept("IF EXISTS")
    names: list[tuple[str | None, str]] = []
    while True:
        name = cur.qualified_name()
        if name is None:
            return None
        names.append(name)
        tok = cur.peek()
        if tok is None or tok.token_type != TokenType.COMMA:
            break
        cur.next()
    cascade = cur.accept("CASCADE")
    if not cascade:
        cur.accept("RESTRICT")
    if not cur.done:
        return None
    return DropIndex(tuple(names), if_exists, cascade)


def rewrite_reindex(tokens: Sequence[Token]) -> Reindex | None:
    """``REINDEX [(options)] INDEX [CONCURRENTLY] name`` (the proxy checks whose it is)."""
    cur = TokenCursor(tokens)
    if not cur.accept("REINDEX"):
        return None
    if _accept(cur, TokenType.L_PAREN):
        while (tok := cur.next()) is not None and tok.token_type != TokenType.R_PAREN:
            pass
    if not cur.accept("INDEX"):
        return None
    concurrently = cur.accept("CONCURRENTLY")
    name = cur.qualified_name()
    if name is None or not cur.done:
        return None
    return Reindex(name, concurrently)


def _refuse_column(table: TableInfo, name: str, method: str, cur: TokenCursor) -> None:
    """pgvector's index on a column of a vector table that is not a vector column: the
    error PostgreSQL with pgvector gives (without pgvector, PostgreSQL would say only
    that the access method does not exist)."""
    if name not in table.columns:
        raise UndefinedColumn(f'column "{name}" does not exist')
    i = table.columns.index(name)
    if name in table.arrays:
        type_name = "vector[]"
    elif i < len(table.column_types):
        type_name = table.column_types[i]
    else:
        return  # (its type not known here: PostgreSQL's message)
    tok = cur.peek()
    if tok is not None and tok.token_type == TokenType.R_PAREN:
        raise UndefinedObject(
            f'data type {type_name} has no default operator class for access method "{method}"',
            hint="You must specify an operator class for the index or define a default"
            " operator class for the data type.",
        )
    opclass = cur.ident()
    if opclass is not None:
        raise DatatypeMismatch(f'operator class "{opclass}" does not accept data type {type_name}')


def _refuse_multicolumn(tokens: Sequence[Token], i: int, method: str) -> None:
    """PostgreSQL's first check of an index over several columns (tokens[i] is the first
    after the opening parenthesis): no vector index method takes more than one."""
    depth = 0
    for tok in tokens[i:]:
        kind = tok.token_type
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            if depth == 0:
                return
            depth -= 1
        elif kind == TokenType.COMMA and depth == 0:
            raise FeatureNotSupported(
                f'access method "{method}" does not support multicolumn indexes'
            )


def rewrite_create_index(sql: str, tokens: Sequence[Token], catalog: Catalog) -> CreateIndex | None:
    """CreateIndex for a vector method on a catalog vector column, else None (passthrough)."""
    cur = TokenCursor(tokens)
    if not cur.accept("CREATE"):
        return None
    cur.accept("UNIQUE")
    if not cur.accept("INDEX"):
        return None
    concurrently = cur.accept("CONCURRENTLY")
    if_not_exists = cur.accept("IF NOT EXISTS")
    name: str | None = None
    if cur.word() != "ON":
        name = cur.ident()
        if name is None:
            return None
    if not cur.accept("ON"):
        return None
    cur.accept("ONLY")
    qname = cur.qualified_name()
    if qname is None or not cur.accept("USING"):
        return None
    method_tok = cur.next()
    if method_tok is None:
        return None
    method = method_tok.text.lower()
    if method not in VECTOR_METHODS:
        return None
    table = catalog.lookup(qname[1], qname[0])
    if table is None or not _accept(cur, TokenType.L_PAREN):
        return None
    _refuse_multicolumn(tokens, cur.i, method)
    col = cur.ident()
    nxt = cur.peek()
    if nxt is not None and nxt.token_type == TokenType.L_PAREN:
        return None  # an expression: f(x) (PostgreSQL: no access method of this name)
    column = table.vectors.get(col) if col is not None else None
    if column is None:
        if col is not None and method in PGVECTOR_METHODS:
            _refuse_column(table, col, method, cur)
        return None
    opclass: str | None = None
    if not _accept(cur, TokenType.R_PAREN):
        opclass = cur.ident()
        if opclass is None or not _accept(cur, TokenType.R_PAREN):
            return None
    options: dict[str, str] = {}
    if cur.accept("WITH"):
        if not _accept(cur, TokenType.L_PAREN):
            return None
        while True:
            key = cur.ident()
            if key is None or not _accept(cur, TokenType.EQ):
                return None
            value = _option_value(cur)
            if value is None:
                return None
            options[key] = value
            if _accept(cur, TokenType.COMMA):
                continue
            if _accept(cur, TokenType.R_PAREN):
                break
            return None
    where: str | None = None
    if cur.accept("WHERE") and not cur.done:  # a partial index: its predicate, as written
        where = sql[tokens[cur.i].start : tokens[-1].end + 1]
        cur.i = len(tokens)
    if not cur.done:  # TABLESPACE, INCLUDE: not ours to judge
        return None
    return CreateIndex(
        IndexDef(name, if_not_exists, table, column, method, opclass, options, concurrently, where)
    )


def rewrite_index_action(tokens: Sequence[Token]) -> IndexAction | None:
    """``SELECT pgvec.load('name')`` / ``SELECT pgvec.release($1)``, alone, else None."""
    cur = TokenCursor(tokens)
    if not cur.accept("SELECT") or cur.ident() != "pgvec" or not _accept(cur, TokenType.DOT):
        return None
    tok = cur.next()
    action = tok.text.lower() if tok is not None else ""
    if action not in ("load", "release") or not _accept(cur, TokenType.L_PAREN):
        return None
    arg = cur.next()
    if arg is None:
        return None
    result: IndexAction | None = None
    if arg.token_type == TokenType.STRING:
        name = parse_index_name(arg.text)
        if name is not None:
            result = IndexAction(action, name)
    elif arg.token_type == TokenType.PARAMETER:
        number = cur.next()
        # "$1e5" tokenizes as "$" and the number 1e5: not a parameter
        if number is not None and number.token_type == TokenType.NUMBER and number.text.isdigit():
            result = IndexAction(action, None, int(number.text))
    if result is None or not _accept(cur, TokenType.R_PAREN) or not cur.done:
        return None
    return result


def parse_index_name(text: str) -> tuple[str | None, str] | None:
    """An index name as regclass reads it: ``idx``, ``s.idx``, ``"Mixed Case"``."""
    try:
        tokens = tokenize(text)
    except SqlglotError:
        return None
    cur = TokenCursor(tokens)
    name = cur.qualified_name()
    return name if name is not None and cur.done else None


def _accept(cur: TokenCursor, kind: TokenType) -> bool:
    tok = cur.peek()
    if tok is not None and tok.token_type == kind:
        cur.next()
        return True
    return False


def _option_value(cur: TokenCursor) -> str | None:
    sign = ""
    if _accept(cur, TokenType.DASH):
        sign = "-"
    tok = cur.next()
    if tok is None or tok.token_type in (TokenType.COMMA, TokenType.R_PAREN):
        return None
    if tok.token_type == TokenType.STRING:
        return sign + tok.text
    return sign + (tok.text if tok.token_type == TokenType.NUMBER else tok.text.lower())
