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


# -- destinations -------------------------------------------------------------------------------------------
def _expected_rows(text: str, names: list[str]) -> list[dict]:
    return [{k: r.get(k) for k in names} for r in map(json.loads, text.splitlines())]


def test_parquet_round_trip_and_text_destinations(tmp_path):
    import csv
    import sqlite3

    import pyarrow.parquet as pq

    p = write(tmp_path, NESTED)
    t = nebula.read_json(p, nested="keep")
    out = tmp_path / "o.parquet"
    nebula.copy(p, str(out), nested="keep", progress="none")
    back = pq.read_table(out)
    assert back.equals(t) and back.schema.field("o").type == t.schema.field("o").type
    # text and SQL destinations hold each struct/list as its JSON text (null stays null)
    names = t.column_names
    want = [{k: (v if k != "n" else None) for k, v in r.items()} for r in _expected_rows(NESTED, names)]
    want[2]["o"] = {}
    nebula.copy(p, str(tmp_path / "o.jsonl"), nested="keep", progress="none")
    got = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    norm = [{k: (json.loads(json.dumps(v)) if v is not None else None) for k, v in r.items()} for r in got]
    for g, w, row in zip(norm, want, t.to_pylist(), strict=True):
        assert g["objs"] == row["objs"] and g["arr"] == w["arr"] and g["e"] == w["e"]
        assert g["o"] == row["o"]
    nebula.copy(p, str(tmp_path / "o.csv"), nested="keep", progress="none")
    rows = list(csv.DictReader(open(tmp_path / "o.csv", newline="")))
    assert [json.loads(r["arr"]) if r["arr"] else None for r in rows] == [[1, 2, 3], [], None, [4, None]]
    db = tmp_path / "o.db"
    nebula.copy(p, f"sqlite:///{db}", nested="keep", progress="none")
    con = sqlite3.connect(db)
    assert [r[1] for r in con.execute("PRAGMA table_info(t)")] == names
    got = con.execute("SELECT objs, o FROM t ORDER BY id").fetchall()
    assert [json.loads(x) if x else None for x, _ in got] == t.column("objs").to_pylist()
    assert got[1][1] is None and json.loads(got[2][1]) == {"a": None, "b": None, "c": None}


def test_nested_in_partitioned_outputs(tmp_path):
    p = write(tmp_path, NESTED)
    nebula.copy(p, str(tmp_path / "d") + "/", nested="keep", dest_format="jsonl", partition_by="id", progress="none")
    files = sorted((tmp_path / "d").rglob("*.jsonl"))
    assert len(files) == 4 and json.loads(files[0].read_text())["o"]["c"] == {"d": [1.5, 2.0]}
    with pytest.raises(ConfigError, match="cannot partition by 'o'"):
        nebula.copy(p, str(tmp_path / "e") + "/", nested="keep", partition_by="o", progress="none")


def test_cli_copy_and_discover_keep(tmp_path):
    import subprocess
    import sys

    import pyarrow.parquet as pq

    p = write(tmp_path, NESTED)
    out = tmp_path / "o.parquet"
    cmd = [sys.executable, "-m", "nebula.cli"]
    r = subprocess.run([*cmd, "copy", p, str(out), "--nested", "keep", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert pq.read_table(out).schema.field("arr").type == pa.list_(pa.int64())
    r = subprocess.run([*cmd, "discover", p, "--nested", "keep", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cols = {c["name"]: c["type"] for c in json.loads(r.stdout)["columns"]}
    assert cols["objs"] == "list<struct<k: int64, z: list<bool>>>" and parse_type(cols["objs"]).is_nested
    r = subprocess.run([*cmd, "copy", p, str(out), "--nested", "sideways"], capture_output=True, text=True)
    assert r.returncode == 2 and "nested" in r.stderr


@pytest.fixture(scope="module")
def pg_dsn():
    from tests.pg._server import PgServer

    try:
        srv = PgServer()
        srv.start()
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"cannot start a throwaway PostgreSQL server (Debian package postgresql): {e}", pytrace=False)
    yield srv.dsn
    srv.stop()


def test_postgres_stores_nested_as_jsonb(tmp_path, pg_dsn):
    import psycopg

    p = write(tmp_path, NESTED + lines({"id": 5, "o": {"a": 2, "b": "y", "z": True}}))
    for copy in ("binary", "csv"):
        nebula.copy(p, pg_dsn, table=f"nested_{copy}", nested="keep", dest_options={"copy": copy}, batch_rows=2,
                    progress="none")
        with psycopg.connect(pg_dsn) as c:
            types = dict(c.execute("SELECT column_name, data_type FROM information_schema.columns WHERE "
                                   "table_name = %s", (f"nested_{copy}",)).fetchall())
            assert types["o"] == "jsonb" and types["objs"] == "jsonb" and types["id"] == "bigint"
            rows = c.execute(f"SELECT o, objs, arr FROM nested_{copy} ORDER BY id").fetchall()
        assert rows[0] == ({"a": 1, "b": "x", "c": {"d": [1.5, 2.0]}}, [{"k": 1, "z": None}, {"k": 2, "z": [True]}],
                           [1, 2, 3])
        assert rows[1] == (None, None, []) and rows[4][0] == {"a": 2, "b": "y", "c": None, "z": True}


# -- generated documents against the json module and pyarrow.json ----------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.data_too_large])
KEYS = st.sampled_from(["a", "b", "c", "k\u00e9y", "d e", "x\"y"])
LEAVES = st.sampled_from(["int", "float", "bool", "str"])
TYPES = st.recursive(LEAVES, lambda c: st.tuples(st.just("list"), c)
                     | st.tuples(st.just("struct"), st.dictionaries(KEYS, c, min_size=1, max_size=3)), max_leaves=8)
RECORD_TYPES = st.dictionaries(st.sampled_from(["p", "q", "r", "s"]), TYPES, min_size=1, max_size=4)


def values_of(t):
    """Values of a generated type: nulls, missing keys, empty lists and objects at every level."""
    if t == "int":
        v = st.integers(-(2**63), 2**63 - 1)
    elif t == "float":
        v = st.floats(allow_nan=False, allow_infinity=False)
    elif t == "bool":
        v = st.booleans()
    elif t == "str":
        v = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6).map(lambda s: "s" + s)
    elif t[0] == "list":
        v = st.lists(values_of(t[1]), max_size=3)
    else:
        v = st.fixed_dictionaries({}, optional={k: values_of(ct) for k, ct in t[1].items()})
    return st.none() | v


def documents():
    return RECORD_TYPES.flatmap(lambda rt: st.lists(st.fixed_dictionaries({"id": st.integers(0, 9)}, optional={
        k: values_of(t) for k, t in rt.items()}), min_size=1, max_size=12))


def same(got, want) -> bool:
    """``got`` (a value of the table) holds ``want`` (the json module's): missing struct fields and
    nulls alike, ints read as floats in float columns, scalars as their JSON text in string columns."""
    if want is None or got is None:
        return got is want
    if isinstance(want, dict):
        return isinstance(got, dict) and {k for k, v in got.items() if v is not None} == \
            {k for k, v in want.items() if v is not None} and all(same(got[k], v) for k, v in want.items()
                                                                 if v is not None)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(same, got, want))
    if isinstance(got, str) and not isinstance(want, str):
        return got == json.dumps(want)
    if isinstance(got, bool) or isinstance(want, bool):
        return got is want
    if isinstance(got, float) or isinstance(want, float):
        return float(got) == float(want)
    return got == want


def table_values(t):
    """Rows of ``t`` with json-typed values (at any level) parsed back."""
    from nebula.schema import Schema

    schema = Schema.from_arrow(t.schema)

    def conv(v, lt):
        if v is None:
            return None
        if lt.kind == "json":
            return json.loads(v)
        if lt.kind == "struct":
            return {k: conv(v[k], ct) for k, ct in lt.fields}
        if lt.kind == "list":
            return [conv(x, lt.element) for x in v]
        return v

    return [{f.name: conv(r[f.name], f.type) for f in schema} for r in t.to_pylist()]


@SETTINGS
@given(documents(), st.sampled_from([1, 3, 1000]), st.booleans())
def test_generated_documents_match_json_module_and_pyarrow(tmp_path_factory, recs, batch_rows, as_array):
    d = tmp_path_factory.mktemp("gen")
    if as_array:
        p = write(d, json.dumps(recs, indent=1), "t.json")
    else:
        p = write(d, lines(*recs))
    t = nebula.read_json(p, nested="keep", batch_rows=batch_rows, block_size=1024)
    got = table_values(t)
    assert len(got) == len(recs)
    for g, r in zip(got, recs, strict=True):
        assert same({k: v for k, v in g.items()}, r), (g, r)
    if batch_rows == 1000 and not as_array:  # one batch: the types pyarrow.json infers, where it reads right
        try:
            ref = pajson.read_json(p)
            ok = all(same(a, b) for a, b in zip(ref.to_pylist(), recs, strict=True))
        except (pa.ArrowInvalid, IndexError, SystemError):  # pyarrow.json fails on some lists that start null
            return
        for f in ref.schema if ok else ():
            if "null" not in str(f.type) and "struct<>" not in str(f.type):
                assert t.schema.field(f.name).type == f.type, f.name


# -- mixed types, evolution across batches ------------------------------------------------------------------
def test_mixed_values_fall_back_to_json_text(tmp_path):
    recs = [{"m": [1, "a", {"b": 2}], "s": {"x": 1}, "w": [1, 2.5], "u": [[1], 2]},
            {"m": [], "s": 5, "w": [3], "u": None}]
    t = nebula.read_json(write(tmp_path, lines(*recs)), nested="keep")
    types = {f.name: str(f.type) for f in nebula.discover(write(tmp_path, lines(*recs)), nested="keep")}
    assert types == {"m": "list<json>", "s": "json", "w": "list<float64>", "u": "list<json>"}
    assert table_values(t) == [{"m": [1, "a", {"b": 2}], "s": {"x": 1}, "w": [1.0, 2.5], "u": [[1], 2]},
                               {"m": [], "s": 5, "w": [3.0], "u": None}]
    assert t.column("s").to_pylist() == ['{"x": 1}', "5"]  # each value's exact text


def test_duplicate_keys_last_wins_like_the_json_module(tmp_path):
    doc = '{"a": [1], "a": [2, 3], "o": {"x": 1}, "o": {"y": 2}, "l": [{"k": 1, "k": 5, "p": {"q": 1}, "p": {}}]}'
    t = nebula.read_json(write(tmp_path, doc + "\n"), nested="keep")
    assert t.to_pylist() == [{"a": [2, 3], "o": {"x": None, "y": 2}, "l": [{"k": 5, "p": {"q": None}}]}]
    assert same(t.to_pylist()[0], json.loads(doc))


EVOLVE = [{"id": i, "o": {"a": i}, "l": [i]} for i in range(6)] + [
    {"id": 6, "o": {"a": 1.5, "b": "new"}, "l": [0.5]},  # int -> float inside, a new field in the struct
    {"id": 7, "o": {"a": 2, "c": {"d": [True]}}, "l": []},
    {"id": 8, "o": None, "l": None, "late": {"z": [1]}},  # a new member, nested
    {"id": 9, "o": {"a": 3}, "l": [{"x": 1}]},  # list<float> meets an object: list<json>
]


def test_evolution_across_batches(tmp_path):
    p = write(tmp_path, lines(*EVOLVE))
    t = nebula.read_json(p, nested="keep", batch_rows=2, threads=2)
    assert {f.name: str(f.type) for f in __import__("nebula.schema", fromlist=["Schema"]).Schema.from_arrow(
        t.schema)} == {"id": "int64", "o": "struct<a: float64, b: string, c: struct<d: list<bool>>>",
                       "l": "list<json>", "late": "struct<z: list<int64>>"}
    assert all(same(g, r) for g, r in zip(table_values(t), EVOLVE, strict=True))
    assert t.column("o").to_pylist()[0] == {"a": 0.0, "b": None, "c": None}


def test_evolution_to_parquet_rewrites_and_round_trips(tmp_path):
    import pyarrow.parquet as pq

    p = write(tmp_path, lines(*EVOLVE))
    out = tmp_path / "o.parquet"
    nebula.copy(p, str(out), nested="keep", batch_rows=2, dest_options={"row_group_rows": 2}, progress="none")
    back = pq.read_table(out)
    assert back.equals(nebula.read_json(p, nested="keep", batch_rows=2))
    assert all(same(g, r) for g, r in zip(table_values(back), EVOLVE, strict=True))
    # and the Parquet file read back with nebula's own types
    from nebula.schema import Schema

    assert str(Schema.from_arrow(back.schema)["l"].type) == "list<json>"


def test_null_first_then_values_takes_the_real_type(tmp_path):
    recs = [{"id": 0, "p": None, "q": []}, {"id": 1, "p": {"x": [1]}, "q": [{"k": 1}]}]
    for br in (1, 10):
        t = nebula.read_json(write(tmp_path, lines(*recs)), nested="keep", batch_rows=br)
        assert str(t.schema.field("p").type) == "struct<x: list<item: int64>>", br
        assert t.to_pylist()[1] == {"id": 1, "p": {"x": [1]}, "q": [{"k": 1}]}
    # under contract freeze those fields stay strings (as in flatten mode), holding the text
    t = nebula.read_json(write(tmp_path, lines(*recs)), nested="keep", batch_rows=1, contract="freeze")
    assert t.to_pylist()[1] == {"id": 1, "p": '{"x": [1]}', "q": ['{"k": 1}']}


# -- contracts ------------------------------------------------------------------------------------------------
CONTRACT = [{"id": i, "o": {"a": i, "l": [i]}} for i in range(4)] + [
    {"id": 4, "o": {"a": 4, "l": [4], "new": 1}},  # a new field inside the struct (line 5)
    {"id": 5, "o": {"a": "x", "l": [5]}},  # a string where the struct's a is int64 (line 6)
    {"id": 6, "o": {"a": 6, "l": [{"k": 1}]}},  # an object as a list element of int64 (line 7)
    {"id": 7, "o": [1]},  # the member itself changes kind (line 8)
    {"id": 8, "o": {"a": 8, "l": [8]}},
]


def test_contract_freeze_names_the_nested_field_and_line(tmp_path):
    p = write(tmp_path, lines(*CONTRACT))
    with pytest.raises(nebula.errors.SchemaEvolutionError, match=r"line 5, .*'o\.new' is not in the schema") as e:
        nebula.read_json(p, nested="keep", batch_rows=4, contract="freeze")
    assert e.value.line == 5 and e.value.column == "o.new"
    assert e.value.offset == len(lines(*CONTRACT[:4])) + lines(CONTRACT[4]).index('1}}')


def test_contract_discard_row_and_value_under_keep(tmp_path):
    p = write(tmp_path, lines(*CONTRACT))
    dl = tmp_path / "dl.jsonl"
    t = nebula.read_json(p, nested="keep", batch_rows=4, contract="discard-row", on_error="dead-letter",
                         dead_letter=str(dl))
    assert t.column("id").to_pylist() == [0, 1, 2, 3, 8]
    assert str(t.schema.field("o").type) == "struct<a: int64, l: list<item: int64>>"
    rej = sorted((json.loads(x) for x in dl.read_text().splitlines()), key=lambda r: r["line"])
    assert [(r["line"], r["column"]) for r in rej] == [(5, "o.new"), (6, "o.a"), (7, "o.l[]"), (8, "o")]
    assert all("contract discard-row" in r["reason"] for r in rej) and json.loads(rej[1]["raw"])["id"] == 5
    t = nebula.read_json(p, nested="keep", batch_rows=4, contract="discard-value", on_error="skip")
    assert t.column("id").to_pylist() == list(range(9))
    assert t.column("o").to_pylist()[4:8] == [{"a": 4, "l": [4]}, {"a": None, "l": [5]}, {"a": 6, "l": [None]},
                                              None]


# -- types given by the user --------------------------------------------------------------------------------
def test_user_types_under_keep(tmp_path):
    p = write(tmp_path, lines({"id": 1, "o": {"a": 1, "b": [1]}}, {"id": 2, "o": {"a": 2, "b": [2], "c": 3}}))
    t = nebula.read_json(p, nested="keep", columns={"o": "json"})
    assert t.column("o").to_pylist() == ['{"a": 1, "b": [1]}', '{"a": 2, "b": [2], "c": 3}']
    t = nebula.read_json(p, nested="keep", columns={"o": "struct<a: float64, b: list<string>, c: int32>"})
    assert t.column("o").to_pylist() == [{"a": 1.0, "b": ["1"], "c": None}, {"a": 2.0, "b": ["2"], "c": 3}]
    # a given type is not widened: a field it has no place for, or a value that does not fit, is an error
    from nebula.errors import TypeCoercionError

    with pytest.raises(TypeCoercionError, match=r"'o\.c' is not in the type") as e:
        nebula.read_json(p, nested="keep", columns={"o": "struct<a: int64, b: list<int64>>"})
    assert e.value.line == 2 and e.value.column == "o.c"
    with pytest.raises(TypeCoercionError, match=r"cannot read integer '1' as bool \(field 'o\.b\[\]'\)") as e:
        nebula.read_json(p, nested="keep", columns={"o": "struct<a: int64, b: list<bool>, c: int64>"})
    assert e.value.line == 1
    dl = tmp_path / "dl.jsonl"
    t = nebula.read_json(p, nested="keep", columns={"o": "struct<a: int64, b: list<int64>>"}, on_error="dead-letter",
                         dead_letter=str(dl))
    assert t.column("id").to_pylist() == [1] and json.loads(dl.read_text())["line"] == 2
    p = write(tmp_path, lines({"id": 1, "o": {"a": 1}}, {"id": 2, "o": 5}), "scalar.jsonl")
    with pytest.raises(TypeCoercionError, match=r"cannot read integer '5' as struct<a: int64>") as e:
        nebula.read_json(p, nested="keep", columns={"o": "struct<a: int64>"})
    assert (e.value.line, e.value.column, e.value.offset) == (2, "o", len(lines({"id": 1, "o": {"a": 1}})) + 15)


# -- deep nesting, hostile input ------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.sampled_from(["obj", "arr"]), min_size=1, max_size=15), st.booleans())
def test_nesting_up_to_max_depth(tmp_path_factory, shape, too_deep):
    """Objects in arrays in objects, ``max_depth`` levels deep (the record is one): read exactly; one
    level more is the same typed error (line, offset) as in flatten mode."""
    from nebula.errors import ParseError

    v = 1
    for s in reversed(shape + ["arr"] * too_deep):
        v = {"k": v} if s == "obj" else [None, v]
    recs = [{"id": 1, "v": v}, {"id": 2, "v": None}]
    p = write(tmp_path_factory.mktemp("deep"), lines(*recs))
    limit = len(shape) + 1
    if not too_deep:
        assert table_values(nebula.read_json(p, nested="keep", max_depth=limit)) == recs
        return
    errs = []
    for mode in ("flatten", "keep"):
        with pytest.raises(ParseError, match=f"deeper than {limit} levels") as e:
            nebula.read_json(p, nested=mode, max_depth=limit)
        errs.append((e.value.line, e.value.offset))
    assert errs[0] == errs[1] and errs[0][0] == 1


@pytest.mark.parametrize("nested", ["keep"])
def test_one_level_too_deep_is_the_flatten_error(tmp_path, nested):
    from nebula.errors import ParseError

    rec = '{"id": 1, "v": {"k": [[{"k": 1}]]}}\n'
    p = write(tmp_path, rec + '{"id": 2}\n')
    errs = []
    for mode in ("flatten", nested):
        with pytest.raises(ParseError, match="deeper than 4 levels") as e:
            nebula.read_json(p, nested=mode, max_depth=4)
        errs.append((e.value.line, e.value.offset, e.value.reason))
    assert errs[0] == errs[1]
    assert nebula.read_json(p, nested="keep", max_depth=5).column("v").to_pylist()[0] == {"k": [[{"k": 1}]]}


def test_hostile_input_gives_the_flatten_errors_and_dead_letters(tmp_path):
    from nebula.errors import ParseError
    from tests.sources.test_json_source import HOSTILE

    good = b'{"a": {"b": [1, {"c": 2}]}, "s": "ok"}\n'
    for name, bad in sorted(HOSTILE.items()):
        p = write(tmp_path, good + bad + b"\n" + good, f"{len(name)}.jsonl")
        got = {}
        for mode in ("flatten", "keep"):
            with pytest.raises(ParseError) as e:
                nebula.read_json(p, nested=mode)
            dl = tmp_path / f"dl_{mode}.jsonl"
            t = nebula.read_json(p, nested=mode, on_error="dead-letter", dead_letter=str(dl))
            rej = [json.loads(x) for x in dl.read_text().splitlines()]
            got[mode] = (type(e.value), e.value.line, e.value.offset, e.value.reason, t.num_rows,
                         [(r["line"], r["reason"], r["raw"], r["raw_base64"]) for r in rej])
        assert got["keep"] == got["flatten"], name
        assert got["keep"][1] == 2 and got["keep"][4] == 2


# -- input shapes, threads, flat data -----------------------------------------------------------------------
def test_records_path_array_documents_and_threads(tmp_path):
    recs = [{"id": i, "o": {"a": i, "t": [{"k": j} for j in range(i % 3)]}, "s": [str(i)] * (i % 4)}
            for i in range(300)]
    doc = {"meta": {"n": 300}, "data": {"items": recs}}
    p = write(tmp_path, json.dumps(doc, indent=1), "doc.json")
    t = nebula.read_json(p, nested="keep", records_path="data.items", block_size=1024, batch_rows=37)
    assert table_values(t) == recs
    lp = write(tmp_path, lines(*recs))
    a = nebula.read_json(lp, nested="keep", batch_rows=16, block_size=2048, threads=2)
    b = nebula.read_json(lp, nested="keep", batch_rows=300, threads=1)
    assert a.equals(b) and table_values(a) == recs


def test_flat_records_read_the_same_in_both_modes(tmp_path):
    from nebula.sample import generate

    p = str(generate(tmp_path / "orders.jsonl", 2000, fmt="jsonl"))
    a = nebula.read_json(p, batch_rows=500)
    b = nebula.read_json(p, batch_rows=500, nested="keep")
    assert a.equals(b)


def test_sqlite_adds_columns_for_new_members(tmp_path):
    import sqlite3

    p = write(tmp_path, lines(*EVOLVE))
    db = tmp_path / "o.db"
    nebula.copy(p, f"sqlite:///{db}", nested="keep", batch_rows=2, progress="none")
    con = sqlite3.connect(db)
    assert [r[1:3] for r in con.execute("PRAGMA table_info(t)")] == [("id", "INTEGER"), ("o", "TEXT"),
                                                                   ("l", "TEXT"), ("late", "TEXT")]
    rows = con.execute("SELECT o, l, late FROM t ORDER BY id").fetchall()
    assert json.loads(rows[0][0]) == {"a": 0}  # written before the struct grew: its fields then
    for (o, lst, late), rec in zip(rows, EVOLVE, strict=True):
        assert same(json.loads(o) if o else None, rec.get("o")) and same(json.loads(lst) if lst else None, rec["l"])
        assert same(json.loads(late) if late else None, rec.get("late"))


def test_yaml_pipeline_nested_keep(tmp_path):
    import subprocess
    import sys

    import pyarrow.parquet as pq

    p = write(tmp_path, NESTED)
    cfg = tmp_path / "p.yml"
    cfg.write_text(f"state: {tmp_path / 'state.db'}\npipelines:\n  - name: nested\n"
                   f"    source: {{url: {p}, options: {{nested: keep}}}}\n    destination: {tmp_path / 'o.parquet'}\n")
    r = subprocess.run([sys.executable, "-m", "nebula.cli", "run", str(cfg), "--no-progress"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert pq.read_table(tmp_path / "o.parquet").equals(nebula.read_json(p, nested="keep"))
