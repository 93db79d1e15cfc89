"""Query by example: a top-k whose query vector is a scalar subquery,
``ORDER BY embedding <-> (SELECT embedding FROM items WHERE id = $1) LIMIT 10``.

PostgreSQL evaluates such an uncorrelated subquery once (an InitPlan) before the scan.
pgvec does the same: the proxy runs the subquery first, in the client's own session
(its role, snapshot and settings decide what it sees; PostgreSQL raises its own errors,
21000 for more than one row), then searches the index with the value it returned.
This module recognises the subquery and writes the statement that evaluates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

from pgvec.rewrite.catalog import Catalog
from pgvec.rewrite.dialect import generate
from pgvec.rewrite.rules.expressions import unparen


@dataclass(frozen=True)
class Prepass:
    """``SELECT (<subquery>)`` with the CTEs it reads, parameters renumbered $1.."""

    sql: str
    #: the statement's parameters, as numbered in the client's statement, in order
    params: tuple[int, ...]
    #: vector parameters of ``sql`` ($i -> dim)
    vector_params: Mapping[int, int | None]


def _name(node: exp.Expr | str | None) -> str:
    """An identifier as Postgres folds it."""
    if isinstance(node, exp.Identifier):
        return str(node.this) if node.quoted else str(node.this).lower()
    if node is None:
        return ""
    if isinstance(node, str):
        return node.lower()
    return node.name.lower()


def scalar_subquery(node: exp.Expr, catalog: Catalog) -> exp.Subquery | None:
    """``node`` if it is a scalar subquery that refers to nothing outside itself."""
    node = unparen(node)
    if not isinstance(node, exp.Subquery) or not isinstance(node.this, exp.Query):
        return None
    if node.find(exp.Insert, exp.Update, exp.Delete, exp.Merge) or _correlated(node, catalog):
        return None
    return node


def _defined_inside(sub: exp.Expr) -> set[str]:
    """The names a column inside ``sub`` may be qualified with: its tables' aliases and
    names, the aliases of its derived tables and its own CTEs."""
    names: set[str] = set()
    for table in sub.find_all(exp.Table):
        names.add(_name(table.this))
    for alias in sub.find_all(exp.TableAlias):
        if alias.this is not None:
            names.add(_name(alias.this))
    return names


def _correlated(sub: exp.Subquery, catalog: Catalog) -> bool:
    """Whether a column inside ``sub`` belongs to a query around it."""
    return refers_outside(sub, sub, catalog)


def refers_outside(part: exp.Expr, scope: exp.Expr, catalog: Catalog) -> bool:
    """Whether a column in ``part`` (of the query ``scope``) belongs to a query around
    ``scope``.

    A qualified column must name a relation of ``scope``. An unqualified one is taken
    for the scope's own unless every relation of its SELECT is a table pgvec knows and
    none of them has that column.
    """
    inside = _defined_inside(scope)
    for col in part.find_all(exp.Column):
        if isinstance(col.this, exp.Star):
            continue
        qualifier = col.args.get("table")
        if qualifier is not None:
            if _name(qualifier) not in inside:
                return True
            continue
        select = col.find_ancestor(exp.Select)
        if select is None or not _select_lacks(select, _name(col.this), catalog):
            continue
        return True
    return False


def _select_lacks(select: exp.Select, column: str, catalog: Catalog) -> bool:
    """Whether every relation of ``select``'s FROM is a known table without ``column``."""
    items: list[exp.Expr] = []
    frm = select.args.get("from_")
    if frm is not None:
        items.append(frm.this)
    items.extend(j.this for j in select.args.get("joins") or [])
    if not items:
        return False
    for item in items:
        if not isinstance(item, exp.Table):
            return False
        info = catalog.lookup(_name(item.this), _name(item.args.get("db")) or None)
        if info is None or column in info.columns:
            return False
    return True


def _ctes_around(node: exp.Expr) -> dict[str, exp.CTE]:
    """The CTEs visible at ``node``, by name (the innermost definition wins)."""
    found: dict[str, exp.CTE] = {}
    cur: exp.Expr | None = node.parent
    while cur is not None:
        w = cur.args.get("with_")
        if isinstance(w, exp.With):
            for cte in w.expressions:
                found.setdefault(_name(cte.args["alias"].this), cte)
        cur = cur.parent
    return found


def _used_ctes(sub: exp.Expr, visible: dict[str, exp.CTE]) -> list[exp.CTE]:
    """The CTEs ``sub`` reads, directly or through one another, in definition order."""
    used: dict[int, exp.CTE] = {}
    todo = [sub]
    while todo:
        part = todo.pop()
        for table in part.find_all(exp.Table):
            if table.args.get("db"):
                continue
            cte = visible.get(_name(table.this))
            if cte is not None and id(cte) not in used and not any(n is sub for n in cte.walk()):
                used[id(cte)] = cte
                todo.append(cte.this)
    order = list(visible.values())
    return sorted(used.values(), key=lambda c: order.index(c) if c in order else 0)


def prepass(sub: exp.Subquery, vector_params: Mapping[int, int | None]) -> Prepass:
    """The statement that evaluates ``sub`` on its own; ``vector_params``: those of the
    client's statement ($n -> dim)."""
    ctes = _used_ctes(sub, _ctes_around(sub))
    stmt = exp.Select(expressions=[sub.copy()])
    if ctes:
        recursive = any(
            isinstance(c.parent, exp.With) and c.parent.args.get("recursive") for c in ctes
        )
        stmt.set("with_", exp.With(expressions=[c.copy() for c in ctes], recursive=recursive))
    mapping: dict[int, int] = {}
    for param in stmt.find_all(exp.Parameter, bfs=False):
        if not isinstance(param.this, exp.Literal) or not str(param.this.this).isdigit():
            continue
        new = mapping.setdefault(int(str(param.this.this)), len(mapping) + 1)
        param.set("this", exp.Literal.number(new))
    originals = tuple(sorted(mapping, key=lambda k: mapping[k]))
    vectors = {mapping[o]: vector_params[o] for o in originals if o in vector_params}
    return Prepass(generate(stmt), originals, vectors)


def kept_for_types(sub: exp.Subquery) -> str:
    """A condition that keeps the subquery in the rewritten statement, so that its
    parameters keep the types PostgreSQL infers from it; the planner folds it to true
    and never runs the subquery."""
    return f"(({generate(sub)}) IS NULL OR TRUE)"
