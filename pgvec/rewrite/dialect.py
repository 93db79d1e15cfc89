"""A sqlglot Postgres dialect that knows pgvector's distance operators.

``<->``, ``<=>``, ``<#>`` and ``<+>`` parse into one node, :class:`VectorDistance`, at
PostgreSQL's precedence for user-defined operators: looser than ``+ - * /``, tighter than
comparisons, left-associative with the other "any other operator" operators.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import TokenError
from sqlglot.generators.postgres import PostgresGenerator
from sqlglot.parsers.postgres import PostgresParser
from sqlglot.tokenizer_core import Token, TokenType

from pgvec.filter.sql import NAMEDATALEN, truncated

VECTOR_OPERATORS: tuple[str, ...] = ("<->", "<=>", "<#>", "<+>")

# Token types reused for the four operators. The last two are not used by the
# stock Postgres tokenizer or parser, so giving them to "<#>" and "<+>" takes nothing away.
_OP_TOKENS: dict[str, TokenType] = {
    "<->": TokenType.LR_ARROW,
    "<=>": TokenType.NULLSAFE_EQ,
    "<#>": TokenType.DCOLONDOLLAR,
    "<+>": TokenType.DCOLONPERCENT,
}
_TOKEN_OPS: dict[TokenType, str] = {v: k for k, v in _OP_TOKENS.items()}


class VectorDistance(exp.Expression, exp.Binary):
    """``this <op> expression`` for one of pgvector's distance operators."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "expression": True, "op": True}

    @property
    def op(self) -> str:
        return str(self.args["op"])


class Raw(exp.Expression):
    """SQL text generated verbatim (pgvec-built fragments: hex literals, the hit join)."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True}


def _vector_op(op: str) -> Any:
    def build(parser: Any, this: exp.Expr, expression: exp.Expr) -> exp.Expr:
        node: exp.Expr = parser.expression(VectorDistance(this=this, expression=expression, op=op))
        return node

    return build


class PgvecPostgres(Postgres):
    class Tokenizer(Postgres.Tokenizer):
        KEYWORDS: ClassVar[dict[str, TokenType]] = {
            **Postgres.Tokenizer.KEYWORDS,
            **_OP_TOKENS,
        }

    class Parser(PostgresParser):
        FACTOR: ClassVar[dict[TokenType, type[exp.Binary]]] = {
            k: v for k, v in PostgresParser.FACTOR.items() if k not in _TOKEN_OPS
        }
        EQUALITY: ClassVar[dict[TokenType, type[exp.Binary]]] = {
            k: v for k, v in PostgresParser.EQUALITY.items() if k not in _TOKEN_OPS
        }
        JSON_OPERATORS: ClassVar[dict[TokenType, Any]] = {
            **PostgresParser.JSON_OPERATORS,
            **{tok: _vector_op(op) for tok, op in _TOKEN_OPS.items()},
        }

    class Generator(PostgresGenerator):
        TRANSFORMS: ClassVar[dict[type[exp.Expr], Any]] = {
            **PostgresGenerator.TRANSFORMS,
            VectorDistance: lambda self, e: self.binary(e, e.op),
            Raw: lambda self, e: str(e.this),
        }


DIALECT = PgvecPostgres()

#: a parameter followed by something other than a space (outside string literals)
_PARAM = re.compile(r"'(?:[^']|'')*'|(\$\d+)(?=[^\s\d])")


def tokenize(sql: str) -> list[Token]:
    """The statement's tokens, identifiers longer than PostgreSQL keeps them cut as it
    cuts them (so that they name what they name in PostgreSQL).

    sqlglot takes ``$1,$2`` for the start of a dollar-quoted string (of tag ``1,``) and
    fails, where PostgreSQL reads two parameters (a tag never starts with a digit). Such
    a statement is tokenized with a space after each parameter, its tokens placed where
    they are in ``sql``.
    """
    try:
        return _truncated(DIALECT.tokenize(sql))
    except TokenError:
        cuts = [m.end(1) for m in _PARAM.finditer(sql) if m.group(1)]
        if not cuts:
            raise
    spaced = "".join(sql[a:b] + " " for a, b in zip([0, *cuts[:-1]], cuts, strict=True))
    spaced += sql[cuts[-1] :]
    added = [cut + i for i, cut in enumerate(cuts)]  # where the spaces are in ``spaced``
    tokens = DIALECT.tokenize(spaced)
    for token in tokens:
        token.start -= bisect_left(added, token.start)
        token.end -= bisect_left(added, token.end)
    return _truncated(tokens)


def _truncated(tokens: list[Token]) -> list[Token]:
    for token in tokens:
        if len(token.text) >= NAMEDATALEN // 4 and token.token_type in _NAMES:
            token.text = truncated(token.text)
    return tokens


_NAMES = frozenset({TokenType.VAR, TokenType.IDENTIFIER})


def generate(tree: exp.Expr) -> str:
    return DIALECT.generate(tree, copy=False)
