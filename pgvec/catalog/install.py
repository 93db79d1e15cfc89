"""Install and upgrade schema ``pgvec`` from the versioned scripts in ``sql/``.

Scripts follow the Postgres extension convention: ``pgvec--X.sql`` installs version X,
``pgvec--A--B.sql`` upgrades A to B. :func:`install` installs the newest base script when
the schema is absent, then follows upgrade scripts until no further one applies; all in
one transaction, serialized by an advisory lock, so concurrent callers are safe.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import psycopg

from pgvec.errors import CatalogError

logger = logging.getLogger(__name__)

SCRIPT_DIR: Path = Path(__file__).parent / "sql"

#: pg_advisory_xact_lock key serializing installs ("pgvecins" as an int64).
INSTALL_LOCK_KEY = 0x7067766563696E73

_BASE_RE = re.compile(r"^pgvec--(\d+(?:\.\d+)*)\.sql$")
_UPGRADE_RE = re.compile(r"^pgvec--(\d+(?:\.\d+)*)--(\d+(?:\.\d+)*)\.sql$")


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def base_scripts(script_dir: Path = SCRIPT_DIR) -> dict[str, Path]:
    """Install scripts by version."""
    out: dict[str, Path] = {}
    for p in script_dir.glob("pgvec--*.sql"):
        m = _BASE_RE.match(p.name)
        if m:
            out[m.group(1)] = p
    return out


def upgrade_scripts(script_dir: Path = SCRIPT_DIR) -> dict[str, list[tuple[str, Path]]]:
    """Upgrade scripts: from-version -> [(to-version, path)], newest target first."""
    out: dict[str, list[tuple[str, Path]]] = {}
    for p in script_dir.glob("pgvec--*--*.sql"):
        m = _UPGRADE_RE.match(p.name)
        if m:
            out.setdefault(m.group(1), []).append((m.group(2), p))
    for steps in out.values():
        steps.sort(key=lambda s: _vkey(s[0]), reverse=True)
    return out


def latest_version(script_dir: Path = SCRIPT_DIR) -> str:
    """The version install() ends at."""
    bases = base_scripts(script_dir)
    if not bases:
        raise CatalogError(f"no pgvec install script (pgvec--X.sql) in {script_dir}")
    version = max(bases, key=_vkey)
    chain = _follow_upgrades(version, script_dir)
    return chain[-1][0] if chain else version


def _follow_upgrades(version: str, script_dir: Path) -> list[tuple[str, Path]]:
    """The chain of upgrade steps from ``version``: always the step reaching furthest."""
    ups = upgrade_scripts(script_dir)
    chain: list[tuple[str, Path]] = []
    seen = {version}
    while version in ups:
        target, path = ups[version][0]
        if target in seen or _vkey(target) <= _vkey(version):
            raise CatalogError(f"upgrade scripts loop or go backwards at {path.name}")
        chain.append((target, path))
        seen.add(target)
        version = target
    return chain


def installed_version(conn: psycopg.Connection[Any]) -> str | None:
    """The version recorded in ``pgvec.meta``, or None when pgvec is not installed."""
    row = conn.execute("SELECT to_regclass('pgvec.meta') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    row = conn.execute("SELECT value FROM pgvec.meta WHERE key = 'version'").fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _run_script(conn: psycopg.Connection[Any], path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    try:
        # No parameters: psycopg sends it with the simple query protocol, several
        # statements in one go.
        conn.execute(text.encode("utf-8"))
    except psycopg.Error as e:
        diag = e.diag
        raise CatalogError(
            f"pgvec script {path.name} failed: {diag.message_primary or e}",
            hint=diag.message_hint,
            detail=f"SQLSTATE {e.sqlstate}; {diag.context or ''}".strip(),
        ) from e


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recorded_digest(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("SELECT value FROM pgvec.meta WHERE key = 'script_sha256'").fetchone()
    return None if row is None else str(row[0])


def _record_digest(conn: psycopg.Connection[Any], path: Path) -> None:
    conn.execute(
        "INSERT INTO pgvec.meta (key, value) VALUES ('script_sha256', %s)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (_digest(path),),
    )


def install(conn: psycopg.Connection[Any], script_dir: Path = SCRIPT_DIR) -> str:
    """Install or upgrade schema ``pgvec``; return the installed version.

    Idempotent. Runs in one transaction (a savepoint if ``conn`` is already in one).
    Raises CatalogError if a script fails or the installed version is unknown here.
    """
    bases = base_scripts(script_dir)
    if not bases:
        raise CatalogError(f"no pgvec install script (pgvec--X.sql) in {script_dir}")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (INSTALL_LOCK_KEY,))
        current = installed_version(conn)
        if current is None:
            current = max(bases, key=_vkey)
            logger.info("installing pgvec %s", current)
            _run_script(conn, bases[current])
            _record_digest(conn, bases[current])
        elif current in bases and _digest(bases[current]) != _recorded_digest(conn):
            # The install script of this very version changed: a development build.
            # Install scripts are idempotent, so running it again brings the schema up.
            logger.info("pgvec %s: install script changed; running it again", current)
            _run_script(conn, bases[current])
            _record_digest(conn, bases[current])
        else:
            newest = latest_version(script_dir)
            if _vkey(current) > _vkey(newest):
                raise CatalogError(
                    f"pgvec {current} is installed but this pgvec only knows up to {newest}",
                    hint="upgrade the pgvec Python package",
                )
        for target, path in _follow_upgrades(current, script_dir):
            logger.info("upgrading pgvec %s -> %s", current, target)
            _run_script(conn, path)
            conn.execute(
                "INSERT INTO pgvec.meta (key, value) VALUES ('version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (target,),
            )
            current = target
    if current != latest_version(script_dir):
        logger.warning(
            "pgvec %s is installed; no upgrade path to %s", current, latest_version(script_dir)
        )
    logger.debug("pgvec %s installed", current)
    return current
