"""What ``pgvec status`` prints: vector columns and indexes, read from the catalog."""

from __future__ import annotations

import click
import psycopg


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
        " options::text, updated_at::timestamp(0)"
        " FROM pgvec.indexes ORDER BY 1"
    ).fetchall()
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
