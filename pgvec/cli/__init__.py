"""The ``pgvec`` command: up, serve, down, status, install.

Every option can also be set through an environment variable ``PGVEC_<OPTION>``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from pgvec import __version__
from pgvec.errors import PgvecError

DEFAULT_PORT = 5433


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("pgvec", appauthor=False))


data_dir_option = click.option(
    "--data-dir",
    envvar="PGVEC_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_data_dir,
    show_default="the user data dir, e.g. ~/.local/share/pgvec",
    help="Where pgvec keeps index files (and the embedded PostgreSQL cluster).",
)


@click.group(
    context_settings={"auto_envvar_prefix": "PGVEC", "help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="pgvec")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
def main(log_level: str) -> None:
    """pgvec: a vector database layered on PostgreSQL.

    Speak pgvector's SQL (<->, <=>, <#>, CREATE INDEX ... USING hnsw) to any PostgreSQL
    through pgvec; the vectors live in ordinary tables, the indexes are FAISS.
    """
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # third-party chatter (faiss's loader, pgserver's pg_ctl transcripts) only when debugging
    quiet = logging.DEBUG if log_level.lower() == "debug" else logging.WARNING
    for name in ("faiss", "pgserver"):
        logging.getLogger(name).setLevel(quiet)


def _run_loop(main: Coroutine[Any, Any, None], choice: str) -> None:
    """Run the server on uvloop (libuv's loop, made for network servers) when it is
    installed, or on asyncio's own."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                main.close()
                raise click.ClickException(
                    "--event-loop uvloop: uvloop is not installed (pip install uvloop)"
                ) from None
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def _run_server(
    upstream: str,
    data_dir: Path,
    host: str,
    port: int,
    milvus_port: int,
    event_loop: str,
    *,
    embedded: bool = False,
) -> None:
    from pgvec.app import serve
    from pgvec.milvus.server import MilvusPortInUse

    click.echo(f"pgvec {__version__}: serving on {host}:{port}, indexes in {data_dir / 'indexes'}")
    click.echo(f'Connect with:  psql "postgresql://postgres@{host}:{port}/postgres"')
    if milvus_port >= 0:
        click.echo(f'Milvus API:    MilvusClient("http://{host}:{milvus_port}")')
    click.echo("Stop with Ctrl-C or `pgvec down`.")
    try:
        _run_loop(
            serve(upstream, data_dir, host, port, embedded=embedded, milvus_port=milvus_port),
            event_loop,
        )
    except MilvusPortInUse as exc:
        raise click.ClickException(
            f"{exc}. Is pgvec (or Milvus) already running? Choose another port with "
            "--milvus-port, or turn the Milvus API off with --milvus-port -1."
        ) from exc
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}. Is pgvec already running "
            "(`pgvec status`)? Choose another port with --port."
        ) from exc
    except PgvecError as exc:
        raise click.ClickException(str(exc)) from exc


host_option = click.option(
    "--host",
    envvar="PGVEC_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on.",
)
port_option = click.option(
    "--port",
    envvar="PGVEC_PORT",
    type=int,
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (PostgreSQL protocol).",
)
milvus_port_option = click.option(
    "--milvus-port",
    envvar="PGVEC_MILVUS_PORT",
    type=int,
    default=19530,
    show_default=True,
    help="Port of the Milvus gRPC API (pymilvus); -1 turns it off.",
)
event_loop_option = click.option(
    "--event-loop",
    envvar="PGVEC_EVENT_LOOP",
    type=click.Choice(["auto", "uvloop", "asyncio"]),
    default="auto",
    show_default=True,
    help="The asyncio event loop: uvloop when installed (auto), or asyncio's own.",
)


@main.command()
@click.option(
    "--upstream",
    envvar="PGVEC_UPSTREAM",
    default=None,
    metavar="DSN",
    help="Serve in front of this PostgreSQL instead of the embedded one.",
)
@data_dir_option
@host_option
@port_option
@milvus_port_option
@event_loop_option
def up(
    upstream: str | None,
    data_dir: Path,
    host: str,
    port: int,
    milvus_port: int,
    event_loop: str,
) -> None:
    """Start pgvec, with an embedded PostgreSQL unless --upstream is given."""
    from pgvec.app import process_alive, read_state

    existing = read_state(data_dir)
    if existing and process_alive(existing.pid):
        raise click.ClickException(
            f"pgvec is already running (pid {existing.pid}) on {existing.host}:{existing.port}; "
            "`pgvec down` stops it."
        )
    if upstream:
        _run_server(upstream, data_dir, host, port, milvus_port, event_loop)
        return
    from pgvec.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(data_dir)
    try:
        uri = pg.start()
    except Exception as exc:
        raise click.ClickException(f"could not start the embedded PostgreSQL: {exc}") from exc
    try:
        _run_server(uri, data_dir, host, port, milvus_port, event_loop, embedded=True)
    finally:
        pg.stop()


@main.command()
@click.option(
    "--upstream",
    envvar="PGVEC_UPSTREAM",
    required=True,
    metavar="DSN",
    help="The PostgreSQL to serve in front of, e.g. postgresql://user:pw@host/db.",
)
@data_dir_option
@host_option
@port_option
@milvus_port_option
@event_loop_option
def serve(
    upstream: str, data_dir: Path, host: str, port: int, milvus_port: int, event_loop: str
) -> None:
    """Serve pgvec in front of an existing PostgreSQL."""
    _run_server(upstream, data_dir, host, port, milvus_port, event_loop)


@main.command()
@data_dir_option
@click.option("--timeout", type=float, default=60.0, show_default=True)
def down(data_dir: Path, timeout: float) -> None:
    """Stop the pgvec server started from this data dir, and its embedded PostgreSQL if a
    pgvec that was killed left it running."""
    from pgvec.app import process_alive, read_state

    state = read_state(data_dir)
    if state is None or not process_alive(state.pid):
        click.echo("pgvec is not running.")
    else:
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(state.pid):
            if time.monotonic() > deadline:
                raise click.ClickException(f"pgvec (pid {state.pid}) did not stop in {timeout}s")
            time.sleep(0.1)
        click.echo("pgvec stopped.")
    _stop_orphan(data_dir)


def _stop_orphan(data_dir: Path) -> None:
    from pgvec.embedded import EmbeddedPostgres

    try:
        pid = EmbeddedPostgres(data_dir).stop_orphan()
    except Exception as exc:
        raise click.ClickException(f"could not stop the embedded PostgreSQL: {exc}") from exc
    if pid is not None:
        click.echo(f"Stopped the embedded PostgreSQL (pid {pid}) left running by a killed pgvec.")


@main.command()
@data_dir_option
@click.option("--database", default=None, help="Database to report on (default: the upstream's).")
@click.option(
    "--watch",
    is_flag=True,
    help="Then show a progress bar per index build in progress, until they end.",
)
def status(data_dir: Path, database: str | None, watch: bool) -> None:
    """Show the server, its vector tables and indexes (state, rows, memory and disk size)
    and the index builds in progress."""
    import psycopg

    from pgvec.app import process_alive, read_state
    from pgvec.cli.report import print_status, watch_builds

    state = read_state(data_dir)
    if state is None or not process_alive(state.pid):
        click.echo(f"pgvec is not running (data dir {data_dir}).")
        from pgvec.embedded import EmbeddedPostgres

        orphan = EmbeddedPostgres(data_dir).running_pid()
        if orphan is not None:
            click.echo(f"Its embedded PostgreSQL still runs (pid {orphan}): `pgvec down` stops it.")
        sys.exit(3)
    click.echo(f"pgvec running: pid {state.pid}, {state.client_uri}")
    upstream = "embedded PostgreSQL" if state.embedded else state.upstream
    click.echo(f"upstream: {upstream}; data dir: {state.data_dir}")
    dsn = state.upstream
    if database:
        dsn = psycopg.conninfo.make_conninfo(dsn, dbname=database)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            print_status(conn)
            if watch:
                click.echo("")
                watch_builds(conn)
    except psycopg.Error as exc:
        raise click.ClickException(f"cannot read the catalog: {exc}") from exc


@main.command()
@click.option("--dsn", required=True, metavar="DSN", help="The database to install into.")
def install(dsn: str) -> None:
    """Install or upgrade the pgvec schema (no superuser or extension needed)."""
    import psycopg

    from pgvec.catalog.install import install as do_install

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            version = do_install(conn)
    except (psycopg.Error, PgvecError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"pgvec schema {version} installed.")
