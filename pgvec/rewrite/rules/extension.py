"""``CREATE EXTENSION vector`` and its DROP and ALTER: pgvec answers them itself.

pgvec gives pgvector's surface whether or not the real extension exists behind it, and
its vector columns are bytea: letting the real extension in would put a second, real
``vector`` type next to them. So these statements never reach PostgreSQL: CREATE makes
sure pgvec's ``vector`` type exists (sql/: pgvector's face), DROP and ALTER change
nothing. Other extensions pass through.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot.tokenizer_core import Token

from pgvec.rewrite.decision import Extension
from pgvec.rewrite.tokens import TokenCursor

#: what clients call pgvector's extension
NAMES = frozenset({"vector"})


def rewrite_extension(tokens: Sequence[Token]) -> Extension | None:
    cur = TokenCursor(tokens)
    verb = cur.word()
    if verb not in ("CREATE", "DROP", "ALTER"):
        return None
    cur.next()
    if not cur.accept("EXTENSION"):
        return None
    if verb == "CREATE":
        cur.accept("IF", "NOT", "EXISTS")
    elif verb == "DROP":
        cur.accept("IF", "EXISTS")
    names = []
    while (name := cur.ident()) is not None:
        names.append(name)
        if verb != "DROP" or not cur.accept(","):
            break
    if not names or any(n not in NAMES for n in names):
        return None
    return Extension(f"{verb} EXTENSION")
