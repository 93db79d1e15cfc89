"""search_path decides which table an unqualified name means, as in PostgreSQL: the
client's effective path (its SET search_path, rolled back with its transaction, its
temporary schema), not ``public`` alone."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import psycopg
import pytest


@pytest.fixture
def schemas(pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE SCHEMA app")
    pconn.execute("CREATE TABLE items (id int PRIMARY KEY, v vector(3))")
    pconn.execute("CREATE TABLE app.items (id int PRIMARY KEY, v vector(2))")
    pconn.execute("CREATE TABLE app.docs (id int PRIMARY KEY, v vector(2))")
    pconn.execute("CREATE SCHEMA plain")
    pconn.execute("CREATE TABLE plain.items (id int PRIMARY KEY, v text)")


@pytest.fixture
def client(proxy_uri: str, schemas: None) -> Iterator[psycopg.Connection]:
    with psycopg.connect(proxy_uri) as conn:
        yield conn


def test_unqualified_name_follows_search_path(client: psycopg.Connection) -> None:
    client.execute("INSERT INTO items VALUES (1, '[1,2,3]')")  # public.items
    client.execute("SET search_path = app, public")
    client.execute("INSERT INTO items VALUES (1, '[1,2]')")  # app.items
    client.execute("INSERT INTO docs VALUES (1, %s)", ("[3,4]",))  # only in app
    client.commit()
    assert client.execute("SELECT id FROM items ORDER BY v <-> '[1,2]' LIMIT 1").fetchone() == (1,)
    assert client.execute("SELECT v FROM app.items").fetchone() == ("[1,2]",)
    assert client.execute("SELECT v FROM public.items").fetchone() == ("[1,2,3]",)
    assert client.execute("SELECT v FROM app.docs").fetchone() == ("[3,4]",)


def test_a_plain_table_earlier_in_the_path_hides_the_vector_table(
    client: psycopg.Connection,
) -> None:
    client.execute("SET search_path = plain, public")
    client.execute("INSERT INTO items VALUES (1, '[1,2,3]')")  # plain.items: text
    client.commit()
    assert client.execute("SELECT v FROM plain.items").fetchone() == ("[1,2,3]",)
    assert client.execute("SELECT count(*) FROM public.items").fetchone() == (0,)


def test_rolled_back_search_path(client: psycopg.Connection) -> None:
    client.execute("SET search_path = app, public")
    client.rollback()
    client.execute("INSERT INTO items VALUES (1, '[1,2,3]')")  # public.items again
    client.commit()
    assert client.execute("SELECT v FROM public.items").fetchone() == ("[1,2,3]",)


def test_temporary_table_hides_the_permanent_one(client: psycopg.Connection) -> None:
    client.execute("CREATE TEMP TABLE items (id int PRIMARY KEY, v vector(2))")
    client.commit()
    client.execute("INSERT INTO items VALUES (1, '[5,6]')")
    assert client.execute("SELECT v FROM pg_temp.items").fetchone() == ("[5,6]",)
    client.commit()


def test_psql_set_search_path(proxy_uri: str, schemas: None) -> None:
    script = "SET search_path = app, public;\nINSERT INTO items VALUES (1, '[1,2]');\n"
    script += "SELECT id FROM items ORDER BY v <-> '[1,2]' LIMIT 1;\n"
    out = subprocess.run(
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", proxy_uri],
        input=script,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.split() == ["1"]
