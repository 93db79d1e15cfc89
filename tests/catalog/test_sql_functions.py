from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from pgvec.catalog import install


@pytest.fixture
def vconn(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    install(conn)
    yield conn


def vbytes(v: object) -> bytes:
    return np.asarray(v, "<f4").tobytes()


def one(conn: psycopg.Connection, query: str, params: tuple[object, ...] = ()) -> object:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return row[0]


def random_vectors(rng: np.random.Generator) -> list[np.ndarray]:
    out = [rng.standard_normal(d).astype("<f4") for d in (1, 2, 3, 17, 128)]
    wide = rng.standard_normal(64) * np.exp2(rng.integers(-120, 120, 64))
    out.append(wide.astype("<f4"))
    out.append(
        np.array(
            [
                1e-45,
                -1e-45,
                1e-40,
                -3e-39,
                1.1754944e-38,
                3.4028235e38,
                -3.4028235e38,
                0.0,
                -0.0,
                0.1,
                1 / 3,
            ],
            dtype="<f4",
        )
    )
    return out


# -- text <-> bytea -------------------------------------------------------------------------


def test_vector_in_out_roundtrip(vconn: psycopg.Connection) -> None:
    rng = np.random.default_rng(1)
    for v in random_vectors(rng):
        text = "[" + ",".join(repr(float(x)) for x in v) + "]"
        b = one(vconn, "SELECT pgvec.vector_in(%s)", (text,))
        assert b == vbytes(v)
        out = one(vconn, "SELECT pgvec.vector_out(%s)", (vbytes(v),))
        assert isinstance(out, str)
        parsed = np.array([float(x) for x in out[1:-1].split(",")], dtype="<f4")
        assert parsed.tobytes() == vbytes(v)
        # Shortest round trip: same text as float4 output.
        assert out == one(
            vconn, "SELECT '[' || array_to_string(%s::real[], ',') || ']'", (v.tolist(),)
        )
        assert one(vconn, "SELECT pgvec.to_float4(%s) = %s::real[]", (vbytes(v), v.tolist()))
        assert one(vconn, "SELECT pgvec.from_float4(%s::real[])", (v.tolist(),)) == vbytes(v)


def test_vector_in_formats(vconn: psycopg.Connection) -> None:
    assert one(vconn, "SELECT pgvec.vector_in(' [ 1 , 2.5,-3e-2 ] ')") == vbytes([1, 2.5, -0.03])
    assert one(vconn, "SELECT pgvec.vector_in('[+.5,5.,1E+2]')") == vbytes([0.5, 5, 100])
    assert (
        one(vconn, "SELECT pgvec.vector_out(pgvec.vector_in('[1,2.5,-3e-2]'))") == "[1,2.5,-0.03]"
    )
    assert one(vconn, "SELECT pgvec.vector('[1,2]')") == vbytes([1, 2])
    assert one(vconn, "SELECT pgvec.vector(ARRAY[1,2]::real[])") == vbytes([1, 2])
    assert one(vconn, "SELECT pgvec.vector_in(NULL)") is None
    assert one(vconn, "SELECT pgvec.vector_out(NULL)") is None
    assert one(vconn, "SELECT pgvec.dims(pgvec.vector_in('[1,2,3]'))") == 3


@pytest.mark.parametrize(
    ("text", "sqlstate", "message"),
    [
        ("[1,2,x]", "22P02", 'invalid input syntax for type vector: "[1,2,x]"'),
        ("1,2", "22P02", 'invalid input syntax for type vector: "1,2"'),
        ("[1,,2]", "22P02", 'invalid input syntax for type vector: "[1,,2]"'),
        ("[1,2]x", "22P02", 'invalid input syntax for type vector: "[1,2]x"'),
        ("[1 2]", "22P02", 'invalid input syntax for type vector: "[1 2]"'),
        ("", "22P02", 'invalid input syntax for type vector: ""'),
        ("[]", "22000", "vector must have at least 1 dimension"),
        ("[ ]", "22000", "vector must have at least 1 dimension"),
        ("[1,NaN]", "22000", "NaN not allowed in vector"),
        ("[1,nan]", "22000", "NaN not allowed in vector"),
        ("[Infinity,1]", "22000", "infinite value not allowed in vector"),
        ("[-inf]", "22000", "infinite value not allowed in vector"),
        ("[1e39]", "22003", 'value out of range for type vector: "[1e39]"'),
    ],
)
def test_vector_in_errors(
    vconn: psycopg.Connection, text: str, sqlstate: str, message: str
) -> None:
    with pytest.raises(psycopg.Error) as ei:
        vconn.execute("SELECT pgvec.vector_in(%s)", (text,))
    assert ei.value.sqlstate == sqlstate
    assert ei.value.diag.message_primary == message


def test_from_float4_errors(vconn: psycopg.Connection) -> None:
    for arr, sqlstate in [
        ("{}", "22000"),
        ("{1,NULL}", "22004"),
        ("{{1},{2}}", "2202E"),
        ("{NaN}", "22000"),
        ("{-Infinity}", "22000"),
    ]:
        with pytest.raises(psycopg.Error) as ei:
            vconn.execute("SELECT pgvec.from_float4(%s::real[])", (arr,))
        assert ei.value.sqlstate == sqlstate, arr


def test_dims_bad_length(vconn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as ei:
        vconn.execute("SELECT pgvec.dims('\\x010203'::bytea)")
    assert ei.value.sqlstate == "22000"
    with pytest.raises(psycopg.Error) as ei:
        vconn.execute("SELECT pgvec.vector_out('\\x010203'::bytea)")
    assert ei.value.sqlstate == "22000"


# -- distances ------------------------------------------------------------------------------


def np_distances(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return {
        "l2_distance": float(np.linalg.norm(a64 - b64)),
        "l2_squared_distance": float(np.sum((a64 - b64) ** 2)),
        "inner_product": float(a64 @ b64),
        "negative_inner_product": float(-(a64 @ b64)),
        "cosine_distance": float(1 - a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64))),
        "l1_distance": float(np.sum(np.abs(a64 - b64))),
    }


def test_distances_vs_numpy(vconn: psycopg.Connection) -> None:
    rng = np.random.default_rng(2)
    for d in (1, 3, 16, 128, 1000):
        for _ in range(3):
            a = rng.standard_normal(d).astype("<f4")
            b = rng.standard_normal(d).astype("<f4")
            expected = np_distances(a, b)
            for fn, want in expected.items():
                got = one(vconn, f"SELECT pgvec.{fn}(%s, %s)", (vbytes(a), vbytes(b)))
                assert got == pytest.approx(want, rel=1e-5, abs=1e-9), (fn, d)
    a = rng.standard_normal(8).astype("<f4")
    assert one(vconn, "SELECT pgvec.l2_norm(%s)", (vbytes(a),)) == pytest.approx(
        float(np.linalg.norm(a.astype(np.float64))), rel=1e-6
    )


def test_distances_on_toasted_rows(vconn: psycopg.Connection) -> None:
    rng = np.random.default_rng(3)
    vconn.execute("CREATE TABLE big (id int PRIMARY KEY, v bytea)")
    vs = rng.standard_normal((5, 2000)).astype("<f4")
    with vconn.cursor() as cur:
        cur.executemany(
            "INSERT INTO big VALUES (%s, %s)", [(i, vbytes(v)) for i, v in enumerate(vs)]
        )
    q = vs[0]
    rows = vconn.execute(
        "SELECT id, pgvec.l2_distance(v, %s) FROM big ORDER BY id", (vbytes(q),)
    ).fetchall()
    for i, dist in rows:
        assert dist == pytest.approx(float(np.linalg.norm(vs[i].astype(np.float64) - q)), rel=1e-5)


def test_cosine_zero_norm_is_nan(vconn: psycopg.Connection) -> None:
    got = one(vconn, "SELECT pgvec.cosine_distance(%s, %s)", (vbytes([0, 0]), vbytes([1, 2])))
    assert isinstance(got, float) and np.isnan(got)


@pytest.mark.parametrize(
    "fn",
    [
        "l2_distance",
        "inner_product",
        "negative_inner_product",
        "cosine_distance",
        "l1_distance",
        "l2_squared_distance",
    ],
)
def test_distance_dimension_mismatch(vconn: psycopg.Connection, fn: str) -> None:
    with pytest.raises(psycopg.Error) as ei:
        vconn.execute(f"SELECT pgvec.{fn}(%s, %s)", (vbytes([1, 2, 3]), vbytes([1, 2, 3, 4])))
    assert ei.value.sqlstate == "22000"
    assert ei.value.diag.message_primary == "different vector dimensions 3 and 4"


def test_distance_nulls(vconn: psycopg.Connection) -> None:
    assert one(vconn, "SELECT pgvec.l2_distance(NULL, %s)", (vbytes([1]),)) is None
    assert one(vconn, "SELECT %s::bytea OPERATOR(pgvec.<->) NULL::bytea", (vbytes([1]),)) is None


def test_operators(vconn: psycopg.Connection) -> None:
    rng = np.random.default_rng(4)
    a = rng.standard_normal(128).astype("<f4")
    b = rng.standard_normal(128).astype("<f4")
    exp = np_distances(a, b)
    for op, fn in [
        ("<->", "l2_distance"),
        ("<#>", "negative_inner_product"),
        ("<=>", "cosine_distance"),
        ("<+>", "l1_distance"),
    ]:
        got = one(vconn, f"SELECT %s::bytea OPERATOR(pgvec.{op}) %s::bytea", (vbytes(a), vbytes(b)))
        assert got == pytest.approx(exp[fn], rel=1e-5), op
    # With pgvec on the search_path.
    vconn.execute("SET search_path = public, pgvec")
    assert one(vconn, "SELECT %s::bytea <-> pgvec.vector('[3,4]')", (vbytes([0, 0]),)) == 5.0
    # (unqualified, vector('[1,1]') is a cast to the type clients see: public.vector)
    assert one(vconn, "SELECT vector(text '[1,1]') <+> %s::bytea", (vbytes([0, 0]),)) == 2.0
    assert one(vconn, "SELECT %s::bytea <#> %s::bytea", (vbytes([1, 2]), vbytes([3, 4]))) == -11.0
    # A bare pgvector literal is read as bytea: usually a length error, with a hint.
    with pytest.raises(psycopg.errors.DataException) as ei:
        vconn.execute("SELECT %s::bytea <-> '[3,4]'", (vbytes([0, 0]),))
    assert "pgvec.vector(" in (ei.value.diag.message_hint or "")
    # ORDER BY with the operator, as pgvector SQL sent straight to Postgres.
    vconn.execute(
        "CREATE TABLE items (id int PRIMARY KEY, "
        "embedding bytea CHECK (pgvec.is_vector(embedding, 2)))"
    )
    vconn.execute(
        "INSERT INTO items VALUES (1, pgvec.vector('[0,0]')), (2, pgvec.vector('[5,5]')), "
        "(3, pgvec.vector('[2,2]'))"
    )
    ids = [
        r[0]
        for r in vconn.execute(
            "SELECT id FROM items ORDER BY embedding <-> pgvec.vector('[4,4]') LIMIT 2"
        ).fetchall()
    ]
    assert ids == [2, 3]


def test_raise_error(vconn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as ei:
        vconn.execute("SELECT pgvec.raise_error('22023', 'bad ef_search', 'use 1..1000')")
    assert ei.value.sqlstate == "22023"
    assert isinstance(ei.value, psycopg.errors.InvalidParameterValue)
    assert ei.value.diag.message_primary == "bad ef_search"
    assert ei.value.diag.message_hint == "use 1..1000"
    with pytest.raises(psycopg.Error) as ei:
        vconn.execute("SELECT pgvec.raise_error('0A000', 'nope')")
    assert ei.value.sqlstate == "0A000"
    assert ei.value.diag.message_hint is None
    # Inside a transaction the error aborts it as a Postgres error does.
    with psycopg.Connection.connect(vconn.info.dsn) as c:
        with pytest.raises(psycopg.Error):
            c.execute("SELECT pgvec.raise_error('22023', 'x')")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR


# -- is_vector and the CHECK -----------------------------------------------------------------


def test_is_vector(vconn: psycopg.Connection) -> None:
    ok = vbytes([1.0, -2.0, 3.4028235e38, -0.0, 1e-45])
    assert one(vconn, "SELECT pgvec.is_vector(%s, 5)", (ok,)) is True
    assert one(vconn, "SELECT pgvec.is_vector(%s, 4)", (ok,)) is False
    assert one(vconn, "SELECT pgvec.is_vector(%s, 6)", (ok,)) is False
    assert one(vconn, "SELECT pgvec.is_vector(%s, 1)", (b"\x00\x00\x80",)) is False
    assert one(vconn, "SELECT pgvec.is_vector(NULL, 1)") is None
    for bad in (np.nan, -np.nan, np.inf, -np.inf):
        for pos in range(3):
            v = np.array([1.0, 2.0, 3.0], dtype="<f4")
            v[pos] = bad
            assert one(vconn, "SELECT pgvec.is_vector(%s, 3)", (v.tobytes(),)) is False, (bad, pos)
    # NaN payloads: any mantissa with all exponent bits set.
    for bits in (0x7F800001, 0xFFC00000, 0x7FFFFFFF, 0xFF800000):
        v = np.array([0.5, 0.25], dtype="<f4")
        v.view("<u4")[1] = bits
        assert one(vconn, "SELECT pgvec.is_vector(%s, 2)", (v.tobytes(),)) is False, hex(bits)
    # Bytes that look like NaN only across a 4-byte boundary are fine.
    v = np.array([0, 0], dtype="<u4")
    v[0] = 0x0080FF7F  # bytes 7f ff 80 00: a finite float
    v[1] = 0x00007FFF
    assert one(vconn, "SELECT pgvec.is_vector(%s, 2)", (v.tobytes(),)) is True
    rng = np.random.default_rng(5)
    for _ in range(20):
        x = rng.integers(0, 2**32, 64, dtype=np.uint64).astype("<u4")
        finite = bool(np.all(np.isfinite(x.view("<f4"))))
        assert one(vconn, "SELECT pgvec.is_vector(%s, 64)", (x.tobytes(),)) is finite


def test_check_constraint_rejects_bad_rows(vconn: psycopg.Connection) -> None:
    vconn.execute(
        "CREATE TABLE items (id int PRIMARY KEY, embedding bytea "
        "CONSTRAINT embedding_pgvec_dims CHECK (pgvec.is_vector(embedding, 3)))"
    )
    vconn.execute("INSERT INTO items VALUES (1, %s), (2, NULL)", (vbytes([1, 2, 3]),))
    for bad in (vbytes([1, 2]), vbytes([1, np.nan, 3]), vbytes([np.inf, 1, 2]), b"\x00" * 13):
        with pytest.raises(psycopg.errors.CheckViolation) as ei:
            vconn.execute("INSERT INTO items VALUES (3, %s)", (bad,))
        assert ei.value.sqlstate == "23514"


# -- vector_columns -------------------------------------------------------------------------


def vector_columns(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT schema_name::text, table_name::text, attnum, column_name::text, dim, "
        "relid::regclass::text FROM pgvec.vector_columns ORDER BY 1, 2, 3"
    ).fetchall()


def test_vector_columns(vconn: psycopg.Connection) -> None:
    assert vector_columns(vconn) == []
    vconn.execute("CREATE SCHEMA s2")
    vconn.execute(
        "CREATE TABLE items (id int PRIMARY KEY, title text, "
        "embedding bytea CONSTRAINT embedding_pgvec_dims "
        "CHECK (pgvec.is_vector(embedding, 768)))"
    )
    vconn.execute(
        'CREATE TABLE s2."Odd, Name" (id int, "v, 1" bytea '
        'CHECK (pgvec.is_vector("v, 1", 3)), w bytea CHECK (octet_length(w) = 12))'
    )
    assert vector_columns(vconn) == [
        ("public", "items", 3, "embedding", 768, "items"),
        ("s2", "Odd, Name", 2, "v, 1", 3, 's2."Odd, Name"'),
    ]
    vconn.execute("ALTER TABLE items RENAME TO products")
    vconn.execute("ALTER TABLE products RENAME COLUMN embedding TO emb")
    vconn.execute("ALTER TABLE products DROP COLUMN title")
    vconn.execute('ALTER TABLE s2."Odd, Name" SET SCHEMA public')
    assert vector_columns(vconn) == [
        ("public", "Odd, Name", 2, "v, 1", 3, '"Odd, Name"'),
        ("public", "products", 3, "emb", 768, "products"),
    ]
    vconn.execute("SET search_path = public, pgvec")
    vconn.execute("CREATE TABLE t3 (v bytea CHECK (is_vector(v, 4)))")
    assert ("public", "t3", 1, "v", 4, "t3") in vector_columns(vconn)
    vconn.execute("DROP TABLE products")
    vconn.execute("ALTER TABLE t3 DROP COLUMN v")
    assert vector_columns(vconn) == [("public", "Odd, Name", 2, "v, 1", 3, '"Odd, Name"')]


# -- change log ------------------------------------------------------------------------------


def changes(conn: psycopg.Connection, table: str) -> list[tuple[str | None, str]]:
    rows = conn.execute(
        "SELECT key, op FROM pgvec.changes WHERE relid = %s::regclass ORDER BY seq", (table,)
    ).fetchall()
    return [(k, op) for k, op in rows]


def clear(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM pgvec.changes")


@pytest.mark.parametrize(
    ("keytype", "keys"),
    [
        ("bigint", [1, 2, 3]),
        ("int", [10, 20, 30]),
        ("text", ["a", "b b", "it's"]),
        ("uuid", [uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)]),
    ],
)
def test_triggers(vconn: psycopg.Connection, keytype: str, keys: list[object]) -> None:
    k1, k2, k3 = keys
    s1, s2, s3 = (str(k) for k in keys)
    vconn.execute(
        f'CREATE TABLE "My Items" ("Key" {keytype} PRIMARY KEY, n int, '
        "embedding bytea CHECK (pgvec.is_vector(embedding, 2)))"
    )
    t = '"My Items"'
    vconn.execute("SELECT pgvec.track(%s)", (t,))
    vconn.execute("SELECT pgvec.track(%s)", (t,))  # idempotent
    n_trg = one(vconn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass", (t,))
    assert n_trg == 4

    vconn.execute(
        f"INSERT INTO {t} VALUES (%s, 1, %s), (%s, 2, %s)", (k1, vbytes([1, 2]), k2, vbytes([3, 4]))
    )
    assert changes(vconn, t) == [(s1, "i"), (s2, "i")]
    clear(vconn)

    vconn.execute(f"UPDATE {t} SET n = n + 1")
    assert sorted(changes(vconn, t)) == [(s1, "u"), (s2, "u")]
    clear(vconn)

    vconn.execute(f'UPDATE {t} SET "Key" = %s WHERE "Key" = %s', (k3, k2))
    assert sorted(changes(vconn, t)) == sorted([(s3, "u"), (s2, "d")])
    clear(vconn)

    vconn.execute(f"UPDATE {t} SET n = 0 WHERE false")
    assert changes(vconn, t) == []

    vconn.execute(f'DELETE FROM {t} WHERE "Key" = %s', (k1,))
    assert changes(vconn, t) == [(s1, "d")]
    clear(vconn)

    vconn.execute(f"TRUNCATE {t}")
    assert changes(vconn, t) == [(None, "t")]
    clear(vconn)

    # A rolled-back insert leaves no change row.
    with vconn.transaction(force_rollback=True):
        vconn.execute(f"INSERT INTO {t} VALUES (%s, 1, NULL)", (k1,))
        assert changes(vconn, t) == [(s1, "i")]
    assert changes(vconn, t) == []

    vconn.execute("SELECT pgvec.untrack(%s)", (t,))
    vconn.execute(f"INSERT INTO {t} VALUES (%s, 1, NULL)", (k1,))
    assert changes(vconn, t) == []
    n_trg = one(vconn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass", (t,))
    assert n_trg == 0


def test_trigger_needs_no_privilege_on_changes(vconn: psycopg.Connection) -> None:
    vconn.execute("CREATE ROLE pgvec_test_writer")
    try:
        vconn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, v bytea CHECK (pgvec.is_vector(v, 1)))"
        )
        vconn.execute("SELECT pgvec.track('items')")
        vconn.execute("GRANT INSERT ON items TO pgvec_test_writer")
        with vconn.transaction():
            vconn.execute("SET LOCAL ROLE pgvec_test_writer")
            vconn.execute("INSERT INTO items VALUES (1, NULL)")
        assert changes(vconn, "items") == [("1", "i")]
    finally:
        vconn.execute("DROP OWNED BY pgvec_test_writer")
        vconn.execute("DROP ROLE pgvec_test_writer")


def test_track_requires_single_column_pk(vconn: psycopg.Connection) -> None:
    vconn.execute("CREATE TABLE nopk (a int, v bytea)")
    vconn.execute("CREATE TABLE twopk (a int, b int, v bytea, PRIMARY KEY (a, b))")
    for table in ("nopk", "twopk"):
        with pytest.raises(psycopg.Error) as ei:
            vconn.execute("SELECT pgvec.track(%s)", (table,))
        assert ei.value.sqlstate == "42P16"
        assert ei.value.diag.message_primary == f'table "{table}" has no single-column primary key'
        assert "primary key" in (ei.value.diag.message_hint or "")


def test_tracking_a_partitioned_table_twice_at_once(vconn: psycopg.Connection, db_uri: str) -> None:
    """Two sessions tracking the same partitioned table (the index builds of two leaves)
    take turns: the second waits for the first and finds its triggers made."""
    import threading

    conn = vconn
    conn.autocommit = True
    conn.execute(
        "CREATE TABLE parts (id int, part int, PRIMARY KEY (id, part)) PARTITION BY LIST (part)"
    )
    conn.execute("CREATE TABLE parts_1 PARTITION OF parts FOR VALUES IN (1)")
    conn.execute("CREATE TABLE parts_2 PARTITION OF parts FOR VALUES IN (2)")
    errors: list[BaseException] = []
    with psycopg.connect(db_uri) as first:
        first.execute("SELECT pgvec.track('parts_1')")  # uncommitted: the triggers made

        def second() -> None:
            try:
                with psycopg.connect(db_uri, autocommit=True) as other:
                    other.execute("SELECT pgvec.track('parts_2')")
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(1.0)  # it waits for the first session
        first.commit()
        thread.join(30)
    assert not errors, errors
    triggers = conn.execute(
        "SELECT tgrelid::regclass::text, count(*) FROM pg_trigger"
        " WHERE tgname = 'pgvec_log_truncate' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert triggers == [("parts", 1), ("parts_1", 1), ("parts_2", 1)]
