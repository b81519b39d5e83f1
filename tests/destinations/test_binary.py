"""binary columns in the file, SQLite and memory destinations: bytes kept exact, documented text forms."""

from __future__ import annotations

import base64
import json
import re
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nebula.connectors.destinations.files import (
    CsvDestination,
    JsonlDestination,
    ParquetDestination,
    TextEncoder,
)
from nebula.connectors.destinations.memory import MemoryDestination
from nebula.connectors.destinations.sqlite import SqliteDestination
from nebula.errors import SchemaEvolutionError
from nebula.schema import Schema

from . import batch_from_pylist

SCHEMA = Schema.from_dict({"id": "int32", "v": "bytea"})
VALUES = [b"\x00\xff\x00", b"", None, bytes(range(256)), b'a\n"b,\\', b"\xc3\x28", b"\x00"]
ROWS = list(enumerate(VALUES))


def _load(dest, rows=ROWS, schema=SCHEMA, mode="replace", key=None, batches=1):
    dest.open(schema, mode=mode, table="t", key=key)
    step = max(1, len(rows) // batches)
    for a in range(0, len(rows), step):
        dest.write(batch_from_pylist(schema, rows[a:a + step]))
    dest.commit()
    return dest


def test_memory_returns_a_binary_column():
    t = _load(MemoryDestination()).table()
    assert t.schema.field("v").type == pa.binary()
    assert t.column("v").to_pylist() == VALUES


def test_parquet_stores_byte_array_without_utf8_annotation(tmp_path):
    path = str(tmp_path / "x.parquet")
    _load(ParquetDestination(path), batches=3)
    col = pq.ParquetFile(path).schema.column(1)
    assert col.physical_type == "BYTE_ARRAY"
    assert col.logical_type.type == "NONE" and col.converted_type == "NONE"
    t = pq.read_table(path)
    assert t.schema.field("v").type == pa.binary() and t.column("v").to_pylist() == VALUES


def test_sqlite_stores_blobs_in_every_mode(tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    _load(SqliteDestination(url))
    db = sqlite3.connect(f"{tmp_path}/x.db")
    assert db.execute("SELECT type FROM pragma_table_info('t') WHERE name = 'v'").fetchone() == ("BLOB",)
    got = db.execute("SELECT id, v, typeof(v) FROM t ORDER BY id").fetchall()
    assert [g[1] for g in got] == VALUES
    assert {g[2] for g in got} == {"blob", "null"}
    _load(SqliteDestination(url), rows=[(1, b"\x01\x00"), (7, b"new"), (9, None)], mode="merge", key=["id"])
    assert dict(db.execute("SELECT id, v FROM t").fetchall()) == {**dict(ROWS), 1: b"\x01\x00", 7: b"new", 9: None}
    _load(SqliteDestination(url), rows=[(30, b"\xff" * 3)], mode="append")
    assert db.execute("SELECT v FROM t WHERE id = 30").fetchall() == [(b"\xff\xff\xff",)]


def test_sqlite_text_column_refuses_binary_values(tmp_path):
    db = sqlite3.connect(f"{tmp_path}/x.db")
    db.execute("CREATE TABLE t (id INTEGER, v TEXT)")
    db.commit()
    with pytest.raises(SchemaEvolutionError, match="'v' is TEXT.*binary values"):
        _load(SqliteDestination(f"sqlite:///{tmp_path}/x.db"), mode="append")


def _hex(v):
    return "" if v is None else "\\x" + v.hex()


def test_csv_writes_backslash_x_hex(tmp_path):
    path = tmp_path / "x.csv"
    _load(CsvDestination(str(path)), batches=2)
    want = "id,v\n" + "".join(f"{i},{_hex(v)}\n" for i, v in ROWS)
    assert path.read_bytes().decode() == want
    one = TextEncoder(Schema.from_dict({"v": "binary"}), "csv")  # one column: a null is "" not a blank line
    rows = [(b"\x00",), (None,), (b"",)]
    assert one.encode_bytes(batch_from_pylist(one.schema, rows)) == b'\\x00\n""\n\\x\n'


def test_jsonl_writes_base64(tmp_path):
    path = tmp_path / "x.jsonl"
    _load(JsonlDestination(str(path)), batches=2)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"id": i, "v": None if v is None else base64.b64encode(v).decode()} for i, v in ROWS]
    assert [None if r["v"] is None else base64.b64decode(r["v"], validate=True) for r in lines] == VALUES


def test_large_value_and_many_rows_through_text_and_parquet(tmp_path):
    import os

    big = os.urandom(3 << 20)
    rows = [(i, big[i:i + (i * 37) % 300]) for i in range(5000)] + [(5000, big)]
    for cls, name in ((CsvDestination, "b.csv"), (JsonlDestination, "b.jsonl"), (ParquetDestination, "b.parquet")):
        _load(cls(str(tmp_path / name)), rows=rows, batches=4)
    csv_vals = [line.split(b",", 1)[1] for line in (tmp_path / "b.csv").read_bytes().splitlines()[1:]]
    assert [bytes.fromhex(v[2:].decode()) for v in csv_vals] == [v for _, v in rows]
    js = [json.loads(line)["v"] for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [base64.b64decode(v) for v in js] == [v for _, v in rows]
    assert pq.read_table(tmp_path / "b.parquet").column("v").to_pylist() == [v for _, v in rows]


def test_text_forms_read_back_as_binary_columns(tmp_path):
    import nebula

    for cls, name, read in ((CsvDestination, "r.csv", nebula.read_csv), (JsonlDestination, "r.jsonl", nebula.read_json)):
        _load(cls(str(tmp_path / name)), batches=2)
        t = read(str(tmp_path / name), columns={"v": "bytes"})
        assert t.schema.field("v").type == pa.binary() and t.column("v").to_pylist() == VALUES
        plain = read(str(tmp_path / name))  # inference never makes binary: the text stays text
        assert plain.schema.field("v").type == pa.string()


@pytest.mark.parametrize("name,text,where", [
    ("b.csv", "id,v\n1,\\x00\n2,\\x0\n", (3, "'\\\\x0' as binary (expected \\x and two hex digits per byte)")),
    ("b.csv", "id,v\n1,0a\n", (2, "'0a' as binary")),
    ("b.jsonl", '{"id": 1, "v": "AA=="}\n{"id": 2, "v": "A"}\n', (2, "'A' as binary (expected a base64 string)")),
    ("b.jsonl", '{"id": 1, "v": 5}\n', (1, "integer '5' as binary")),
])
def test_text_that_is_not_the_binary_form_is_a_located_error(tmp_path, name, text, where):
    import nebula
    from nebula.errors import TypeCoercionError

    (tmp_path / name).write_text(text)
    read = nebula.read_csv if name.endswith(".csv") else nebula.read_json
    with pytest.raises(TypeCoercionError, match=re.escape(where[1])) as e:
        read(str(tmp_path / name), columns={"v": "binary"})
    assert (e.value.line, e.value.column) == (where[0], "v")
    got = read(str(tmp_path / name), columns={"v": "binary"}, on_error="skip")
    assert got.num_rows == text.count("\n") - (2 if name.endswith(".csv") else 1)


def test_partitioned_prefix_keeps_binary_columns_but_not_as_keys(tmp_path):
    import pyarrow.dataset as ds

    import nebula
    from nebula.errors import ConfigError

    src = tmp_path / "b.csv"
    src.write_text("id,country,v\n1,fr,\\x00ff\n2,de,\\x\n3,fr,\n")
    nebula.copy(str(src), str(tmp_path / "out") + "/", partition_by="country", columns="v:binary", progress="none")
    t = ds.dataset(tmp_path / "out", format="parquet", partitioning="hive", exclude_invalid_files=True).to_table()
    assert sorted(zip(t.column("id").to_pylist(), t.column("v").to_pylist(), strict=True)) == [
        (1, b"\x00\xff"), (2, b""), (3, None)]
    with pytest.raises(ConfigError, match="cannot partition by 'v' of type binary"):
        nebula.copy(str(src), str(tmp_path / "out2") + "/", partition_by="v", columns="v:binary", progress="none")
