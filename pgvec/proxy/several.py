"""CREATE INDEX and DROP INDEX of pgvec indexes as statements of several in one Query.

``CREATE TABLE items (...); CREATE INDEX ON items USING hnsw (embedding)`` sent in one
Query (``psql -c``, Django's collected migration SQL, a schema file sent whole) runs in
one transaction: implicit, or the client's open block. pgvec cannot build or drop the
index before that transaction commits, so it does what it does inside a transaction
block (deferred.py). A CREATE INDEX's place in the Query is taken by
``CALL pgvec.create_index_in_query(table)``, which checks as the client what PostgreSQL
checks (the table's owner: it may be made earlier in the Query) and logs the table's
changes from then on; a DROP INDEX, checked before the Query is sent, by a statement that
does nothing. The client sees the tags ``CREATE INDEX`` and ``DROP INDEX``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pgvec.errors import FeatureNotSupported
from pgvec.proxy.client_state import may_write
from pgvec.proxy.hits import sql_literal
from pgvec.rewrite.decision import CreateIndex, Decision, DropIndex, IndexDef, Knn
from pgvec.rewrite.split import Piece
from pgvec.rewrite.tokens import quote_ident

#: the tags of the statements pgvec sends another statement in the place of
_TAGS: dict[type, bytes] = {CreateIndex: b"CREATE INDEX", DropIndex: b"DROP INDEX"}

_BEGIN = re.compile(r"\s*(?:begin|start\s+transaction)\b", re.IGNORECASE)
_END = re.compile(r"\s*(?:commit|end|rollback|abort)\b", re.IGNORECASE)
_CONTROL = re.compile(
    r"\s*(?:begin|start\s+transaction|commit|end|rollback|abort|savepoint|release"
    r"|prepare\s+transaction)\b",
    re.IGNORECASE,
)


def index_call(idef: IndexDef, dropped: bool) -> str:
    """The statement sent in the place of CREATE INDEX (its table named, not numbered:
    an earlier statement of the Query may have created it). ``dropped``: the transaction
    dropped a pgvec index of the new one's name."""
    table = f"{quote_ident(idef.table.schema)}.{quote_ident(idef.table.name)}"
    name = "NULL" if idef.name is None else sql_literal(idef.name)
    return (
        f"CALL pgvec.create_index_in_query({sql_literal(table)}, {name},"
        f" {str(idef.if_not_exists).lower()}, {str(dropped).lower()})"
    )


_PATH = re.compile(r"search_path|\bset\s+schema\b", re.IGNORECASE)


def check_order(pieces: Sequence[Piece], decisions: Sequence[Decision]) -> None:
    """Refuse what pgvec would get wrong in a Query of several statements, which it
    rewrites and searches for before any of them runs: a top-k after a write to its
    table (the search would miss the write) and a CREATE or DROP INDEX after a change of
    the search path (its names would resolve along the old one)."""
    path_changed = False
    written: list[str] = []
    for piece, decision in zip(pieces, decisions, strict=True):
        if isinstance(decision, Knn) and any(
            decision.plan.table.name.lower() in w for w in written
        ):
            raise FeatureNotSupported(
                "a top-k query after a write to its table in the same Query",
                hint="Send the top-k as a Query of its own: it would not see the write.",
            )
        if isinstance(decision, CreateIndex | DropIndex) and path_changed:
            raise FeatureNotSupported(
                "CREATE INDEX or DROP INDEX on a vector column after a change of"
                " search_path in the same Query",
                hint="Send the SET as a Query of its own.",
            )
        path_changed = path_changed or _PATH.search(piece.text) is not None
        if may_write(piece.text):
            written.append(piece.text.lower())


def tags(decisions: Sequence[Decision]) -> tuple[bytes | None, ...] | None:
    """The client's tags of the Query's statements where pgvec sends others in their
    place (Pending.tags), if it does."""
    found = tuple(_TAGS.get(type(d)) for d in decisions)
    return found if any(found) else None


def one_transaction(pieces: Sequence[Piece]) -> bool:
    """Whether a Query holding CREATE INDEX runs in one transaction pgvec can follow:
    no transaction control (implicit, or the client's open block: True), or a BEGIN
    first and a COMMIT or ROLLBACK last (False: its last tag says how it ended). Any
    other transaction control is refused."""
    control = [i for i, p in enumerate(pieces) if _CONTROL.match(p.text)]
    if not control:
        return True
    last = len(pieces) - 1
    begun = control[0] == 0 and _BEGIN.match(pieces[0].text) is not None
    rest = control[1:] if begun else control
    if rest == [] or (rest == [last] and _END.match(pieces[last].text)):
        return False
    raise FeatureNotSupported(
        "CREATE INDEX on a vector column in a Query with transaction control other than"
        " a BEGIN first and a COMMIT or ROLLBACK last",
        hint="Send the transactions of this Query as Queries of their own.",
    )
