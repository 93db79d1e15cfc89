"""CREATE TABLE / ALTER TABLE ADD COLUMN with ``vector(n)`` columns, spliced by token position.

Regenerating DDL through sqlglot changes it (``bigserial`` becomes an identity column), so
only the vector type is replaced and a CHECK constraint appended; the rest stays as written.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot.tokenizer_core import Token, TokenType

from pgvec.catalog.models import TableInfo
from pgvec.errors import FeatureNotSupported, InvalidParameter
from pgvec.rewrite.catalog import Catalog
from pgvec.rewrite.tokens import TokenCursor, quote_ident
from pgvec.vectors import MAX_DIM

Edit = tuple[int, int, str]  # replace sql[start:end] by text

_NOT_COLUMNS = frozenset(
    {
        "CONSTRAINT",
        "PRIMARY",
        "PRIMARY KEY",
        "UNIQUE",
        "CHECK",
        "FOREIGN",
        "FOREIGN KEY",
        "EXCLUDE",
        "LIKE",
    }
)


def rewrite_create_table(sql: str, tokens: Sequence[Token]) -> str | None:
    """The statement with vector columns turned into checked bytea, or None if it has none."""
    cur = TokenCursor(tokens)
    if not cur.accept("CREATE"):
        return None
    cur.accept("OR REPLACE")
    if cur.accept("GLOBAL") or cur.accept("LOCAL"):
        pass
    if not (cur.accept("TEMPORARY") or cur.accept("TEMP") or cur.accept("UNLOGGED")):
        pass
    if not cur.accept("TABLE"):
        return None
    cur.accept("IF NOT EXISTS")
    if cur.qualified_name() is None:
        return None
    tok = cur.peek()
    if tok is None or tok.token_type != TokenType.L_PAREN:
        return None
    edits: list[Edit] = []
    for element in _split_list(tokens, cur.i):
        if element and element[0].text.upper() not in _NOT_COLUMNS:
            edits.extend(_column_def(element))
    return _apply(sql, edits)


def rewrite_alter_table(sql: str, tokens: Sequence[Token], catalog: Catalog) -> str | None:
    cur = TokenCursor(tokens)
    if not cur.accept("ALTER", "TABLE"):
        return None
    cur.accept("IF EXISTS")
    cur.accept("ONLY")
    qualified = cur.qualified_name()
    if qualified is None:
        return None
    table = catalog.lookup(qualified[1], qualified[0])
    tok = cur.peek()
    if tok is not None and tok.token_type == TokenType.STAR:
        cur.next()
    edits: list[Edit] = []
    for action in _split_actions(tokens, cur.i):
        act = TokenCursor(action)
        if act.accept("ADD"):
            act.accept("COLUMN")
            act.accept("IF NOT EXISTS")
            rest = action[act.i :]
            if rest and rest[0].text.upper() not in _NOT_COLUMNS:
                edits.extend(_column_def(rest))
        elif act.accept("ALTER"):
            edits.extend(_alter_type(action, table))
    return _apply(sql, edits)


def _is_vector_type(tokens: Sequence[Token]) -> bool:
    return (
        bool(tokens)
        and tokens[0].token_type != TokenType.IDENTIFIER
        and (tokens[0].text.lower() == "vector")
    )


def _column_def(element: Sequence[Token]) -> list[Edit]:
    """Edits for one column definition (name first), empty unless its type is vector."""
    if len(element) < 2 or not _is_vector_type(element[1:]):
        return []
    name_tok, type_tok = element[0], element[1]
    name = name_tok.text if name_tok.token_type == TokenType.IDENTIFIER else name_tok.text.lower()
    dim, type_end, after = _vector_type(type_tok, element[2:])
    array_end = _array_suffix(after)
    end = element[-1].end + 1
    if array_end is not None:  # vector[], vector(n)[], vector ARRAY: an array of vectors
        check = f" CONSTRAINT {_constraint(name)} CHECK ({_is_vector(name, dim, 'vector_array')})"
        return [(type_tok.start, array_end, "bytea[]"), (end, end, check)]
    check = f" CONSTRAINT {_constraint(name)} CHECK ({_is_vector(name, dim)})"
    return [(type_tok.start, type_end, "bytea"), (end, end, check)]


def _array_suffix(after: Sequence[Token]) -> int | None:
    """Where the array decoration that follows a type ends in the text (``[]``, ``[4]``,
    repeated, or ``ARRAY``, ``ARRAY[4]``), None if there is none. PostgreSQL keeps
    neither the sizes nor the number of dimensions of an array column. (What is not
    one of these is left as written, for PostgreSQL's syntax error.)"""
    i, end = 0, None
    if after and after[0].token_type != TokenType.L_BRACKET and after[0].text.upper() == "ARRAY":
        i, end = 1, after[0].end + 1
    while i + 1 < len(after) and after[i].token_type == TokenType.L_BRACKET:
        close = i + 1 if after[i + 1].token_type == TokenType.R_BRACKET else i + 2
        if close >= len(after) or after[close].token_type != TokenType.R_BRACKET:
            break
        i, end = close + 1, after[close].end + 1
    return end


def _vector_type(type_tok: Token, rest: Sequence[Token]) -> tuple[int | None, int, list[Token]]:
    """``vector`` or ``vector(n)``: its dimension (None: any), where the type ends in the
    text and the tokens after it."""
    if rest and rest[0].token_type == TokenType.L_PAREN:
        if len(rest) < 3 or rest[2].token_type != TokenType.R_PAREN:
            raise InvalidParameter("invalid type modifier")
        try:
            dim = int(rest[1].text)
        except ValueError:
            raise InvalidParameter(f'invalid type modifier for vector: "{rest[1].text}"') from None
        if dim < 1:
            raise InvalidParameter("dimensions for type vector must be at least 1")
        if dim > MAX_DIM:
            raise InvalidParameter(f"dimensions for type vector cannot exceed {MAX_DIM}")
        return dim, rest[2].end + 1, list(rest[3:])
    # pgvector's `vector` with no dimension: each row has its own (1 to 16000); only an
    # index needs one
    return None, type_tok.end + 1, list(rest)


def _constraint(column: str) -> str:
    return quote_ident(column + "_pgvec_dims")


def _is_vector(column: str, dim: int | None, check: str = "vector") -> str:
    if dim is None:
        return f"pgvec.is_{check}({quote_ident(column)})"
    return f"pgvec.is_{check}({quote_ident(column)}, {dim})"


def _alter_type(action: Sequence[Token], table: TableInfo | None) -> list[Edit]:
    """``ALTER [COLUMN] c [SET DATA] TYPE vector[(n)]`` of a vector column: its CHECK
    replaced by one for the new dimension (how LangChain's users give their dimensionless
    column one). The stored bytes stay as they are; a row of another dimension fails the
    new CHECK, and the statement with it."""
    act = TokenCursor(action)
    act.accept("ALTER")
    act.accept("COLUMN")
    column = act.ident()
    if not (act.accept("TYPE") or act.accept("SET DATA TYPE")) or not _is_vector_type(
        action[act.i :]
    ):
        return []
    vcol = None if table is None or column is None else table.vectors.get(column)
    if column is None or vcol is None or vcol.binary:
        raise FeatureNotSupported(
            "changing a column's type to vector is not supported",
            hint="Only a vector column's dimension can change: ALTER COLUMN ... TYPE vector(n).",
        )
    dim, _, after = _vector_type(action[act.i], action[act.i + 1 :])
    if after:
        raise FeatureNotSupported(
            f"ALTER COLUMN ... TYPE vector does not take {after[0].text.upper()} here"
        )
    text = (
        f"DROP CONSTRAINT IF EXISTS {_constraint(column)},"
        f" ADD CONSTRAINT {_constraint(column)} CHECK ({_is_vector(column, dim)})"
    )
    return [(action[0].start, action[-1].end + 1, text)]


def _split_list(tokens: Sequence[Token], open_at: int) -> list[list[Token]]:
    """The comma-separated elements inside the parenthesis that opens at tokens[open_at]."""
    elements: list[list[Token]] = [[]]
    depth = 0
    for tok in tokens[open_at:]:
        kind = tok.token_type
        if kind in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
            if depth == 1:
                continue
        elif kind in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth -= 1
            if depth == 0:
                break
        elif kind == TokenType.COMMA and depth == 1:
            elements.append([])
            continue
        elements[-1].append(tok)
    return elements


def _split_actions(tokens: Sequence[Token], start: int) -> list[list[Token]]:
    actions: list[list[Token]] = [[]]
    depth = 0
    for tok in tokens[start:]:
        kind = tok.token_type
        if kind in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
        elif kind in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth -= 1
        elif kind == TokenType.COMMA and depth == 0:
            actions.append([])
            continue
        actions[-1].append(tok)
    return actions


def _apply(sql: str, edits: list[Edit]) -> str | None:
    if not edits:
        return None
    out: list[str] = []
    pos = 0
    for start, end, text in sorted(edits, key=lambda e: (e[0], e[1])):
        out.append(sql[pos:start])
        out.append(text)
        pos = end
    out.append(sql[pos:])
    return "".join(out)
