"""One client connection: the frontend loop that forwards, rewrites or intercepts.

Simple protocol (psql): each Query is split into statements; statements pgvec does not
own are forwarded byte for byte; vector statements are rewritten and spliced back in by
position; top-k queries are answered by the engine first and sent as a join of the hits
with the table. CREATE/DROP INDEX on pgvec indexes run in pgvec itself.

Extended protocol (psycopg, asyncpg, JDBC): a Parse of vector SQL is rewritten into a
template with two extra parameters (hit keys and distances); its Bind is held until the
engine has answered, then completed with the hits. The extra parameters are hidden from
the ParameterDescription the client sees.

Errors pgvec detects are raised by PostgreSQL itself (``pgvec.raise_error``), so the
client gets a real ErrorResponse and the transaction state stays right. An unexpected
exception (a bug) fails the client's statement the same way, with SQLSTATE XX000, on
every path (Query, Parse, Bind, Describe, Execute, Close, COPY); only a malformed
message (ProtocolViolation) ends the session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pgvec import vector_arrays, vectors
from pgvec.errors import (
    ActiveTransaction,
    FeatureNotSupported,
    InFailedTransaction,
    InsufficientPrivilege,
    InternalError,
    PgvecError,
    ProtocolViolation,
    UndefinedObject,
)
from pgvec.proxy import deferred, several
from pgvec.proxy.client_backend import ClientBackend, StatementFailed, StatementSkipped
from pgvec.proxy.client_state import (
    TXN_CONTROL,
    WRITES,
    ClientState,
    Reads,
    classify,
    may_write,
    state_query,
)
from pgvec.proxy.codecs import Lookup, lookup_kind, oid_array
from pgvec.proxy.copyin import CopyConverter, CopyOutConverter
from pgvec.proxy.explain import AnnStep, PlanLines, index_used
from pgvec.proxy.hits import distances_array, distances_param, keys_array, sql_literal
from pgvec.proxy.relay import Pending, Relay, Transform, Writer
from pgvec.proxy.restore import RestoredIndex, RestoreSink
from pgvec.proxy.search import knn, null_query, query_vector, search_request
from pgvec.proxy.settings import SearchSettings
from pgvec.proxy.sql_catalog import sql_catalog
from pgvec.rewrite.decision import (
    CopyIn,
    CopyOut,
    CreateIndex,
    Decision,
    DropIndex,
    Extension,
    IndexAction,
    Knn,
    Passthrough,
    Reindex,
    RestoreCopy,
    Restored,
    Rewritten,
    SetParam,
)
from pgvec.rewrite.rewriter import Rewriter, SearchPath
from pgvec.rewrite.rules.created import provisional_table
from pgvec.rewrite.rules.database import LetGo, database_to_let_go
from pgvec.rewrite.rules.index import parse_index_name
from pgvec.rewrite.split import Piece, split_statements
from pgvec.rewrite.tokens import quote_ident
from pgvec.wire import messages as m
from pgvec.wire.framing import FrameBuffer, Message

if TYPE_CHECKING:
    from pgvec.engine.collection import Key
    from pgvec.rewrite.decision import IndexDef, KnnPlan
    from pgvec.service.database import Database
    from pgvec.service.request import SearchRequest

log = logging.getLogger(__name__)

_EXPLAIN = re.compile(r"\s*explain\b", re.IGNORECASE)
_PARAM = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$(\d+)")


def max_param(sql: str) -> int:
    n = 0
    for match in _PARAM.finditer(sql):
        if match.group(1):
            n = max(n, int(match.group(1)))
    return n


@dataclass
class Statement:
    """What pgvec remembers about a prepared statement it rewrote."""

    param_types: list[int]  # as declared to PostgreSQL (client's, extended, vectors -> bytea)
    client_nparams: int
    vector_params: dict[int, int | None] = field(default_factory=dict)  # 0-based -> dim
    #: parameters that are arrays of vectors (vector[]), 0-based -> their vectors' dim
    array_params: dict[int, int | None] = field(default_factory=dict)
    knn: KnnPlan | None = None
    intercept: Decision | None = None
    binary_result: bool = False  # the portal of an IndexAction wants its row in binary
    #: result columns that are vectors computed by expressions (Rewritten.vector_outputs)
    vector_outputs: frozenset[str] = frozenset()
    #: the statement as sent to PostgreSQL and as the client wrote it (error positions)
    texts: tuple[str, str] | None = None


class Session:
    def __init__(
        self,
        db: Database,
        client_buf: FrameBuffer,
        server: Writer,
        relay: Relay,
        let_go: Callable[[LetGo], Awaitable[None]] | None = None,
        state: ClientState | None = None,
    ) -> None:
        self.db = db
        #: the Rewriter over the database's catalog, and its role settings
        self.sql_catalog = sql_catalog(db)
        #: closes what pgvec holds of a database a statement drops, renames or copies
        self.let_go = let_go
        self.client_buf = client_buf
        #: where the server's bytes go (its transport)
        self.server = server
        self.relay = relay
        #: the client's settings, search path and open transaction's DDL
        self.state = state or ClientState(db.vector_columns, db.note_ddl)
        #: what each prepared statement may change (client_state.classify)
        self._flags: dict[str, int] = {}
        #: SETs of our settings earlier in the simple Query being handled
        self._query_sets: list[SetParam] = []
        self.statements: dict[str, Statement] = {}
        self.portals: dict[str, Statement] = {}
        self._out: list[bytes] = []
        self._skip_to_sync = False
        #: converting a COPY FROM STDIN's rows; None outside one (or after it failed)
        self._copy: CopyConverter | None = None
        self._copy_failed = False
        #: why pgvec ended the COPY with CopyFail (its SQLSTATE replaces 57014)
        self._copy_error: PgvecError | None = None
        #: the open transaction may have written rows (its top-k must see them)
        self._wrote = False
        #: CREATE and DROP INDEX of pgvec indexes in the open transaction (deferred.py),
        #: carried out at its commit
        self._deferred: list[deferred.Deferred] = []
        #: a rewriter that searches exactly the tables ``_deferred`` indexes, and what it
        #: was made from (_exact_while_indexing)
        self._exact_rewriter: tuple[Rewriter, frozenset[int], Rewriter] | None = None
        #: the simple Query being handled runs in a transaction of its own (several.py)
        self._implicit_query = False
        #: the statements of ``_deferred`` ran in a Query's implicit transaction:
        #: it commits if no error comes (Relay.errors is still this)
        self._implicit_errors: int | None = None
        #: a restore's COPY pgvec.<table> FROM stdin, answered by pgvec; None outside one
        self._sink: RestoreSink | None = None
        #: index definitions read from a restore, built once their tables are ready
        self._restored: list[RestoredIndex] = []
        self._builds: set[asyncio.Task[None]] = set()
        #: prepared statements that are asyncpg's type lookups (codecs.py)
        self._lookups: dict[str, Lookup] = {}
        #: asyncpg registered a codec for the vector type (set_type_codec: codecs.py)
        self._vector_codec = False
        #: the ANN steps of the EXPLAINs of top-k queries, by portal, for the plan
        self._explained: dict[str, list[str]] = {}
        # The client's bytes arrive in received(); what it cannot relay at once waits
        # for run(), the session's task, which is woken by _wake and owns the messages
        # while _busy (from the start: until it has seen what came during startup).
        self._wake = asyncio.Event()
        self._wake.set()
        self._busy = True
        #: the message received() could not relay, for run() to handle first
        self._held: Message | None = None
        #: what received() failed with (a malformed message, say), raised by run()
        self._failure: Exception | None = None
        self._ended = False

    # -- plumbing ---------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self._out.append(data)

    def _flush(self) -> None:
        if self._out:
            self.server.write(b"".join(self._out))
            self._out.clear()

    def _forward(self, msg: Message) -> None:
        t = msg.type
        if t in (b"P", b"B", b"D", b"E", b"C", b"S", b"Q", b"F"):
            portal = _portal_of(msg)
            statement = _statement_of(msg)
            info = self.portals.get(portal) if t == b"E" and portal is not None else None
            self.relay.expect_request(
                t,
                portal=portal,
                statement=statement,
                bind=self._bound(_bind_statement(msg.body), msg.body) if t == b"B" else None,
                vector_names=self._vector_names(t, portal, statement),
                texts=info.texts if info is not None else None,
            )
        self._send(msg.raw)

    def _vector_names(self, t: bytes, portal: str | None, statement: str | None) -> frozenset[str]:
        """The names of the computed vector columns of the rows a Describe or an Execute
        brings (Statement.vector_outputs)."""
        if t not in (b"D", b"E"):
            return frozenset()
        info = (
            self.portals.get(portal)
            if portal is not None
            else self.statements.get(statement)
            if statement is not None
            else None
        )
        return info.vector_outputs if info is not None else frozenset()

    def _bound(self, statement: str, bind: m.Bind | bytes) -> tuple[str, list[int]] | None:
        """For a Bind (decoded, or its body) of a statement whose result has vector
        columns: the statement and the result formats, so its rows are converted
        (VectorOutput.bound)."""
        output = self.relay.output
        if output is None or not output.describes(statement):
            return None
        if isinstance(bind, bytes):
            bind = m.Bind.decode(bind)
        return statement, list(bind.result_formats)

    def _looked_up(self, lookup: Lookup, bind: m.Bind) -> None:
        """asyncpg looked a type up: whether it reads vectors with a codec (codecs.py)."""
        output, face = self.relay.output, self.db.face_oid
        if output is None or face is None or not bind.params or bind.params[0] is None:
            return
        if lookup is Lookup.BY_OID:
            oids = oid_array(bind.params[0], bind.param_format(0))
            # vector[] alone: asyncpg looks its element up with it, codec or none
            if face in oids or (self.db.face_array_oid in oids and not self._vector_codec):
                output.text_in_binary = True
        elif bind.params[0] == b"vector":
            output.text_in_binary = False
            self._vector_codec = True

    def _face_params(self, info: Statement) -> Callable[[list[int]], list[int]]:
        """The ParameterDescription a client sees: the statement's own parameters, vector
        ones (declared bytea to PostgreSQL) as the vector type, arrays of vectors (bytea[])
        as its array type."""
        face, face_array = self.db.face_oid, self.db.face_array_oid
        vector_params, array_params = info.vector_params, info.array_params

        def params(oids: list[int]) -> list[int]:
            out = oids[: info.client_nparams]
            for i, oid in enumerate(out):
                if face is not None and oid == vectors.BYTEA_OID and i in vector_params:
                    out[i] = face
                elif (
                    face_array is not None and oid == vectors.BYTEA_ARRAY_OID and i in array_params
                ):
                    out[i] = face_array
            return out

        return params

    # -- the client's bytes (transports.Receiver) ---------------------------------------

    def received(self, data: bytes) -> None:
        """Bytes from the client: the messages the fast path takes (``_relayed``) go to
        the server at once, as the bytes they came in; the first one it does not take,
        and everything after it, wait for the session's task."""
        buf = self.client_buf
        buf.feed(data)
        if self._busy:
            return
        try:
            while frames := buf.frames():
                begin = end = 0
                try:
                    for t, begin, end in frames:
                        body = buf.body(begin, end) if end - begin > 5 else b""
                        if not (t in _RELAYED and self._relayed(t, body)):
                            self._held = Message(t, body)
                            break
                    else:
                        begin = end
                finally:  # what was relayed goes out, even if a message ends the session
                    if begin:
                        self._send(buf.span(0, begin))
                buf.consume(end)
                if self._held is not None or len(buf) < 5:
                    break
        except Exception as exc:  # the session ends as it would in run()
            self._failure = exc
        finally:
            self._flush()
        if self._held is not None or self._failure is not None:
            self._busy = True
            self._wake.set()

    def lost(self, exc: Exception | None) -> None:
        """The client closed its connection."""
        self._ended = True
        self._wake.set()

    async def run(self) -> None:
        """The session's task: handles, in order, the messages ``received`` hands over
        (a statement to rewrite, an intercepted one, a COPY, Terminate), until the
        client leaves."""
        buf = self.client_buf
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._failure is not None:
                raise self._failure
            msg, self._held = self._held, None
            while msg is not None or (msg := buf.next_message()) is not None:
                if msg.type == b"X":
                    await self._build_restored(last=True)
                    self._send(msg.raw)
                    self._flush()
                    return
                if msg.type in _RELAYED and self._relayed(msg.type, msg.body):
                    self._send(msg.raw)
                else:
                    await self.handle(msg)
                msg = None
            self._flush()
            if self._ended:
                return
            self._busy = False  # received() relays again

    def _relayed(self, t: bytes, body: bytes) -> bool:
        """The messages pgvec passes on as they came, the bulk of an application's
        traffic (a Bind of a statement it did not rewrite, an Execute or Describe of a
        portal that is not its own, Sync, a simple Query that needs nothing from it),
        taken at once (no coroutines) with the same bookkeeping as ``handle``; the caller
        sends them on. False when ``handle`` must act on the message."""
        if (
            self._builds
            or self._skip_to_sync
            or self._sink is not None
            or self._copy is not None
            or self._copy_failed
        ):
            return False
        relay = self.relay
        if t == b"Q":
            return self._relayed_query(body)
        if t == b"B":
            portal, statement = m.bind_names(body)  # a malformed one ends the session
            if statement in self.statements or statement in self._lookups:
                return False  # on_bind's
            bound = self._bound(statement, body)
            flags = self._flags.get(statement, 0)
            self._note_transaction()
            if flags & WRITES:
                self._wrote = True
            self.portals.pop(portal, None)
            relay.expect_request(t, portal=portal, bind=bound)
            if flags:
                self.state.sent(flags)
        elif t == b"S":
            self._note_transaction()
            relay.expect_request(t)
            self._boundary()
        else:  # Execute, Describe
            if t == b"D" and body[:1] != b"P":
                return False  # a statement's: handle shows vector parameters as vectors
            end = body.find(b"\0")
            if end < 0:
                return False  # malformed: handle says so
            try:
                portal = body[int(t == b"D") : end].decode()
            except UnicodeDecodeError:
                return False
            info = self.portals.get(portal)
            if portal in self._explained or (info is not None and info.intercept is not None):
                return False  # its plan, or pgvec's own reply
            self._note_transaction()
            if info is None:
                relay.expect_request(t, portal=portal)
            else:  # a rewritten statement's: its computed vectors are shown as vectors
                relay.expect_request(
                    t, portal=portal, vector_names=info.vector_outputs, texts=info.texts
                )
        return True

    def _relayed_query(self, body: bytes) -> bool:
        """A simple Query that needs nothing from pgvec (it names no table or function
        pgvec knows, and pgvec's catalog needs no reading first), with on_query's
        bookkeeping; False when on_query must act on it."""
        rewriter = self.sql_catalog.rewriter_now()
        if rewriter is None or self._restored or self.state.in_vector_ddl:
            return False
        sql = m.Query.decode(body).sql  # a malformed one ends the session
        if rewriter.catalog.may_concern(sql) or database_to_let_go(sql) is not None:
            return False
        self._note_transaction()
        flags = self._query_started(sql)
        self.relay.expect_request(b"Q", portal="")
        self.state.sent(flags)
        self._boundary()
        return True

    def _query_started(self, sql: str) -> int:
        """What a simple Query does to the session before it runs, relayed at once or
        handled: the unnamed statement and portal go, a write is noted, the SETs of the
        last one are forgotten. Returns what it may change (classify)."""
        self.statements.pop("", None)
        self.portals.pop("", None)
        if may_write(sql):
            self._wrote = True
        self._query_sets.clear()
        return classify(sql)

    def _note_transaction(self) -> None:
        if self._wrote and self.relay.txn_status == b"I" and self.relay.idle():
            self._wrote = False  # the transaction that wrote has ended

    async def handle(self, msg: Message) -> None:
        """Act on one client message. If pgvec fails it, the client gets an ErrorResponse
        for it and the session goes on; a malformed message ends the session."""
        if self._builds:
            # indexes created in a transaction block that committed: the session's next
            # statement finds them built, as after PostgreSQL's CREATE INDEX
            await asyncio.wait(list(self._builds))
        try:
            await self._dispatch(msg)
        except ProtocolViolation:
            raise  # the connection ends with FATAL 08P01 (ProxyServer)
        except PgvecError as err:
            self._fail(msg.type, err)
        except Exception as exc:  # a bug in pgvec: this statement fails, the session goes on
            self._fail(msg.type, _internal(exc))

    def _fail(self, t: bytes, err: PgvecError) -> None:
        """Answer the client's message of type ``t``, which pgvec failed, with ``err``."""
        if t == b"Q":
            self.raise_simple(err)
        elif t in (b"d", b"c", b"f"):
            self._fail_copy(err)
        elif t in (b"P", b"B", b"D", b"E", b"C"):
            self.raise_extended(err)
        else:  # Sync, Flush, Terminate, ...: no reply of their own to put an error in
            raise err

    async def _dispatch(self, msg: Message) -> None:
        t = msg.type
        log.debug("client %s (%d bytes)", t, len(msg.body))
        self._note_transaction()
        if self._skip_to_sync:
            if t != b"S":
                return
            self._skip_to_sync = False
        if self._sink is not None:
            if t in (b"d", b"c", b"f"):
                self._on_sink(msg)
                return
            self._sink = None
        if t in (b"d", b"c", b"f") and (self._copy is not None or self._copy_failed):
            self.on_copy(msg)
            return
        self._copy, self._copy_failed = None, False
        if t == b"Q":
            await self.on_query(msg)
            self._boundary()
        elif t == b"S":
            self._forward(msg)
            self._boundary()
        elif t == b"P":
            await self.on_parse(msg)
        elif t == b"B":
            await self.on_bind(msg)
        elif t == b"D":
            self.on_describe(msg)
        elif t == b"E":
            await self.on_execute(msg)
        elif t == b"C":
            close = m.Close.decode(msg.body)
            (self.statements if close.kind == "S" else self.portals).pop(close.name, None)
            self._forward(msg)
        else:
            self._forward(msg)

    def on_copy(self, msg: Message) -> None:
        """CopyData/CopyDone/CopyFail of a COPY whose vector fields pgvec converts."""
        if self._copy_failed:  # PostgreSQL has ended the COPY: drop the rest of it
            if msg.type != b"d":
                self._copy_failed = False
            return
        assert self._copy is not None
        try:
            if msg.type == b"d":
                self._send(self._copy.data(msg.body))
                return
            if msg.type == b"c":
                self._send(self._copy.finish())
        except PgvecError as err:
            self._fail_copy(err)
            return
        self._copy = None
        self._send(msg.raw)

    def _on_sink(self, msg: Message) -> None:
        """CopyData/CopyDone/CopyFail of a restore's COPY into schema pgvec."""
        sink = self._sink
        assert sink is not None
        if msg.type == b"d":
            sink.feed(msg.body)
            return
        self._sink = None
        status = self.relay.txn_status
        if msg.type == b"f":
            reason = msg.body.rstrip(b"\0").decode("utf-8", "replace")
            self.relay.emit(
                m.error_response("57014", f"COPY from stdin failed: {reason}")
                + m.ready_for_query(status)
            )
            return
        self._restored += sink.finish()
        self.relay.emit(m.command_complete(f"COPY {sink.rows}") + m.ready_for_query(status))

    async def _build_restored(self, *, last: bool = False) -> None:
        """Build the indexes a restore's pgvec.indexes rows define whose tables are ready
        (restored with their primary key); at the session's end (``last``), say which
        could not be."""
        if not self._restored:
            return
        await self.settle()
        if self.relay.txn_status == b"E":
            return
        waiting: list[RestoredIndex] = []
        for restored in self._restored:
            sql = restored.create_sql()
            decision: Decision | None = None
            if sql is not None:
                found = await self._rewriter_for(sql, sync=True)
                if found is not None:
                    decision = found[0].rewrite(sql, found[1])
            if isinstance(decision, CreateIndex) and decision.index.table.pk is not None:
                try:
                    await self._run_ddl(decision, simple=True)
                except PgvecError as exc:
                    self._restore_warning(restored, exc.message)
                except StatementFailed as exc:
                    self._restore_warning(restored, str(exc))
            elif sql is None or last:
                self._restore_warning(restored, "its table is not there, or has no primary key")
            else:
                waiting.append(restored)
        self._restored = waiting

    def _restore_warning(self, restored: RestoredIndex, why: str) -> None:
        text = f'pgvec index "{restored.name}" of the dump was not restored: {why}'
        log.warning("%s", text)
        self.relay.emit(m.notice_response(text, severity="WARNING"))

    def _fail_copy(self, err: PgvecError) -> None:
        """End the COPY with CopyFail: PostgreSQL rolls it back and answers with an error,
        which :meth:`_copy_reply` turns into ``err``."""
        self._send(m.frame_copy_fail(err.message))
        self._copy, self._copy_failed = None, True
        self._copy_error = err

    def _copy_reply(self, reply: Message) -> bytes | None:
        """A reply to a COPY FROM STDIN whose rows pgvec converts: PostgreSQL answers
        pgvec's CopyFail with 57014 "COPY from stdin failed: ..."; the client gets the
        error pgvec failed the COPY with, its SQLSTATE included."""
        err = self._copy_error
        if reply.type != b"E" or err is None:
            return reply.raw
        self._copy_error = None
        fields = m.error_fields(reply.body)
        if fields.get("C") != "57014" or not fields.get("M", "").startswith(
            "COPY from stdin failed"
        ):
            return reply.raw  # PostgreSQL's own error came first
        return m.error_response(err.sqlstate, err.message, detail=err.detail, hint=err.hint)

    # -- errors -----------------------------------------------------------------------

    @staticmethod
    def _raise_sql(err: PgvecError) -> str:
        hint = sql_literal(err.hint) if err.hint else "NULL"
        return (
            f"SELECT pgvec.raise_error({sql_literal(err.sqlstate)}, "
            f"{sql_literal(err.message)}, {hint})"
        )

    @staticmethod
    def _drop_rows(err: PgvecError | None = None) -> Transform:
        """Replies to pgvec.raise_error(): only the error, without its PL/pgSQL context,
        with ``err``'s detail (which the function does not take)."""

        def drop(msg: Message) -> bytes | None:
            if msg.type in (b"T", b"D", b"C", b"1", b"2"):
                return None
            if msg.type == b"E":
                fields = m.error_fields(msg.body)
                return m.error_response(
                    fields.get("C", "XX000"),
                    fields.get("M", ""),
                    severity=fields.get("V", fields.get("S", "ERROR")),
                    detail=fields.get("D") or (err.detail if err is not None else None),
                    hint=fields.get("H"),
                    position=err.position if err is not None else None,
                )
            return msg.raw

        return drop

    def raise_simple(self, err: PgvecError) -> None:
        """Answer the current Query with ``err``, raised by PostgreSQL."""
        log.debug("raising %s: %s", err.sqlstate, err.message)
        self.relay.expect(Pending(frozenset({b"Z"}), transform=self._drop_rows(err)))
        self._send(m.Query(self._raise_sql(err)).encode())

    def raise_extended(self, err: PgvecError) -> None:
        """Answer the current extended-protocol message with ``err``; skip to Sync."""
        log.debug("raising %s: %s", err.sqlstate, err.message)
        drop = self._drop_rows(err)
        self.relay.expect(Pending(frozenset({b"1"}), extended=True, transform=drop))
        self.relay.expect(Pending(frozenset({b"2"}), extended=True, transform=drop))
        self.relay.expect(Pending(frozenset({b"C"}), extended=True, transform=drop))
        self._send(m.Parse("", self._raise_sql(err)).encode())
        self._send(m.Bind("", "", [], [], []).encode())
        self._send(m.execute())
        self._skip_to_sync = True

    # -- simple protocol --------------------------------------------------------------

    async def on_query(self, msg: Message) -> None:
        sql = m.Query.decode(msg.body).sql
        flags = self._query_started(sql)
        try:
            await self._build_restored()
            await self._let_go_of(sql)
            await self._query(msg, sql)
        except StatementFailed as err:  # PostgreSQL's own error answers the Query
            self.relay.emit(err.response + m.ready_for_query(self.relay.txn_status))
        except PgvecError as err:
            self.raise_simple(err)
        except Exception as exc:  # a bug in pgvec: this query fails, the session goes on
            self.raise_simple(_internal(exc))
        self.state.sent(flags)

    async def _let_go_of(self, sql: str) -> None:
        target = database_to_let_go(sql)
        if target is not None and self.let_go is not None:
            await self.let_go(target)

    async def _query(self, msg: Message, sql: str) -> None:
        found = await self._rewriter_for(sql, sync=True)
        if found is None:
            self._forward(msg)
            return
        rewriter, path = found
        pieces = split_statements(sql)
        decisions: list[Decision] = []
        for piece in pieces:
            try:
                decision = rewriter.rewrite(piece.text, path)
            except PgvecError as err:
                if err.position is not None:  # in the Query's text, not the statement's
                    err.position += piece.start
                raise
            decisions.append(decision)
            if isinstance(decision, Rewritten) and len(pieces) > 1:
                created = provisional_table(piece.text, _creation_schema(path))
                if created is not None:  # later statements of this Query may use it
                    rewriter = rewriter.with_table(created)
        if len(pieces) > 1:
            several.check_order(pieces, decisions)
        if len(pieces) > 1 and any(isinstance(d, OWNED) for d in decisions):
            decisions = await self._among_others(pieces, decisions)
        if all(isinstance(d, Passthrough) for d in decisions):
            self._forward(msg)
            return
        if any(isinstance(d, RestoreCopy) for d in decisions):
            if len(pieces) > 1:
                raise FeatureNotSupported("send COPY ... FROM STDIN as a statement of its own")
            assert isinstance(decisions[0], RestoreCopy)
            await self.settle()
            self._sink = RestoreSink(decisions[0])
            self.relay.emit(m.copy_in_response(len(decisions[0].columns)))
            return
        if all(isinstance(d, Restored) for d in decisions):
            await self.settle()
            if self.relay.txn_status != b"E":  # (else PostgreSQL says it is aborted)
                tags = b"".join(m.command_complete(d.tag) for d in decisions)  # type: ignore[union-attr]
                self.relay.emit(tags + m.ready_for_query(self.relay.txn_status))
                return
        copies = [d for d in decisions if isinstance(d, CopyIn)]
        if copies:
            if len(pieces) > 1:
                raise FeatureNotSupported("send COPY ... FROM STDIN as a statement of its own")
            self._copy = CopyConverter(copies[0])
            self._copy_error = None
            self.relay.expect_request(b"Q", transform=self._copy_reply, portal="")
            self._send(msg.raw)
            return
        if isinstance(decisions[0], CopyOut) and len(pieces) == 1:
            out = CopyOutConverter(decisions[0], self.db.face_oid)

            def convert(reply: Message) -> bytes | None:
                if reply.type == b"d":
                    return out.data(reply.body)
                if reply.type == b"c":
                    return out.finish() + reply.raw
                return reply.raw

            self.relay.expect_request(b"Q", transform=convert, portal="")
            self._send(msg.raw)
            return
        if len(pieces) == 1 and isinstance(decisions[0], Extension):
            await self._intercept_simple(msg, decisions[0])
            return
        if len(pieces) == 1 and isinstance(decisions[0], OWNED):
            await self._intercept_simple(msg, decisions[0])
            return
        parts: list[str] = []
        pos = 0
        steps: list[list[str] | None] = []  # one per EXPLAIN
        for piece, decision in zip(pieces, decisions, strict=True):
            parts.append(sql[pos : piece.start])
            parts.append(await self._render_simple(piece.text, decision))
            pos = piece.end
            if isinstance(decision, Knn) and decision.plan.explain:
                steps.append(self._explained.pop("", None))
            elif _EXPLAIN.match(piece.text):
                steps.append(None)
        parts.append(sql[pos:])
        names = frozenset(name for d in decisions for name in _vector_outputs(d))
        transform = PlanLines(steps) if any(steps) else None
        sent = "".join(parts)
        retag = several.tags(decisions)
        self.relay.expect_request(
            b"Q", transform=transform, portal="", vector_names=names, texts=(sent, sql), tags=retag
        )
        self._send(m.Query(sent).encode())

    async def _among_others(
        self, pieces: Sequence[Piece], decisions: list[Decision]
    ) -> list[Decision]:
        """The decisions of a Query of several statements, some of them pgvec's to run:
        DROP INDEX and REINDEX of PostgreSQL's indexes go to PostgreSQL; CREATE and DROP
        INDEX of pgvec's run with the Query (several.py); the others are refused."""
        out: list[Decision] = []
        for decision in decisions:
            if isinstance(decision, DropIndex | Reindex) and not await self._owned(decision):
                decision = Passthrough()
            elif isinstance(decision, Reindex | IndexAction):
                raise FeatureNotSupported(
                    "REINDEX of a pgvec index, pgvec.load() and pgvec.release() must be sent"
                    " as statements of their own"
                )
            out.append(decision)
        if any(isinstance(d, CreateIndex | DropIndex) for d in out):
            implicit = several.one_transaction(pieces)
            await self.settle()  # (the transaction status the Query starts in)
            self._implicit_query = implicit and self.relay.txn_status == b"I"
        return out

    def _create_index_in_query(self, idef: IndexDef) -> str:
        """CREATE INDEX as one statement of several: checked now, built at the commit."""
        if self.relay.txn_status == b"E":
            return several.index_call(idef, False)  # PostgreSQL says the txn is aborted
        if idef.concurrently:
            raise ActiveTransaction(CONCURRENTLY_IN_BLOCK)
        dropped = self._check_deferred(idef)
        if dropped is None:
            return RESTORED_NOOP  # (IF NOT EXISTS: made by the transaction already)
        self._deferred.append(idef)
        self._deferred_in_query()
        if idef.where is not None:  # (its predicate unchecked: the Query has not run yet)
            self._partial_notice(idef)
        # its name is checked by the statement sent, after the Query's earlier ones
        return several.index_call(idef, dropped)

    async def _drop_index_in_query(self, decision: DropIndex) -> str:
        """DROP INDEX of a pgvec index as one statement of several: checked now, dropped
        at the commit."""
        if self.relay.txn_status != b"E":  # (else PostgreSQL says the transaction is aborted)
            await self._drop_at_commit(decision, simple=True)
            self._deferred_in_query()
        return RESTORED_NOOP

    def _deferred_in_query(self) -> None:
        if self._implicit_query:
            self._implicit_errors = self.relay.errors

    async def _drop_at_commit(self, decision: DropIndex, *, simple: bool) -> None:
        """DROP INDEX in a transaction: checked now, carried out once it committed."""
        for schema, name in decision.names:
            if deferred.created(self._deferred, schema, name) is not None:
                continue  # made by this transaction: its CREATE INDEX is undone
            if await self.db.find_index(schema, name) is None:
                if decision.if_exists:
                    continue
                raise UndefinedObject(f'index "{name}" does not exist')
            await self._check_index_owner(schema, name, simple=simple)
        for schema, name in decision.names:
            deferred.drop(self._deferred, schema, name)

    async def _render_simple(self, text: str, decision: Decision) -> str:
        if isinstance(decision, Passthrough | CopyOut):  # (one of several: not converted)
            return text
        if isinstance(decision, Extension):
            # one statement of several: PostgreSQL answers with the same tag, and a NOTICE
            # that it skipped the statement
            if decision.tag == "CREATE EXTENSION":
                await self.db.check_face()
                return "CREATE EXTENSION IF NOT EXISTS plpgsql"
            if decision.tag == "DROP EXTENSION":
                return 'DROP EXTENSION IF EXISTS "pgvec: vector stays"'
            raise FeatureNotSupported("send ALTER EXTENSION vector as a statement of its own")
        if isinstance(decision, SetParam):
            SearchSettings.check(decision.name, decision.value)
            self._query_sets.append(decision)  # for a top-k later in this Query
            return text
        if isinstance(decision, Rewritten):
            return decision.sql
        if isinstance(decision, Restored):
            return RESTORED_NOOP
        if isinstance(decision, CreateIndex):
            return self._create_index_in_query(decision.index)
        if isinstance(decision, DropIndex):
            return await self._drop_index_in_query(decision)
        if isinstance(decision, Knn):
            plan = decision.plan
            self._check_committed(plan)
            limit = plan.limit
            if limit is None:
                raise FeatureNotSupported("LIMIT must be a constant")
            self._flush()
            backend = ClientBackend(self.server, self.relay, sync=True)
            query: np.ndarray | None
            if plan.query_sql is not None:
                query = await query_vector(plan, backend)
            else:
                assert plan.query_literal is not None, "simple-protocol knn has a literal query"
                query = vectors.from_bytes(plan.query_literal, plan.column.dim)
            settings = await self._search_settings(backend)
            if self._query_sets:
                settings = dataclasses.replace(settings, extra=dict(settings.extra))
                for change in self._query_sets:
                    settings.apply(change.name, change.value)
            request = search_request(
                plan,
                query if query is not None else null_query(plan),
                limit + plan.offset,
                settings,
                own_writes=self._own_writes(),
            )
            keys, dists = await self._top_k(plan, request, backend, "", null=query is None)
            return plan.render(sql_literal(keys_array(keys)), sql_literal(distances_array(dists)))
        raise FeatureNotSupported(f"unexpected statement kind {type(decision).__name__}")

    # -- the client's session state ------------------------------------------------------

    async def set_startup(self, values: Mapping[str, str]) -> None:
        """Set the run-time parameters ``values`` before the client's first statement."""
        backend = ClientBackend(self.server, self.relay, sync=True)
        for name, value in values.items():
            await backend.rows(
                "SELECT set_config($1, $2, false)",
                [name.encode(), value.encode()],
                [TEXT_OID, TEXT_OID],
                [0, 0],
                binary=False,
            )

    def _boundary(self) -> None:
        """After a client's Sync or Query: watch the transaction status it ends with."""
        if self._deferred:
            self.relay.expect(Pending(frozenset(), emit=b"", reached=self._transaction_end))
        reached = self.state.boundary()
        if reached is None:
            return
        if self.relay.idle():
            reached(self.relay.txn_status)
        else:
            self.relay.expect(Pending(frozenset(), emit=b"", reached=reached))

    async def _check_owner(self, relid: int, what: str, *, simple: bool) -> None:
        """pgvec builds, drops, loads and releases indexes with its own connections: it
        asks first, as the client, whether the client owns the table (PostgreSQL's rule
        for CREATE INDEX, DROP INDEX and REINDEX)."""
        rows = await ClientBackend(self.server, self.relay, sync=simple).rows(
            "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = $1::oid",
            [str(relid).encode()],
            [0],
            [0],
            binary=False,
        )
        if not rows or rows[0][0] != b"t":
            raise InsufficientPrivilege(f"must be owner of {what}")

    async def _check_index_owner(self, schema: str | None, name: str, *, simple: bool) -> None:
        row = await self.db.find_index(schema, name)
        if row is not None:  # (a missing index gets its own error where it is used)
            await self._check_owner(row.relid, f"index {name}", simple=simple)

    def _check_deferred(self, idef: IndexDef) -> bool | None:
        """Check a CREATE INDEX carried out at the commit, as of the transaction's own
        CREATE INDEXes before it. Its name is checked in the client's transaction
        (pgvec.index_name_free); returns whether the transaction dropped a pgvec index of
        that name, which is free then, or None for IF NOT EXISTS of an index the
        transaction made already (with PostgreSQL's NOTICE)."""
        ops = self._deferred
        if self.db.check_index(idef, deferred.creates(ops)):
            self.relay.emit(m.notice_response(f'relation "{idef.name}" already exists, skipping'))
            return None
        return idef.name is not None and idef.name in deferred.dropped_names(ops)

    def _transaction_end(self, status: bytes) -> None:
        """The CREATE INDEXes and DROP INDEXes of a transaction: carried out once it
        committed (the session's next statement waits for them), forgotten if it rolled
        back."""
        if status != b"I" or not self._deferred:
            return
        ops, self._deferred = self._deferred, []
        implicit, self._implicit_errors = self._implicit_errors, None
        committed = implicit is not None and self.relay.errors == implicit  # (several.py)
        if not committed and self.relay.last_tag != b"COMMIT":
            log.info("transaction rolled back: %d CREATE/DROP INDEX undone", len(ops))
            return
        self.db.note_ddl()
        task = asyncio.create_task(self._committed(ops))
        self._builds.add(task)
        task.add_done_callback(self._builds.discard)

    async def _committed(self, ops: list[deferred.Deferred]) -> None:
        """Carry out a committed transaction's index DDL, in its order (a later index of
        an operator class supersedes an earlier one, which must be in first)."""
        for op in ops:
            if isinstance(op, deferred.IndexDrop):
                try:
                    await self.db.drop_index(op.schema, op.name, if_exists=True)
                except PgvecError as exc:
                    log.warning("DROP INDEX %s after commit failed: %s", op.name, exc)
            else:
                await self.db.create_committed_index(op)

    async def _read_state(self, reads: Reads, backend: ClientBackend) -> None:
        """Read the client's settings / search path / catalog on its own connection."""
        self._flush()
        rows = await backend.rows(state_query(reads), [], [], [], binary=False)
        self.state.absorb(reads, rows[0], await self.sql_catalog.rewriter())

    async def _search_settings(self, backend: ClientBackend) -> SearchSettings:
        """The client's search settings, read again if a statement may have changed them."""
        if not self.state.settings_current():
            await self._read_state(Reads(settings=True), backend)
        return self.state.settings

    async def _rewriter_for(
        self, sql: str, *, sync: bool
    ) -> tuple[Rewriter, SearchPath | None] | None:
        """The rewriter for ``sql`` (the catalog as the client's transaction sees it)
        and the search path its names resolve along; None if ``sql`` needs no rewriting.
        """
        state = self.state
        rewriter = await self.sql_catalog.rewriter()
        if (
            state.in_vector_ddl
            and not TXN_CONTROL.match(sql)
            and not (self.relay.txn_status == b"E" and self.relay.idle())
        ):
            if state.txn_rewriter is None:
                reads = Reads(catalog=True, path=not state.path_current())
                await self._read_state(reads, ClientBackend(self.server, self.relay, sync=sync))
            assert state.txn_rewriter is not None
            rewriter = state.txn_rewriter
        rewriter = self._exact_while_indexing(rewriter)
        if not rewriter.catalog.may_concern(sql):
            return None
        if not state.path_current() and rewriter.catalog.needs_search_path(sql):
            await self._read_state(
                Reads(path=True), ClientBackend(self.server, self.relay, sync=sync)
            )
        return rewriter, state.search_path if state.path_current() else None

    def _exact_while_indexing(self, rewriter: Rewriter) -> Rewriter:
        """``rewriter``, with the tables the client's open transaction indexes searched
        exactly, in SQL, until it commits: pgvec builds their indexes once it has, and
        cannot read a table that transaction holds locked."""
        indexed = frozenset(op.table.relid for op in deferred.creates(self._deferred))
        if indexed <= rewriter.catalog.exact:
            return rewriter
        memo = self._exact_rewriter
        if memo is None or memo[0] is not rewriter or memo[1] != indexed:
            memo = (rewriter, indexed, rewriter.with_exact(indexed))
            self._exact_rewriter = memo
        return memo[2]

    def _check_committed(self, plan: KnnPlan) -> None:
        if self.state.uncommitted(plan.table.relid, plan.column.attnum):
            raise FeatureNotSupported(
                f'column "{plan.column.name}" of table "{plan.table.name}" was made in '
                "this transaction: it cannot be searched before the transaction commits",
                hint="COMMIT first.",
            )

    def _own_writes(self) -> bool:
        """Whether a top-k must look for rows the client's open transaction wrote."""
        return self._wrote and self.relay.txn_status == b"T"

    async def _owned(self, decision: DropIndex | Reindex) -> bool:
        """Whether DROP INDEX / REINDEX names pgvec's indexes (True) or PostgreSQL's."""
        names = decision.names if isinstance(decision, DropIndex) else (decision.name,)
        owned = [
            deferred.created(self._deferred, s, n) is not None or await self.db.owns_index(s, n)
            for s, n in names
        ]
        if any(owned) and not all(owned):
            raise FeatureNotSupported(
                "drop pgvec indexes and PostgreSQL indexes in separate statements"
            )
        return all(owned)

    async def _intercept_simple(self, msg: Message, decision: Decision) -> None:
        self._flush()
        if isinstance(decision, DropIndex | Reindex) and not await self._owned(decision):
            self._forward(msg)
            return
        reply = await self.intercept(decision, simple=True)
        if isinstance(decision, IndexAction):
            reply = _action_description(decision, binary=False) + reply
        self.relay.emit(reply + m.ready_for_query(self.relay.txn_status))

    async def settle(self) -> None:
        """Wait until every reply owed to the client has been relayed. The server is
        flushed first: inside a pipeline without Sync it would hold its replies."""
        self._send(m.FLUSH)
        self._flush()
        await self.relay.wait_idle()

    async def intercept(
        self, decision: Decision, *, binary: bool = False, simple: bool = False
    ) -> bytes:
        """Run a statement pgvec owns; returns its reply: [DataRow], CommandComplete."""
        await self.settle()
        if isinstance(decision, IndexAction):
            self._check_not_aborted()
            if decision.name is None:
                raise FeatureNotSupported("the index name must not be NULL")
            schema, name = decision.name
            await self._check_index_owner(schema, name, simple=simple)
            if decision.action == "load":
                count = await self.db.load(name, schema)
            else:
                count = await self.db.release(name, schema)
            value = count.to_bytes(8, "big", signed=True) if binary else str(count).encode()
            return m.encode_data_row([value]) + m.command_complete("SELECT 1")
        return m.command_complete(await self._run_ddl(decision, simple=simple))

    async def _check_partial(self, idef: IndexDef, *, simple: bool) -> None:
        """A partial index (``CREATE INDEX ... WHERE``): its predicate is checked on the
        client's connection, as the client, and the client is told that pgvec indexes
        every row (a search is filtered by its own WHERE clause, and k rows come back
        whatever the filter, so the index's predicate is not needed)."""
        if idef.where is None:
            return
        table = f"{quote_ident(idef.table.schema)}.{quote_ident(idef.table.name)}"
        await ClientBackend(self.server, self.relay, sync=simple).rows(
            f"SELECT FROM {table} WHERE {idef.where} LIMIT 0", [], [], [], binary=False
        )
        self._partial_notice(idef)

    def _partial_notice(self, idef: IndexDef) -> None:
        self.relay.emit(
            m.notice_response(
                f'index "{idef.default_name}" covers every row of table "{idef.table.name}":'
                " pgvec keeps no WHERE clause of an index; a search is filtered by its own"
            )
        )

    def _check_not_aborted(self) -> None:
        if self.relay.txn_status == b"E":  # as PostgreSQL answers any statement
            raise InFailedTransaction(
                "current transaction is aborted, commands ignored until end of transaction block"
            )

    async def _run_ddl(self, decision: Decision, *, simple: bool) -> str:
        self._check_not_aborted()
        if isinstance(decision, Extension):
            if decision.tag == "CREATE EXTENSION":
                await self.db.check_face()
            return decision.tag
        if isinstance(decision, CreateIndex):
            table = decision.index.table
            await self._check_owner(table.relid, f"table {table.name}", simple=simple)
            await self._check_partial(decision.index, simple=simple)
            if self.relay.txn_status == b"T":
                if decision.index.concurrently:
                    raise ActiveTransaction(CONCURRENTLY_IN_BLOCK)
                # built once the transaction commits; nothing if it rolls back. The
                # change-log triggers come with the transaction, so that its own later
                # writes are logged and no lock of it is waited for after the commit
                idef = decision.index
                dropped = self._check_deferred(idef)
                if dropped is None:
                    return "CREATE INDEX"
                tracked = await ClientBackend(self.server, self.relay, sync=simple).rows(
                    "SELECT pgvec.track_in_transaction($1::oid::regclass) WHERE $3::name IS"
                    " NULL OR pgvec.index_name_free($2, $3, $4::boolean, $5::boolean)",
                    [
                        str(idef.table.relid).encode(),
                        idef.table.schema.encode(),
                        None if idef.name is None else idef.name.encode(),
                        b"t" if idef.if_not_exists else b"f",
                        b"t" if dropped else b"f",
                    ],
                    [0] * 5,
                    [0],
                    binary=False,
                )
                if tracked:  # (else IF NOT EXISTS, and the name is taken: NOTICE, nothing)
                    self._deferred.append(idef)
                return "CREATE INDEX"
            loop = asyncio.get_running_loop()

            def notify(text: str) -> None:  # from the build thread: progress as NOTICEs
                loop.call_soon_threadsafe(self.relay.emit, m.notice_response(text))

            await self.db.create_index(
                decision.index, notify, concurrently=decision.index.concurrently
            )
            return "CREATE INDEX"
        if isinstance(decision, DropIndex):
            if self.relay.txn_status == b"T":
                await self._drop_at_commit(decision, simple=simple)
                return "DROP INDEX"
            for schema, name in decision.names:
                await self._check_index_owner(schema, name, simple=simple)
            for schema, name in decision.names:
                await self.db.drop_index(schema, name, if_exists=decision.if_exists)
            return "DROP INDEX"
        if isinstance(decision, Reindex):
            await self._check_index_owner(*decision.name, simple=simple)
            await self.db.reindex(*decision.name, concurrently=decision.concurrently)
            return "REINDEX"
        raise FeatureNotSupported(f"cannot run {type(decision).__name__}")

    # -- extended protocol ------------------------------------------------------------

    async def on_parse(self, msg: Message) -> None:
        parse = m.Parse.decode(msg.body)
        self.statements.pop(parse.name, None)
        lookup = lookup_kind(parse.sql)
        if lookup is not None:
            self._lookups[parse.name] = lookup
        else:
            self._lookups.pop(parse.name, None)
        flags = classify(parse.sql) | (WRITES if may_write(parse.sql) else 0)
        if flags:
            self._flags[parse.name] = flags
        else:
            self._flags.pop(parse.name, None)
        try:
            await self._let_go_of(parse.sql)
            found = await self._rewriter_for(parse.sql, sync=False)
            if found is None:
                self._forward(msg)
                return
            rewriter, path = found
            decision = rewriter.rewrite(parse.sql, path)
            if isinstance(decision, DropIndex | Reindex) and not await self._owned(decision):
                decision = Passthrough()
            self._parse_decision(msg, parse, decision)
        except StatementFailed as err:  # PostgreSQL's own error answers the Parse
            self.relay.emit(err.response)
            self._skip_to_sync = True
        except StatementSkipped:  # the server skips to the Sync, this Parse too
            self._skip_to_sync = True
        except PgvecError as err:
            self.raise_extended(err)

    def _parse_decision(self, msg: Message, parse: m.Parse, decision: Decision) -> None:
        if isinstance(decision, Restored):
            decision = Rewritten(RESTORED_NOOP)
        face, face_array = self.db.face_oid, self.db.face_array_oid
        declared = [i for i, t in enumerate(parse.param_types) if face is not None and t == face]
        arrays = [
            i for i, t in enumerate(parse.param_types) if face_array is not None and t == face_array
        ]
        if isinstance(decision, Passthrough) and (declared or arrays):
            decision = Rewritten(parse.sql)  # its vector parameters go as bytea
        if isinstance(decision, Passthrough | CopyIn | CopyOut):  # COPY: rows unconverted
            self._forward(msg)
            return
        if isinstance(decision, SetParam):  # PostgreSQL keeps the value, once checked
            SearchSettings.check(decision.name, decision.value)
            self._forward(msg)
            return
        if isinstance(decision, (*OWNED, Extension)):
            n = 1 if isinstance(decision, IndexAction) and decision.param is not None else 0
            self.statements[parse.name] = Statement([], n, intercept=decision)
            self.relay.emit(m.frame_parse_complete(), extended=True)
            return
        client_n = max(len(parse.param_types), max_param(parse.sql))
        types = list(parse.param_types) + [0] * (client_n - len(parse.param_types))
        info = Statement(types, client_n)
        info.vector_outputs = _vector_outputs(decision)
        if isinstance(decision, Rewritten):
            sql = decision.sql
            for n, dim in decision.vector_params.items():
                info.vector_params[n - 1] = dim
            for n, dim in decision.array_params.items():
                info.array_params[n - 1] = dim
        elif isinstance(decision, Knn):
            plan = decision.plan
            info.knn = plan
            for n, dim in plan.vector_params.items():
                info.vector_params[n - 1] = dim
            sql = plan.render(f"${client_n + 1}", f"${client_n + 2}")
            types += [0, vectors.FLOAT8_ARRAY_OID]  # the distances, sent in binary
        else:
            raise FeatureNotSupported(f"unexpected statement kind {type(decision).__name__}")
        for i in declared:  # declared as pgvector's type: a vector of any dimension
            info.vector_params.setdefault(i, None)
        for i in arrays:  # declared as pgvector's vector[]
            info.array_params.setdefault(i, None)
        for i in info.vector_params:
            types[i] = vectors.BYTEA_OID
        for i in info.array_params:
            types[i] = vectors.BYTEA_ARRAY_OID
        info.texts = (sql, parse.sql)
        self.statements[parse.name] = info
        self.relay.expect_request(b"P", statement=parse.name, texts=info.texts)
        self._send(m.Parse(parse.name, sql, types).encode())
        # remember what the client declared, to decode binary array parameters
        info.param_types = list(parse.param_types) + [0] * (client_n - len(parse.param_types))

    async def on_bind(self, msg: Message) -> None:
        bind = m.Bind.decode(msg.body)
        try:
            await self._on_bind(msg, bind)
        finally:
            flags = self._flags.get(bind.statement)
            if flags:
                self.state.sent(flags)

    async def _on_bind(self, msg: Message, bind: m.Bind) -> None:
        if self._flags.get(bind.statement, 0) & WRITES:
            self._wrote = True
        info = self.statements.get(bind.statement)
        if info is None:
            lookup = self._lookups.get(bind.statement)
            if lookup is not None:
                self._looked_up(lookup, bind)
            self.portals.pop(bind.portal, None)
            self._forward(msg)
            return
        self.portals[bind.portal] = info
        if info.intercept is not None:
            try:
                if isinstance(info.intercept, IndexAction):
                    self.portals[bind.portal] = _bind_action(info.intercept, bind)
            except PgvecError as err:
                self.raise_extended(err)
                return
            self.relay.emit(m.frame_bind_complete(), extended=True)
            return
        misfit = _bind_misfit(bind, info.client_nparams)
        if misfit is not None:  # an ERROR in PostgreSQL too: the session goes on
            self.raise_extended(ProtocolViolation(misfit))
            return
        try:
            await self._bind(bind, info)
        except StatementFailed as err:
            # PostgreSQL's own error answers the Bind; the server skips to the Sync
            self.relay.emit(err.response)
            self._skip_to_sync = True
        except StatementSkipped:
            # an earlier message of the batch failed: the server skips to the Sync
            self._skip_to_sync = True
        except PgvecError as err:
            self.raise_extended(err)
        except Exception as exc:  # a bug in pgvec: this statement fails, the session goes on
            self.raise_extended(_internal(exc))

    async def _bind(self, bind: m.Bind, info: Statement) -> None:
        # vector parameters become bytea, in the format the client chose
        formats = [bind.param_format(i) for i in range(len(bind.params))]
        decoded: dict[int, np.ndarray] = {}
        for i, dim in info.vector_params.items():
            value = bind.params[i]
            if value is None:
                continue
            declared = info.param_types[i] if i < len(info.param_types) else 0
            vec = vectors.from_param(value, formats[i], declared, dim, self.db.face_oid)
            decoded[i] = vec
            bind.params[i] = (
                vectors.bytea_hex(vec).encode() if formats[i] == 0 else vectors.to_bytes(vec)
            )
        for i, dim in info.array_params.items():
            value = bind.params[i]
            if value is not None:
                convert = vector_arrays.text_in if formats[i] == 0 else vector_arrays.binary_in
                bind.params[i] = convert(value, dim)
        if info.knn is not None:
            plan = info.knn
            limit = plan.limit
            if plan.limit_param is not None:
                limit = _int_param(bind, plan.limit_param - 1)
            offset = plan.offset
            if plan.offset_param is not None:
                offset = _int_param(bind, plan.offset_param - 1)
            if limit is None:
                raise FeatureNotSupported("a top-k query needs a LIMIT")
            self._check_committed(plan)
            self._flush()
            backend = ClientBackend(self.server, self.relay, sync=False)

            def types_of(idx: list[int]) -> list[int]:
                return [
                    vectors.BYTEA_OID
                    if i in info.vector_params
                    else (info.param_types[i] if i < len(info.param_types) else 0)
                    for i in idx
                ]

            query: np.ndarray | None
            if plan.query_sql is not None:
                idx = [p - 1 for p in plan.query_params]
                query = await query_vector(
                    plan,
                    backend,
                    [bind.params[i] for i in idx],
                    types_of(idx),
                    [formats[i] for i in idx],
                )
            elif plan.query_param is not None:
                query = decoded.get(plan.query_param - 1)  # None: NULL
            else:
                assert plan.query_literal is not None
                query = vectors.from_bytes(plan.query_literal, plan.column.dim)
            idx = [p - 1 for p in plan.filter_params]
            request = search_request(
                plan,
                query if query is not None else null_query(plan),
                limit + (offset or 0),
                await self._search_settings(backend),
                values=[bind.params[i] for i in idx],
                types=types_of(idx),
                formats=[formats[i] for i in idx],
                own_writes=self._own_writes(),
            )
            keys, dists = await self._top_k(plan, request, backend, bind.portal, null=query is None)
            dists_value, dists_format = distances_param(dists)
            bind.params += [keys_array(keys).encode(), dists_value]
            formats += [0, dists_format]
        bind.param_formats = formats if any(formats) else []
        self.relay.expect_request(b"B", portal=bind.portal, bind=self._bound(bind.statement, bind))
        self._send(bind.encode())

    async def _top_k(
        self,
        plan: KnnPlan,
        request: SearchRequest,
        backend: ClientBackend,
        portal: str,
        *,
        null: bool,
    ) -> tuple[list[Key], list[float | None]]:
        """The hits of a top-k; for a NULL query vector, with NULL distances. For an
        EXPLAIN, the ANN step is kept for the plan of ``portal``."""
        start = time.perf_counter()
        keys, dists = await knn(self.db, request, backend)
        if plan.explain:
            ms = (time.perf_counter() - start) * 1000
            rows = await self.db.run(self.db.index_rows)
            index = index_used(rows, plan.table.relid, plan.column.attnum, request.metric)
            step = AnnStep(plan, request, index, len(keys), ms, null_query=null)
            self._explained[portal] = step.lines()
        if null:
            return keys, [None] * len(keys)
        return keys, list(dists)

    def on_describe(self, msg: Message) -> None:
        desc = m.Describe.decode(msg.body)
        info = (self.statements if desc.kind == "S" else self.portals).get(desc.name)
        if info is not None and info.intercept is not None:
            if desc.kind == "S":
                self.relay.emit(
                    m.encode_parameter_description([TEXT_OID] * info.client_nparams),
                    extended=True,
                )
            if isinstance(info.intercept, IndexAction):
                self.relay.emit(
                    _action_description(info.intercept, info.binary_result), extended=True
                )
            else:
                self.relay.emit(m.frame_no_data(), extended=True)
            return
        if info is not None and desc.kind == "S":
            # the client sees its own parameters (not the hit arrays), vectors as vectors
            self.relay.expect_request(
                b"D",
                statement=desc.name,
                params=self._face_params(info),
                vector_names=info.vector_outputs,
            )
            self._send(msg.raw)
            return
        self._forward(msg)

    async def on_execute(self, msg: Message) -> None:
        portal = m.execute_portal(msg.body)
        info = self.portals.get(portal)
        lines = self._explained.pop(portal, None)
        if lines is not None and info is not None and info.knn is not None:
            self.relay.expect_request(b"E", transform=PlanLines([lines]), portal=portal)
            self._send(msg.raw)
            return
        if info is None or info.intercept is None:
            self._forward(msg)
            return
        try:
            await self.settle()
            if self.relay.skipping:
                return  # an earlier message of the batch failed: PostgreSQL skips it too
            reply = await self.intercept(info.intercept, binary=info.binary_result)
        except StatementFailed as err:  # PostgreSQL's own error; it skips to the Sync
            self.relay.emit(err.response)
            self._skip_to_sync = True
            return
        except PgvecError as err:
            self.raise_extended(err)
            return
        self.relay.emit(reply, extended=True)


def _creation_schema(path: SearchPath | None) -> str:
    """Where CREATE TABLE puts an unqualified name: the first schema of the path."""
    if path is not None:
        for schema in path:
            if schema != "pg_catalog" and not schema.startswith("pg_temp_"):
                return schema
    return "public"


def _vector_outputs(decision: Decision) -> frozenset[str]:
    if isinstance(decision, Rewritten):
        return decision.vector_outputs
    if isinstance(decision, Knn):
        return decision.plan.vector_outputs
    return frozenset()


def _portal_of(msg: Message) -> str | None:
    """The portal whose rows the replies to ``msg`` carry, if any."""
    if msg.type == b"Q":
        return ""
    if msg.type in (b"E", b"B"):  # the portal is the first field of both
        return m.execute_portal(msg.body)
    if msg.type in (b"D", b"C"):
        target = m.Describe.decode(msg.body)  # a Close has the same fields
        return target.name if target.kind == "P" else None
    return None


#: message types Session._relayed may pass straight through
_RELAYED = frozenset({b"Q", b"B", b"E", b"D", b"S"})

#: statements pgvec runs itself, alone in their Query (Extension: see _render_simple)
OWNED = (CreateIndex, DropIndex, Reindex, IndexAction)


def _statement_of(msg: Message) -> str | None:
    """The prepared statement a Parse, or a Describe or Close of a statement, is about."""
    if msg.type == b"P":
        return msg.body[: msg.body.index(b"\0")].decode()
    if msg.type in (b"D", b"C"):
        target = m.Describe.decode(msg.body)
        return target.name if target.kind == "S" else None
    return None


def _bind_statement(body: bytes) -> str:
    """A Bind's statement name (after its portal name)."""
    start = body.index(b"\0") + 1
    return body[start : body.index(b"\0", start)].decode()


def _internal(exc: Exception) -> InternalError:
    """An unexpected exception answering a query (nothing of it was sent upstream yet),
    logged with its traceback and reported to the client as SQLSTATE XX000."""
    log.error("internal error: %r", exc, exc_info=exc)
    return InternalError.of(exc)


def _bind_misfit(bind: m.Bind, nparams: int) -> str | None:
    """What PostgreSQL says of a Bind that does not fit its statement, if anything."""
    n = len(bind.params)
    if n != nparams:
        return (
            f"bind message supplies {n} parameters, but prepared statement "
            f'"{bind.statement}" requires {nparams}'
        )
    if len(bind.param_formats) > 1 and len(bind.param_formats) != n:
        return f"bind message has {len(bind.param_formats)} parameter formats but {n} parameters"
    return None


def _int_param(bind: m.Bind, i: int) -> int:
    value = bind.params[i]
    if value is None:
        raise FeatureNotSupported("LIMIT and OFFSET of a top-k query must not be NULL")
    if bind.param_format(i) == 0:
        return int(value.decode())
    return int.from_bytes(value, "big", signed=True)


TEXT_OID = 25
CONCURRENTLY_IN_BLOCK = "CREATE INDEX CONCURRENTLY cannot run inside a transaction block"
#: what PostgreSQL runs in place of a restore's statement on pgvec's own objects
RESTORED_NOOP = "DO $pgvec$BEGIN END$pgvec$"
INT8_OID = 20


def _action_description(action: IndexAction, binary: bool) -> bytes:
    """The RowDescription of ``SELECT pgvec.load(...)``: one bigint column."""
    field = m.FieldDescription(action.action, 0, 0, INT8_OID, 8, -1, 1 if binary else 0)
    return m.encode_row_description([field])


def _bind_action(action: IndexAction, bind: m.Bind) -> Statement:
    """The portal of a bound ``pgvec.load($1)``: the index name read from the parameter."""
    if action.param is not None:
        i = action.param - 1
        raw = bind.params[i] if i < len(bind.params) else None
        if raw is None:
            raise FeatureNotSupported("the index name must not be NULL")
        text = raw.decode("utf-8", "replace")
        name = parse_index_name(text)
        if name is None:
            raise UndefinedObject(f'index "{text}" does not exist')
        action = IndexAction(action.action, name)
    binary = bool(bind.result_formats) and bind.result_formats[0] == 1
    return Statement([], 0, intercept=action, binary_result=binary)
