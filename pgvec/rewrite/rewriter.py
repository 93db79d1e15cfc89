"""rewrite(sql, catalog) -> Decision for one statement, and a caching Rewriter."""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import Token, TokenType

from pgvec.errors import FeatureNotSupported, InternalError, PgvecError
from pgvec.rewrite.catalog import Catalog, TableInfo
from pgvec.rewrite.decision import Decision, Knn, Passthrough, Rewritten
from pgvec.rewrite.dialect import DIALECT, tokenize
from pgvec.rewrite.rules.copy import rewrite_copy
from pgvec.rewrite.rules.ddl import rewrite_alter_table, rewrite_create_table
from pgvec.rewrite.rules.extension import rewrite_extension
from pgvec.rewrite.rules.index import (
    rewrite_create_index,
    rewrite_drop_index,
    rewrite_index_action,
    rewrite_reindex,
)
from pgvec.rewrite.rules.query import rewrite_query
from pgvec.rewrite.rules.reflection import rewrite_reflection
from pgvec.rewrite.rules.restore import rewrite_restore
from pgvec.rewrite.rules.settings import rewrite_set

log = logging.getLogger(__name__)

_PASS = Passthrough()


_EXPLAIN_WORDS = frozenset({"ANALYZE", "ANALYSE", "VERBOSE"})


def _explain(sql: str, tokens: list[Token], catalog: Catalog) -> Decision:
    """``EXPLAIN [options] statement``: explain the statement as pgvec rewrites it.

    A top-k query then shows its ANN step: the join with ``unnest(...) __pgvec_hit``.
    """
    if len(tokens) < 2:
        return _PASS
    # sqlglot reads everything after EXPLAIN as one command string: tokenize it again
    offset = tokens[0].end + 1
    try:
        tokens = tokenize(sql[offset:])
    except SqlglotError:
        return _PASS
    i = 0
    text = True  # FORMAT TEXT, the default
    if i < len(tokens) and tokens[i].token_type == TokenType.L_PAREN:
        depth = 0
        for j in range(i, len(tokens)):
            if tokens[j].text.upper() == "FORMAT" and j + 1 < len(tokens):
                text = tokens[j + 1].text.upper() == "TEXT"
            if tokens[j].token_type == TokenType.L_PAREN:
                depth += 1
            elif tokens[j].token_type == TokenType.R_PAREN:
                depth -= 1
                if depth == 0:
                    i = j + 1
                    break
    while i < len(tokens) and tokens[i].text.upper() in _EXPLAIN_WORDS:
        i += 1
    if i >= len(tokens):
        return _PASS
    start = offset + tokens[i].start
    prefix, inner = sql[:start], sql[start:]
    decision = rewrite(inner, catalog)
    if isinstance(decision, Rewritten):
        return Rewritten(prefix + decision.sql, decision.vector_params)
    if isinstance(decision, Knn):
        before, between, after = decision.plan.template_parts
        plan = dataclasses.replace(
            decision.plan, template_parts=(prefix + before, between, after), explain=text
        )
        return Knn(plan)
    return _PASS


def rewrite(sql: str, catalog: Catalog) -> Decision:
    """Decide what to do with ONE statement (no top-level semicolons).

    Statements pgvec need not touch, or cannot parse, pass through; vector SQL it cannot
    handle correctly raises a PgvecError. Whatever the text, nothing else is raised: an
    unexpected exception (a bug) is logged and becomes an :class:`InternalError`.
    """
    try:
        return _decide(sql, catalog)
    except PgvecError:
        raise
    except SqlglotError as exc:  # parsed, but sqlglot cannot write the rewritten tree
        raise FeatureNotSupported(
            "pgvec cannot rewrite this statement", detail=(str(exc).splitlines() or [""])[0]
        ) from exc
    except Exception as exc:
        log.error("rewriter failed on %r", sql[:1000], exc_info=exc)
        raise InternalError.of(exc) from exc


def _decide(sql: str, catalog: Catalog) -> Decision:
    if not catalog.may_concern(sql):
        return _PASS
    try:
        tokens = tokenize(sql)
    except SqlglotError:
        return _PASS
    tokens = [t for t in tokens if t.token_type != TokenType.SEMICOLON]
    if not tokens:
        return _PASS
    head = tokens[0].text.upper()
    second = tokens[1].text.upper() if len(tokens) > 1 else ""
    if head in ("SELECT", "WITH"):
        reflected = rewrite_reflection(sql)
        if reflected is not None:  # a catalog query: nothing else of it is pgvec's
            return Rewritten(reflected, {})
    if head in ("CREATE", "ALTER", "COMMENT", "COPY", "SELECT"):
        restored = rewrite_restore(sql, tokens)
        if restored is not None:
            return restored
    if head in ("SET", "RESET"):
        return rewrite_set(sql, tokens) or _PASS
    if head == "DROP" and second == "INDEX":
        return rewrite_drop_index(tokens) or _PASS
    if second == "EXTENSION" and head in ("CREATE", "DROP", "ALTER"):
        return rewrite_extension(tokens) or _PASS
    if head == "CREATE":
        words = {t.text.upper() for t in tokens[1:4]}
        if "INDEX" in words:
            return rewrite_create_index(sql, tokens, catalog) or _PASS
        if "TABLE" in words:
            text = rewrite_create_table(sql, tokens)
            return Rewritten(text, {}) if text is not None else _PASS
    if head == "ALTER" and second == "TABLE":
        text = rewrite_alter_table(sql, tokens, catalog)
        return Rewritten(text, {}) if text is not None else _PASS
    if head == "EXPLAIN":
        return _explain(sql, tokens, catalog)
    if head == "REINDEX":  # a command to sqlglot: the rest is one string, tokenize it
        try:
            rest = tokenize(sql[tokens[0].end + 1 :])
        except SqlglotError:
            return _PASS
        return rewrite_reindex([tokens[0], *rest]) or _PASS
    if head == "COPY":
        return rewrite_copy(tokens, catalog) or _PASS
    if head == "SELECT" and second == "PGVEC":
        action = rewrite_index_action(tokens)
        if action is not None:
            return action
    if head not in ("SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "(", "VALUES", "TABLE"):
        return _PASS
    try:
        trees = DIALECT.parser().parse(tokens, sql)
    except SqlglotError:
        return _PASS
    if len(trees) != 1 or trees[0] is None or isinstance(trees[0], exp.Command):
        return _PASS
    return rewrite_query(sql, tokens, trees[0], catalog)


SearchPath = tuple[str, ...] | None


class Rewriter:
    """``rewrite`` with an LRU cache keyed by search path and statement text; one per
    catalog version."""

    #: at most this many search paths keep a catalog of their own
    PATHS = 64

    def __init__(self, catalog: Catalog, maxsize: int = 1024) -> None:
        self.catalog = catalog
        self.maxsize = maxsize
        self._cache: OrderedDict[tuple[SearchPath, str], Decision | Exception] = OrderedDict()
        self._catalogs: dict[SearchPath, Catalog] = {catalog.search_path: catalog}

    def rewrite(self, sql: str, search_path: SearchPath = None) -> Decision:
        """The decision for ``sql`` where unqualified names resolve along
        ``search_path`` (the client's ``current_schemas(true)``; None: not known)."""
        cache = self._cache
        key = (search_path, sql)
        hit = cache.get(key)
        if hit is None:
            try:
                hit = rewrite(sql, self._catalog_for(search_path))
            except Exception as e:  # errors are cached too: same text, same error
                hit = e
            cache[key] = hit
            if len(cache) > self.maxsize:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        if isinstance(hit, Exception):
            raise hit
        return hit

    def _catalog_for(self, search_path: SearchPath) -> Catalog:
        catalog = self._catalogs.get(search_path)
        if catalog is None:
            if len(self._catalogs) >= self.PATHS:
                self._catalogs = {self.catalog.search_path: self.catalog}
            catalog = self.catalog.with_search_path(search_path)
            self._catalogs[search_path] = catalog
        return catalog

    def with_exact(self, relids: frozenset[int]) -> Rewriter:
        """A rewriter whose catalog also searches the tables ``relids`` exactly, in SQL
        (:attr:`Catalog.exact`)."""
        exact = self.catalog.exact | relids
        return Rewriter(dataclasses.replace(self.catalog, exact=exact), self.maxsize)

    def with_table(self, table: TableInfo) -> Rewriter:
        """A rewriter whose catalog also holds ``table`` (not yet committed)."""
        tables = dict(self.catalog.tables)
        tables[(table.schema, table.name)] = table
        return Rewriter(dataclasses.replace(self.catalog, tables=tables), self.maxsize)
