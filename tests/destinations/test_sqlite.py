"""SQLite destination: type mapping, modes, atomic replace, upserts, schema evolution, errors."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal

import pytest

from nebula.connectors.destinations.sqlite import SqliteDestination, sqlite_path
from nebula.errors import ConfigError, DestinationError, SchemaEvolutionError
from nebula.schema import Schema

from . import batch_from_pylist

UTC = dt.UTC
SCHEMA = Schema.from_dict({
    "i8": "int8", "i64": "int64", "f32": "float32", "f64": "float64", "b": "bool", "d": "date",
    "ts": "timestamp", "tz": "timestamptz", "dec": "decimal(38,4)", "s": "string", "j": "json",
})
ROWS = [
    (-128, 2**63 - 1, 0.5, 0.1, True, dt.date(2024, 2, 29), dt.datetime(2024, 1, 2, 3, 4, 5, 6),
     dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), Decimal("12345678901234567890123.4567"), "ünï, \"q\"\n", '{"a":1}'),
    (None,) * 11,
    (0, -(2**63), -2.0, 1e300, False, dt.date(1, 1, 1), dt.datetime(1969, 12, 31, 23, 59, 59),
     dt.datetime(2000, 1, 1, 12, tzinfo=UTC), Decimal("-0.0001"), "", "[]"),
]


def _load(url, schema, *row_lists, mode="append", table="t", key=None, dict_columns=()):
    d = SqliteDestination(url)
    d.open(schema, mode=mode, table=table, key=key)
    for rows in row_lists:
        d.write(batch_from_pylist(schema, rows, dict_columns=dict_columns))
    d.commit()
    return d


def _rows(db, sql):
    with sqlite3.connect(db) as c:
        return c.execute(sql).fetchall()


def test_url_forms():
    assert sqlite_path("sqlite:///rel/x.db") == "rel/x.db"
    assert sqlite_path("sqlite:////abs/x.db") == "/abs/x.db"
    with pytest.raises(ConfigError):
        sqlite_path("sqlite://host/x.db")


def test_every_type_round_trips(tmp_path):
    db = tmp_path / "x.db"
    _load(f"sqlite:///{db}", SCHEMA, ROWS[:1], ROWS[1:], dict_columns={"s"})
    got = _rows(db, 'SELECT * FROM "t" ORDER BY rowid')
    assert got[1] == (None,) * 11
    assert got[0] == (-128, 2**63 - 1, 0.5, 0.1, 1, "2024-02-29", "2024-01-02T03:04:05.000006",
                      "2024-01-02T03:04:05.000000Z", "12345678901234567890123.4567", "ünï, \"q\"\n", '{"a":1}')
    assert got[2] == (0, -(2**63), -2.0, 1e300, 0, "0001-01-01", "1969-12-31T23:59:59.000000",
                      "2000-01-01T12:00:00.000000Z", "-0.0001", "", "[]")
    decl = {r[1]: r[2] for r in _rows(db, 'PRAGMA table_info("t")')}
    assert decl == {"i8": "INTEGER", "i64": "INTEGER", "f32": "REAL", "f64": "REAL", "b": "INTEGER", "d": "TEXT",
                    "ts": "TEXT", "tz": "TEXT", "dec": "TEXT", "s": "TEXT", "j": "TEXT"}
    assert dt.datetime.fromisoformat(got[0][7]) == ROWS[0][7]
    assert _rows(db, "PRAGMA journal_mode") == [("wal",)]


def test_odd_identifiers(tmp_path):
    db = tmp_path / "x.db"
    schema = Schema.from_dict({'we"ird col': "int64", "sp ace;--": "string", "select": "int32"})
    _load(f"sqlite:///{db}", schema, [(1, "a", 2)], table='my "table"; drop', key=['we"ird col'], mode="merge")
    assert _rows(db, 'SELECT * FROM "my ""table""; drop"') == [(1, "a", 2)]


def test_append_is_one_transaction_visible_at_commit(tmp_path):
    db = tmp_path / "x.db"
    schema = Schema.from_dict({"a": "int64"})
    _load(f"sqlite:///{db}", schema, [(1,)])
    d = SqliteDestination(f"sqlite:///{db}")
    d.open(schema, table="t")
    d.write(batch_from_pylist(schema, [(2,), (3,)]))
    assert _rows(db, "SELECT a FROM t") == [(1,)]  # another connection does not see it yet
    d.commit()
    assert _rows(db, "SELECT a FROM t ORDER BY a") == [(1,), (2,), (3,)]


def test_abort_rolls_back(tmp_path):
    db = tmp_path / "x.db"
    schema = Schema.from_dict({"a": "int64"})
    _load(f"sqlite:///{db}", schema, [(1,)])
    for mode in ("append", "replace"):
        d = SqliteDestination(f"sqlite:///{db}")
        d.open(schema, table="t", mode=mode)
        d.write(batch_from_pylist(schema, [(2,)]))
        d.abort()
        d.abort()
        assert _rows(db, "SELECT a FROM t") == [(1,)]
        assert _rows(db, "SELECT name FROM sqlite_master WHERE type='table'") == [("t",)]


def test_replace_keeps_old_table_readable_until_commit(tmp_path):
    db = tmp_path / "x.db"
    old = Schema.from_dict({"a": "int64", "gone": "string"})
    _load(f"sqlite:///{db}", old, [(1, "x"), (2, "y")])
    new = Schema.from_dict({"a": "int64", "b": "string"})
    d = SqliteDestination(f"sqlite:///{db}")
    d.open(new, mode="replace", table="t", key=["a"])
    d.write(batch_from_pylist(new, [(10, "p")]))
    reader = sqlite3.connect(db)
    assert reader.execute("SELECT a, gone FROM t ORDER BY a").fetchall() == [(1, "x"), (2, "y")]
    d.write(batch_from_pylist(new, [(11, "q")]))
    d.commit()
    assert reader.execute("SELECT a, b FROM t ORDER BY a").fetchall() == [(10, "p"), (11, "q")]
    reader.close()
    names = {r[0] for r in _rows(db, "SELECT name FROM sqlite_master")}
    assert names == {"t", "t__nebula_key"}


def test_merge_upserts(tmp_path):
    db = tmp_path / "x.db"
    schema = Schema.from_dict({"id": "int64", "k2": "string", "v": "string"})
    url = f"sqlite:///{db}"
    _load(url, schema, [(1, "a", "one"), (2, "a", "two")], mode="merge", key=["id", "k2"])
    _load(url, schema, [(2, "a", "TWO"), (3, "a", "three")], [(1, "b", "other")], mode="merge", key=["id", "k2"])
    assert _rows(db, "SELECT id, k2, v FROM t ORDER BY id, k2") == [
        (1, "a", "one"), (1, "b", "other"), (2, "a", "TWO"), (3, "a", "three")]


def test_merge_into_existing_table_without_index_creates_it(tmp_path):
    db = tmp_path / "x.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (id INTEGER, v TEXT)")
        c.execute("INSERT INTO t VALUES (1, 'old')")
    schema = Schema.from_dict({"id": "int64", "v": "string"})
    _load(f"sqlite:///{db}", schema, [(1, "new"), (2, "x")], mode="merge", key=["id"])
    assert _rows(db, "SELECT id, v FROM t ORDER BY id") == [(1, "new"), (2, "x")]


def test_schema_evolution_adds_columns(tmp_path):
    db = tmp_path / "x.db"
    url = f"sqlite:///{db}"
    _load(url, Schema.from_dict({"a": "int64"}), [(1,)])
    _load(url, Schema.from_dict({"a": "int64", "b": "string", "c": "date"}), [(2, "x", dt.date(2020, 1, 1))])
    assert _rows(db, "SELECT a, b, c FROM t ORDER BY a") == [(1, None, None), (2, "x", "2020-01-01")]


def test_incompatible_existing_column_is_an_error(tmp_path):
    db = tmp_path / "x.db"
    url = f"sqlite:///{db}"
    _load(url, Schema.from_dict({"a": "int64"}), [(1,)])
    with pytest.raises(SchemaEvolutionError, match="'a'"):
        SqliteDestination(url).open(Schema.from_dict({"a": "string"}), table="t")
    with pytest.raises(SchemaEvolutionError):
        SqliteDestination(url).open(Schema.from_dict({"a": "float64"}), table="t")
    # widening int -> REAL column is fine
    _load(url, Schema.from_dict({"f": "float64"}), [(1.5,)], table="r")
    _load(url, Schema.from_dict({"f": "int64"}), [(2,)], table="r")
    assert _rows(db, "SELECT f FROM r ORDER BY f") == [(1.5,), (2.0,)]


def test_bad_usage_and_paths(tmp_path):
    schema = Schema.from_dict({"a": "int64"})
    with pytest.raises(ConfigError):
        SqliteDestination(f"sqlite:///{tmp_path}/x.db").open(schema)  # no table
    with pytest.raises(ConfigError):
        SqliteDestination(f"sqlite:///{tmp_path}/x.db").open(schema, table="t", mode="merge")
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DestinationError, match="file.txt"):
        SqliteDestination(f"sqlite:///{f}/x.db").open(schema, table="t")
    with pytest.raises(DestinationError):
        SqliteDestination(f"sqlite:///{tmp_path}").open(schema, table="t")


def test_not_null_violation_is_destination_error(tmp_path):
    db = tmp_path / "x.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (a INTEGER, must TEXT NOT NULL)")
    d = SqliteDestination(f"sqlite:///{db}")
    schema = Schema.from_dict({"a": "int64"})
    d.open(schema, table="t")
    with pytest.raises(DestinationError, match="NOT NULL"):
        d.write(batch_from_pylist(schema, [(1,)]))
    d.abort()
