"""Types, Schema evolution, Batch (zero-copy Arrow, bytes per record) and Pool (backpressure)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import numpy as np
import pytest

from nebula.batch import Batch
from nebula.errors import ConfigError, SchemaEvolutionError
from nebula.pool import BatchPool, Pool, PoolClosed
from nebula.schema import Field, Schema, widen
from nebula.types import FLOAT64, INT8, INT32, INT64, STRING, LogicalType, parse_type


@pytest.mark.parametrize("text,expect", [
    ("int", "int64"), ("BIGINT", "int64"), ("decimal(12,2)", "decimal(12,2)"), ("numeric(5)", "decimal(5,0)"),
    ("timestamptz", "timestamptz"), ("timestamp[Europe/Paris]", "timestamp[Europe/Paris]"), ("text", "string"),
    ("jsonb", "json"), ("float", "float64"), ("date", "date"), ("bool", "bool"),
])
def test_parse_type(text, expect):
    assert str(parse_type(text)) == expect


@pytest.mark.parametrize("bad", ["integerish", "decimal(40,2)", "decimal(5,6)", ""])
def test_parse_type_errors(bad):
    with pytest.raises(ConfigError):
        parse_type(bad)


def test_arrow_round_trip_of_types():
    for t in ["int8", "int16", "int32", "int64", "float32", "float64", "bool", "decimal(10,3)", "string", "date",
              "timestamp", "timestamptz"]:
        lt = parse_type(t)
        assert LogicalType.from_arrow(lt.to_arrow()) == lt
    s = Schema([Field("j", parse_type("json")), Field("a", INT32, nullable=False)])
    assert Schema.from_arrow(s.to_arrow()) == s


def test_widening_rules():
    assert widen(INT8, INT32) == INT32
    assert widen(INT64, FLOAT64) == FLOAT64
    assert widen(INT32, parse_type("decimal(10,2)")) == parse_type("decimal(12,2)")
    assert widen(parse_type("date"), parse_type("timestamp")) == parse_type("timestamp")
    assert widen(INT64, STRING) is None
    assert widen(INT64, STRING, allow_string=True) == STRING


def test_schema_evolution_adds_and_never_drops():
    a = Schema([Field("id", INT32, nullable=False), Field("x", STRING)])
    b = Schema([Field("id", INT64), Field("y", FLOAT64, nullable=False)])
    c = a.evolve(b)
    assert c.names == ["id", "x", "y"]
    assert c["id"].type == INT64 and c["x"].nullable and c["y"].nullable
    with pytest.raises(SchemaEvolutionError, match="'id'"):
        a.evolve(Schema([Field("id", STRING)]))
    assert a.evolve(Schema([Field("id", STRING)]), allow_string=True)["id"].type == STRING


def test_duplicate_names_rejected():
    with pytest.raises(ConfigError, match="duplicate"):
        Schema([Field("a", INT64), Field("a", STRING)])


def _fill(b: Batch):
    b.length = 3
    c = b.columns[0]
    c.values[:3] = [1, 2, 3]
    c.validity[0] = 0b101
    c.null_count = 1
    s = b.columns[1]
    s.offsets[:4] = [0, 2, 2, 5]
    s.data[:5] = np.frombuffer(b"hiabc", np.uint8)
    s.validity[0] = 0b111


def test_batch_to_arrow_is_zero_copy_and_copy_owns():
    b = Batch(Schema([Field("a", INT64), Field("s", STRING)]), 8)
    _fill(b)
    rb = b.to_arrow()
    assert rb.to_pydict() == {"a": [1, None, 3], "s": ["hi", "", "abc"]}
    owned = b.to_arrow(copy=True)
    assert rb.column(0).buffers()[1].address == b.columns[0].values.ctypes.data  # shared memory
    b.columns[0].values[0] = 99
    assert rb.column(0)[0].as_py() == 99 and owned.column(0)[0].as_py() == 1


def test_bytes_per_record():
    b = Batch(Schema([Field("a", INT64), Field("s", STRING)]), 8)
    _fill(b)
    # a: 3*8 + 1 validity byte; s: 4*4 offsets + 5 data bytes
    assert b.nbytes == 24 + 1 + 16 + 5
    assert b.bytes_per_record() == pytest.approx(46 / 3)


def test_batch_reset_clears_validity():
    b = Batch(Schema([Field("a", INT64)]), 8)
    _fill_simple = b.columns[0]
    _fill_simple.validity[0] = 0xFF
    b.length = 5
    b.reset()
    assert b.length == 0 and not b.columns[0].validity.any()


def test_pool_hands_out_the_same_buffers_and_blocks():
    pool = BatchPool(Schema([Field("a", INT64)]), 16, 2)
    x, y = pool.acquire(), pool.acquire()
    ids = {id(x.columns[0].values), id(y.columns[0].values)}
    got = []

    def taker():
        got.append(pool.acquire())

    t = threading.Thread(target=taker)
    t.start()
    time.sleep(0.2)
    assert not got and pool.waits == 1  # blocked: backpressure
    pool.release(x)
    t.join(5)
    assert got and id(got[0].columns[0].values) in ids  # the same buffers again
    with pytest.raises(TimeoutError):
        pool.acquire(timeout=0.05)
    with pytest.raises(ValueError):
        pool.release(got[0]) or pool.release(got[0])


def test_pool_close_wakes_waiters():
    pool = Pool(lambda: object(), 1)
    pool.acquire()
    err = []

    def taker():
        try:
            pool.acquire()
        except PoolClosed as e:
            err.append(e)

    t = threading.Thread(target=taker)
    t.start()
    time.sleep(0.1)
    pool.close()
    t.join(5)
    assert err


def test_decimal_and_bool_columns_to_arrow():
    b = Batch(Schema([Field("d", parse_type("decimal(20,2)")), Field("b", parse_type("bool"))]), 4)
    b.length = 2
    d = b.columns[0]
    d.values[0] = [-5, -1]
    d.values[1] = [12345, 0]
    d.validity[0] = 3
    bo = b.columns[1]
    bo.values[0] = 0b10
    bo.validity[0] = 3
    assert b.to_arrow().to_pydict() == {"d": [Decimal("-0.05"), Decimal("123.45")], "b": [False, True]}


# -- binary ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["binary", "BINARY", "bytes", "bytea", " Bytea "])
def test_parse_binary_type_and_aliases(text):
    t = parse_type(text)
    assert t == LogicalType("binary") and str(t) == "binary"
    assert t.is_varlen and not t.is_text and not t.is_fixed


def test_binary_arrow_round_trip_and_schema_files():
    import pyarrow as pa

    assert parse_type("binary").to_arrow() == pa.binary()
    for at in (pa.binary(), pa.large_binary(), pa.binary(4)):
        assert LogicalType.from_arrow(at) == parse_type("binary")
    assert LogicalType.from_arrow(pa.string()) == STRING  # text stays text
    s = Schema.from_dict([{"name": "k", "type": "int64"}, {"name": "v", "type": "bytea", "nullable": False}])
    assert s["v"].type.kind == "binary" and Schema.from_arrow(s.to_arrow()) == s
    assert s.to_dict()[1] == {"name": "v", "type": "binary", "nullable": False}
    assert Schema.from_dict({"v": "bytes"})["v"].type.kind == "binary"


def test_binary_widens_only_to_itself():
    b = parse_type("binary")
    assert widen(b, b) == b
    for other in (STRING, parse_type("json"), INT64, FLOAT64, parse_type("date"),
                  parse_type("struct<a: int64>"), parse_type("list<int64>")):
        assert widen(b, other) is None and widen(other, b) is None
        assert widen(b, other, allow_string=True) is None and widen(other, b, allow_string=True) is None
    assert widen(parse_type("list<binary>"), parse_type("list<binary>")) == parse_type("list<binary>")
    assert widen(parse_type("list<binary>"), parse_type("list<string>"), allow_string=True) is None
    a = Schema([Field("v", b)])
    assert a.evolve(Schema([Field("v", b, nullable=False), Field("w", STRING)])).names == ["v", "w"]
    for other in (STRING, INT64):
        with pytest.raises(SchemaEvolutionError, match="'v'.*binary columns only take binary values"):
            a.evolve(Schema([Field("v", other)]), allow_string=True)
        with pytest.raises(SchemaEvolutionError, match="'v'.*binary columns only take binary values"):
            Schema([Field("v", other)]).evolve(a, allow_string=True)


def test_binary_column_to_arrow_keeps_any_bytes():
    import pyarrow as pa

    values = [b"\x00\xff\xfe", b"", None, bytes(range(256)), b"\xc3\x28"]  # the last is invalid UTF-8
    b = Batch(Schema([Field("v", parse_type("binary"))]), 8, string_bytes=1)
    c = b.columns[0]
    data = b"".join(v for v in values if v)
    offs = np.cumsum([0] + [len(v or b"") for v in values]).astype(np.int32)
    c.offsets[:len(offs)] = offs
    c.reserve_data(len(data))[:len(data)] = np.frombuffer(data, np.uint8)
    c.validity[0] = 0b11011
    c.null_count = 1
    b.length = len(values)
    for copy in (False, True):
        rb = b.to_arrow(copy=copy)
        assert rb.schema.field("v").type == pa.binary()
        assert rb.column(0).to_pylist() == values
    assert b.nbytes == 1 + 4 * 6 + len(data)
    b.reset()
    assert b.columns[0].null_count == 0 and b.columns[0].validity[0] == 0


def test_dead_letter_target_implies_the_dead_letter_policy(tmp_path):
    import json

    import nebula
    from nebula.errors import ConfigError

    p = tmp_path / "a.csv"
    p.write_text("id\n1\nx\n3\n")
    dl = tmp_path / "dl.jsonl"
    r = nebula.copy(str(p), str(tmp_path / "o.parquet"), columns={"id": "int64"}, dead_letter=str(dl))
    assert (r.rows_written, r.rows_rejected) == (2, 1)
    assert json.loads(dl.read_text())["line"] == 3
    with pytest.raises(ConfigError, match="choose one"):
        nebula.copy(str(p), str(tmp_path / "o.parquet"), on_error="skip", dead_letter=str(dl))


def test_column_option_splits_outside_brackets():
    from nebula.api import parse_columns

    got = parse_columns("o:struct<a: int64, b: binary>,x:decimal(12,2),a:b:int32")
    assert [str(got[k]) for k in ("x", "a:b")] == ["decimal(12,2)", "int32"]
    assert got["o"].kind == "struct" and [f for f, _ in got["o"].fields] == ["a", "b"]
    assert parse_columns(["o:list<struct<k: int64>>"])["o"].kind == "list"
    with pytest.raises(ConfigError):
        parse_columns("nocolon")
