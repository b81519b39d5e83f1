"""PostgreSQL destination against a real server: types, modes, evolution, errors, exactly-once state."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
import time
from decimal import Decimal

import psycopg
import pytest

import nebula
from nebula.connectors.destinations.postgres import PostgresDestination
from nebula.errors import ConfigError, ConnectionFailed, DataError, SchemaEvolutionError, TypeCoercionError
from nebula.schema import Schema
from tests.destinations import batch_from_pylist
from tests.kernels.test_pgcopy import naive_numeric

from ._server import PASSWORD, PASSWORD_USER

decimal.getcontext().prec = 100
UTC = dt.UTC
SCHEMA = Schema.from_dict({
    "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64", "f32": "float32", "f64": "float64", "b": "bool",
    "dec": "decimal(38,4)", "s": "string", "j": "json", "d": "date", "ts": "timestamp", "tz": "timestamptz",
})
ROWS = [
    (-128, -32768, -2**31, -2**63, 1.5, -0.1, True, Decimal("-1234567890123456789012345678901234.5678"), "ünï\n\"x\"",
     '{"a": [1, 2]}', dt.date(1, 1, 1), dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
     dt.datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=UTC)),
    (None,) * 13,
    (127, 32767, 2**31 - 1, 2**63 - 1, float("inf"), 1e300, False, Decimal("0.0001"), "", "null",
     dt.date(9999, 12, 31), dt.datetime(2000, 1, 1), dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    (0, 0, 0, 0, 0.0, -2.5, None, Decimal("0"), "a" * 300, "[]", dt.date(2000, 1, 1), None, None),
]


def load(dsn, schema, *row_lists, mode="append", table="t", key=None, dict_columns=(), options=None, state=None):
    d = PostgresDestination(dsn, options=options)
    d.open(schema, mode=mode, table=table, key=key)
    for rows in row_lists:
        d.write(batch_from_pylist(schema, rows, dict_columns=dict_columns))
    if state is not None:
        d.stage_state(*state)
    d.commit()
    return d


def rows_of(pg, sql):
    return pg.execute(sql).fetchall()


# -- types ----------------------------------------------------------------------------------------
def test_every_type_round_trips(pg_dsn, pg, table):
    load(pg_dsn, SCHEMA, ROWS[:2], ROWS[2:], table=table, dict_columns={"s"})
    got = rows_of(pg, f'SELECT * FROM "{table}"')
    assert len(got) == 4
    for g, want in zip(got, ROWS, strict=True):
        want = list(want)
        if want[9] is not None:
            want[9] = json.loads(want[9])
        assert list(g) == want
    types = dict(rows_of(pg, f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{table}'"))
    assert types == {"i8": "smallint", "i16": "smallint", "i32": "integer", "i64": "bigint", "f32": "real",
                     "f64": "double precision", "b": "boolean", "dec": "numeric", "s": "text", "j": "jsonb",
                     "d": "date", "ts": "timestamp without time zone", "tz": "timestamp with time zone"}


def test_float_specials(pg_dsn, pg, table):
    schema = Schema.from_dict({"f": "float64", "g": "float32"})
    load(pg_dsn, schema, [(float("nan"), float("-inf")), (-0.0, 3.4028234663852886e38)], table=table)
    got = rows_of(pg, f'SELECT f::text, g::text FROM "{table}"')
    assert got == [("NaN", "-Infinity"), ("-0", "3.4028235e+38")]


NUMERICS = ["0", "1", "-1", "0.0001", "-0.0001", "9999", "10000", "10001", "12345.6789", "-99999999999999.99",
            "100000000", "0.1", "0.01", "0.001", "123456789012345678901234567890.12345678", "1e-30",
            "99999999999999999999999999999999999999", "-99999999999999999999999999999999999999"]


@pytest.mark.parametrize("scale", [0, 1, 2, 3, 4, 5, 8, 12, 30, 38])
def test_numeric_matches_numeric_send_and_text(pg_dsn, pg, table, scale):
    vals = []
    for text in NUMERICS:
        v = Decimal(text).quantize(Decimal(1).scaleb(-scale), rounding=decimal.ROUND_DOWN)
        if v.adjusted() + 1 + scale <= 38:
            vals.append(v)
    schema = Schema.from_dict({"i": "int32", "x": f"decimal(38,{scale})"})
    load(pg_dsn, schema, [(i, v) for i, v in enumerate(vals)], table=table)
    got = rows_of(pg, f'SELECT x, numeric_send(x), x::text FROM "{table}" ORDER BY i')
    assert [g[0] for g in got] == vals
    for (_, sent, text), v in zip(got, vals, strict=True):
        assert bytes(sent) == naive_numeric(v, scale)  # our reference is PostgreSQL's own binary form
        assert Decimal(text) == v
    # the same bytes PostgreSQL makes for a literal
    for v in vals[:6]:
        lit = pg.execute(f"SELECT numeric_send('{v}'::numeric(38,{scale}))").fetchone()[0]
        assert bytes(lit) == naive_numeric(v, scale)


def test_csv_to_postgres_every_type(pg_dsn, pg, table, tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("i,f,b,d,ts,tz,dec,s,j\n"
                   "1,1.25,true,2024-02-29,2024-01-02T03:04:05.5,2024-01-02T03:04:05Z,-12.50,\"a,b\",\"{\"\"k\"\": 1}\"\n"
                   ",,,,,,,,\n", encoding="utf-8")
    r = nebula.copy(str(src), pg_dsn, table=table, columns={"tz": "timestamptz", "dec": "decimal(10,2)", "j": "json"})
    assert r.rows_written == 2
    got = rows_of(pg, f'SELECT * FROM "{table}"')
    assert got[0] == (1, 1.25, True, dt.date(2024, 2, 29), dt.datetime(2024, 1, 2, 3, 4, 5, 500000),
                      dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), Decimal("-12.50"), "a,b", {"k": 1})
    assert got[1][:6] == (None,) * 6 and got[1][6] is None


def test_text_copy_fallback(pg_dsn, pg, table):
    schema = Schema.from_dict({k: v for k, v in zip(SCHEMA.names, map(str, (f.type for f in SCHEMA)), strict=True)})
    load(pg_dsn, schema, ROWS, table=table, options={"copy": "csv"})
    a = rows_of(pg, f'SELECT * FROM "{table}"')
    load(pg_dsn, schema, ROWS, table=table + "b")
    assert a == rows_of(pg, f'SELECT * FROM "{table}b"')


# -- modes ----------------------------------------------------------------------------------------
def test_append_is_one_transaction_visible_at_commit(pg_dsn, pg, table):
    schema = Schema.from_dict({"a": "int64"})
    load(pg_dsn, schema, [(1,)], table=table)
    d = PostgresDestination(pg_dsn)
    d.open(schema, table=table)
    d.write(batch_from_pylist(schema, [(2,), (3,)]))
    assert rows_of(pg, f'SELECT a FROM "{table}"') == [(1,)]
    d.abort()
    assert rows_of(pg, f'SELECT a FROM "{table}"') == [(1,)]
    load(pg_dsn, schema, [(2,)], [(3,)], table=table)
    assert rows_of(pg, f'SELECT a FROM "{table}" ORDER BY a') == [(1,), (2,), (3,)]


def test_replace_swaps_atomically_under_a_concurrent_reader(pg_dsn, pg, table):
    schema = Schema.from_dict({"a": "int64", "s": "string"})
    load(pg_dsn, schema, [(i, "old") for i in range(1000)], table=table)
    seen, errors, stop = [], [], threading.Event()

    def reader():
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            while not stop.is_set():
                try:
                    seen.append(c.execute(f'SELECT count(*), min(s) FROM "{table}"').fetchone())
                except psycopg.Error as e:  # pragma: no cover - the failure this test looks for
                    errors.append(e)

    th = threading.Thread(target=reader)
    th.start()
    try:
        for rnd in range(4):
            rows = [(i, f"new{rnd}") for i in range(500 + rnd)]
            d = PostgresDestination(pg_dsn)
            d.open(schema, mode="replace", table=table)
            for a in range(0, len(rows), 100):
                d.write(batch_from_pylist(schema, rows[a:a + 100]))
                time.sleep(0.01)
            d.commit()
            time.sleep(0.05)
    finally:
        stop.set()
        th.join()
    assert not errors
    assert len(seen) > 10
    allowed = {(1000, "old")} | {(500 + r, f"new{r}") for r in range(4)}
    assert set(seen) <= allowed
    assert rows_of(pg, f'SELECT count(*) FROM "{table}"') == [(503,)]
    assert rows_of(pg, f"SELECT to_regclass('{table}__nebula_new')") == [(None,)]


def test_replace_with_key_twice_keeps_the_primary_key(pg_dsn, pg, table):
    schema = Schema.from_dict({"id": "int64", "v": "string"})
    for v in ("a", "b"):
        load(pg_dsn, schema, [(1, v), (2, v)], mode="replace", table=table, key=["id"])
    assert rows_of(pg, f'SELECT * FROM "{table}" ORDER BY id') == [(1, "b"), (2, "b")]
    cons = rows_of(pg, f"SELECT conname FROM pg_constraint WHERE conrelid = '\"{table}\"'::regclass")
    assert cons == [(f"{table}_pkey",)]


def test_merge_upserts_last_row_wins(pg_dsn, pg, table):
    schema = Schema.from_dict({"id": "int64", "v": "string", "n": "int32"})
    load(pg_dsn, schema, [(1, "a", 1), (2, "b", 2)], mode="merge", table=table, key=["id"])
    load(pg_dsn, schema, [(2, "B", 20), (3, "c", 3)], [(3, "C", 30), (4, None, None)], mode="merge", table=table,
         key=["id"])
    assert rows_of(pg, f'SELECT * FROM "{table}" ORDER BY id') == [(1, "a", 1), (2, "B", 20), (3, "C", 30),
                                                                 (4, None, None)]


def test_merge_applies_a_change_stream(pg_dsn, pg, table):
    """With ``_op`` (CDC), the last change per key wins: deletes delete, the change columns are not stored."""
    schema = Schema.from_dict({"id": "int64", "v": "string", "_op": "string", "_pos": "string",
                               "_commit_ts": "timestamptz"})
    ts = dt.datetime(2025, 1, 1, tzinfo=UTC)
    load(pg_dsn, schema, [(1, "a", "r", "p0", ts), (2, "b", "r", "p0", ts), (3, "c", "r", "p0", ts)],
         mode="merge", table=table, key=["id"])
    assert [c[0] for c in pg.execute(f'SELECT * FROM "{table}"').description] == ["id", "v"]
    load(pg_dsn, schema,
         [(1, "a", "d", "p1", ts), (2, "B", "u", "p2", ts), (4, "x", "c", "p3", ts)],
         [(4, "x", "d", "p4", ts), (5, "y", "c", "p5", ts), (3, "c", "d", "p6", ts), (3, "C", "c", "p7", ts)],
         mode="merge", table=table, key=["id"])
    assert rows_of(pg, f'SELECT * FROM "{table}" ORDER BY id') == [(2, "B"), (3, "C"), (5, "y")]
    # a new column mid-stream reaches the target, the change columns still do not
    wider = Schema.from_dict({"id": "int64", "v": "string", "w": "int32", "_op": "string", "_pos": "string",
                              "_commit_ts": "timestamptz"})
    d = PostgresDestination(pg_dsn)
    d.open(schema, mode="merge", table=table, key=["id"])
    d.write(batch_from_pylist(schema, [(2, "b2", "u", "p8", ts)]))
    d.evolve(wider)
    d.write(batch_from_pylist(wider, [(6, "z", 7, "c", "p9", ts), (5, None, None, "d", "p10", ts)]))
    d.commit()
    assert rows_of(pg, f'SELECT * FROM "{table}" ORDER BY id') == [(2, "b2", None), (3, "C", None), (6, "z", 7)]
    # a source TRUNCATE (a row of nulls with _op 't') empties the table; only later changes count
    load(pg_dsn, wider, [(7, "p", 1, "c", "q1", ts), (None, None, None, "t", "q2", ts), (8, "a", 2, "c", "q3", ts),
                         (2, "n", 3, "u", "q4", ts)], mode="merge", table=table, key=["id"])
    assert rows_of(pg, f'SELECT * FROM "{table}" ORDER BY id') == [(2, "n", 3), (8, "a", 2)]


def test_merge_into_existing_table_without_unique_index(pg_dsn, pg, table):
    pg.execute(f'CREATE TABLE "{table}" (k1 text, k2 int, v float8, extra text DEFAULT \'x\')')
    pg.execute(f"INSERT INTO \"{table}\" VALUES ('a', 1, 1.0, 'keep')")
    schema = Schema.from_dict({"k1": "string", "k2": "int64", "v": "float64"})
    load(pg_dsn, schema, [("a", 1, 2.0), ("a", 2, 3.0)], mode="merge", table=table, key=["k1", "k2"])
    assert rows_of(pg, f'SELECT * FROM "{table}" ORDER BY k2') == [("a", 1, 2.0, "keep"), ("a", 2, 3.0, "x")]


def test_merge_null_key_is_a_data_error(pg_dsn, pg, table):
    schema = Schema.from_dict({"id": "int64", "v": "string"})
    load(pg_dsn, schema, [(1, "a")], mode="merge", table=table, key=["id"])
    d = PostgresDestination(pg_dsn)
    d.open(schema, mode="merge", table=table, key=["id"])
    d.write(batch_from_pylist(schema, [(1, "x"), (2, "y")]))
    with pytest.raises(DataError, match=r"column 'id'.*row 4: the merge key is null"):
        d.write(batch_from_pylist(schema, [(3, "z"), (None, "w")]))
    d.abort()
    assert rows_of(pg, f'SELECT * FROM "{table}"') == [(1, "a")]


# -- schema evolution -----------------------------------------------------------------------------
def test_evolution_adds_columns_and_widens_safely(pg_dsn, pg, table):
    pg.execute(f'CREATE TABLE "{table}" (a int4, f real, x numeric(6,2), d date, keep text)')
    pg.execute(f"INSERT INTO \"{table}\" VALUES (1, 1.5, 1234.56, '2024-01-01', 'k')")
    schema = Schema.from_dict({"a": "int64", "f": "float64", "x": "decimal(10,3)", "d": "timestamp", "new": "string"})
    load(pg_dsn, schema, [(2, 0.1, Decimal("1234567.125"), dt.datetime(2024, 1, 2, 3, 4), "n")], table=table)
    types = dict(rows_of(pg, f"SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns c "
                             f"JOIN pg_attribute a ON a.attrelid = '\"{table}\"'::regclass AND a.attname = c.column_name "
                             f"WHERE table_name = '{table}'"))
    assert types == {"a": "integer", "f": "double precision", "x": "numeric(10,3)",
                     "d": "timestamp without time zone", "keep": "text", "new": "text"}
    assert rows_of(pg, f'SELECT * FROM "{table}" ORDER BY a') == [
        (1, 1.5, Decimal("1234.560"), dt.datetime(2024, 1, 1), "k", None),
        (2, 0.1, Decimal("1234567.125"), dt.datetime(2024, 1, 2, 3, 4), None, "n")]


def test_int64_into_int4_column_range_checked_or_widened(pg_dsn, pg, table):
    pg.execute(f'CREATE TABLE "{table}" (a int4, s smallint)')
    schema = Schema.from_dict({"a": "int64", "s": "int64"})
    load(pg_dsn, schema, [(2**31 - 1, 5)], table=table)  # fits: stays int4
    with pytest.raises(TypeCoercionError, match=r"column 'a'.*row 2: value 2147483648 is out of range for the integer"):
        load(pg_dsn, schema, [(1, 1), (2**31, 1)], table=table)
    assert rows_of(pg, f'SELECT count(*) FROM "{table}"') == [(1,)]
    load(pg_dsn, schema, [(2**40, 2**20)], table=table, options={"widen": True})
    assert rows_of(pg, f'SELECT a, s, pg_typeof(a)::text, pg_typeof(s)::text FROM "{table}" ORDER BY a') == [
        (2**31 - 1, 5, "bigint", "bigint"), (2**40, 2**20, "bigint", "bigint")]


def test_incompatible_existing_column_is_a_schema_evolution_error(pg_dsn, pg, table):
    pg.execute(f'CREATE TABLE "{table}" (a text, b uuid)')
    with pytest.raises(SchemaEvolutionError, match=r"column 'a' is text; cannot write int64"):
        load(pg_dsn, Schema.from_dict({"a": "int64"}), [(1,)], table=table)
    with pytest.raises(SchemaEvolutionError, match=r"column 'b' is uuid"):
        load(pg_dsn, Schema.from_dict({"b": "string"}), [("x",)], table=table)
    assert rows_of(pg, f"SELECT count(*) FROM information_schema.columns WHERE table_name = '{table}'") == [(2,)]


def test_server_side_value_errors_are_data_errors(pg_dsn, pg, table):
    pg.execute(f'CREATE TABLE "{table}" (s varchar(3), x numeric(4,0))')
    with pytest.raises(DataError, match=r"too long.*column s"):
        load(pg_dsn, Schema.from_dict({"s": "string"}), [("abc",), ("abcd",)], table=table)
    with pytest.raises(DataError, match=r"numeric field overflow"):
        load(pg_dsn, Schema.from_dict({"x": "int64"}), [(1234,), (12345,)], table=table)
    assert rows_of(pg, f'SELECT count(*) FROM "{table}"') == [(0,)]


# -- bad input and failures -----------------------------------------------------------------------
def test_nul_in_text_is_rejected_and_nothing_committed(pg_dsn, pg, table):
    schema = Schema.from_dict({"a": "int64", "s": "string"})
    with pytest.raises(DataError, match=r"column 's'.*row 2: text contains a NUL"):
        load(pg_dsn, schema, [(1, "ok"), (2, "bad\0")], table=table)
    assert rows_of(pg, f"SELECT to_regclass('{table}')") == [(None,)]


def test_wrong_password_is_a_clear_error_without_the_password(pg_server, pg_dsn):
    if pg_server is None:
        pytest.skip("needs the throwaway server's password role")
    url = f"postgresql://{PASSWORD_USER}:not-{PASSWORD}@127.0.0.1:{pg_server.port}/postgres"
    t = time.monotonic()
    with pytest.raises(ConnectionFailed) as ei:
        PostgresDestination(url).open(Schema.from_dict({"a": "int64"}), table="x")
    assert time.monotonic() - t < 2  # not retried
    msg = str(ei.value)
    assert "password authentication failed" in msg and "\n" not in msg
    assert PASSWORD not in msg and f"not-{PASSWORD}" not in msg
    assert not ei.value.retryable
    ok = f"postgresql://{PASSWORD_USER}:{PASSWORD}@127.0.0.1:{pg_server.port}/postgres"
    d = PostgresDestination(ok)
    d.open(Schema.from_dict({"a": "int64"}), table="pw_ok")
    d.abort()


def test_unreachable_host_is_retried_then_connection_failed():
    from tests.pg._server import free_port

    url = f"postgresql://u:sekrit@127.0.0.1:{free_port()}/db"
    t = time.monotonic()
    with pytest.raises(ConnectionFailed) as ei:
        PostgresDestination(url, options={"retries": 3}).open(Schema.from_dict({"a": "int64"}), table="x")
    assert 0.7 <= time.monotonic() - t < 10  # backoff 0.25 + 0.5
    assert ei.value.retryable and "after 3 attempts" in str(ei.value)
    assert "sekrit" not in str(ei.value) and "\n" not in str(ei.value)


def test_unknown_option_and_missing_table():
    with pytest.raises(ConfigError, match="unknown option"):
        PostgresDestination("postgresql://x@127.0.0.1/db", options={"nope": 1})
    with pytest.raises(ConfigError, match="table name"):
        PostgresDestination("postgresql://x@127.0.0.1/db").open(Schema.from_dict({"a": "int64"}))


def test_connection_dropped_mid_copy_rolls_back_and_rerun_is_exact(pg_dsn, pg, table):
    schema = Schema.from_dict({"a": "int64", "s": "string"})
    rows = [(i, "x" * 50) for i in range(20000)]
    d = PostgresDestination(pg_dsn)
    d.open(schema, table=table)
    d.write(batch_from_pylist(schema, rows[:10000]))
    pid = d.conn.info.backend_pid
    pg.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)
    with pytest.raises(ConnectionFailed) as ei:
        d.write(batch_from_pylist(schema, rows[10000:]))
        d.commit()
    assert ei.value.retryable and "nothing of this run was committed" in str(ei.value)
    d.abort()
    assert rows_of(pg, f"SELECT to_regclass('{table}')") == [(None,)]
    load(pg_dsn, schema, rows[:10000], rows[10000:], table=table)
    assert rows_of(pg, f'SELECT count(*), count(DISTINCT a) FROM "{table}"') == [(20000, 20000)]


# -- exactly-once state ---------------------------------------------------------------------------
def test_state_commits_with_the_data(pg_dsn, pg, table):
    schema = Schema.from_dict({"a": "int64"})
    load(pg_dsn, schema, [(1,)], table=table, state=(f"p_{table}", {"cursor": 1}))
    d = PostgresDestination(pg_dsn)
    assert d.committed_state(f"p_{table}") == {"cursor": 1}
    d.open(schema, table=table)
    d.write(batch_from_pylist(schema, [(2,)]))
    d.stage_state(f"p_{table}", {"cursor": 2})
    d.abort()  # neither the row nor the checkpoint
    assert d.committed_state(f"p_{table}") == {"cursor": 1}
    assert rows_of(pg, f'SELECT a FROM "{table}"') == [(1,)]
    assert d.committed_state("no such pipeline") is None


@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_schema_evolves_mid_run(pg_dsn, pg, table, mode):
    s1 = Schema.from_dict({"id": "int64", "n": "int32"})
    s2 = Schema.from_dict({"id": "int64", "n": "int64", "extra": "string"})
    if mode != "replace":
        load(pg_dsn, s1, [(0, 0)], table=table, mode=mode, key=["id"] if mode == "merge" else None)
    d = PostgresDestination(pg_dsn, options={"widen": True})
    d.open(s1, mode=mode, table=table, key=["id"] if mode == "merge" else None)
    d.write(batch_from_pylist(s1, [(1, 1), (2, 2)]))
    d.evolve(s2)
    d.write(batch_from_pylist(s2, [(3, 2**40, "x"), (2, 5, "y")]))
    d.commit()
    got = rows_of(pg, f'SELECT id, n, extra FROM "{table}" ORDER BY id')
    want = {"append": [(0, 0, None), (1, 1, None), (2, 2, None), (2, 5, "y"), (3, 2**40, "x")],
            "replace": [(1, 1, None), (2, 2, None), (2, 5, "y"), (3, 2**40, "x")],
            "merge": [(0, 0, None), (1, 1, None), (2, 5, "y"), (3, 2**40, "x")]}[mode]
    assert sorted(got, key=lambda r: (r[0], r[1])) == want
