"""The books a session keeps of its client's settings, search path and transaction DDL:
what marks them stale, and that a session changing none of them never reads them."""

from __future__ import annotations

import pytest

from pgvec.proxy.client_state import DDL, STATE, VECTOR_DDL, ClientState, classify
from pgvec.proxy.role_settings import _settings_of, session_defaults
from pgvec.proxy.settings import DEFAULTS, SearchSettings


@pytest.mark.parametrize(
    ("sql", "flags"),
    [
        ("SELECT id FROM items ORDER BY v <-> $1 LIMIT 5", 0),
        ("INSERT INTO items VALUES (1, '[1,2,3]')", 0),
        ("UPDATE items SET v = $1 WHERE id = $2", 0),
        ("BEGIN", 0),
        ("COMMIT", 0),
        ("SET hnsw.ef_search = 100", STATE),
        ("set local ivfflat.probes to 3", STATE),
        ("RESET ALL", STATE),
        ("DISCARD ALL", STATE),
        ("SELECT set_config('search_path', 'app', false)", STATE),
        ("ROLLBACK TO SAVEPOINT _pg3_1", STATE),
        ("BEGIN; SET search_path = app", STATE),
        ("CREATE TABLE t (id int, v vector(3))", DDL | VECTOR_DDL),
        ("CREATE TABLE t (id int, v text)", DDL),
        ("CREATE TABLE t (LIKE items INCLUDING ALL)", DDL | VECTOR_DDL),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", DDL | VECTOR_DDL),
        ("CREATE TEMP TABLE t (id int)", STATE | DDL),
        ("CREATE SCHEMA app", STATE | DDL),
        ("ALTER TABLE t ADD COLUMN w vector(2)", DDL | VECTOR_DDL),
        ("ALTER TABLE t ADD COLUMN w int", DDL),
        ("ALTER TABLE t RENAME TO u", DDL | VECTOR_DDL),
        ("DROP TABLE t", DDL | VECTOR_DDL),
    ],
)
def test_classify(sql: str, flags: int) -> None:
    assert classify(sql) == flags


def state() -> tuple[ClientState, list[int]]:
    noted: list[int] = []
    st = ClientState(frozenset, lambda: noted.append(1))
    st.settings_stale = False
    return st, noted


def test_nothing_changes_nothing_is_read() -> None:
    st, noted = state()
    for _ in range(3):
        st.sent(classify("SELECT 1"))
        reached = st.boundary()
        assert reached is None
    assert st.settings_current()
    assert noted == []


def test_set_in_a_transaction_then_commit() -> None:
    st, _ = state()
    st.sent(STATE)  # SET ... (transaction open)
    assert not st.settings_current()
    reached = st.boundary()
    assert reached is not None
    st.settings_stale = False  # read back
    assert not st.settings_current()  # its ReadyForQuery may end the transaction
    reached(b"T")
    assert st.settings_current()
    commit = st.boundary()
    assert commit is not None
    commit(b"I")  # SET LOCAL ended, or the SET was rolled back
    assert not st.settings_current()
    st.settings_stale = False
    assert st.settings_current()
    assert st.boundary() is None  # settled: nothing to watch


def test_ddl_marks_the_catalog_stale_when_its_transaction_ends() -> None:
    st, noted = state()
    st.sent(DDL | VECTOR_DDL)
    assert st.in_vector_ddl
    first = st.boundary()
    assert first is not None
    first(b"T")
    assert noted == [] and st.in_vector_ddl  # not before the commit
    st.sent(DDL)  # more DDL, sent before the commit's ReadyForQuery came
    commit = st.boundary()
    assert commit is not None
    commit(b"I")
    assert noted == [1] and not st.in_vector_ddl
    assert st.boundary() is None


def test_search_settings_values() -> None:
    assert SearchSettings.from_values(dict.fromkeys(DEFAULTS)) == SearchSettings()
    assert SearchSettings.from_values(DEFAULTS) == SearchSettings()
    got = SearchSettings.from_values({"hnsw.ef_search": "100", "ivfflat.probes": "2"})
    assert (got.ef_search, got.probes) == (100, 2)


def test_session_defaults() -> None:
    assert session_defaults({"user": "u"}, {}) == DEFAULTS
    added = session_defaults(
        {"user": "u", "options": "-c hnsw.ef_search=10", "pgvec.consistency": "bounded"},
        {"ivfflat.probes": "5"},
    )
    assert added == {"pgvec.engine_filter": "on", "pgvec.diskann_search_list": "100"}


def test_role_and_database_precedence() -> None:
    entries = [
        (None, False, "hnsw.ef_search", "1"),  # ALTER ROLE ALL
        (None, True, "hnsw.ef_search", "2"),  # ALTER DATABASE
        ("u", False, "hnsw.ef_search", "3"),  # ALTER ROLE u
        ("u", True, "ivfflat.probes", "4"),  # ALTER ROLE u IN DATABASE
        ("v", True, "ivfflat.probes", "5"),
    ]
    assert _settings_of(entries, "u") == {"hnsw.ef_search": "3", "ivfflat.probes": "4"}
    assert _settings_of(entries, "w") == {"hnsw.ef_search": "2"}
