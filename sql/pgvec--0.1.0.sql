-- pgvec 0.1.0: install script.
--
-- Creates schema pgvec: vector helper functions and operators on bytea, the catalog of
-- vector columns and indexes, and the change log with its triggers.
--
-- Plain SQL and PL/pgSQL only: no compiled extension, no superuser. Idempotent: running
-- it twice is harmless. pgvec.catalog.install() runs it in one transaction under an
-- advisory lock, then chains any upgrade scripts pgvec--A--B.sql.
--
-- A vector is a bytea: little-endian IEEE-754 float32, no header, 4 bytes per dimension.

CREATE SCHEMA IF NOT EXISTS pgvec;
GRANT USAGE ON SCHEMA pgvec TO PUBLIC;

CREATE TABLE IF NOT EXISTS pgvec.meta (
    key   text PRIMARY KEY,
    value text
);
INSERT INTO pgvec.meta (key, value) VALUES ('version', '0.1.0')
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- ---------------------------------------------------------------------------------------
-- pgvector's face
-- ---------------------------------------------------------------------------------------

-- A type named vector, so that clients' adapters find one (psycopg's TypeInfo.fetch,
-- pgvector-python's register_vector, asyncpg's introspection). No value ever has this
-- type inside PostgreSQL: vector columns stay bytea, and the proxy reports them to
-- clients with this type's OID, in pgvector's text and binary formats. It is an empty
-- enum: the one kind of type a non-superuser can create that clients treat as a scalar
-- with text I/O. A vector type that exists already (the real pgvector) is left alone.
DO $do$
BEGIN
    IF to_regtype('public.vector') IS NULL AND to_regnamespace('public') IS NOT NULL THEN
        CREATE TYPE public.vector AS ENUM ();
        COMMENT ON TYPE public.vector IS
            'pgvector''s vector type as pgvec shows it to clients (values are stored as bytea)';
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'pgvec cannot create type public.vector: %', SQLERRM
        USING HINT = 'pgvector adapters (register_vector) will not find a vector type';
END
$do$;

-- ---------------------------------------------------------------------------------------
-- Errors
-- ---------------------------------------------------------------------------------------

-- Raise an error with the given SQLSTATE, message and hint. The proxy calls it so that
-- errors it detects are raised by Postgres itself (transaction state stays right).
CREATE OR REPLACE FUNCTION pgvec.raise_error(sqlstate text, message text, hint text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF $3 IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = $1, MESSAGE = $2;
    ELSE
        RAISE EXCEPTION USING ERRCODE = $1, MESSAGE = $2, HINT = $3;
    END IF;
END
$fn$;

-- Raises 'different vector dimensions a and b'; typed so it can sit inside a CASE.
CREATE OR REPLACE FUNCTION pgvec._dims_error(a bytea, b bytea)
RETURNS double precision LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
DECLARE
    msg text;
BEGIN
    IF octet_length(a) % 4 <> 0 OR octet_length(b) % 4 <> 0 THEN
        msg := format('vector length must be a multiple of 4 bytes, got %s and %s',
                      octet_length(a), octet_length(b));
    ELSE
        msg := format('different vector dimensions %s and %s', octet_length(a) / 4,
                      octet_length(b) / 4);
    END IF;
    -- A pgvector literal sent straight to Postgres arrives as bytea: '[1,2]' is 5 bytes.
    IF position('\x5b'::bytea IN a) = 1 OR position('\x5b'::bytea IN b) = 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22000', MESSAGE = msg,
            HINT = 'Vectors are float32 bytea; write a vector literal as pgvec.vector(''[1,2,3]'').';
    END IF;
    RAISE EXCEPTION USING ERRCODE = '22000', MESSAGE = msg;
END
$fn$;

-- ---------------------------------------------------------------------------------------
-- Validation
-- ---------------------------------------------------------------------------------------

-- True iff v holds exactly dim float32 values and none is NaN or infinite. Runs in the
-- CHECK constraint of every vector column, so it never decodes floats: a float32 is NaN
-- or infinite iff its exponent bits are all 1, i.e. in the little-endian bytes b0 b1 b2 b3,
-- b3 is 7f or ff and the top bit of b2 is set: hex chars 5..8 of an 8-char group match
-- [89a-f].[7f]f. PL/pgSQL rather than an inlinable SQL function: its compiled form is
-- cached per session, where inlining re-parses the SQL body for every INSERT statement
-- (measured: ~1.5x slower single-row inserts).
CREATE OR REPLACE FUNCTION pgvec.is_vector(v bytea, dim integer)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    RETURN octet_length(v) = 4 * dim
       AND encode(v, 'hex') !~ '^(?:.{8})*.{4}[89a-f].[7f]f';
END
$fn$;

-- True iff v holds 1 to 16000 float32 values (pgvector's limit) and none is NaN or
-- infinite: the CHECK of a column of any dimension (pgvector's `vector` with no dimension).
CREATE OR REPLACE FUNCTION pgvec.is_vector(v bytea)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    RETURN octet_length(v) % 4 = 0 AND octet_length(v) BETWEEN 4 AND 64000
       AND encode(v, 'hex') !~ '^(?:.{8})*.{4}[89a-f].[7f]f';
END
$fn$;

-- True iff v holds exactly dim bits (dim / 8 bytes): a binary vector, packed most
-- significant bit first, as Milvus's BINARY_VECTOR and pgvector's bit(dim).
CREATE OR REPLACE FUNCTION pgvec.is_binary_vector(v bytea, dim integer)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT dim % 8 = 0 AND octet_length(v) * 8 = dim
$fn$;

CREATE OR REPLACE FUNCTION pgvec.dims(v bytea)
RETURNS integer LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    IF octet_length(v) % 4 <> 0 THEN
        RAISE EXCEPTION 'vector length must be a multiple of 4 bytes, got %', octet_length(v)
            USING ERRCODE = '22000';
    END IF;
    RETURN octet_length(v) / 4;
END
$fn$;

-- ---------------------------------------------------------------------------------------
-- Decoding float32 in SQL
-- ---------------------------------------------------------------------------------------

-- Element i (0-based) of v as float8 (exact: every float32 is a float8). Inlined by the
-- planner into the callers below.
CREATE OR REPLACE FUNCTION pgvec._f4(v bytea, i integer)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT CASE WHEN get_byte(v, 4 * i + 3) > 127 THEN -1.0::float8 ELSE 1.0::float8 END *
        CASE WHEN get_byte(v, 4 * i + 3) & 127 = 0 AND get_byte(v, 4 * i + 2) < 128
             -- subnormal (or zero): mantissa * 2^-149
             THEN ((get_byte(v, 4 * i + 2) << 16) | (get_byte(v, 4 * i + 1) << 8)
                   | get_byte(v, 4 * i))::float8 * 1.401298464324817e-45::float8
             -- normal: (mantissa | 2^23) * 2^(exponent - 150)
             ELSE (((get_byte(v, 4 * i + 2) | 128) << 16) | (get_byte(v, 4 * i + 1) << 8)
                   | get_byte(v, 4 * i))::float8
                  * 2.0::float8 ^ ((((get_byte(v, 4 * i + 3) & 127) << 1)
                                    | (get_byte(v, 4 * i + 2) >> 7)) - 150)
        END
$fn$;

-- The callers below come in pairs: a public function that is a single expression (so it
-- is inlined) and passes `v || '\x'` -- a detoasted in-memory copy -- to a private worker.
-- Otherwise every get_byte() would fetch a TOASTed (large) vector again.

CREATE OR REPLACE FUNCTION pgvec._to_float4(v bytea)
RETURNS real[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT coalesce((SELECT array_agg(pgvec._f4(v, i)::real ORDER BY i)
                     FROM generate_series(0, pgvec.dims(v) - 1) AS i), '{}'::real[])
$fn$;

CREATE OR REPLACE FUNCTION pgvec.to_float4(v bytea)
RETURNS real[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT pgvec._to_float4(v || '\x'::bytea)
$fn$;

CREATE OR REPLACE FUNCTION pgvec.from_float4(a real[])
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    IF array_ndims(a) IS DISTINCT FROM 1 THEN
        IF cardinality(a) = 0 THEN
            RAISE EXCEPTION 'vector must have at least 1 dimension' USING ERRCODE = '22000';
        END IF;
        RAISE EXCEPTION 'array must be 1-D' USING ERRCODE = '2202E';
    END IF;
    IF cardinality(a) > 16000 THEN
        RAISE EXCEPTION 'vector cannot have more than 16000 dimensions' USING ERRCODE = '54000';
    END IF;
    IF array_position(a, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'array must not contain nulls' USING ERRCODE = '22004';
    END IF;
    -- Postgres compares NaN as equal to NaN.
    IF 'NaN'::real = ANY (a) THEN
        RAISE EXCEPTION 'NaN not allowed in vector' USING ERRCODE = '22000';
    END IF;
    IF 'Infinity'::real = ANY (a) OR '-Infinity'::real = ANY (a) THEN
        RAISE EXCEPTION 'infinite value not allowed in vector' USING ERRCODE = '22000';
    END IF;
    -- float4send is big-endian: swap each group of 4 bytes.
    RETURN decode(regexp_replace(
               encode((SELECT string_agg(float4send(e), '\x'::bytea ORDER BY i)
                       FROM unnest(a) WITH ORDINALITY AS t(e, i)), 'hex'),
               '(..)(..)(..)(..)', '\4\3\2\1', 'g'), 'hex');
END
$fn$;

-- pgvector's text form: '[1,2.5,-3e-2]', whitespace allowed around brackets and numbers.
CREATE OR REPLACE FUNCTION pgvec.vector_in(input text)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    elems real[];
BEGIN
    IF input !~ ('^\s*\[\s*'
                 || '[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|[Nn][Aa][Nn]|[Ii][Nn][Ff]([Ii][Nn][Ii][Tt][Yy])?)'
                 || '(\s*,\s*'
                 || '[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|[Nn][Aa][Nn]|[Ii][Nn][Ff]([Ii][Nn][Ii][Tt][Yy])?)'
                 || ')*\s*\]\s*$') THEN
        IF input ~ '^\s*\[\s*\]\s*$' THEN
            RAISE EXCEPTION 'vector must have at least 1 dimension' USING ERRCODE = '22000';
        END IF;
        RAISE EXCEPTION 'invalid input syntax for type vector: "%"', input USING ERRCODE = '22P02';
    END IF;
    BEGIN
        elems := string_to_array(btrim(input, E' \t\n\r\v\f[]'), ',')::real[];
    EXCEPTION WHEN numeric_value_out_of_range THEN
        RAISE EXCEPTION 'value out of range for type vector: "%"', input USING ERRCODE = '22003';
    END;
    RETURN pgvec.from_float4(elems);
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec._vector_out(v bytea)
RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT '[' || coalesce((SELECT string_agg(pgvec._f4(v, i)::real::text, ',' ORDER BY i)
                            FROM generate_series(0, pgvec.dims(v) - 1) AS i), '') || ']'
$fn$;

-- '[1,2.5,-0.03]': float4's shortest round-trip output (as long as extra_float_digits >= 1,
-- the default).
CREATE OR REPLACE FUNCTION pgvec.vector_out(v bytea)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT pgvec._vector_out(v || '\x'::bytea)
$fn$;

-- Convenience spellings.
CREATE OR REPLACE FUNCTION pgvec.vector(input text)
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$ SELECT pgvec.vector_in(input) $fn$;
CREATE OR REPLACE FUNCTION pgvec.vector(a real[])
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    IF array_ndims(a) > 1 THEN  -- pgvector's code for it
        RAISE EXCEPTION 'array must be 1-D' USING ERRCODE = '22000';
    END IF;
    RETURN pgvec.from_float4(a);
END
$fn$;

-- ---------------------------------------------------------------------------------------
-- Exact distances (pgvector conventions), double precision
-- ---------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pgvec._l2_squared(a bytea, b bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE WHEN octet_length(a) <> octet_length(b) OR octet_length(a) % 4 <> 0
        THEN pgvec._dims_error(a, b)
        ELSE coalesce((SELECT sum((x - y) * (x - y))
             FROM (SELECT pgvec._f4(a, i) AS x, pgvec._f4(b, i) AS y
                   FROM generate_series(0, octet_length(a) / 4 - 1) AS i OFFSET 0) AS t), 0)
    END
$fn$;

CREATE OR REPLACE FUNCTION pgvec._inner_product(a bytea, b bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE WHEN octet_length(a) <> octet_length(b) OR octet_length(a) % 4 <> 0
        THEN pgvec._dims_error(a, b)
        ELSE coalesce((SELECT sum(pgvec._f4(a, i) * pgvec._f4(b, i))
                       FROM generate_series(0, octet_length(a) / 4 - 1) AS i), 0)
    END
$fn$;

CREATE OR REPLACE FUNCTION pgvec._cosine_distance(a bytea, b bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE WHEN octet_length(a) <> octet_length(b) OR octet_length(a) % 4 <> 0
        THEN pgvec._dims_error(a, b)
        ELSE (SELECT CASE WHEN coalesce(sum(x * x), 0) = 0 OR coalesce(sum(y * y), 0) = 0
                          THEN 'NaN'::float8
                          ELSE 1 - greatest(-1, least(1, sum(x * y) / sqrt(sum(x * x) * sum(y * y))))
                     END
              FROM (SELECT pgvec._f4(a, i) AS x, pgvec._f4(b, i) AS y
                    FROM generate_series(0, octet_length(a) / 4 - 1) AS i OFFSET 0) AS t)
    END
$fn$;

CREATE OR REPLACE FUNCTION pgvec._l1_distance(a bytea, b bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE WHEN octet_length(a) <> octet_length(b) OR octet_length(a) % 4 <> 0
        THEN pgvec._dims_error(a, b)
        ELSE coalesce((SELECT sum(abs(pgvec._f4(a, i) - pgvec._f4(b, i)))
                       FROM generate_series(0, octet_length(a) / 4 - 1) AS i), 0)
    END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.l2_squared_distance(a bytea, b bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT pgvec._l2_squared(a || '\x'::bytea, b || '\x'::bytea)
$fn$;

CREATE OR REPLACE FUNCTION pgvec.l2_distance(a bytea, b bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT sqrt(pgvec._l2_squared(a || '\x'::bytea, b || '\x'::bytea))
$fn$;

CREATE OR REPLACE FUNCTION pgvec.inner_product(a bytea, b bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT pgvec._inner_product(a || '\x'::bytea, b || '\x'::bytea)
$fn$;

CREATE OR REPLACE FUNCTION pgvec.negative_inner_product(a bytea, b bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT -pgvec._inner_product(a || '\x'::bytea, b || '\x'::bytea)
$fn$;

CREATE OR REPLACE FUNCTION pgvec.cosine_distance(a bytea, b bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT pgvec._cosine_distance(a || '\x'::bytea, b || '\x'::bytea)
$fn$;

CREATE OR REPLACE FUNCTION pgvec.l1_distance(a bytea, b bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT pgvec._l1_distance(a || '\x'::bytea, b || '\x'::bytea)
$fn$;

CREATE OR REPLACE FUNCTION pgvec.l2_norm(v bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT sqrt(pgvec._inner_product(v || '\x'::bytea, v || '\x'::bytea))
$fn$;

-- Operators: <-> L2, <#> negative inner product, <=> cosine distance, <+> L1.
DO $do$
DECLARE
    op record;
    types record;
BEGIN
    FOR op IN SELECT * FROM (VALUES ('<->', 'l2_distance'), ('<#>', 'negative_inner_product'),
                                    ('<=>', 'cosine_distance'), ('<+>', 'l1_distance')) AS v(sym, fn)
    LOOP
        FOR types IN SELECT * FROM (VALUES ('bytea', 'bytea')) AS v(l, r)
        LOOP
            IF to_regoperator(format('pgvec.%s(%s,%s)', op.sym, types.l, types.r)) IS NULL THEN
                EXECUTE format('CREATE OPERATOR pgvec.%s (LEFTARG = %s, RIGHTARG = %s, '
                               'FUNCTION = pgvec.%I, COMMUTATOR = OPERATOR(pgvec.%s))',
                               op.sym, types.l, types.r, op.fn, op.sym);
            END IF;
        END LOOP;
    END LOOP;
END
$do$;

-- ---------------------------------------------------------------------------------------
-- pgvector's functions, operators, aggregates and casts, on bytea
-- ---------------------------------------------------------------------------------------
-- The proxy maps pgvector's spellings to these where an operand is a vector: l2_normalize(v)
-- becomes pgvec.l2_normalize(v), v + w pgvec.vector_add(v, w), avg(v) pgvec.avg(v),
-- v::vector(3) pgvec.vector_typmod(v, 3), v::real[] pgvec.to_float4(v), v < w
-- pgvec.vector_lt(v, w). Results are pgvector's (0.7 for l2_normalize, subvector and ||),
-- error messages and SQLSTATEs included.

-- x rounded to float4 as C's (float) cast rounds it (pgvector's conversions): no underflow
-- error where PostgreSQL's float8 -> real cast raises one, and infinity (which the caller
-- rejects with pgvector's message) where it raises an overflow.
CREATE OR REPLACE FUNCTION pgvec._real(x double precision)
RETURNS real LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE WHEN abs(x) <= 7.006492321624085e-46 THEN (x * 0)::real
                WHEN abs(x) >= 3.4028235677973366e+38 THEN sign(x)::real * 'Infinity'::real
                ELSE x::real END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.vector_dims(v bytea)
RETURNS integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$ SELECT pgvec.dims(v) $fn$;

CREATE OR REPLACE FUNCTION pgvec.vector_norm(v bytea)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT pgvec.l2_norm(v) $fn$;

CREATE OR REPLACE FUNCTION pgvec._l2_normalize(v bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE WHEN s.norm > 0
        THEN pgvec.from_float4(ARRAY(SELECT pgvec._real(pgvec._f4(v, i) / s.norm)
                                     FROM generate_series(0, pgvec.dims(v) - 1) AS i ORDER BY i))
        ELSE pgvec.from_float4(array_fill(0::real, ARRAY[pgvec.dims(v)]))
    END
    FROM (SELECT sqrt(pgvec._inner_product(v, v)) AS norm) AS s
$fn$;

CREATE OR REPLACE FUNCTION pgvec.l2_normalize(v bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT pgvec._l2_normalize(v || '\x'::bytea)
$fn$;

-- subvector(v, start, count): start is 1-based; as pgvector, a range running past either
-- end is cut to the vector, and an empty one is an error.
CREATE OR REPLACE FUNCTION pgvec.subvector(bytea, integer, integer)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    v bytea := $1;
    first integer := $2;
    count integer := $3;
    dim integer := pgvec.dims($1);
    stop integer;
BEGIN
    IF count < 1 THEN
        RAISE EXCEPTION 'vector must have at least 1 dimension' USING ERRCODE = '22000';
    END IF;
    IF first > dim - count THEN
        stop := dim + 1;
    ELSE
        stop := first + count;
    END IF;
    IF first < 1 THEN
        first := 1;
    ELSIF first > dim THEN
        RAISE EXCEPTION 'vector must have at least 1 dimension' USING ERRCODE = '22000';
    END IF;
    IF stop - first < 1 THEN
        RAISE EXCEPTION 'vector must have at least 1 dimension' USING ERRCODE = '22000';
    END IF;
    RETURN substring(v FROM 4 * (first - 1) + 1 FOR 4 * (stop - first));
END
$fn$;

-- v || w
CREATE OR REPLACE FUNCTION pgvec.vector_concat(a bytea, b bytea)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    IF pgvec.dims(a) + pgvec.dims(b) > 16000 THEN
        RAISE EXCEPTION 'vector cannot have more than 16000 dimensions' USING ERRCODE = '54000';
    END IF;
    RETURN a || b;
END
$fn$;

-- v + w, v - w, v * w element-wise in float4: PostgreSQL's real arithmetic raises
-- pgvector's overflow and underflow errors.
CREATE OR REPLACE FUNCTION pgvec._vector_arith(a bytea, b bytea, op text)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    n integer := octet_length(a) / 4 - 1;
BEGIN
    IF octet_length(a) <> octet_length(b) OR octet_length(a) % 4 <> 0 THEN
        PERFORM pgvec._dims_error(a, b);
    END IF;
    IF op = '+' THEN
        RETURN pgvec.from_float4(ARRAY(SELECT pgvec._f4(a, i)::real + pgvec._f4(b, i)::real
                                       FROM generate_series(0, n) AS i ORDER BY i));
    ELSIF op = '-' THEN
        RETURN pgvec.from_float4(ARRAY(SELECT pgvec._f4(a, i)::real - pgvec._f4(b, i)::real
                                       FROM generate_series(0, n) AS i ORDER BY i));
    END IF;
    RETURN pgvec.from_float4(ARRAY(SELECT pgvec._f4(a, i)::real * pgvec._f4(b, i)::real
                                   FROM generate_series(0, n) AS i ORDER BY i));
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.vector_add(a bytea, b bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT pgvec._vector_arith(a || '\x'::bytea, b || '\x'::bytea, '+')
$fn$;

CREATE OR REPLACE FUNCTION pgvec.vector_sub(a bytea, b bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT pgvec._vector_arith(a || '\x'::bytea, b || '\x'::bytea, '-')
$fn$;

CREATE OR REPLACE FUNCTION pgvec.vector_mul(a bytea, b bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT pgvec._vector_arith(a || '\x'::bytea, b || '\x'::bytea, '*')
$fn$;

-- Comparisons as pgvector's btree class: element by element as float4 (so -0 = 0), then
-- the shorter vector first; a real[] compares the same way. Equal bytes are equal values,
-- and unequal bytes are unequal values unless a -0 is involved: = decodes only then.
CREATE OR REPLACE FUNCTION pgvec.vector_eq(a bytea, b bytea)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT a = b OR (octet_length(a) = octet_length(b)
                     AND (position('\x00000080'::bytea IN a) > 0
                          OR position('\x00000080'::bytea IN b) > 0)
                     AND pgvec.to_float4(a) = pgvec.to_float4(b))
$fn$;

CREATE OR REPLACE FUNCTION pgvec.vector_ne(a bytea, b bytea)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT NOT pgvec.vector_eq(a, b) $fn$;

CREATE OR REPLACE FUNCTION pgvec.vector_lt(a bytea, b bytea)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT pgvec.to_float4(a) < pgvec.to_float4(b) $fn$;

CREATE OR REPLACE FUNCTION pgvec.vector_le(a bytea, b bytea)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT pgvec.to_float4(a) <= pgvec.to_float4(b) $fn$;

CREATE OR REPLACE FUNCTION pgvec.vector_gt(a bytea, b bytea)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT pgvec.to_float4(a) > pgvec.to_float4(b) $fn$;

CREATE OR REPLACE FUNCTION pgvec.vector_ge(a bytea, b bytea)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT pgvec.to_float4(a) >= pgvec.to_float4(b) $fn$;

-- ORDER BY a vector: by this key
CREATE OR REPLACE FUNCTION pgvec.vector_sort_key(v bytea)
RETURNS real[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT pgvec.to_float4(v) $fn$;

-- avg(vector): sums in float8 ({count, sum 1, sum 2, ...}), as pgvector
CREATE OR REPLACE FUNCTION pgvec._vector_accum(state double precision[], v bytea)
RETURNS double precision[] LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    n integer := pgvec.dims(v);
BEGIN
    IF state[1] = 0 THEN
        RETURN array_prepend(1::float8, ARRAY(SELECT pgvec._f4(v, i)
                                              FROM generate_series(0, n - 1) AS i ORDER BY i));
    END IF;
    IF cardinality(state) - 1 <> n THEN
        RAISE EXCEPTION 'expected % dimensions, not %', cardinality(state) - 1, n
            USING ERRCODE = '22000';
    END IF;
    RETURN array_prepend(state[1] + 1, ARRAY(SELECT state[i + 2] + pgvec._f4(v, i)
                                             FROM generate_series(0, n - 1) AS i ORDER BY i));
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec._vector_avg(state double precision[])
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE WHEN state[1] = 0 THEN NULL
        ELSE pgvec.from_float4(ARRAY(SELECT pgvec._real(state[i] / state[1])
                                     FROM generate_series(2, cardinality(state)) AS i ORDER BY i))
    END
$fn$;

CREATE OR REPLACE AGGREGATE pgvec.avg(bytea) (
    SFUNC = pgvec._vector_accum, STYPE = double precision[], FINALFUNC = pgvec._vector_avg,
    INITCOND = '{0}', PARALLEL = SAFE
);

-- sum(vector): float4 additions, as pgvector's (vector_add)
CREATE OR REPLACE AGGREGATE pgvec.sum(bytea) (
    SFUNC = pgvec.vector_add, STYPE = bytea, PARALLEL = SAFE
);

-- Casts to vector: from integer[], real[], double precision[], numeric[] (pgvector's
-- element conversions), from a vector (no-op); ::vector(n) then checks the dimension.
CREATE OR REPLACE FUNCTION pgvec.vector(a integer[])
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT pgvec.vector(a::real[]) $fn$;
CREATE OR REPLACE FUNCTION pgvec.vector(a numeric[])
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT pgvec.vector(a::real[]) $fn$;
CREATE OR REPLACE FUNCTION pgvec.vector(a double precision[])
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    IF array_ndims(a) > 1 THEN
        RAISE EXCEPTION 'array must be 1-D' USING ERRCODE = '22000';
    END IF;
    RETURN pgvec.from_float4(ARRAY(SELECT pgvec._real(e) FROM unnest(a) WITH ORDINALITY AS t(e, i)
                                   ORDER BY i));
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.vector_typmod(v bytea, dim integer)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    IF pgvec.dims(v) <> dim THEN
        RAISE EXCEPTION 'expected % dimensions, not %', dim, pgvec.dims(v) USING ERRCODE = '22000';
    END IF;
    RETURN v;
END
$fn$;

-- Arrays of vectors (pgvector's vector[]): a bytea[] column with CHECK
-- (pgvec.is_vector_array(col, dim)), or (col) for vectors of any dimension. True iff every
-- element that is not NULL is a vector (of dim dimensions).
CREATE OR REPLACE FUNCTION pgvec.is_vector_array(v bytea[], dim integer)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT NOT EXISTS (SELECT FROM unnest(v) AS e WHERE NOT pgvec.is_vector(e, dim))
$fn$;

CREATE OR REPLACE FUNCTION pgvec.is_vector_array(v bytea[])
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT NOT EXISTS (SELECT FROM unnest(v) AS e WHERE NOT pgvec.is_vector(e))
$fn$;

-- text[] of pgvector's text forms -> bytea[] ('{"[1,2]","[3,4]"}'::vector[]); NULL
-- elements stay NULL.
CREATE OR REPLACE FUNCTION pgvec.vector_array(a text[])
RETURNS bytea[] LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    IF array_ndims(a) > 1 THEN
        RAISE EXCEPTION 'multidimensional arrays of vectors are not supported'
            USING ERRCODE = '0A000';
    END IF;
    RETURN ARRAY(SELECT pgvec.vector_in(e) FROM unnest(a) WITH ORDINALITY AS t(e, i) ORDER BY i);
END
$fn$;

-- bytea[] -> pgvector's text form of a vector[]: '{"[1,2]","[3,4]"}'
CREATE OR REPLACE FUNCTION pgvec.vector_array_out(a bytea[])
RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT ARRAY(SELECT pgvec.vector_out(e) FROM unnest(a) WITH ORDINALITY AS t(e, i)
                 ORDER BY i)::text
$fn$;

-- vector(dim)[]: every element has dim dimensions
CREATE OR REPLACE FUNCTION pgvec.vector_array_typmod(a bytea[], dim integer)
RETURNS bytea[] LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    e bytea;
BEGIN
    FOREACH e IN ARRAY a LOOP
        IF e IS NOT NULL THEN
            PERFORM pgvec.vector_typmod(e, dim);
        END IF;
    END LOOP;
    RETURN a;
END
$fn$;

-- ---------------------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS pgvec.indexes (
    index_name   name NOT NULL,
    schema_name  name NOT NULL,
    relid        oid NOT NULL,
    attnum       smallint NOT NULL,
    column_name  name NOT NULL,
    method       text NOT NULL,
    metric       text NOT NULL,
    options      jsonb NOT NULL DEFAULT '{}',
    -- building | ready | failed (error says why) | released (saved on disk, not in memory)
    state        text NOT NULL DEFAULT 'building',
    progress     real NOT NULL DEFAULT 0,
    rows_indexed bigint NOT NULL DEFAULT 0,
    memory_bytes bigint NOT NULL DEFAULT 0,  -- as of the last save, in the pgvec server
    disk_bytes   bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    error        text,  -- why the last build failed
    dim          integer,
    PRIMARY KEY (schema_name, index_name),
    -- pgvector allows indexes of different operator classes on one column (one per metric)
    UNIQUE (relid, attnum, metric)
);
-- Catalogs of an earlier pgvec allowed one index per column: UNIQUE (relid, attnum).
DO $do$
DECLARE
    old name;
BEGIN
    FOR old IN
        SELECT c.conname FROM pg_constraint c
        WHERE c.conrelid = 'pgvec.indexes'::regclass AND c.contype = 'u'
          AND c.conkey::int2[] = (SELECT array_agg(a.attnum ORDER BY a.attnum)
                                  FROM pg_attribute a
                                  WHERE a.attrelid = 'pgvec.indexes'::regclass
                                    AND a.attname IN ('relid', 'attnum'))
    LOOP
        EXECUTE format('ALTER TABLE pgvec.indexes DROP CONSTRAINT %I', old);
    END LOOP;
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conrelid = 'pgvec.indexes'::regclass
                     AND conname = 'indexes_relid_attnum_metric_key') THEN
        ALTER TABLE pgvec.indexes
            ADD CONSTRAINT indexes_relid_attnum_metric_key UNIQUE (relid, attnum, metric);
    END IF;
END
$do$;
ALTER TABLE pgvec.indexes ADD COLUMN IF NOT EXISTS error text;
-- the column's dimension when the index was created: the column stays a vector column
-- (pgvec.vector_columns) while it has an index, even if its CHECK is dropped or rewritten
ALTER TABLE pgvec.indexes ADD COLUMN IF NOT EXISTS dim integer;
-- The table again, as a regclass: the same OID, written by name. pg_dump writes it as the
-- table's qualified name, and a restore through pgvec reads the index definitions from
-- the dump by it (the OID in relid means nothing in the restored database).
ALTER TABLE pgvec.indexes ADD COLUMN IF NOT EXISTS rel regclass;
CREATE OR REPLACE FUNCTION pgvec._indexes_rel()
RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.rel := NEW.relid;
    RETURN NEW;
END
$fn$;
DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_trigger
                   WHERE tgrelid = 'pgvec.indexes'::regclass AND tgname = 'indexes_set_rel') THEN
        CREATE TRIGGER indexes_set_rel BEFORE INSERT OR UPDATE OF relid ON pgvec.indexes
            FOR EACH ROW EXECUTE FUNCTION pgvec._indexes_rel();
    END IF;
END
$do$;
UPDATE pgvec.indexes SET rel = relid WHERE rel IS NULL OR rel::oid <> relid;
-- Other indexes of the same operator class on the column, as pgvector allows (an HNSW
-- index made beside an IVFFlat one): the row is the index created last, which pgvec
-- builds and searches; these are the definitions it superseded, oldest first
-- ({"index_name", "method", "options", "created_at"}). DROP INDEX of the row's index
-- builds the last of them in its place; DROP INDEX of one of them forgets it.
ALTER TABLE pgvec.indexes ADD COLUMN IF NOT EXISTS standby jsonb NOT NULL DEFAULT '[]';
-- The options its CREATE INDEX gave (WITH, by pgvector's names: {m=16}; NULL without
-- any), as pg_class.reloptions and pg_indexes show them through pgvec; a standby index
-- keeps its own in "reloptions".
ALTER TABLE pgvec.indexes ADD COLUMN IF NOT EXISTS reloptions text[];

-- What a Milvus client asked for, which DescribeIndex echoes as Milvus does: the index
-- type as given (AUTOINDEX) and the properties of AlterIndex (mmap.enabled). Set by the
-- table's owner through pgvec.set_milvus_index_params.
ALTER TABLE pgvec.indexes ADD COLUMN IF NOT EXISTS milvus_params jsonb NOT NULL DEFAULT '{}';

-- The one-column CHECK constraints that call a function (pg_depend): the column, the
-- function and the constraint's definition, which the views below read pgvec's out of.
CREATE OR REPLACE VIEW pgvec._column_checks AS
SELECT c.conrelid AS relid, n.nspname AS schema_name, r.relname AS table_name, a.attnum,
       a.attname AS column_name, a.atttypid, d.refobjid AS fn, c.oid AS conoid,
       pg_get_constraintdef(c.oid) AS def
FROM pg_depend d
JOIN pg_constraint c ON d.classid = 'pg_constraint'::regclass AND d.objid = c.oid
JOIN pg_class r ON r.oid = c.conrelid
JOIN pg_namespace n ON n.oid = r.relnamespace
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
WHERE d.refclassid = 'pg_proc'::regclass
  AND c.contype = 'c'
  AND cardinality(c.conkey) = 1
  AND NOT a.attisdropped;

-- Vector columns, discovered from CHECK (pgvec.is_vector(col, dim)) constraints, columns
-- of any dimension (dim NULL) from CHECK (pgvec.is_vector(col)) ones, and
-- binary vector columns (is_binary, dim in bits) from CHECK (pgvec.is_binary_vector(
-- col, dim)) ones: the
-- constraint depends on the function (pg_depend), its single conkey is the column, and
-- the dimension is read from the constraint's definition. Names are looked up live, so
-- table and column renames are followed.
-- A bytea column with a pgvec index stays a vector column when its CHECK is dropped or
-- rewritten (checked = false, the dimension recorded with the index): what pgvec holds
-- for a table goes only with the table or the column, never with a constraint.
CREATE OR REPLACE VIEW pgvec.vector_columns AS
SELECT DISTINCT ON (v.relid, v.attnum)
       v.relid, v.schema_name, v.table_name, v.attnum, v.column_name, v.dim, v.checked,
       v.is_binary
FROM (
    SELECT k.relid, k.schema_name, k.table_name, k.attnum, k.column_name,
           (regexp_match(k.def,
                         '^CHECK \((?:pgvec\.)?is_(?:binary_)?vector\(.*, (\d+)\)\)( NOT VALID)?$'))[1]::integer
               AS dim,
           true AS checked,
           k.conoid AS ord,
           k.fn = 'pgvec.is_binary_vector(bytea,integer)'::regprocedure AS is_binary
    FROM pgvec._column_checks k
    WHERE k.fn IN ('pgvec.is_vector(bytea,integer)'::regprocedure,
                   'pgvec.is_binary_vector(bytea,integer)'::regprocedure)
      AND k.def ~ '^CHECK \((?:pgvec\.)?is_(?:binary_)?vector\(.*, (\d+)\)\)( NOT VALID)?$'
    UNION ALL
    -- a column of any dimension
    SELECT k.relid, k.schema_name, k.table_name, k.attnum, k.column_name, NULL::integer, true,
           k.conoid, false
    FROM pgvec._column_checks k
    WHERE k.fn = 'pgvec.is_vector(bytea)'::regprocedure
      AND k.def ~ '^CHECK \((?:pgvec\.)?is_vector\((?:"(?:[^"]|"")*"|[^",()]*)\)\)( NOT VALID)?$'
    UNION ALL
    -- an indexed column without its CHECK: binary when its index's metric is
    SELECT i.relid, n.nspname, r.relname, a.attnum, a.attname, i.dim, false, 0::oid,
           i.metric IN ('HAMMING', 'JACCARD')
    FROM pgvec.indexes i
    JOIN pg_class r ON r.oid = i.relid
    JOIN pg_namespace n ON n.oid = r.relnamespace
    JOIN pg_attribute a ON a.attrelid = i.relid AND a.attnum = i.attnum
    WHERE i.dim IS NOT NULL AND NOT a.attisdropped AND a.atttypid = 'bytea'::regtype
) v
ORDER BY v.relid, v.attnum, v.checked DESC, v.ord;

-- Arrays of vectors (vector[], vector(n)[]), discovered from CHECK
-- (pgvec.is_vector_array(col[, dim])) constraints on bytea[] columns as vector columns are.
CREATE OR REPLACE VIEW pgvec.vector_array_columns AS
SELECT DISTINCT ON (k.relid, k.attnum)
       k.relid, k.attnum, k.column_name,
       (regexp_match(k.def, '^CHECK \((?:pgvec\.)?is_vector_array\(.*, (\d+)\)\)( NOT VALID)?$'))[1]::integer
           AS dim
FROM pgvec._column_checks k
WHERE k.fn IN ('pgvec.is_vector_array(bytea[],integer)'::regprocedure,
               'pgvec.is_vector_array(bytea[])'::regprocedure)
  AND k.atttypid = 'bytea[]'::regtype
ORDER BY k.relid, k.attnum, k.conoid;

-- information_schema.columns as clients see it through pgvec: a vector column's data_type
-- is USER-DEFINED and its udt_name vector, an array of vectors' ARRAY and _vector, as with
-- pgvector (LangChain's PGVectorStore checks them), where pgvec's vector type exists. The
-- proxy reads this view where a query names information_schema.columns.
CREATE OR REPLACE VIEW pgvec.information_schema_columns AS
SELECT c.table_catalog,
       c.table_schema,
       c.table_name,
       c.column_name,
       c.ordinal_position,
       c.column_default,
       c.is_nullable,
       CASE WHEN v.is_array IS NULL THEN c.data_type
            WHEN v.is_array THEN 'ARRAY' ELSE 'USER-DEFINED' END::information_schema.character_data
           AS data_type,
       c.character_maximum_length,
       c.character_octet_length,
       c.numeric_precision,
       c.numeric_precision_radix,
       c.numeric_scale,
       c.datetime_precision,
       c.interval_type,
       c.interval_precision,
       c.character_set_catalog,
       c.character_set_schema,
       c.character_set_name,
       c.collation_catalog,
       c.collation_schema,
       c.collation_name,
       c.domain_catalog,
       c.domain_schema,
       c.domain_name,
       c.udt_catalog,
       CASE WHEN v.is_array IS NULL OR f.nspname IS NULL THEN c.udt_schema
            ELSE f.nspname END::information_schema.sql_identifier AS udt_schema,
       CASE WHEN v.is_array IS NULL OR f.nspname IS NULL THEN c.udt_name
            WHEN v.is_array THEN f.arrayname ELSE f.typname END::information_schema.sql_identifier
           AS udt_name,
       c.scope_catalog,
       c.scope_schema,
       c.scope_name,
       c.maximum_cardinality,
       c.dtd_identifier,
       c.is_self_referencing,
       c.is_identity,
       c.identity_generation,
       c.identity_start,
       c.identity_increment,
       c.identity_maximum,
       c.identity_minimum,
       c.identity_cycle,
       c.is_generated,
       c.generation_expression,
       c.is_updatable
FROM information_schema.columns c
LEFT JOIN (
    SELECT schema_name, table_name, column_name, false AS is_array
    FROM pgvec.vector_columns WHERE NOT is_binary
    UNION ALL
    SELECT n.nspname, r.relname, a.column_name, true
    FROM pgvec.vector_array_columns a
    JOIN pg_class r ON r.oid = a.relid
    JOIN pg_namespace n ON n.oid = r.relnamespace
) v ON v.schema_name = c.table_schema AND v.table_name = c.table_name
   AND v.column_name = c.column_name
LEFT JOIN (
    SELECT n.nspname, t.typname, a.typname AS arrayname
    FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace
    JOIN pg_type a ON a.oid = t.typarray
    WHERE t.typname = 'vector'
    ORDER BY t.typnamespace <> coalesce(to_regnamespace('public')::oid, 0), t.oid LIMIT 1
) f ON true;
GRANT SELECT ON pgvec.information_schema_columns TO PUBLIC;

-- The name pgvector gives an index option pgvec keeps under Milvus's name.
CREATE OR REPLACE FUNCTION pgvec._option_name(key text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT CASE key WHEN 'M' THEN 'm' WHEN 'efConstruction' THEN 'ef_construction'
                    WHEN 'nlist' THEN 'lists' ELSE key END
$fn$;

-- Each pgvec index, standby ones too, as PostgreSQL would list it: its table's schema,
-- name, method, the options its CREATE INDEX gave and when it was made.
CREATE OR REPLACE VIEW pgvec.index_entries AS
SELECT i.schema_name, i.relid, i.attnum, i.metric, x.name, x.method, x.reloptions, x.created_at
FROM pgvec.indexes i
CROSS JOIN LATERAL (
    SELECT i.index_name::text AS name, i.method, i.reloptions, i.created_at
    UNION ALL
    SELECT s->>'index_name', s->>'method',
           CASE WHEN jsonb_typeof(s->'reloptions') = 'array'
                THEN ARRAY(SELECT jsonb_array_elements_text(s->'reloptions')) END,
           (s->>'created_at')::timestamptz
    FROM jsonb_array_elements(i.standby) s
) x;
GRANT SELECT ON pgvec.index_entries TO PUBLIC;

-- pg_indexes as clients see it through pgvec: PostgreSQL's rows, then pgvec's indexes
-- (standby ones too) with the definition pgvector's would have (LangChain's PGVectorStore
-- looks its index up there). The proxy reads this view where a query names pg_indexes.
CREATE OR REPLACE VIEW pgvec.pg_indexes AS
SELECT schemaname, tablename, indexname, tablespace, indexdef FROM pg_catalog.pg_indexes
UNION ALL
SELECT n.nspname, r.relname, x.name::name, NULL::name,
       format('CREATE INDEX %I ON %I.%I USING %s (%I%s)%s', x.name, n.nspname, r.relname,
              CASE x.method WHEN 'HNSW' THEN 'hnsw' WHEN 'IVF_FLAT' THEN 'ivfflat'
                            ELSE lower(x.method) END,
              a.attname,
              -- (none where it is the default, as PostgreSQL writes it: ivfflat's L2)
              CASE WHEN x.method = 'IVF_FLAT' AND x.metric = 'L2' THEN ''
                   WHEN x.metric = 'L2' THEN ' vector_l2_ops' WHEN x.metric = 'IP' THEN ' vector_ip_ops'
                   WHEN x.metric = 'COSINE' THEN ' vector_cosine_ops'
                   WHEN x.metric = 'L1' THEN ' vector_l1_ops'
                   ELSE lower(' bit_' || x.metric || '_ops') END,
              (SELECT ' WITH (' || string_agg(format('%s=%L', split_part(o, '=', 1),
                                                     substr(o, strpos(o, '=') + 1)), ', ')
                      || ')'
               FROM unnest(x.reloptions) o))
FROM pgvec.index_entries x
JOIN pg_class r ON r.oid = x.relid
JOIN pg_namespace n ON n.oid = r.relnamespace
JOIN pg_attribute a ON a.attrelid = x.relid AND a.attnum = x.attnum;
GRANT SELECT ON pgvec.pg_indexes TO PUBLIC;

-- The OID pg_class shows a pgvec index under (pgvec.pg_class): from its name and when it
-- was made (an index made again gets another), in the top 2^28 OIDs, which PostgreSQL's
-- counter reaches only after some four billion objects. No relation has it, so regclass
-- and the other catalogs do not know it.
CREATE OR REPLACE FUNCTION pgvec.index_oid(nsp name, idx text, made timestamptz)
RETURNS oid LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
    SELECT (4026531840::bigint
            + (hashtext(nsp || '.' || idx || '@' || coalesce(extract(epoch FROM made), 0)::text)::bigint
               & 268435455))::oid
$fn$;

-- pg_class as clients see it through pgvec: PostgreSQL's rows, then one for each pgvec
-- index (standby ones too), as an index of its table (relkind 'i', or 'I' on a
-- partitioned table; the table's schema and owner; no access method; the options its
-- CREATE INDEX gave): tools look an index up there by name and kind (supabase's vecs,
-- pgvector-haystack). The proxy reads this view where a query names pg_class; its last
-- column is pg_class's tableoid, which pg_dump reads.
CREATE OR REPLACE VIEW pgvec.pg_class AS
SELECT c.*, c.tableoid FROM pg_catalog.pg_class c
UNION ALL
SELECT (r.r).*, 'pg_catalog.pg_class'::regclass::oid
FROM pgvec.index_entries x
JOIN pg_catalog.pg_class t ON t.oid = x.relid
CROSS JOIN LATERAL (
    SELECT jsonb_populate_record(t, jsonb_build_object(
        'oid', pgvec.index_oid(x.schema_name, x.name, x.created_at), 'relname', x.name,
        'reltype', 0, 'reloftype', 0, 'relam', 0, 'relfilenode', 0, 'relpages', 0,
        'reltuples', -1, 'relallvisible', 0, 'reltoastrelid', 0, 'relhasindex', false,
        'relkind', CASE t.relkind WHEN 'p' THEN 'I' ELSE 'i' END, 'relnatts', 1,
        'relchecks', 0, 'relhasrules', false, 'relhastriggers', false,
        'relhassubclass', false, 'relrowsecurity', false, 'relforcerowsecurity', false,
        'relispopulated', true, 'relreplident', 'n', 'relispartition', t.relispartition,
        'relrewrite', 0, 'relfrozenxid', 0, 'relminmxid', 0, 'relacl', NULL,
        'reloptions', x.reloptions, 'relpartbound', NULL)) AS r
) r;
GRANT SELECT ON pgvec.pg_class TO PUBLIC;

-- pg_extension and pg_available_extensions as clients see them through pgvec: pgvector's
-- extension is there wherever pgvec's vector type is (pgvec answers CREATE EXTENSION
-- vector itself and gives its surface in every database it serves), at the version whose
-- surface pgvec gives; where the real pgvector is installed, its own row stands. Tools
-- look it up before they create tables or choose index types (supabase's vecs, psql's
-- \dx). The proxy reads these views where a query names the catalogs; pg_dump reads
-- pg_extension's tableoid, which a view has as a column of its own.
CREATE OR REPLACE VIEW pgvec.pg_extension AS
SELECT e.oid, e.extname, e.extowner, e.extnamespace, e.extrelocatable, e.extversion,
       e.extconfig, e.extcondition, e.tableoid
FROM pg_catalog.pg_extension e
UNION ALL
SELECT t.oid, 'vector'::name, t.typowner, t.typnamespace, true, '0.6.0'::text, NULL::oid[],
       NULL::text[], 'pg_catalog.pg_extension'::regclass::oid
FROM pg_catalog.pg_type t
WHERE t.oid = to_regtype('public.vector')
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'vector');
GRANT SELECT ON pgvec.pg_extension TO PUBLIC;

CREATE OR REPLACE VIEW pgvec.pg_available_extensions AS
SELECT a.name, a.default_version, a.installed_version, a.comment
FROM pg_catalog.pg_available_extensions a
WHERE a.name <> 'vector' OR EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'vector')
UNION ALL
SELECT 'vector'::name, '0.6.0'::text, '0.6.0'::text,
       'vector data type and ivfflat and hnsw access methods'::text
WHERE to_regtype('public.vector') IS NOT NULL
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'vector');
GRANT SELECT ON pgvec.pg_available_extensions TO PUBLIC;

CREATE OR REPLACE VIEW pgvec.pg_available_extension_versions AS
SELECT a.name, a.version, a.installed, a.superuser, a.trusted, a.relocatable, a.schema,
       a.requires, a.comment
FROM pg_catalog.pg_available_extension_versions a
WHERE a.name <> 'vector' OR EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'vector')
UNION ALL
SELECT 'vector'::name, '0.6.0'::text, true, true, false, true, NULL::name, NULL::name[],
       'vector data type and ivfflat and hnsw access methods'::text
WHERE to_regtype('public.vector') IS NOT NULL
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'vector');
GRANT SELECT ON pgvec.pg_available_extension_versions TO PUBLIC;

-- A column's type as clients see it through pgvec: vector(n) for a vector column, else
-- PostgreSQL's format_type(). The proxy calls it where a catalog query (psql's \d,
-- SQLAlchemy's reflection) asks format_type(atttypid, atttypmod) of a pg_attribute row.
CREATE OR REPLACE FUNCTION pgvec.format_type(rel oid, att smallint, typ oid, typmod integer)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
    SELECT CASE WHEN typ = 'bytea'::regtype THEN
        coalesce((SELECT CASE WHEN v.dim IS NULL THEN 'vector' ELSE format('vector(%s)', v.dim) END
                  FROM pgvec.vector_columns v
                  WHERE v.relid = rel AND v.attnum = att AND NOT v.is_binary),
                 pg_catalog.format_type(typ, typmod))
    WHEN typ = 'bytea[]'::regtype THEN
        coalesce((SELECT CASE WHEN v.dim IS NULL THEN 'vector[]' ELSE format('vector(%s)[]', v.dim) END
                  FROM pgvec.vector_array_columns v
                  WHERE v.relid = rel AND v.attnum = att),
                 pg_catalog.format_type(typ, typmod))
    ELSE pg_catalog.format_type(typ, typmod) END
$fn$;


-- A column's typmod as clients see it through pgvec: n for a vector(n) column or an
-- array of them, -1 for one without a dimension, as pgvector's (supabase's vecs reads a
-- collection's dimension as pg_attribute.atttypmod); atttypmod for every other column.
-- The proxy calls it where a catalog query reads atttypmod other than for format_type.
CREATE OR REPLACE FUNCTION pgvec.atttypmod(rel oid, att smallint, typ oid, typmod integer)
RETURNS integer LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
    SELECT CASE WHEN typ = 'bytea'::regtype THEN
        coalesce((SELECT coalesce(v.dim, -1) FROM pgvec.vector_columns v
                  WHERE v.relid = rel AND v.attnum = att AND NOT v.is_binary), typmod)
    WHEN typ = 'bytea[]'::regtype THEN
        coalesce((SELECT coalesce(v.dim, -1) FROM pgvec.vector_array_columns v
                  WHERE v.relid = rel AND v.attnum = att), typmod)
    ELSE typmod END
$fn$;


-- indexes created before pgvec.indexes recorded their dimension
UPDATE pgvec.indexes i SET dim = v.dim
FROM pgvec.vector_columns v
WHERE i.dim IS NULL AND v.relid = i.relid AND v.attnum = i.attnum AND v.checked;

-- The column search hits join back on: the table's single-column primary key; for a
-- partitioned table or a partition, whose primary key must hold the partition key, the one
-- primary key column that is no partition key column of it or of its ancestors. (Each
-- leaf partition is a table of its own, with its own OID and index: a hit is a (leaf OID,
-- key) pair, so the key need only be unique within a leaf.) NULL when there is none.
CREATE OR REPLACE FUNCTION pgvec._key_column(rel oid)
RETURNS name LANGUAGE sql STABLE AS $fn$
    SELECT CASE WHEN count(*) = 1 THEN min(k.attname) END
    FROM (
        SELECT a.attname
        FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid
         AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])
        WHERE i.indrelid = rel AND i.indisprimary
          AND a.attname NOT IN (
              SELECT pa.attname
              FROM pg_partition_ancestors(rel) AS anc(relid)
              JOIN pg_partitioned_table pt ON pt.partrelid = anc.relid
              JOIN pg_attribute pa ON pa.attrelid = pt.partrelid
               AND pa.attnum = ANY (pt.partattrs::int2[]))
    ) k
$fn$;

-- One row per table with at least one vector column. pk_column/pk_type are NULL unless the
-- table has a key column (pgvec._key_column). column_names/column_types/column_attnums list all
-- live columns in attnum order (the order of a positional INSERT). tracked: whether the
-- change-log triggers are installed (pgvec.track()). partitioned: a partitioned table
-- (relkind 'p'), whose rows live in its leaf partitions (partitions: their OIDs, each
-- listed here as a table of its own).
CREATE OR REPLACE VIEW pgvec.table_info AS
SELECT r.oid AS relid,
       n.nspname AS schema_name,
       r.relname AS table_name,
       pk.attname AS pk_column,
       pk.pk_type,
       cols.column_names,
       cols.column_types,
       cols.column_attnums,
       EXISTS (SELECT 1 FROM pg_trigger t
               WHERE t.tgrelid = r.oid AND t.tgname = 'pgvec_log_insert') AS tracked,
       cols.column_collations,
       r.relkind = 'p' AS partitioned,
       CASE WHEN r.relkind = 'p' THEN coalesce(
           (SELECT array_agg(pt.relid::oid ORDER BY pt.relid::oid) FROM pg_partition_tree(r.oid) pt
            WHERE pt.isleaf), '{}') END AS partitions
FROM pg_class r
JOIN pg_namespace n ON n.oid = r.relnamespace
LEFT JOIN LATERAL (
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS pk_type
    FROM pg_attribute a
    WHERE a.attrelid = r.oid AND a.attname = pgvec._key_column(r.oid)
) pk ON true
CROSS JOIN LATERAL (
    SELECT array_agg(a.attname ORDER BY a.attnum) AS column_names,
           array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) AS column_types,
           array_agg(a.attnum ORDER BY a.attnum) AS column_attnums,
           array_agg(a.attcollation::int8 ORDER BY a.attnum) AS column_collations
    FROM pg_attribute a
    WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
) cols
WHERE r.oid IN (SELECT relid FROM pgvec.vector_columns);

-- Builds in progress, written by the pgvec server about twice a second while it builds an
-- index (CREATE INDEX, REINDEX, CONCURRENTLY or not); a row goes when its build ends.
-- UNLOGGED: progress is not worth WAL, and a crash of PostgreSQL empties it.
CREATE UNLOGGED TABLE IF NOT EXISTS pgvec.build_progress (
    relid       oid NOT NULL,
    attnum      smallint NOT NULL,
    schema_name name NOT NULL,
    index_name  name NOT NULL,
    command     text NOT NULL,
    phase       text NOT NULL,
    rows_done   bigint NOT NULL DEFAULT 0,
    rows_total  bigint NOT NULL DEFAULT 0,
    percent     real NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    metric      text NOT NULL DEFAULT '',  -- of the index: one build per index of a column
    PRIMARY KEY (relid, attnum, metric)
);
-- Earlier pgvec: one build per column, PRIMARY KEY (relid, attnum).
ALTER TABLE pgvec.build_progress ADD COLUMN IF NOT EXISTS metric text NOT NULL DEFAULT '';
DO $do$
BEGIN
    IF (SELECT cardinality(conkey) FROM pg_constraint
        WHERE conrelid = 'pgvec.build_progress'::regclass AND contype = 'p') = 2 THEN
        ALTER TABLE pgvec.build_progress DROP CONSTRAINT build_progress_pkey,
            ADD PRIMARY KEY (relid, attnum, metric);
    END IF;
END
$do$;

-- One row per index build in progress, in the spirit of pg_stat_progress_create_index.
-- phase: initializing, training (IVF), adding rows, saving. percent: of the whole
-- build. updated_at older than a few seconds means the pgvec server stopped mid-build.
CREATE OR REPLACE VIEW pgvec.index_progress AS
SELECT p.schema_name,
       p.index_name,
       c.relname AS table_name,
       a.attname AS column_name,
       p.command,
       p.phase,
       p.rows_done,
       p.rows_total,
       round(p.percent::numeric, 1) AS percent,
       p.started_at,
       p.updated_at,
       now() - p.started_at AS elapsed
FROM pgvec.build_progress p
LEFT JOIN pg_class c ON c.oid = p.relid
LEFT JOIN pg_attribute a ON a.attrelid = p.relid AND a.attnum = p.attnum;

GRANT SELECT ON pgvec.meta, pgvec.indexes, pgvec.vector_columns, pgvec.vector_array_columns,
    pgvec.table_info,
    pgvec.build_progress, pgvec.index_progress TO PUBLIC;

-- Load and release (Milvus's load_collection / release_collection) run in the pgvec server,
-- which intercepts `SELECT pgvec.load('index')` and `SELECT pgvec.release('index')`. These
-- definitions only answer a call that reached PostgreSQL directly.
CREATE OR REPLACE FUNCTION pgvec._runs_in_server(fn text)
RETURNS bigint LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'pgvec.%() runs in the pgvec server, not in PostgreSQL', fn
        USING ERRCODE = '0A000',
              HINT = format('Connect through pgvec and send SELECT pgvec.%s(''index_name'') '
                            'as a statement of its own.', fn);
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.load(index_name text)
RETURNS bigint LANGUAGE sql AS $$ SELECT pgvec._runs_in_server('load') $$;

CREATE OR REPLACE FUNCTION pgvec.release(index_name text)
RETURNS bigint LANGUAGE sql AS $$ SELECT pgvec._runs_in_server('release') $$;

-- ---------------------------------------------------------------------------------------
-- Change log
-- ---------------------------------------------------------------------------------------

-- op: 'i' insert, 'u' update, 'd' delete (key = primary key as text), 't' truncate (key NULL).
-- xid: the writing transaction. Sequence numbers commit out of order; a reader that
-- remembers the highest seq it saw and its snapshot's xmin can ask only for rows it may
-- not have seen: seq > last seq, or written by a transaction that was still running.
CREATE TABLE IF NOT EXISTS pgvec.changes (
    seq   bigserial PRIMARY KEY,
    relid oid NOT NULL,
    key   text,
    op    "char" NOT NULL,
    xid   xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX IF NOT EXISTS changes_relid_idx ON pgvec.changes (relid);

-- Statement-level trigger functions; TG_ARGV[0] is the primary key column. SECURITY
-- DEFINER so that writers of a tracked table need no privilege on pgvec.changes.
CREATE OR REPLACE FUNCTION pgvec._log_insert()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    EXECUTE format('INSERT INTO pgvec.changes (relid, key, op) SELECT $1, %I::text, ''i'' FROM new_rows',
                   TG_ARGV[0])
        USING TG_RELID;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec._log_delete()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    EXECUTE format('INSERT INTO pgvec.changes (relid, key, op) SELECT $1, %I::text, ''d'' FROM old_rows',
                   TG_ARGV[0])
        USING TG_RELID;
    RETURN NULL;
END
$fn$;

-- New keys as 'u'; old keys that no longer exist after the update (key changed) as 'd'.
CREATE OR REPLACE FUNCTION pgvec._log_update()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    EXECUTE format('INSERT INTO pgvec.changes (relid, key, op) '
                   'SELECT $1, n.%1$I::text, ''u'' FROM new_rows n '
                   'UNION ALL '
                   'SELECT $1, o.%1$I::text, ''d'' FROM old_rows o '
                   'WHERE NOT EXISTS (SELECT FROM new_rows n WHERE n.%1$I = o.%1$I)',
                   TG_ARGV[0])
        USING TG_RELID;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec._log_truncate()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    INSERT INTO pgvec.changes (relid, key, op) VALUES (TG_RELID, NULL, 't');
    RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION pgvec._log_insert(), pgvec._log_delete(), pgvec._log_update(),
    pgvec._log_truncate() FROM PUBLIC;

-- The keys of rel the calling transaction itself wrote (NULL for a TRUNCATE), so that a
-- top-k inside a transaction sees its own rows. Shows nothing of other transactions:
-- only rows whose xid is the caller's own, assigned when it first wrote.
CREATE OR REPLACE FUNCTION pgvec.own_changes(rel oid)
RETURNS TABLE (key text) LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT DISTINCT c.key FROM pgvec.changes c
    WHERE pg_current_xact_id_if_assigned() IS NOT NULL
      AND c.relid = rel AND c.xid = pg_current_xact_id_if_assigned()
$fn$;

-- Row-level change logging for partitioned tables. A statement trigger on a partitioned
-- table fires for the parent only (its TG_RELID is the parent's), and one on a partition
-- does not fire for rows routed through the parent; a row trigger created on the parent is
-- cloned to every partition, present and future, and fires with the partition's own
-- TG_RELID. So each leaf's changes are logged under the leaf's OID, which its index is
-- keyed by. A row moved to another partition by an UPDATE fires DELETE on the old leaf
-- and INSERT on the new one. TG_ARGV[0] is the key column (pgvec._key_column).
CREATE OR REPLACE FUNCTION pgvec._log_row()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    new_key text;
    old_key text;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        EXECUTE format('SELECT ($1).%I::text', TG_ARGV[0]) INTO new_key USING NEW;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        EXECUTE format('SELECT ($1).%I::text', TG_ARGV[0]) INTO old_key USING OLD;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO pgvec.changes (relid, key, op) VALUES (TG_RELID, new_key, 'i');
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO pgvec.changes (relid, key, op) VALUES (TG_RELID, old_key, 'd');
    ELSE
        INSERT INTO pgvec.changes (relid, key, op) VALUES (TG_RELID, new_key, 'u');
        IF old_key IS DISTINCT FROM new_key THEN
            INSERT INTO pgvec.changes (relid, key, op) VALUES (TG_RELID, old_key, 'd');
        END IF;
    END IF;
    RETURN NULL;
END
$fn$;
-- Whoever creates or attaches a partition clones the trigger, which takes EXECUTE on its
-- function; a trigger function cannot be called otherwise.
GRANT EXECUTE ON FUNCTION pgvec._log_row() TO PUBLIC;

-- Track a partitioned table, or a partition: a row trigger on the root of its tree (see
-- pgvec._log_row), and the TRUNCATE trigger on the root and on every leaf (truncating the
-- root fires the leaves' own TRUNCATE triggers, each with its own OID).
CREATE OR REPLACE FUNCTION pgvec._track_partitioned(rel regclass)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    root regclass := pg_partition_root(rel);
    key name := pgvec._key_column(pg_partition_root(rel));
    leaf regclass;
BEGIN
    IF key IS NULL THEN
        RAISE EXCEPTION 'partitioned table "%" has no key column for pgvec',
            (SELECT relname FROM pg_class WHERE oid = root)
            USING ERRCODE = '42P16',
                  HINT = 'pgvec joins search hits back on the one primary key column that '
                         'is not a partition key column, e.g. PRIMARY KEY (id, part) '
                         'for PARTITION BY LIST (part).';
    END IF;
    -- the builds of a partitioned table's leaves track its root at once: one at a time
    -- (each statement after the lock sees the triggers the one before made)
    PERFORM pg_advisory_xact_lock(1885828724, root::oid::int);  -- 'pgvt'
    IF EXISTS (SELECT FROM pg_trigger t
               WHERE t.tgrelid = root AND t.tgname = 'pgvec_log_insert'
                 AND t.tgargs <> convert_to(key, 'UTF8') || '\x00'::bytea) THEN
        PERFORM pgvec.untrack(root);
    END IF;
    FOR leaf IN SELECT pt.relid FROM pg_partition_tree(root) pt WHERE pt.relid <> root LOOP
        -- statement triggers of a partition tracked on its own before: the clones of
        -- the root's row trigger take their names
        IF EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = leaf
                   AND t.tgname IN ('pgvec_log_insert', 'pgvec_log_update', 'pgvec_log_delete')
                   AND t.tgparentid = 0) THEN
            PERFORM pgvec.untrack(leaf);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = root AND tgname = 'pgvec_log_insert') THEN
        EXECUTE format('CREATE TRIGGER pgvec_log_insert AFTER INSERT OR UPDATE OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION pgvec._log_row(%L)', root, key);
    END IF;
    FOR leaf IN SELECT pt.relid FROM pg_partition_tree(root) pt LOOP
        IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = leaf AND tgname = 'pgvec_log_truncate') THEN
            EXECUTE format('CREATE TRIGGER pgvec_log_truncate AFTER TRUNCATE ON %s '
                           'FOR EACH STATEMENT EXECUTE FUNCTION pgvec._log_truncate()', leaf);
        END IF;
    END LOOP;
END
$fn$;

-- Install (or re-install) the change-log triggers on rel, keyed by its primary key.
CREATE OR REPLACE FUNCTION pgvec.track(rel regclass)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    pk name;
    trigger_name text;
    event text;
    transitions text;
    fn text;
BEGIN
    IF EXISTS (SELECT FROM pg_class WHERE oid = rel AND (relkind = 'p' OR relispartition)) THEN
        PERFORM pgvec._track_partitioned(rel);
        RETURN;
    END IF;
    SELECT a.attname INTO pk
    FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = rel AND i.indisprimary AND i.indnkeyatts = 1;
    IF pk IS NULL THEN
        RAISE EXCEPTION 'table "%" has no single-column primary key',
            (SELECT relname FROM pg_class WHERE oid = rel)
            USING ERRCODE = '42P16',
                  HINT = 'pgvec joins search hits back on the primary key; '
                         'add one, e.g. ALTER TABLE ... ADD PRIMARY KEY (id).';
    END IF;
    -- Triggers already there with this key are kept: DROP TRIGGER takes an ACCESS
    -- EXCLUSIVE lock, which would wait for every reader of the table (a client's own
    -- statement among them); CREATE TRIGGER does not.
    IF EXISTS (SELECT FROM pg_trigger t
               WHERE t.tgrelid = rel AND t.tgname LIKE 'pgvec\_log\_%'
                 AND t.tgname <> 'pgvec_log_truncate'
                 AND t.tgargs <> convert_to(pk, 'UTF8') || '\x00'::bytea) THEN
        PERFORM pgvec.untrack(rel);  -- keyed by another column: the key changed
    END IF;
    FOR trigger_name, event, transitions, fn IN VALUES
        ('pgvec_log_insert', 'INSERT', 'REFERENCING NEW TABLE AS new_rows',
         format('pgvec._log_insert(%L)', pk)),
        ('pgvec_log_update', 'UPDATE', 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows',
         format('pgvec._log_update(%L)', pk)),
        ('pgvec_log_delete', 'DELETE', 'REFERENCING OLD TABLE AS old_rows',
         format('pgvec._log_delete(%L)', pk)),
        ('pgvec_log_truncate', 'TRUNCATE', '', 'pgvec._log_truncate()')
    LOOP
        IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = rel AND tgname = trigger_name) THEN
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s FOR EACH STATEMENT '
                           'EXECUTE FUNCTION %s', trigger_name, event, rel, transitions, fn);
        END IF;
    END LOOP;
END
$fn$;

-- The same, in the calling session's own transaction (a CREATE INDEX in a transaction
-- block: the triggers come and go with it), for a role that may create triggers on rel.
CREATE OR REPLACE FUNCTION pgvec.track_in_transaction(rel regclass)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pgvec._check_privilege(rel, 'TRIGGER');
    PERFORM pgvec.track(rel);
END
$fn$;

-- CREATE INDEX ... USING hnsw as one statement of several in one simple Query: the proxy
-- sends this in its place (built once the Query's transaction commits). It checks, as
-- the client, what PostgreSQL's CREATE INDEX checks first (the table's owner; not
-- SECURITY DEFINER, so current_user is the client's role) and the index's name, after the
-- Query's earlier statements (pgvec.index_name_free), then logs the table's changes.
DROP PROCEDURE IF EXISTS pgvec.create_index_in_query(regclass);
CREATE OR REPLACE PROCEDURE pgvec.create_index_in_query(
    rel regclass, idx name, if_not_exists boolean, dropped boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF NOT pg_has_role((SELECT relowner FROM pg_class WHERE oid = rel), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', (SELECT relname FROM pg_class WHERE oid = rel)
            USING ERRCODE = '42501';
    END IF;
    IF idx IS NULL OR pgvec.index_name_free(
            (SELECT s.nspname FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
             WHERE c.oid = rel),
            idx, if_not_exists, dropped) THEN
        PERFORM pgvec.track_in_transaction(rel);
    END IF;
END
$fn$;

-- CREATE INDEX's check of its name in a transaction block, run as the client in its
-- transaction (pgvec builds the index at the commit): free if no relation of schema nsp
-- and no pgvec index of a table that exists is named idx, as the client sees them now (a
-- table its transaction dropped took its indexes with it). ``dropped``: the transaction
-- dropped the pgvec index of that name (pgvec drops it at the commit). Taken: 42P07, or,
-- with IF NOT EXISTS, PostgreSQL's NOTICE and false.
CREATE OR REPLACE FUNCTION pgvec.index_name_free(
    nsp name, idx name, if_not_exists boolean, dropped boolean)
RETURNS boolean LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF EXISTS (SELECT FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
               WHERE s.nspname = nsp AND c.relname = idx)
       OR (NOT dropped AND EXISTS (
            SELECT FROM pgvec.indexes i JOIN pg_class c ON c.oid = i.relid
            WHERE i.schema_name = nsp
              AND (i.index_name = idx OR i.standby @> jsonb_build_array(
                       jsonb_build_object('index_name', idx::text)))))
    THEN
        IF if_not_exists THEN
            RAISE NOTICE 'relation "%" already exists, skipping', idx;
            RETURN false;
        END IF;
        RAISE EXCEPTION 'relation "%" already exists', idx USING ERRCODE = '42P07';
    END IF;
    RETURN true;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.untrack(rel regclass)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS pgvec_log_insert ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS pgvec_log_update ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS pgvec_log_delete ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS pgvec_log_truncate ON %s', rel);
END
$fn$;

-- ---------------------------------------------------------------------------------------
-- Milvus collections
-- ---------------------------------------------------------------------------------------

-- What a pymilvus client declared for a table it created through the Milvus API: the
-- CollectionSchema exactly as sent (DescribeCollection echoes it), the default consistency
-- level, properties, and whether the collection is loaded (Milvus refuses searches of a
-- released collection). Keyed by the table's OID, so renames are followed; a table made
-- in SQL has no row here and is described from its columns.
CREATE TABLE IF NOT EXISTS pgvec.collections (
    relid       oid PRIMARY KEY,
    schema      bytea NOT NULL,
    consistency integer NOT NULL DEFAULT 2,
    properties  jsonb NOT NULL DEFAULT '{}',
    loaded      boolean NOT NULL DEFAULT false,
    created_ts  bigint NOT NULL DEFAULT 0
);
ALTER TABLE pgvec.collections
    ADD COLUMN IF NOT EXISTS released_partitions text[] NOT NULL DEFAULT '{}';

-- Milvus aliases: another name for a collection, within its database (schema).
CREATE TABLE IF NOT EXISTS pgvec.aliases (
    schema_name name NOT NULL,
    alias       name NOT NULL,
    relid       oid NOT NULL,
    PRIMARY KEY (schema_name, alias)
);

GRANT SELECT ON pgvec.collections, pgvec.aliases TO PUBLIC;

-- Milvus database properties (a Milvus database is a schema), by the schema's OID; set
-- by its owner through pgvec.set_database_properties. pgvec acts on none of them.
CREATE TABLE IF NOT EXISTS pgvec.databases (
    nspoid     oid PRIMARY KEY,
    properties jsonb NOT NULL DEFAULT '{}'
);
GRANT SELECT ON pgvec.databases TO PUBLIC;

CREATE OR REPLACE FUNCTION pgvec.set_database_properties(nsp regnamespace, properties jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF NOT pg_has_role(session_user, (SELECT nspowner FROM pg_namespace WHERE oid = nsp), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of schema %', nsp USING ERRCODE = '42501';
    END IF;
    INSERT INTO pgvec.databases AS d (nspoid, properties) VALUES (nsp, properties)
    ON CONFLICT (nspoid) DO UPDATE SET properties = EXCLUDED.properties;
END
$fn$;

-- Milvus-style int64 primary keys for auto_id collections (and for rows inserted through
-- SQL that leave the key out): physical milliseconds << 18 | a sequence's low 18 bits,
-- the shape of Milvus's TSO-based ids.
CREATE SEQUENCE IF NOT EXISTS pgvec.id_seq;
GRANT USAGE ON SEQUENCE pgvec.id_seq TO PUBLIC;

CREATE OR REPLACE FUNCTION pgvec.next_id()
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL SAFE AS $fn$
    SELECT ((extract(epoch FROM clock_timestamp()) * 1000)::bigint << 18)
           | (nextval('pgvec.id_seq') & 262143)
$fn$;

-- Only the table's owner (or a member of the owning role) registers, alters or drops a
-- collection's row; anyone who may read the table loads and releases it.
-- The session's user (the client's, in a SECURITY DEFINER function) has ``privilege``
-- on rel, or PostgreSQL's own error.
CREATE OR REPLACE FUNCTION pgvec._check_privilege(rel regclass, privilege text)
RETURNS void LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    IF NOT has_table_privilege(session_user, rel, privilege) THEN
        RAISE EXCEPTION 'permission denied for table %', (SELECT relname FROM pg_class WHERE oid = rel)
            USING ERRCODE = '42501';
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec._check_owner(rel regclass)
RETURNS void LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    IF NOT pg_has_role(session_user, (SELECT relowner FROM pg_class WHERE oid = rel), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', (SELECT relname FROM pg_class WHERE oid = rel)
            USING ERRCODE = '42501';
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.register_collection(
    rel regclass, schema bytea, consistency integer, properties jsonb, created_ts bigint)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pgvec._check_owner(rel);
    INSERT INTO pgvec.collections AS c (relid, schema, consistency, properties, created_ts)
    VALUES (rel, schema, consistency, properties, created_ts)
    ON CONFLICT (relid) DO UPDATE
    SET schema = EXCLUDED.schema, consistency = EXCLUDED.consistency,
        properties = EXCLUDED.properties, created_ts = EXCLUDED.created_ts, loaded = false;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.set_collection_properties(rel regclass, properties jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pgvec._check_owner(rel);
    UPDATE pgvec.collections SET properties = set_collection_properties.properties
    WHERE relid = rel;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.set_milvus_index_params(tbl regclass, index_name name, params jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pgvec._check_owner(tbl);
    UPDATE pgvec.indexes i SET milvus_params = set_milvus_index_params.params
    WHERE i.relid = tbl AND i.index_name = set_milvus_index_params.index_name;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.set_collection_schema(rel regclass, schema bytea)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pgvec._check_owner(rel);
    UPDATE pgvec.collections SET schema = set_collection_schema.schema WHERE relid = rel;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.set_collection_loaded(rel regclass, loaded boolean)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pgvec._check_privilege(rel, 'SELECT');
    INSERT INTO pgvec.collections AS c (relid, schema, loaded) VALUES (rel, '', loaded)
    ON CONFLICT (relid) DO UPDATE SET loaded = EXCLUDED.loaded, released_partitions = '{}';
END
$fn$;

-- The partitions of a loaded collection released on their own (Milvus's
-- release_partitions of some of them): searches and queries leave them out.
CREATE OR REPLACE FUNCTION pgvec.set_partitions_released(rel regclass, names text[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pgvec._check_privilege(rel, 'SELECT');
    UPDATE pgvec.collections SET released_partitions = names WHERE relid = rel;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.forget_collection(rel oid)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF EXISTS (SELECT FROM pg_class WHERE oid = rel) THEN
        PERFORM pgvec._check_owner(rel);
    END IF;
    DELETE FROM pgvec.collections WHERE relid = rel;
    DELETE FROM pgvec.aliases WHERE relid = rel;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.set_alias(schema_name name, alias name, rel regclass, replace boolean)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pgvec._check_owner(rel);
    IF replace THEN
        INSERT INTO pgvec.aliases VALUES (schema_name, alias, rel)
        ON CONFLICT ON CONSTRAINT aliases_pkey DO UPDATE SET relid = EXCLUDED.relid;
    ELSE
        INSERT INTO pgvec.aliases VALUES (schema_name, alias, rel);
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION pgvec.drop_alias(schema_name name, alias name)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    rel oid;
BEGIN
    SELECT a.relid INTO rel FROM pgvec.aliases a
    WHERE a.schema_name = drop_alias.schema_name AND a.alias = drop_alias.alias;
    IF rel IS NULL THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT FROM pg_class WHERE oid = rel) THEN
        PERFORM pgvec._check_owner(rel::regclass);
    END IF;
    DELETE FROM pgvec.aliases a WHERE a.schema_name = drop_alias.schema_name AND a.alias = drop_alias.alias;
    RETURN true;
END
$fn$;
