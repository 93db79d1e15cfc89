"""Milvus users, roles and privileges through pymilvus, as PostgreSQL roles and grants:
connecting as a user, permission denied until a role's grant, row-level security."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from pgvec.milvus.context import ROOT_RECHECK

#: roles the tests make start so; PostgreSQL checks their passwords (see password_checked)
PREFIX = "mvu_"
DIM = 4


@pytest.fixture(scope="session")
def password_checked(pg_uri: str) -> Iterator[None]:
    """pg_hba.conf lines that make the test cluster (which trusts everyone) check the
    passwords of the tests' roles, restored after the session."""
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        row = conn.execute("SHOW hba_file").fetchone()
        version = conn.info.server_version
    path = Path(row[0]) if row else None
    if path is None or version < 160000 or not path.is_file():
        pytest.skip("needs PostgreSQL 16's regular expressions in a local pg_hba.conf")
    original = path.read_text()
    lines = f"local all /^{PREFIX} scram-sha-256\nhost all /^{PREFIX} all scram-sha-256\n"
    try:
        path.write_text(lines + original)
    except OSError:
        pytest.skip("needs a pg_hba.conf it can write")
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        path.write_text(original)
        with psycopg.connect(pg_uri, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")


@pytest.fixture
def names(password_checked: None, pg_uri: str, db_uri: str) -> Iterator[str]:
    """A prefix for this test's role names; its roles are dropped afterwards."""
    prefix = f"{PREFIX}{uuid.uuid4().hex[:6]}_"
    yield prefix
    with psycopg.connect(db_uri, autocommit=True) as conn:
        roles = [
            r[0]
            for r in conn.execute(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)
            )
        ]
        for role in roles:
            conn.execute(f'DROP OWNED BY "{role}"')
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        for role in roles:
            conn.execute(f'DROP ROLE "{role}"')


def make_docs(client: MilvusClient) -> None:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("owner", DataType.VARCHAR, max_length=64)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection("docs", schema=schema, index_params=ip)


def fill(client: MilvusClient, owners: list[str]) -> None:
    rng = np.random.default_rng(3)
    client.insert(
        "docs",
        [
            {"id": i, "owner": owners[i % len(owners)], "vec": rng.random(DIM).tolist()}
            for i in range(20)
        ],
    )


def test_users_and_roles_are_postgresql_roles(
    client: MilvusClient, names: str, db_uri: str
) -> None:
    alice, reader = names + "alice", names + "reader"
    client.create_user(alice, "s3cret-Alice", description="the first")
    client.create_role(reader, description="reads")
    assert alice in client.list_users() and reader not in client.list_users()
    roles = client.list_roles()
    assert reader in roles and {"admin", "public"} <= set(roles) and alice not in roles
    client.grant_role(alice, reader)
    user = client.describe_user(alice)
    assert user == {"user_name": alice, "roles": (reader,), "description": "the first"}
    assert client.describe_user("postgres")["roles"] == ("admin",)
    assert client.describe_role(reader) == {
        "role": reader,
        "description": "reads",
        "privileges": [],
    }
    with psycopg.connect(db_uri) as conn:
        login, password = conn.execute(
            "SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s", (alice,)
        ).fetchone()
        assert login and password.startswith("SCRAM-SHA-256$")
        member = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (alice, reader))
        assert member.fetchone() == (True,)
    client.revoke_role(alice, reader)
    assert client.describe_user(alice)["roles"] == ()
    with pytest.raises(MilvusException, match="not a role"):
        client.drop_role(alice)
    with pytest.raises(MilvusException, match="built-in"):
        client.create_role("admin")
    client.drop_role(reader)
    client.drop_user(alice)
    assert alice not in client.list_users() and reader not in client.list_roles()
    client.drop_user(alice)  # dropping nobody succeeds


def test_connect_as_a_user(client: MilvusClient, milvus_uri: str, names: str) -> None:
    bob = names + "bob"
    client.create_user(bob, "pw-of-bob")
    for c in (
        MilvusClient(milvus_uri, user=bob, password="pw-of-bob"),
        MilvusClient(milvus_uri, token=f"{bob}:pw-of-bob"),
    ):
        assert c.list_collections() == []
        c.close()
    with pytest.raises(MilvusException) as err:
        MilvusClient(milvus_uri, user=bob, password="wrong")
    assert err.value.code == 1800 and "password authentication failed" in err.value.message


def test_grants_and_row_level_security(
    client: MilvusClient, milvus_uri: str, names: str, db_uri: str
) -> None:
    carol, dave, reader = names + "carol", names + "dave", names + "reader"
    make_docs(client)
    fill(client, [carol, dave])
    client.create_user(carol, "pw-carol")
    client.create_user(dave, "pw-dave")
    as_carol = MilvusClient(milvus_uri, user=carol, password="pw-carol")
    as_dave = MilvusClient(milvus_uri, token=f"{dave}:pw-dave")
    q = [[0.5] * DIM]
    with pytest.raises(MilvusException) as err:
        as_carol.search("docs", data=q, limit=3)
    assert err.value.code == 1401 and "permission denied" in err.value.message
    with pytest.raises(MilvusException) as err:
        as_carol.query("docs", filter="id >= 0", output_fields=["owner"])
    assert err.value.code == 1401

    client.create_role(reader)
    client.grant_privilege(reader, "Collection", "Search", "docs")
    client.grant_privilege(reader, "Collection", "Query", "docs")
    client.grant_role(carol, reader)
    client.grant_role(dave, reader)
    grants = client.describe_role(reader)["privileges"]
    assert {(g["object_type"], g["object_name"], g["privilege"]) for g in grants} == {
        ("Collection", "docs", "Search"),
        ("Collection", "docs", "Query"),
    }
    assert len(as_carol.search("docs", data=q, limit=30)[0]) == 20
    with pytest.raises(MilvusException) as err:  # Search is not Insert
        as_carol.insert("docs", [{"id": 99, "owner": carol, "vec": [0.0] * DIM}])
    assert err.value.code == 1401

    # row-level security: each user sees the rows it owns
    with psycopg.connect(db_uri) as conn:
        conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY own ON docs USING (owner = current_user)")
    for c, who in ((as_carol, carol), (as_dave, dave)):
        # keys alone, before pgvec's catalog knows of the policy (enabled past pgvec)
        ids = [h["id"] for h in c.search("docs", data=q, limit=30)[0]]
        assert len(ids) == 10 and {i % 2 for i in ids} == {0 if who == carol else 1}
        hits = c.search("docs", data=q, limit=30, output_fields=["owner"])[0]
        assert len(hits) == 10 and {h["entity"]["owner"] for h in hits} == {who}
        rows = c.query("docs", filter="id >= 0", output_fields=["owner"])
        assert len(rows) == 10 and {r["owner"] for r in rows} == {who}
        top = c.search("docs", data=q, limit=3, output_fields=["owner"])[0]
        nearest = sorted(hits, key=lambda h: h["distance"])[:3]
        assert [h["id"] for h in top] == [h["id"] for h in nearest]  # k of its own rows
        filtered = c.query("docs", filter="id < 4", output_fields=["id"])
        assert sorted(r["id"] for r in filtered) == ([0, 2] if who == carol else [1, 3])
    assert len(client.query("docs", filter="id >= 0")) == 20  # the superuser bypasses RLS

    client.revoke_privilege(reader, "Collection", "Search", "docs")
    client.revoke_privilege(reader, "Collection", "Query", "docs")
    assert client.describe_role(reader)["privileges"] == []
    with pytest.raises(MilvusException) as err:
        as_dave.search("docs", data=q, limit=3)
    assert err.value.code == 1401
    client.grant_privilege_v2(reader, "CollectionReadWrite", "docs")
    as_dave.insert("docs", [{"id": 99, "owner": dave, "vec": [0.0] * DIM}])
    assert len(as_dave.query("docs", filter="id >= 0")) == 11
    as_carol.close()
    as_dave.close()


def test_global_privileges_and_what_is_not_supported(
    client: MilvusClient, milvus_uri: str, names: str
) -> None:
    erin, maker = names + "erin", names + "maker"
    client.create_user(erin, "pw-erin")
    client.create_role(maker)
    client.grant_role(erin, maker)
    as_erin = MilvusClient(milvus_uri, user=erin, password="pw-erin")
    with pytest.raises(MilvusException) as err:
        as_erin.create_collection("mine", dimension=DIM)
    assert err.value.code == 1401
    client.grant_privilege(maker, "Global", "CreateCollection", "*")
    as_erin.create_collection("mine", dimension=DIM)
    assert "mine" in as_erin.list_collections()
    grants = client.describe_role(maker)["privileges"]
    assert [(g["object_type"], g["privilege"]) for g in grants] == [("Global", "CreateCollection")]
    with pytest.raises(MilvusException, match="only the owner") as err:
        client.grant_privilege(maker, "Collection", "CreateIndex", "mine")
    assert err.value.code == 1100
    with pytest.raises(MilvusException, match="privilege groups are not supported"):
        client.create_privilege_group("readers")
    as_erin.drop_collection("mine")
    as_erin.close()


def test_update_password_and_no_password_in_logs(
    client: MilvusClient, milvus_uri: str, names: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    frank = names + "frank"
    client.create_user(frank, "first-Secret-1")
    as_frank = MilvusClient(milvus_uri, user=frank, password="first-Secret-1")
    with pytest.raises(MilvusException) as err:
        client.update_password(frank, "wrong-Secret-0", "second-Secret-2")
    assert err.value.code == 1400
    as_frank.update_password(frank, "first-Secret-1", "second-Secret-2")
    with pytest.raises(MilvusException):  # the old password stops working at once
        as_frank.list_collections()
    as_frank.close()
    again = MilvusClient(milvus_uri, user=frank, password="second-Secret-2")
    assert again.list_collections() == []
    again.close()
    with pytest.raises(MilvusException) as err:
        # (pymilvus may reuse as_frank's channel without a new Connect: a call then fails)
        MilvusClient(milvus_uri, user=frank, password="first-Secret-1").list_collections()
    assert err.value.code == 1800
    for secret in ("first-Secret-1", "second-Secret-2", "wrong-Secret-0"):
        assert secret not in caplog.text


def test_no_credentials_get_no_more_than_a_sql_client_without_them(names: str, db_uri: str) -> None:
    """pgvec in front of a PostgreSQL that checks its service role's password: a Milvus
    client sending no credentials is refused, as a SQL client sending none would be,
    instead of acting with the service role's password."""
    import tempfile

    from tests.fix_proxy import PgvecServer
    from tests.milvus.conftest import free_port

    service = names + "service"
    with psycopg.connect(db_uri, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {service} LOGIN SUPERUSER PASSWORD 'service-pw'")
    upstream = psycopg.conninfo.make_conninfo(db_uri, user=service, password="service-pw")
    with tempfile.TemporaryDirectory(prefix="pgvec-milvus-") as tmp:
        server = PgvecServer(upstream, Path(tmp), milvus_port=free_port()).start()
        try:
            uri = f"http://127.0.0.1:{server.milvus_port}"
            with pytest.raises(MilvusException) as err:
                MilvusClient(uri)
            assert err.value.code == 1800
            with pytest.raises(MilvusException) as err:
                MilvusClient(uri, token=f"{service}:")  # an empty password is none either
            assert err.value.code == 1800
            ok = MilvusClient(uri, token=f"{service}:service-pw")
            assert ok.list_collections() == []
            ok.close()
            # Milvus's root, where PostgreSQL has no such role: the service role, with
            # the password given, which PostgreSQL checks
            with pytest.raises(MilvusException) as err:
                MilvusClient(uri, token="root:Milvus")
            assert err.value.code == 1800
            root = MilvusClient(uri, user="root", password="service-pw")
            assert root.list_collections() == []
            root.close()
        finally:
            server.stop()


def test_load_needs_the_callers_privilege_before_pgvec_loads(
    client: MilvusClient, milvus_uri: str, names: str, db_uri: str
) -> None:
    """A role that may not read a collection cannot make pgvec load its index."""
    make_docs(client)
    client.release_collection("docs")
    bob = names + "bob"
    client.create_user(bob, "pw-of-bob")
    other = MilvusClient(milvus_uri, user=bob, password="pw-of-bob")
    with pytest.raises(MilvusException) as err:
        other.load_collection("docs")
    assert err.value.code == 1401
    other.close()
    with psycopg.connect(db_uri) as conn:
        states = conn.execute("SELECT DISTINCT state FROM pgvec.indexes").fetchall()
    assert states == [("released",)]
    assert client.get_load_state("docs")["state"].name == "NotLoad"


def test_a_filter_needs_the_right_to_read_its_fields(
    client: MilvusClient, milvus_uri: str, names: str, db_uri: str
) -> None:
    """A role that may read some columns only: its searches filter on those alone, as
    its SQL would (``SELECT id FROM docs WHERE owner = ...`` needs ``owner``), whether the
    engine or PostgreSQL evaluates the filter."""
    make_docs(client)
    fill(client, ["ann", "ben"])
    eve = names + "eve"
    with psycopg.connect(db_uri, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {eve} LOGIN PASSWORD 'pw-eve'")
        conn.execute(f"GRANT SELECT (id, vec) ON docs TO {eve}")
    as_eve = MilvusClient(milvus_uri, user=eve, password="pw-eve")
    q = [[0.5] * DIM]
    assert len(as_eve.search("docs", data=q, limit=3)[0]) == 3
    assert len(as_eve.search("docs", data=q, limit=30, filter="id < 4")[0]) == 4
    for kw in (
        {"filter": 'owner == "ann"'},  # the engine evaluates it
        {"filter": 'owner like "a%"'},  # PostgreSQL does
        {"filter": 'owner == "ann"', "output_fields": ["id"]},
        {"output_fields": ["owner"]},
    ):
        with pytest.raises(MilvusException) as err:
            as_eve.search("docs", data=q, limit=3, **kw)
        assert err.value.code == 1401 and "permission denied" in err.value.message, kw
    as_eve.close()


def test_root_is_the_role_named_root_where_there_is_one(
    client: MilvusClient, milvus_uri: str, db_uri: str
) -> None:
    """``token="root:Milvus"``, in most of Milvus's documents: without a role named root,
    the upstream role (trusted here, as the embedded server is); with one, that role and
    its privileges, no more."""
    as_root = MilvusClient(milvus_uri, token="root:Milvus")
    as_root.create_collection("by_root", dimension=DIM)
    as_root.insert("by_root", [{"id": 1, "vector": [0.1] * DIM}])
    assert as_root.query("by_root", filter="id == 1", output_fields=["id"])[0]["id"] == 1
    as_root.close()
    with psycopg.connect(db_uri, autocommit=True) as conn:
        conn.execute("CREATE ROLE root LOGIN")
    time.sleep(ROOT_RECHECK)  # pgvec looks for a role named root at most once a second
    try:
        limited = MilvusClient(milvus_uri, token="root:Milvus")
        with pytest.raises(MilvusException) as err:
            limited.query("by_root", filter="id == 1", output_fields=["id"])
        assert err.value.code == 1401
        limited.close()
    finally:
        with psycopg.connect(db_uri, autocommit=True) as conn:
            conn.execute("DROP OWNED BY root")
            conn.execute("DROP ROLE root")


def test_database_properties_are_the_schema_owners_to_set(
    client: MilvusClient, milvus_uri: str, names: str
) -> None:
    client.create_database("db1", properties={"k": "v"})
    bob = names + "bob"
    client.create_user(bob, "pw-of-bob")
    as_bob = MilvusClient(milvus_uri, user=bob, password="pw-of-bob")
    for db in ("db1", "default"):
        with pytest.raises(MilvusException) as err:
            as_bob.alter_database_properties(db, properties={"k": "changed"})
        assert err.value.code == 1401
    assert client.describe_database("db1") == {"name": "db1", "k": "v"}
    as_bob.close()
