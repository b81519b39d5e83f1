"""CSV, JSON lines and Parquet destinations: round trips, atomic commit, compression, errors."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import os
from decimal import Decimal

import lz4.frame
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zstandard

from nebula.batch import Batch
from nebula.connectors.destinations.files import CsvDestination, JsonlDestination, ParquetDestination
from nebula.errors import ConfigError, DestinationError, SchemaEvolutionError
from nebula.schema import Schema

from . import batch_from_pylist, fill_batch

UTC = dt.UTC
SCHEMA = Schema.from_dict({
    "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64", "f32": "float32", "f64": "float64",
    "b": "bool", "d": "date", "ts": "timestamp", "tz": "timestamptz", "dec": "decimal(20,4)",
    "big": "decimal(38,2)", "s": "string", "j": "json",
})
ROWS = [
    (1, 300, -70000, 2**62, 1.5, 0.1, True, dt.date(2024, 2, 29), dt.datetime(2024, 1, 2, 3, 4, 5, 6),
     dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), Decimal("-12.3400"), Decimal("123456789012345678901234567.89"),
     'comma, "quote"\nnewline', '{"a": [1, 2]}'),
    (None,) * 14,
    (-128, -32768, 2**31 - 1, -(2**63), -0.25, -1e300, False, dt.date(1970, 1, 1), dt.datetime(1969, 7, 20, 20, 17),
     dt.datetime(2000, 1, 1, tzinfo=UTC), Decimal("0.0001"), Decimal("-1.00"), "", "null"),
    (0, 0, 0, 0, 0.0, 2.0, True, dt.date(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999), None,
     Decimal("9999999999999999.9999"), None, "ünïcødé ✓ 日本", "[]"),
]


def _records(schema, rows):
    return [dict(zip(schema.names, r, strict=True)) for r in rows]


def _write(dest, schema, *row_lists, mode="replace", dict_columns=()):
    dest.open(schema, mode=mode)
    for rows in row_lists:
        dest.write(batch_from_pylist(schema, rows, dict_columns=dict_columns))
    dest.commit()


def _dir_names(path):
    return sorted(os.listdir(os.path.dirname(path)))


def test_csv_round_trip_every_type(tmp_path):
    p = str(tmp_path / "out.csv")
    d = CsvDestination(p)
    _write(d, SCHEMA, ROWS[:2], ROWS[2:], dict_columns={"s"})
    assert d.location() == p and _dir_names(p) == ["out.csv"]
    types = {f.name: f.type.to_arrow() for f in SCHEMA}
    t = pacsv.read_csv(p, parse_options=pacsv.ParseOptions(newlines_in_values=True),
                       convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, null_values=[""],
                                                            quoted_strings_can_be_null=False))
    got = t.to_pylist()
    want = _records(SCHEMA, ROWS)
    assert got == want


def test_csv_empty_string_is_quoted_null_is_empty(tmp_path):
    p = tmp_path / "e.csv"
    schema = Schema.from_dict({"a": "string", "b": "string"})
    _write(CsvDestination(str(p)), schema, [("", None), (None, "x"), ("a,b", 'q"')])
    assert p.read_bytes() == b'a,b\n"",\n,x\n"a,b","q"""\n'
    rows = list(csv.reader(io.StringIO(p.read_text(), newline="")))
    assert rows == [["a", "b"], ["", ""], ["", "x"], ["a,b", 'q"']]


def test_jsonl_round_trip_every_type(tmp_path):
    p = str(tmp_path / "out.jsonl")
    _write(JsonlDestination(p), SCHEMA, ROWS, dict_columns={"s"})
    lines = open(p, encoding="utf-8").read().split("\n")
    assert lines[-1] == ""
    objs = [json.loads(x) for x in lines[:-1]]
    for obj, r in zip(objs, ROWS, strict=True):
        for f, v in zip(SCHEMA, r, strict=True):
            g = obj[f.name]
            if v is None:
                assert g is None
            elif f.type.kind == "decimal":
                assert isinstance(g, str) and Decimal(g) == v
            elif f.type.kind == "date":
                assert dt.date.fromisoformat(g) == v
            elif f.type.kind == "timestamp":
                assert dt.datetime.fromisoformat(g) == v
            elif f.type.kind == "json":
                assert g == json.loads(v)
            elif f.type.kind == "float32":
                assert pa.scalar(g, pa.float32()).as_py() == v
            else:
                assert g == v


def test_jsonl_nan_and_inf_are_null(tmp_path):
    p = tmp_path / "n.jsonl"
    schema = Schema.from_dict({"x": "float64"})
    _write(JsonlDestination(str(p)), schema, [(float("nan"),), (float("inf"),), (1.0,)])
    assert p.read_bytes() == b'{"x":null}\n{"x":null}\n{"x":1.0}\n'


@pytest.mark.parametrize("ext,read", [
    (".gz", lambda b: gzip.decompress(b)),
    (".zst", lambda b: zstandard.ZstdDecompressor().stream_reader(io.BytesIO(b), read_across_frames=True).read()),
    (".lz4", lambda b: lz4.frame.decompress(b)),
])
@pytest.mark.parametrize("cls,base", [(CsvDestination, "o.csv"), (JsonlDestination, "o.jsonl")])
def test_compressed_outputs_readable(tmp_path, ext, read, cls, base):
    p = tmp_path / (base + ext)
    _write(cls(str(p)), SCHEMA, ROWS)
    plain = tmp_path / base
    _write(cls(str(plain)), SCHEMA, ROWS)
    assert read(p.read_bytes()) == plain.read_bytes()


def test_compression_option_overrides_extension(tmp_path):
    p = tmp_path / "o.csv"
    _write(CsvDestination(str(p), options={"compression": "gzip", "compression_level": 1}), SCHEMA, ROWS)
    assert gzip.decompress(p.read_bytes()).startswith(b"i8,i16")


def test_csv_append_skips_header_and_keeps_old_rows(tmp_path):
    schema = Schema.from_dict({"a": "int64", "s": "string"})
    for name in ("a.csv", "a.csv.gz"):
        p = tmp_path / name
        _write(CsvDestination(str(p)), schema, [(1, "x")])
        _write(CsvDestination(str(p)), schema, [(2, "y")], mode="append")
        data = p.read_bytes()
        if name.endswith(".gz"):
            data = gzip.decompress(data)
        assert data == b"a,s\n1,x\n2,y\n"
    with pytest.raises(SchemaEvolutionError):
        CsvDestination(str(tmp_path / "a.csv")).open(Schema.from_dict({"b": "int64"}), mode="append")
    # appending to a missing file writes the header
    p = tmp_path / "new.csv"
    _write(CsvDestination(str(p)), schema, [(3, "z")], mode="append")
    assert p.read_bytes() == b"a,s\n3,z\n"


def test_jsonl_append(tmp_path):
    p = tmp_path / "a.jsonl"
    schema = Schema.from_dict({"a": "int64"})
    _write(JsonlDestination(str(p)), schema, [(1,)])
    _write(JsonlDestination(str(p)), schema, [(2,)], mode="append")
    assert p.read_bytes() == b'{"a":1}\n{"a":2}\n'


def test_tsv_uses_tab(tmp_path):
    p = tmp_path / "t.tsv"
    _write(CsvDestination(str(p)), Schema.from_dict({"a": "string", "b": "int32"}), [("x,y", 1), ("t\tab", 2)])
    assert p.read_bytes() == b'a\tb\nx,y\t1\n"t\tab"\t2\n'


@pytest.mark.parametrize("cls,name", [(CsvDestination, "x.csv"), (JsonlDestination, "x.jsonl"),
                                      (ParquetDestination, "x.parquet")])
def test_abort_leaves_nothing_and_keeps_old_file(tmp_path, cls, name):
    p = tmp_path / name
    d = cls(str(p))
    d.open(SCHEMA)
    d.write(batch_from_pylist(SCHEMA, ROWS))
    d.abort()
    d.abort()  # safe twice
    assert os.listdir(tmp_path) == []
    _write(cls(str(p)), SCHEMA, ROWS[:1])
    before = p.read_bytes()
    d = cls(str(p))
    d.open(SCHEMA)
    d.write(batch_from_pylist(SCHEMA, ROWS))
    d.abort()
    assert os.listdir(tmp_path) == [name] and p.read_bytes() == before


@pytest.mark.parametrize("cls,name", [(CsvDestination, "c.csv.zst"), (ParquetDestination, "c.parquet")])
def test_crash_before_commit_leaves_only_a_dot_temp_file(tmp_path, cls, name):
    d = cls(str(tmp_path / name))
    d.open(SCHEMA)
    d.write(batch_from_pylist(SCHEMA, ROWS))
    # the process "dies" here: no commit, no abort
    names = os.listdir(tmp_path)
    assert len(names) == 1 and names[0].startswith(f".{name}.nebula-tmp-{os.getpid()}-")
    assert not (tmp_path / name).exists()
    d.abort()


def test_parquet_round_trip_every_type(tmp_path):
    p = str(tmp_path / "o.parquet")
    _write(ParquetDestination(p), SCHEMA, ROWS[:1], ROWS[1:], dict_columns={"s"})
    t = pq.read_table(p)
    assert t.column("s").to_pylist() == [r[12] for r in ROWS]
    assert t.cast(pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                             for f in t.schema])).to_pylist() == _records(SCHEMA, ROWS)
    assert t.schema.field("j").metadata == {b"nebula.type": b"json"}


def test_parquet_small_batches_accumulate_into_one_row_group(tmp_path):
    p = str(tmp_path / "g.parquet")
    schema = Schema.from_dict({"id": "int64", "s": "string"})
    d = ParquetDestination(p)
    d.open(schema)
    batch = Batch(schema, 100)
    for k in range(20):  # the same Batch refilled, as a pool does: the writer must copy
        fill_batch(batch, [list(range(k * 100, k * 100 + 100)), [f"v{k}"] * 100])
        d.write(batch)
    d.commit()
    f = pq.ParquetFile(p)
    assert f.metadata.num_row_groups == 1 and f.metadata.num_rows == 2000
    t = f.read()
    assert t.column("id").to_pylist() == list(range(2000))
    assert t.column("s").to_pylist() == [f"v{k}" for k in range(20) for _ in range(100)]


def test_parquet_row_group_rows_option_and_codecs(tmp_path):
    schema = Schema.from_dict({"id": "int64"})
    for codec in ("zstd", "snappy", "gzip", "lz4", "none"):
        p = str(tmp_path / f"{codec}.parquet")
        d = ParquetDestination(p, options={"compression": codec, "row_group_rows": 250})
        d.open(schema)
        for k in range(10):
            d.write(batch_from_pylist(schema, [(k * 100 + i,) for i in range(100)]))
        d.commit()
        f = pq.ParquetFile(p)
        assert f.metadata.num_rows == 1000 and f.metadata.num_row_groups == 4
        assert f.read().column("id").to_pylist() == list(range(1000))
        want = "UNCOMPRESSED" if codec == "none" else codec.upper()
        assert f.metadata.row_group(0).column(0).compression == want


def test_parquet_empty_output_has_schema(tmp_path):
    p = str(tmp_path / "e.parquet")
    d = ParquetDestination(p)
    d.open(SCHEMA)
    d.commit()
    t = pq.read_table(p)
    assert t.num_rows == 0 and t.schema.names == SCHEMA.names


def test_parquet_append_and_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        ParquetDestination(str(tmp_path / "a.parquet")).open(SCHEMA, mode="append")
    with pytest.raises(ConfigError):
        ParquetDestination(str(tmp_path / "a.parquet"), options={"compression": "xz"})
    with pytest.raises(ConfigError):
        CsvDestination(str(tmp_path / "a.csv"), options={"nope": 1})
    with pytest.raises(ConfigError):
        CsvDestination(str(tmp_path / "a.csv")).open(SCHEMA, mode="merge")


def test_output_dirs_created(tmp_path):
    p = tmp_path / "a" / "b" / "c.jsonl"
    _write(JsonlDestination(f"file://{p}"), SCHEMA, ROWS)
    assert p.exists()


@pytest.mark.parametrize("cls", [CsvDestination, JsonlDestination, ParquetDestination])
def test_unwritable_paths_raise_destination_error(tmp_path, cls):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DestinationError) as e:
        cls(str(f / "out.csv")).open(SCHEMA)
    assert str(f) in str(e.value)
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DestinationError, match="dir.csv"):
        cls(str(tmp_path / "dir.csv")).open(SCHEMA)
