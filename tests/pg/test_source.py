"""PostgreSQL as a source: every type read back through binary COPY, a full table, incremental by cursor."""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal

import pyarrow as pa
import pytest

import nebula
from nebula.connectors.destinations.memory import MemoryDestination
from nebula.errors import ConfigError, SourceError

decimal.getcontext().prec = 100
UTC = dt.UTC


def read(dsn, **source_options):
    mem = MemoryDestination()
    r = nebula.copy(dsn, mem, source_options=source_options)
    return r, mem.table()


def test_every_type_reads_back(pg_dsn, pg, table):
    pg.execute(f'''CREATE TABLE "{table}" (i2 smallint, i4 int, i8 bigint, f4 real, f8 float8, b bool,
                   n numeric(38,4), n0 numeric(10,0), nu numeric, s text, v varchar(5), c char(3), j json, jb jsonb,
                   d date, ts timestamp, tz timestamptz, u uuid)''')
    pg.execute(f"""INSERT INTO "{table}" VALUES
        (-32768, -2147483648, -9223372036854775808, 1.5, -0.1, true, -1234567890123456789012345678901234.5678, 42,
         3.14159, 'ünï "x"', 'abc', 'ab', '{{"a": [1, 2]}}', '{{"b": 1}}', '0001-01-01', '1969-12-31 23:59:59.999999',
         '2024-02-29 12:00:00.000001+00', '6f1c7a4e-1b2c-4d5e-8f90-123456789abc'),
        (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (32767, 2147483647, 9223372036854775807, 'Infinity', 1e300, false, 0.0001, -7, 'NaN', '', '', '', 'null', '[]',
         '9999-12-31', '2000-01-01', '1999-12-31 23:59:59+00', NULL)""")
    r, t = read(pg_dsn, table=table)
    assert r.rows_written == 3
    assert [str(f.type) for f in t.schema] == ["int16", "int32", "int64", "float", "double", "bool",
                                              "decimal128(38, 4)", "decimal128(10, 0)", "string", "string", "string",
                                              "string", "string", "string", "date32[day]", "timestamp[us]",
                                              "timestamp[us, tz=UTC]", "string"]
    rows = t.to_pylist()
    assert rows[1] == {k: None for k in rows[1]}
    assert rows[0] == {"i2": -32768, "i4": -2**31, "i8": -2**63, "f4": 1.5, "f8": -0.1, "b": True,
                       "n": Decimal("-1234567890123456789012345678901234.5678"), "n0": Decimal(42), "nu": "3.14159",
                       "s": 'ünï "x"', "v": "abc", "c": "ab ", "j": '{"a": [1, 2]}', "jb": '{"b": 1}',
                       "d": dt.date(1, 1, 1), "ts": dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
                       "tz": dt.datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=dt.UTC),
                       "u": "6f1c7a4e-1b2c-4d5e-8f90-123456789abc"}
    assert rows[2]["f4"] == float("inf") and rows[2]["nu"] == "NaN" and rows[2]["n"] == Decimal("0.0001")
    assert rows[2]["d"] == dt.date(9999, 12, 31) and rows[2]["jb"] == "[]"


def test_postgres_to_postgres_round_trip_of_many_rows(pg_dsn, pg, table):
    pg.execute(f'CREATE TABLE "{table}" AS SELECT g AS id, (g * 1.5)::numeric(12,2) AS amount, md5(g::text) AS h, '
               f"timestamp '2024-01-01' + g * interval '1 second' AS ts FROM generate_series(1, 150000) g")
    r = nebula.copy(pg_dsn, pg_dsn, source_options={"table": table}, table=table + "_copy", batch_rows=20000)
    assert r.rows_written == 150000
    diff = pg.execute(f'SELECT count(*) FROM ((TABLE "{table}" EXCEPT TABLE "{table}_copy") UNION ALL '
                      f'(TABLE "{table}_copy" EXCEPT TABLE "{table}")) x').fetchone()[0]
    assert diff == 0
    assert pg.execute(f'SELECT count(*) FROM "{table}_copy"').fetchone()[0] == 150000


def test_incremental_by_cursor_column(pg_dsn, pg, table, tmp_path):
    pg.execute(f'CREATE TABLE "{table}" (id int, updated_at timestamp)')
    pg.execute(f"INSERT INTO \"{table}\" SELECT g, timestamp '2024-01-01' + g * interval '1 minute' "
               "FROM generate_series(1, 100) g")
    state = str(tmp_path / "state.db")
    out = str(tmp_path / "out.db")
    opts = {"table": table, "cursor": "updated_at"}
    r1 = nebula.copy(pg_dsn, f"sqlite:///{out}", source_options=opts, table="t", state=state, name="inc")
    assert r1.rows_written == 100
    r2 = nebula.copy(pg_dsn, f"sqlite:///{out}", source_options=opts, table="t", state=state, name="inc")
    assert r2.rows_written == 0
    pg.execute(f"INSERT INTO \"{table}\" VALUES (101, '2024-06-01 00:00:00.000001'), (102, NULL)")
    pg.execute(f"UPDATE \"{table}\" SET updated_at = '2024-07-01' WHERE id = 5")
    r3 = nebula.copy(pg_dsn, f"sqlite:///{out}", source_options=opts, table="t", state=state, name="inc")
    assert r3.rows_written == 2
    from nebula.state import StateStore

    assert StateStore(state).get("inc") == {"column": "updated_at", "cursor": "2024-07-01 00:00:00"}


def test_incremental_into_postgres_keeps_the_cursor_in_the_destination(pg_dsn, pg, table, tmp_path):
    pg.execute(f'CREATE TABLE "{table}" (id int primary key, v int)')
    pg.execute(f'INSERT INTO "{table}" SELECT g, g FROM generate_series(1, 10) g')
    opts = {"table": table, "cursor": "id"}
    name = f"inc_{table}"
    # no local state store: the checkpoint lives in the destination, committed with the rows
    r1 = nebula.copy(pg_dsn, pg_dsn, source_options=opts, table=table + "_dst", name=name)
    assert r1.rows_written == 10
    assert pg.execute("SELECT value FROM state WHERE name = %s", (name,)).fetchone()[0] == '{"column":"id","cursor":"10"}'
    pg.execute(f'INSERT INTO "{table}" SELECT g, g FROM generate_series(11, 15) g')
    r2 = nebula.copy(pg_dsn, pg_dsn, source_options={"table": table}, cursor="id", table=table + "_dst", name=name)
    assert r2.rows_written == 5
    assert pg.execute(f'SELECT count(*), count(DISTINCT id) FROM "{table}_dst"').fetchone() == (15, 15)


def test_source_errors(pg_dsn):
    with pytest.raises(ConfigError, match="which table"):
        nebula.copy(pg_dsn, MemoryDestination())
    with pytest.raises(SourceError, match="does not exist"):
        read(pg_dsn, table="no_such_table_here")


def test_memory_table_is_arrow(pg_dsn, pg, table):
    pg.execute(f'CREATE TABLE "{table}" (a int)')
    _, t = read(pg_dsn, table=table)
    assert isinstance(t, pa.Table) and t.num_rows == 0
