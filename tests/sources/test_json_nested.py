"""``nested="keep"``: JSON objects stay Arrow structs and arrays Arrow lists.

Tables are compared with pyarrow.json's nested reading and with Python's json module (hypothesis
documents: objects in arrays in objects, empty arrays, nulls at every level, nesting up to
``max_depth``); evolution across batches, contracts, Parquet round trips, text/SQL destinations and
hostile input (the same typed errors as flatten mode).
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.json as pajson
import pytest

import nebula
from nebula.errors import ConfigError
from nebula.types import INT64, JSON, STRING, LogicalType, list_of, parse_type, struct_of


def write(tmp_path, data: bytes | str, name="t.jsonl"):
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(p)


def lines(*objs) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


# -- the type system ------------------------------------------------------------------------------------
def test_nested_types_text_and_arrow_round_trip():
    t = parse_type('struct<a: int64, "b c": list<struct<x: decimal(10,2), y: timestamptz>>, j: json>')
    assert str(t) == 'struct<a: int64, "b c": list<struct<x: decimal(10,2), y: timestamptz>>, j: json>'
    assert parse_type(str(t)) == t and hash(parse_type(str(t))) == hash(t)
    assert LogicalType.from_arrow(t.to_arrow()) == t  # json children keep their field metadata
    assert t.child("a") == INT64 and t.child("nope") is None and t.is_nested and not t.is_fixed
    assert parse_type("list<list<string>>") == list_of(list_of(STRING))
    assert str(struct_of([])) == "struct<>"
    for bad in ("struct<a int64>", "list<int64", "struct<a: int64,,>", "list<int64, string>", "struct<a: nope>"):
        with pytest.raises(ConfigError):
            parse_type(bad)


def test_widen_nested():
    from nebula.schema import widen

    a = struct_of([("x", INT64)])
    b = struct_of([("x", LogicalType("float64")), ("y", STRING)])
    assert widen(a, b) == struct_of([("x", LogicalType("float64")), ("y", STRING)])
    assert widen(list_of(INT64), list_of(LogicalType("float64"))) == list_of(LogicalType("float64"))
    assert widen(a, INT64) == JSON and widen(list_of(INT64), a) == JSON


# -- tables -------------------------------------------------------------------------------------------------
NESTED = lines(
    {"id": 1, "o": {"a": 1, "b": "x", "c": {"d": [1.5, 2]}}, "arr": [1, 2, 3],
     "objs": [{"k": 1}, {"k": 2, "z": [True]}], "e": [], "n": None},
    {"id": 2, "o": None, "arr": [], "objs": None, "e": [], "n": None},
    {"id": 3, "o": {}, "arr": None, "objs": [{}], "e": [[]], "n": None},
    {"id": 4, "arr": [4, None], "objs": [{"k": None, "z": []}, None], "e": [[], ["s"]]},
)


def test_keep_structs_and_lists_match_pyarrow(tmp_path):
    p = write(tmp_path, NESTED)
    t = nebula.read_json(p, nested="keep")
    ref = pajson.read_json(p)
    assert t.column_names == ref.column_names
    for name in ("id", "o", "arr", "objs"):
        assert t.column(name).to_pylist() == ref.column(name).to_pylist(), name
    assert str(t.schema.field("o").type) == "struct<a: int64, b: string, c: struct<d: list<item: double>>>"
    assert str(t.schema.field("objs").type) == "struct<k: int64, z: list<item: bool>>".join(["list<item: ", ">"])
    # only empty arrays so far: list<string> (pyarrow: list<null>); a null-only member: string (as flatten)
    assert t.column("e").to_pylist() == [[], [], [[]], [[], ["s"]]]
    assert t.schema.field("e").type == pa.list_(pa.list_(pa.string()))


def test_null_missing_and_empty_stay_distinct(tmp_path):
    p = write(tmp_path, NESTED)
    t = nebula.read_json(p, nested="keep")
    o, arr = t.column("o").combine_chunks(), t.column("arr").combine_chunks()
    assert o.is_null().to_pylist() == [False, True, False, True]  # {"..."}, null, {}, missing
    assert o.to_pylist()[2] == {"a": None, "b": None, "c": None}  # {} is a struct of nulls, not null
    assert arr.is_null().to_pylist() == [False, False, True, False]
    assert arr.to_pylist()[1] == [] and arr.to_pylist()[3] == [4, None]


def test_flatten_is_still_the_default(tmp_path):
    p = write(tmp_path, NESTED)
    t = nebula.read_json(p)
    assert "o__c__d" in t.column_names and t.schema.field("arr").metadata == {b"nebula.type": b"json"}
    with pytest.raises(ConfigError, match="flatten .* or keep"):
        nebula.read_json(p, nested="deep")
