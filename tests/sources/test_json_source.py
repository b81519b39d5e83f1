"""The JSON source end to end (read_json, copy, CLI): tables equal to pyarrow's / the json module's
reading, schema evolution and contracts, and typed errors or dead letters on every hostile input."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import sqlite3
import subprocess
import sys

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

import nebula
from nebula.errors import ConfigError, ParseError, SchemaEvolutionError, TypeCoercionError
from nebula.sample import generate

NEBULA = [sys.executable, "-m", "nebula.cli"]


def write(tmp_path, data: bytes | str, name="t.jsonl"):
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(p)


def lines(*objs) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


@pytest.fixture(scope="module")
def orders(tmp_path_factory):
    d = tmp_path_factory.mktemp("orders")
    return str(generate(d / "orders.jsonl", 3000, fmt="jsonl")), str(generate(d / "orders.json", 3000, fmt="json"))


# -- correct tables ---------------------------------------------------------------------------------
def _same_as_pyarrow(t, path):
    ref = pajson.read_json(path)
    assert t.column_names == ref.column_names
    for name in ref.column_names:
        a, b = t.column(name), ref.column(name)
        if pa.types.is_timestamp(b.type):
            b = b.cast(pa.timestamp("us"))
        assert a.to_pylist() == b.to_pylist(), name


def test_orders_jsonl_equals_pyarrow(orders):
    t = nebula.read_json(orders[0], batch_rows=700)
    assert t.num_rows == 3000
    # low-cardinality strings (country, status) come dictionary-encoded, like read_csv's
    assert [str(getattr(f.type, "value_type", f.type)) for f in t.schema] == [
        "int64", "int64", "double", "int64", "string", "string", "timestamp[us]", "string"]
    assert [pa.types.is_dictionary(f.type) for f in t.schema] == [False] * 4 + [True, True, False, False]
    _same_as_pyarrow(t, orders[0])
    plain = nebula.read_json(orders[0], batch_rows=700, dictionary="none")
    assert not any(pa.types.is_dictionary(f.type) for f in plain.schema)
    assert plain.equals(t.cast(plain.schema))


def test_dictionary_columns_escapes_and_fallback(tmp_path):
    recs = [{"k": ["a", "b\u00e9", "c\"q"][i % 3], "n": f"v{i}"} for i in range(400)]
    recs[350]["k"] = None
    p = write(tmp_path, lines(*recs))
    t = nebula.read_json(p, batch_rows=100, dictionary_max=16)
    assert pa.types.is_dictionary(t.schema.field("k").type)
    assert not pa.types.is_dictionary(t.schema.field("n").type)
    assert t.column("k").to_pylist() == [r["k"] for r in recs]
    t = nebula.read_json(p, batch_rows=100, dictionary_max=2, dictionary=["k", "n"])  # overflow: Arrow's encoder
    assert t.column("k").to_pylist() == [r["k"] for r in recs]
    assert t.column("n").to_pylist() == [r["n"] for r in recs]


def test_orders_json_array_equals_json_module(orders):
    t = nebula.read_json(orders[1], batch_rows=999, block_size=64 << 10)
    ref = json.loads(open(orders[1], encoding="utf-8").read())
    got = t.to_pylist()
    assert len(got) == len(ref) == 3000
    for g, r in zip(got, ref, strict=True):
        r = dict(r, ts=dt.datetime.fromisoformat(r["ts"]))
        assert g == r


def test_small_blocks_carry_records(orders):
    a = nebula.read_json(orders[0], block_size=1024, batch_rows=37)
    _same_as_pyarrow(a, orders[0])


def test_compressed_and_globs(tmp_path, orders):
    raw = open(orders[0], "rb").read()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(raw))
    import zstandard

    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    import lz4.frame

    (tmp_path / "c.jsonl.lz4").write_bytes(lz4.frame.compress(raw))
    for name in ("a.jsonl.gz", "b.jsonl.zst", "c.jsonl.lz4"):
        t = nebula.read_json(str(tmp_path / name))
        _same_as_pyarrow(t, orders[0])
    t = nebula.read_json(str(tmp_path / "*.jsonl.*"))
    assert t.num_rows == 9000


def test_nested_flatten_arrays_escapes(tmp_path):
    p = write(tmp_path, '{"a": {"b": {"c": 1}, "d": "x"}, "arr": [1, {"k": [2]}], "s": "\\u00e9\\ud83d\\ude00\\n\\"\\\\\\/\\t"}\n'
                        '{"a": {"b": {"c": 2}}, "arr": [], "s": "plain", "e": {}}\n')
    t = nebula.read_json(p)
    assert t.column_names == ["a__b__c", "a__d", "arr", "s"]
    assert t.schema.field("arr").metadata == {b"nebula.type": b"json"}
    assert t.to_pylist() == [
        {"a__b__c": 1, "a__d": "x", "arr": '[1, {"k": [2]}]', "s": "é😀\n\"\\/\t"},
        {"a__b__c": 2, "a__d": None, "arr": "[]", "s": "plain"}]


def test_records_path_and_surroundings(tmp_path):
    doc = {"meta": {"n": 2, "x": [1, 2, {"y": "}"}]}, "data": {"v": 1, "items": [{"a": 1}, {"a": 2, "b": "z"}],
                                                             "after": {"q": [3]}}, "tail": "t"}
    p = write(tmp_path, json.dumps(doc, indent=2), "doc.json")
    t = nebula.read_json(p, records_path="data.items", block_size=1024)
    assert t.to_pylist() == [{"a": 1, "b": None}, {"a": 2, "b": "z"}]
    with pytest.raises(ParseError, match="not found"):
        nebula.read_json(p, records_path="data.nope")
    bad = write(tmp_path, json.dumps(doc)[:-1] + ', "x": }', "bad.json")
    with pytest.raises(ParseError):
        nebula.read_json(bad, records_path="data.items")


def test_big_integers_rule(tmp_path):
    p = write(tmp_path, '{"i": 1, "big": 1}\n{"i": 9223372036854775807, "big": 123456789012345678901234567890}\n')
    t = nebula.read_json(p)
    assert str(t.schema.field("i").type) == "int64"
    assert str(t.schema.field("big").type) == "decimal128(38, 0)"
    assert t.column("big").to_pylist()[1] == 123456789012345678901234567890
    p = write(tmp_path, '{"h": 1234567890123456789012345678901234567890123}\n', "h.jsonl")
    r = nebula.copy(p, nebula_mem(), progress="none")
    assert any("38 digits" in w for w in r.warnings)


def nebula_mem():
    from nebula.connectors.destinations.memory import MemoryDestination

    return MemoryDestination()


# -- schema evolution and contracts --------------------------------------------------------------------
EVOLVING = lines(*[{"id": i, "v": i} for i in range(50)], {"id": 50, "v": 1.5, "new": "n"},
                 *[{"id": i, "v": i, "w": i} for i in range(51, 80)], {"id": 80, "w": "text"})


def test_evolution_new_field_widen_and_string(tmp_path):
    p = write(tmp_path, EVOLVING)
    t = nebula.read_json(p, batch_rows=16)
    assert [(f.name, str(f.type)) for f in t.schema] == [("id", "int64"), ("v", "double"), ("new", "string"),
                                                         ("w", "string")]
    rows = t.to_pylist()
    assert rows[0] == {"id": 0, "v": 0.0, "new": None, "w": None}
    assert rows[50] == {"id": 50, "v": 1.5, "new": "n", "w": None}
    assert rows[60]["w"] == "60" and rows[80]["w"] == "text"


def test_evolution_to_parquet_rewrites_row_groups(tmp_path):
    p = write(tmp_path, EVOLVING)
    out = str(tmp_path / "o.parquet")
    nebula.copy(p, out, batch_rows=16, dest_options={"row_group_rows": 10}, progress="none")
    t = pq.read_table(out)
    assert t.equals(nebula.read_json(p, batch_rows=16).cast(t.schema))
    assert t.num_rows == 81 and t.column("w").to_pylist()[80] == "text"


def test_evolution_to_sqlite_adds_columns(tmp_path):
    p = write(tmp_path, EVOLVING)
    db = tmp_path / "o.db"
    nebula.copy(p, f"sqlite:///{db}", batch_rows=16, progress="none")
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute("PRAGMA table_info(t)")]
    assert cols == ["id", "v", "new", "w"]
    assert con.execute("SELECT v, new FROM t WHERE id = 50").fetchone() == (1.5, "n")
    assert con.execute("SELECT w FROM t WHERE id = 80").fetchone() == ("text",)


def test_evolution_to_csv_is_a_clear_error(tmp_path):
    p = write(tmp_path, EVOLVING)
    with pytest.raises(SchemaEvolutionError, match="header"):
        nebula.copy(p, str(tmp_path / "o.csv"), batch_rows=16, progress="none")
    assert not os.path.exists(tmp_path / "o.csv")


def test_contract_freeze_names_field_and_line(tmp_path):
    p = write(tmp_path, EVOLVING)
    with pytest.raises(SchemaEvolutionError, match=r"line 51.*'v'") as e:
        nebula.read_json(p, batch_rows=16, contract="freeze")
    assert e.value.line == 51 and e.value.column == "v"


def test_contract_discard_row_and_value(tmp_path):
    p = write(tmp_path, EVOLVING)
    dl = tmp_path / "dl.jsonl"
    t = nebula.read_json(p, batch_rows=16, contract="discard-row", on_error="dead-letter", dead_letter=str(dl))
    assert t.column_names == ["id", "v"] and t.num_rows == 50  # a float v, then rows with a new field w
    rej = sorted((json.loads(x) for x in dl.read_text().splitlines()), key=lambda r: r["line"])
    assert [r["line"] for r in rej] == list(range(51, 82))  # (workers emit rejects in any order)
    assert rej[0]["column"] == "v" and "contract discard-row" in rej[0]["reason"] and rej[1]["column"] == "w"
    t = nebula.read_json(p, batch_rows=16, contract="discard-value", on_error="skip")
    assert t.num_rows == 81 and t.column_names == ["id", "v"]
    assert t.column("v").to_pylist()[50] is None
    with pytest.raises(ConfigError, match="on-error"):
        nebula.read_json(p, contract="discard-row")


def test_user_types_are_pinned(tmp_path):
    p = write(tmp_path, lines({"a": 1, "b": "x"}, {"a": "oops", "b": "y"}))
    with pytest.raises(TypeCoercionError, match="line 2"):
        nebula.read_json(p, columns={"a": "int32"})
    t = nebula.read_json(p, infer_schema=False)
    assert t.to_pylist() == [{"a": "1", "b": "x"}, {"a": "oops", "b": "y"}]


# -- bad input ------------------------------------------------------------------------------------------
HOSTILE = {
    "trailing comma": b'{"a": 1,}',
    "single quotes": b"{'a': 1}",
    "control char": b'{"a": "x\x01y"}',
    "lone surrogate": b'{"a": "\\ud800"}',
    "low surrogate": b'{"a": "\\udc00x"}',
    "nan": b'{"a": NaN}',
    "infinity": b'{"a": -Infinity}',
    "truncated": b'{"a": [1, 2',
    "garbage": b'{"a": 1} x',
    "invalid utf8": b'{"a": "\xff\xfe"}',
    "not an object": b"[1, 2, 3]",
    "scalar": b"42",
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "deep object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "leading zero": b'{"a": 01}',
    "bad escape": b'{"a": "\\x"}',
    "missing colon": b'{"a" 1}',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_line_is_typed_error_or_dead_letter(tmp_path, name):
    good = b'{"a": 1, "b": "ok"}\n'
    data = good + HOSTILE[name] + b"\n" + good
    p = write(tmp_path, data)
    with pytest.raises(ParseError) as e:
        nebula.read_json(p)
    assert e.value.line == 2 and e.value.path == p
    assert len(data) // 2 > e.value.offset >= len(good) or e.value.offset >= len(good)
    dl = tmp_path / "dl.jsonl"
    t = nebula.read_json(p, on_error="dead-letter", dead_letter=str(dl))
    assert t.num_rows == 2
    (rec,) = [json.loads(x) for x in dl.read_text().splitlines()]
    assert rec["line"] == 2 and rec["reason"]
    raw = rec["raw"].encode() if rec["raw_base64"] is None else __import__("base64").b64decode(rec["raw_base64"])
    assert raw == HOSTILE[name]


def test_hostile_in_array_document_fails_with_location(tmp_path):
    p = write(tmp_path, b'[\n{"a": 1},\n{"a": 2,},\n{"a": 3}\n]', "x.json")
    with pytest.raises(ParseError, match="trailing comma") as e:
        nebula.read_json(p, on_error="skip")
    assert e.value.line == 3
    p = write(tmp_path, b'[{"a": 1}, 5, {"a": 3}]', "y.json")
    assert nebula.read_json(p, on_error="skip").to_pylist() == [{"a": 1}, {"a": 3}]
    for bad in (b'[{"a": 1},]', b'[{"a": 1}', b'[{"a": 1}] x', b"[{\"a\": 1} {\"a\": 2}]"):
        with pytest.raises(ParseError):
            nebula.read_json(write(tmp_path, bad, "z.json"))


def test_fifty_megabyte_string(tmp_path):
    big = "x" * (50 << 20)
    p = write(tmp_path, '{"a": 1, "s": "' + big + '"}\n{"a": 2, "s": "y"}\n')
    t = nebula.read_json(p)
    assert t.column("s").to_pylist()[0] == big and t.column("a").to_pylist() == [1, 2]


def test_empty_input_is_typed_error(tmp_path):
    with pytest.raises(ParseError, match="no JSON object"):
        nebula.read_json(write(tmp_path, "\n\n"))


# -- CLI ----------------------------------------------------------------------------------------------
def test_cli_copy_jsonl_to_parquet_and_sqlite(tmp_path, orders):
    out = tmp_path / "o.parquet"
    r = subprocess.run([*NEBULA, "copy", orders[0], str(out), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows_written"] == 3000
    assert pq.read_table(out).num_rows == 3000
    db = tmp_path / "o.db"
    r = subprocess.run([*NEBULA, "copy", orders[1], f"sqlite:///{db}", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sqlite3.connect(db).execute("SELECT count(*) FROM orders").fetchone() == (3000,)
    bad = write(tmp_path, b'{"a": 1}\n{"a": }\n')
    r = subprocess.run([*NEBULA, "copy", bad, str(tmp_path / "b.parquet")], capture_output=True, text=True)
    assert r.returncode == 1 and "line 2" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# -- JSON lines tokenized by the workers (chunks of whole lines, schema decided in input order) ---------
def test_parallel_chunks_equal_one_thread_and_keep_input_order(orders):
    a = nebula.read_json(orders[0], batch_rows=50, block_size=4096, threads=2)
    b = nebula.read_json(orders[0], batch_rows=3000, threads=1)
    assert a.column_names == b.column_names and a.to_pylist() == b.to_pylist()


def test_key_null_first_then_values_in_later_chunks(tmp_path):
    recs = [{"id": i} for i in range(40)] + [{"id": 40, "x": None}] + [{"id": i} for i in range(41, 60)]
    recs += [{"id": 60, "x": "late"}, {"id": 61, "y": {"z": 1}}] + [{"id": i, "x": None} for i in range(62, 90)]
    p = write(tmp_path, lines(*recs))
    t = nebula.read_json(p, batch_rows=8, threads=2)
    assert t.column_names == ["id", "x", "y__z"]
    rows = t.to_pylist()
    assert [r["id"] for r in rows] == list(range(90))
    assert rows[60]["x"] == "late" and rows[61]["y__z"] == 1 and rows[40]["x"] is None


def test_errors_in_late_chunks_keep_line_and_offset(tmp_path):
    good = [json.dumps({"a": i, "b": "x" * (i % 7)}).encode() + b"\n" for i in range(500)]
    data = b"".join(good[:300]) + b'{"a": 1,}\n' + b"".join(good[300:]) + b'{"a": "\n'
    p = write(tmp_path, data)
    with pytest.raises(ParseError, match="trailing comma") as e:
        nebula.read_json(p, batch_rows=7, block_size=1024, threads=2)
    assert e.value.line == 301 and e.value.offset == len(b"".join(good[:300])) + 8
    dl = tmp_path / "dl.jsonl"
    t = nebula.read_json(p, batch_rows=7, block_size=1024, threads=2, on_error="dead-letter", dead_letter=str(dl))
    assert t.column("a").to_pylist() == list(range(500))
    rej = sorted((json.loads(x) for x in dl.read_text().splitlines()), key=lambda r: r["line"])
    assert [r["line"] for r in rej] == [301, 502]
    assert rej[0]["offset"] == len(b"".join(good[:300])) + 8


def test_null_or_missing_in_non_nullable_column_is_located_or_dead_lettered(tmp_path):
    import json as _json

    import nebula
    from nebula.errors import TypeCoercionError

    p = tmp_path / "a.jsonl"
    p.write_text('{"id": 1, "name": "a"}\n{"id": null, "name": "b"}\n{"name": "c"}\n{"id": "x"}\n{"id": 5}\n')
    schema = tmp_path / "s.json"
    schema.write_text(_json.dumps({"columns": [{"name": "id", "type": "int64", "nullable": False},
                                               {"name": "name", "type": "string"}]}))
    with pytest.raises(TypeCoercionError) as ei:
        nebula.copy(str(p), str(tmp_path / "o.parquet"), schema=str(schema))
    assert (ei.value.line, ei.value.column) == (2, "id") and "not nullable" in ei.value.reason
    dl = tmp_path / "dl.jsonl"
    r = nebula.copy(str(p), str(tmp_path / "o.parquet"), schema=str(schema), on_error="dead-letter",
                    dead_letter=str(dl))
    assert (r.rows_written, r.rows_rejected) == (2, 3)
    got = [_json.loads(x) for x in dl.read_text().splitlines()]
    assert [(g["line"], "not nullable" in g["reason"]) for g in got] == [(2, True), (3, True), (4, False)]


def test_json_batches_default_to_16384_rows_and_batch_rows_overrides(tmp_path):
    """JSON sources batch 16,384 records unless told (their spans then stay in cache; CSV keeps
    65,536); an explicit batch_rows wins; the rows are the same either way."""
    from nebula.connectors.destinations.memory import MemoryDestination

    p = write(tmp_path, lines(*[{"id": i, "s": f"v{i % 7}"} for i in range(40_000)]))
    d = MemoryDestination()
    r = nebula.copy(p, d, progress="none")
    sizes = [b.num_rows for b in d._batches]
    assert r.rows_written == 40_000 and max(sizes) == 16_384 and len(sizes) == 3
    d2 = MemoryDestination()
    nebula.copy(p, d2, batch_rows=40_000, progress="none")
    assert [b.num_rows for b in d2._batches] == [40_000]
    assert d.table().to_pylist() == d2.table().to_pylist()
    csv = tmp_path / "t.csv"
    csv.write_text("id\n" + "".join(f"{i}\n" for i in range(70_000)))
    d3 = MemoryDestination()
    nebula.copy(str(csv), d3, progress="none")
    assert 60_000 < max(b.num_rows for b in d3._batches) <= 65_536
