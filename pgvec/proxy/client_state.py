"""What pgvec knows of a client's session, and when it must ask PostgreSQL again.

PostgreSQL is the truth for three things a client's statements change:

* its **search settings** (``hnsw.ef_search``, ``ivfflat.probes``, ``pgvec.*``): the
  SETs are forwarded, and PostgreSQL scopes these placeholder settings like any other
  (rolled back with the transaction or savepoint, SET LOCAL ending at commit, RESET ALL,
  DISCARD ALL);
* its **search path** (``current_schemas(true)``): which table an unqualified name means;
* the **DDL of its open transaction**: tables it created or altered, which pgvec's own
  connections cannot see before the commit.

pgvec keeps a copy of each and reads it again, on the client's own connection (in its
transaction), only when a statement the client sent may have changed it: a SET, RESET or
DISCARD, ``set_config``, a ROLLBACK, a change of schemas or role, DDL. What a
transaction did may also change when it ends (SET LOCAL, a rolled-back implicit
transaction): after such a statement the ReadyForQuery that ends the transaction marks
the copies stale once more, and the shared catalog is marked stale once the transaction
that ran DDL ended, never before its commit. A session that changes none of these never
pays a query for them.

This class only keeps the books; the session runs the reads (:func:`state_query`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pgvec.catalog.models import vector_dims
from pgvec.catalog.queries import CATALOG_SQL, parse_catalog
from pgvec.proxy.settings import DEFAULTS, SearchSettings
from pgvec.rewrite.catalog import Catalog
from pgvec.rewrite.rewriter import Rewriter

log = logging.getLogger(__name__)

#: a statement that may change settings or the search path
STATE = 1
#: DDL: pgvec's catalog reloads once its transaction ended
DDL = 2
#: DDL that may make, change or remove a vector table: until its transaction ends, the
#: client's statements are rewritten by the catalog as that transaction sees it
VECTOR_DDL = 4
#: may write rows: a top-k later in the same transaction must look for its own writes
WRITES = 8

#: (on lower-cased text) words one of which each statement of a kind holds: a cheap
#: gate before the regular expression
_STATE_WORDS = ("discard", "grant", "revoke", "rollback", "search_path", "temp", "schema", ";")
_STATE_HEADS = ("set", "reset", "set_config")
_STATE = re.compile(
    r"(?:^|;)\s*(?:set|reset|discard|grant|revoke)\b"
    r"|\b(?:set_config|rollback|search_path|temp|temporary|pg_temp)\b"
    r"|\b(?:create|drop|alter)\s+schema\b"
)
_WRITE_WORDS = (
    "insert",
    "update",
    "delete",
    "merge",
    "copy",
    "truncate",
    "call",
    "do",
    "execute",
    "create",
    "alter",
    "drop",
)
_WRITES = re.compile(
    r"\b(?:insert|update|delete|merge|copy|truncate|call|do|execute|create|alter|drop)\b"
)
_DDL_WORDS = ("create", "alter", "drop", "comment", "rename", "truncate")
_DDL = re.compile(r"\b(?:create|alter|drop|comment|rename|truncate)\b")
#: a column of type vector, a copy of another table's (LIKE, INHERITS, PARTITION OF, AS
#: SELECT), a DROP or RENAME (of a vector table or column, perhaps)
_VECTOR_DDL = re.compile(r"vector|\b(?:like|inherits|partition|as|drop|rename)\b")
#: transaction control: runs in a failed transaction, so nothing may run before it
TXN_CONTROL = re.compile(
    r"\s*(?:rollback|abort|commit|end|release|savepoint|prepare\s+transaction)\b",
    re.IGNORECASE,
)

SearchPath = tuple[str, ...]


def classify(sql: str) -> int:
    """STATE | DDL | VECTOR_DDL bits of what ``sql`` may change (a superset: a false
    match costs one read later)."""
    low = sql.lower()
    flags = 0
    if low.lstrip().startswith(_STATE_HEADS) or "set_config" in low:
        flags = STATE
    else:
        for word in _STATE_WORDS:
            if word in low:
                if _STATE.search(low):
                    flags = STATE
                break
    for word in _DDL_WORDS:
        if word in low:
            if _DDL.search(low):
                flags |= DDL | (VECTOR_DDL if _VECTOR_DDL.search(low) else 0)
            break
    return flags


def may_write(sql: str) -> bool:
    """Whether ``sql`` may write rows (a superset: a false match costs one query of the
    rows the transaction wrote, at its next top-k)."""
    low = sql.lower()
    return any(word in low for word in _WRITE_WORDS) and _WRITES.search(low) is not None


@dataclass(frozen=True)
class Reads:
    """What to read of the session: its settings, its search path, its catalog."""

    settings: bool = False
    path: bool = False
    catalog: bool = False

    def __bool__(self) -> bool:
        return self.settings or self.path or self.catalog


def state_query(reads: Reads) -> str:
    """One statement returning, in this order, the catalog (JSON text), the search path
    (JSON array) and each of :data:`DEFAULTS`' settings, as far as ``reads`` asks."""
    columns: list[str] = []
    if reads.catalog:
        columns.append(f"({CATALOG_SQL.strip()})")
    if reads.path:
        columns.append("array_to_json(current_schemas(true))::text")
    if reads.settings:
        columns.extend(f"current_setting('{name}', true)" for name in DEFAULTS)
    return "SELECT " + ", ".join(columns)


class ClientState:
    """pgvec's copy of one client session's settings, search path and transaction DDL."""

    def __init__(
        self,
        committed_columns: Callable[[], Mapping[tuple[int, int], int]],
        note_ddl: Callable[[], None],
    ) -> None:
        self._committed_columns = committed_columns
        self._note_ddl = note_ddl
        #: the search settings, exact unless they need reading (:meth:`reads`)
        self.settings = SearchSettings()
        self.settings_stale = True
        #: current_schemas(true); None until read
        self.search_path: SearchPath | None = None
        self._path_stale = True
        #: a statement whose effect the end of its transaction may change was sent
        #: (numbered), and no ReadyForQuery with status I came after it yet
        self._scoped = 0
        self._unsettled = False
        #: ReadyForQuery messages awaited while the books are open
        self._ends = 0
        #: DDL was sent (numbered) and its transaction has not been seen to end
        self._ddl = 0
        self._in_ddl = False
        #: the same for DDL of vector tables: the client's statements need the catalog
        #: of its open transaction
        self._vector_ddl = 0
        self.in_vector_ddl = False
        #: the catalog as the client's open transaction sees it (None: read it again)
        self.txn_rewriter: Rewriter | None = None
        self._txn_columns: dict[tuple[int, int], int] = {}

    # -- what the client sent -----------------------------------------------------------

    def sent(self, flags: int) -> None:
        """The client sent a statement that may change what ``flags`` says."""
        if flags & STATE:
            self._scoped += 1
            self._unsettled = True
            self.settings_stale = self._path_stale = True
            self.txn_rewriter = None  # ROLLBACK TO SAVEPOINT may undo DDL
        if flags & DDL:
            self._ddl += 1
            self._in_ddl = True
        if flags & VECTOR_DDL:
            self._vector_ddl += 1
            self.in_vector_ddl = True
            self.txn_rewriter = None

    def boundary(self) -> Callable[[bytes], None] | None:
        """The client sent a Sync or a Query, where a transaction may end: the callback
        to run with the status of its ReadyForQuery, or None when nothing waits on it."""
        if not (self._unsettled or self._in_ddl):
            return None
        self._ends += 1
        scoped, ddl, vector_ddl = self._scoped, self._ddl, self._vector_ddl

        def reached(status: bytes) -> None:
            self._ends -= 1
            if status != b"I":  # the transaction goes on (or failed): nothing changed
                return
            if self._unsettled:
                self.settings_stale = self._path_stale = True
                self._unsettled = scoped != self._scoped
            if self._in_ddl:
                self._note_ddl()  # committed or rolled back: pgvec's catalog reloads
                self._in_ddl = ddl != self._ddl
            if self.in_vector_ddl:
                self.txn_rewriter = None
                self._txn_columns = {}
                self.in_vector_ddl = vector_ddl != self._vector_ddl

        return reached

    # -- what the session needs -----------------------------------------------------------

    def _open_end(self) -> bool:
        """A transaction may have ended at a ReadyForQuery still on its way."""
        return self._unsettled and self._ends > 0

    def settings_current(self) -> bool:
        return not self.settings_stale and not self._open_end()

    def path_current(self) -> bool:
        return self.search_path is not None and not self._path_stale and not self._open_end()

    def absorb(self, reads: Reads, row: Sequence[bytes | None], base: Rewriter) -> None:
        """Take what :func:`state_query` returned for ``reads``; ``base``: pgvec's
        committed catalog (for the transaction's)."""
        log.debug("reading the session's %s", reads)
        values = [None if v is None else v.decode() for v in row]
        i = 0
        if reads.catalog:
            tables, others, array_tables = parse_catalog(
                values[i] or '{"tables": [], "others": []}'
            )
            catalog = base.catalog
            self._txn_columns = vector_dims([*tables.values(), *array_tables.values()])
            committed = self._committed_columns()
            exact = frozenset(r for r, a in self._txn_columns if (r, a) not in committed)
            self.txn_rewriter = Rewriter(
                Catalog.from_tables(
                    [*tables.values(), *array_tables.values()],
                    catalog.version,
                    catalog.volatile,
                    others,
                    exact=exact,
                )
            )
            i += 1
        if reads.path:
            self.search_path = tuple(json.loads(values[i] or "[]"))
            self._path_stale = False
            i += 1
        if reads.settings:
            self.settings = SearchSettings.from_values(dict(zip(DEFAULTS, values[i:], strict=True)))
            self.settings_stale = False

    def vector_columns(self) -> Mapping[tuple[int, int], int]:
        """(table OID, attnum) -> dimension of the vector columns the client sees:
        committed ones, and those of its open transaction's DDL."""
        committed = self._committed_columns()
        if not self._txn_columns:
            return committed
        return {**committed, **self._txn_columns}

    def uncommitted(self, relid: int, attnum: int) -> bool:
        """Whether the vector column is one the client's open transaction made."""
        return self.in_vector_ddl and (relid, attnum) not in self._committed_columns()
