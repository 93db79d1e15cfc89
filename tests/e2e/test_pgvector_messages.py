"""pgvector's messages and settings through pgvec: the same psql session, run by the real
psql against pgvec and against real pgvector, prints the same errors (SQLSTATE, message,
DETAIL, no PL/pgSQL CONTEXT) and the same settings.

Errors in vector literals point into the statement, as pgvector's do (psql's
``LINE 1: ... ^`` lines, from the error's position).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

SESSION = r"""
\set VERBOSITY verbose
\set SHOW_CONTEXT always
CREATE TABLE e (id int PRIMARY KEY, v vector(3));
INSERT INTO e VALUES (1, '[1,2]');
INSERT INTO e VALUES (2, '[1,2,a]');
INSERT INTO e VALUES (3, '[1,2,NaN]');
INSERT INTO e VALUES (4, '1,2,3');
INSERT INTO e VALUES (5, '[]');
INSERT INTO e VALUES (6, '[1,2,3] x');
INSERT INTO e VALUES (7, '[1,2,3');
INSERT INTO e VALUES (8, '[1,,3]');
INSERT INTO e VALUES (9, '[1e50,1,1]');
INSERT INTO e VALUES (10, ' [ 1 , 2 ,3 ] ');
SELECT * FROM e;
SELECT v <-> '[1,2]' FROM e;
SELECT '[1,2]'::vector <-> '[1,2,3]'::vector;
SELECT l2_distance(v, '[1,2,3,4]') FROM e;
SELECT cosine_distance('[1,2]', v) FROM e;
SELECT v + '[1,2]' FROM e;
SELECT '[1,2]'::vector(3);
SHOW hnsw.ef_search;
SET hnsw.ef_search = 0;
SET hnsw.ef_search = 100;
SHOW hnsw.ef_search;
SHOW ivfflat.probes;
SET ivfflat.probes = 0;
CREATE INDEX ON e USING hnsw (v vector_l2_ops) WITH (m = 1);
CREATE INDEX ON e USING hnsw (v vector_l2_ops) WITH (ef_construction = 1001);
CREATE INDEX ON e USING ivfflat (v vector_l2_ops) WITH (lists = 0);
CREATE INDEX ON e USING ivfflat (v vector_l2_ops) WITH (lists = 40000);
CREATE INDEX ON e USING hnsw (nosuch vector_l2_ops);
CREATE INDEX ON e USING hnsw (id);
CREATE INDEX ON e USING ivfflat (id vector_l2_ops);
CREATE INDEX ON e USING hnsw (v text_ops);
CREATE INDEX ON e USING ivfflat (v nosuch_ops);
CREATE INDEX ON e USING hnsw (v, id);
CREATE INDEX ON e USING hnsw (v vector_l2_ops, (id + 1));
"""


def psql(uri: str, script: Path) -> list[str]:
    out = subprocess.run(
        ["psql", uri, "-X", "-f", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = (out.stdout + out.stderr).splitlines()
    # psql prints errors (stderr) and results (stdout) apart: compare each in order
    return [
        line.split(":", 3)[-1].strip() if line.startswith("psql:") else line
        for line in lines
        if not line.startswith("LOCATION:")  # (pgvector's C source file and line)
    ]


def test_messages_and_settings_match_pgvector(
    proxy_uri: str, pg_uri: str, dbname: str, tmp_path: Path
) -> None:
    real = dbname + "_real"
    with psycopg.connect(pg_uri, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{real}"')
    try:
        real_uri = urlunsplit(urlsplit(pg_uri)._replace(path="/" + real))
        with psycopg.connect(real_uri, autocommit=True) as c:
            c.execute("CREATE EXTENSION vector")
        script = tmp_path / "session.sql"
        script.write_text(SESSION)
        expected = psql(real_uri, script)
        got = psql(proxy_uri, script)
        assert len(got) > 30 and "CONTEXT" not in "\n".join(got)
        assert got == expected
    finally:
        with psycopg.connect(pg_uri, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{real}" WITH (FORCE)')


def test_literal_errors_point_into_the_statement(pconn: psycopg.Connection) -> None:
    """The error's position is the literal's, in the extended protocol and in a simple
    Query of several statements (counted from the start of the whole Query)."""
    pconn.execute("CREATE TABLE p (id int PRIMARY KEY, v vector(2))")
    sql = "INSERT INTO p VALUES (%s, '[1,x]')"
    try:
        pconn.execute(sql, (1,))
    except psycopg.errors.InvalidTextRepresentation as err:
        assert err.diag.statement_position == str(sql.index("'[1,x]'") + 1)
    else:
        raise AssertionError("no error")
    query = "SELECT 1; INSERT INTO p VALUES (2, '[1,y]')"
    try:
        pconn.execute(query)
    except psycopg.errors.InvalidTextRepresentation as err:
        assert err.diag.statement_position == str(query.index("'[1,y]'") + 1)
    else:
        raise AssertionError("no error")
