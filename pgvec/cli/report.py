"""What ``pgvec status`` prints: vector columns, indexes and builds, read from the catalog."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
import psycopg

_PROGRESS = (
    "SELECT schema_name, index_name, table_name, command, phase, percent, rows_done,"
    " rows_total, date_trunc('second', elapsed)::text"
    " FROM pgvec.index_progress ORDER BY started_at, index_name"
)


def _table(rows: list[tuple[object, ...]], headers: tuple[str, ...]) -> None:
    widths = [len(h) for h in headers]
    text_rows = [[("" if v is None else str(v)) for v in r] for r in rows]
    for r in text_rows:
        widths = [max(w, len(v)) for w, v in zip(widths, r, strict=True)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in text_rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def print_status(conn: psycopg.Connection) -> None:
    has_schema = conn.execute("SELECT to_regclass('pgvec.indexes') IS NOT NULL").fetchone()
    if not has_schema or not has_schema[0]:
        click.echo("no pgvec schema in this database yet.")
        return
    columns = conn.execute(
        "SELECT format('%I.%I', schema_name, table_name), column_name, dim,"
        " (SELECT nullif(reltuples, -1)::bigint FROM pg_class WHERE oid = relid)"
        " FROM pgvec.vector_columns ORDER BY 1, 2"
    ).fetchall()
    click.echo("")
    if columns:
        _table(columns, ("table", "column", "dim", "rows (est.)"))
    else:
        click.echo("no vector columns.")
    idx = conn.execute(
        "SELECT index_name, relid::regclass::text, column_name, method, metric, state,"
        " rows_indexed, pg_size_pretty(memory_bytes), pg_size_pretty(disk_bytes),"
        " options::text, updated_at::timestamp(0), error"
        " FROM pgvec.indexes ORDER BY 1"
    ).fetchall()
    errors = [(r[0], r[-1]) for r in idx if r[-1]]
    idx = [r[:-1] for r in idx]
    click.echo("")
    if idx:
        _table(
            idx,
            (
                "index",
                "table",
                "column",
                "type",
                "metric",
                "state",
                "rows",
                "memory",
                "disk",
                "options",
                "saved",
            ),
        )
    else:
        click.echo("no pgvec indexes.")
    for name, error in errors:
        click.echo(f"index {name}: last build failed: {error}")
    print_builds(conn)


def print_builds(conn: psycopg.Connection) -> None:
    """The builds in progress (pgvec.index_progress), if any."""
    rows = conn.execute(_PROGRESS).fetchall()
    if not rows:
        return
    click.echo("")
    click.echo("builds in progress:")
    _table(
        [
            (r[1], r[2], r[3], r[4], f"{r[5]}%", f"{r[6]}/{r[7]}" if r[7] else "", r[8])
            for r in rows
        ],
        ("index", "table", "command", "phase", "percent", "rows", "elapsed"),
    )


def watch_builds(conn: psycopg.Connection, interval: float = 0.5) -> None:
    """A progress bar per build in progress, until every build has ended."""
    from tqdm import tqdm

    bars: dict[tuple[str, str], Any] = {}
    while True:
        rows = conn.execute(_PROGRESS).fetchall()
        if not rows and not bars:
            click.echo("no index builds in progress.")
            return
        running = set()
        for schema, name, table, _command, phase, percent, *_ in rows:
            key = (schema, name)
            running.add(key)
            bar = bars.get(key)
            if bar is None:
                bar = tqdm(
                    total=100,
                    desc=f"{name} on {table}: {phase}",
                    bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}]",
                    position=len(bars),
                    file=sys.stdout,
                    dynamic_ncols=True,
                )
                bars[key] = bar
            bar.n = float(percent)
            bar.set_description_str(f"{name} on {table}: {phase}")  # refreshes
        for key in [k for k in bars if k not in running]:
            bar = bars.pop(key)
            got = conn.execute(
                "SELECT state, error FROM pgvec.indexes WHERE schema_name = %s AND index_name = %s",
                key,
            ).fetchone()
            state, error = got if got is not None else ("dropped", None)
            if state == "ready":
                bar.n = 100
            where = bar.desc.split(": ", 1)[0]
            bar.set_description_str(f"{where}: {state}" + (f" ({error})" if error else ""))
            bar.close()
        if not bars:
            click.echo("all builds ended.")
            return
        time.sleep(interval)
