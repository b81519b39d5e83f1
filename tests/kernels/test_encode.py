"""Encode kernels against the naive reference, Python's csv/json modules and pyarrow.

Run also with ``NUMBA_DISABLE_JIT=1`` so coverage sees inside the kernels.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nebula.connectors.destinations.files import CHUNK_ROWS, TextEncoder
from nebula.kernels import encode as k
from nebula.schema import Field, Schema
from nebula.types import parse_type

try:
    from tests.destinations import batch_from_pylist
    from tests.naive_encode import naive_csv, naive_jsonl
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from destinations import batch_from_pylist
    from naive_encode import naive_csv, naive_jsonl

UTC = dt.UTC
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
JSON_DOC = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | TEXT,
                        lambda c: st.lists(c, max_size=3) | st.dictionaries(TEXT, c, max_size=3), max_leaves=6)
KINDS = {
    "int8": st.integers(-128, 127),
    "int16": st.integers(-2**15, 2**15 - 1),
    "int32": st.integers(-2**31, 2**31 - 1),
    "int64": st.integers(-2**63, 2**63 - 1),
    "float64": st.floats(),
    "float32": st.floats(width=32),
    "bool": st.booleans(),
    "date": st.dates(),
    "timestamp": st.datetimes(),
    "timestamptz": st.datetimes(timezones=st.just(UTC)),
    "decimal(18,2)": st.decimals(min_value=Decimal("-9999999999999999.99"), max_value=Decimal("9999999999999999.99"),
                                 places=2, allow_nan=False, allow_infinity=False),
    "decimal(38,5)": st.decimals(min_value=Decimal("-1e32"), max_value=Decimal("1e32"), places=5,
                                 allow_nan=False, allow_infinity=False),
    "string": TEXT | st.sampled_from(["", ",", '"', "a\nb", "x\r", "é,\"", "\x00\x1f\\"]),
    "json": JSON_DOC.map(lambda v: json.dumps(v, ensure_ascii=False)),
}


def _table(kinds, nrows):
    """A schema of the given kinds plus a strategy for its rows."""
    schema = Schema(Field(f"c{i}_{kind}", parse_type(kind)) for i, kind in enumerate(kinds))
    row = st.tuples(*[st.none() | KINDS[kind] for kind in kinds])
    return schema, st.lists(row, min_size=0, max_size=nrows)


def _normalize(schema, rows):
    """What the columns hold after the round trip through Arrow (floats32 rounded, etc.)."""
    cols = [pa.array([r[i] for r in rows], type=f.type.to_arrow()).to_pylist() for i, f in enumerate(schema)]
    return [tuple(c[j] for c in cols) for j in range(len(rows))]


def _float_eq(kind, text, v):
    if v is None:
        return text in ("", "null", None)
    x = float(text)
    if math.isnan(v):
        return math.isnan(x)
    return (np.float32(x) == np.float32(v)) if kind == "float32" else x == v


def _check_csv(schema, rows, out, dict_cols=()):
    want = naive_csv(schema, rows)
    floats = [i for i, f in enumerate(schema) if f.type.is_float]
    if not floats:
        assert out == want
    got = list(csv.reader(io.StringIO(out.decode(), newline="")))
    exp = list(csv.reader(io.StringIO(want.decode(), newline="")))
    assert len(got) == len(exp) == len(rows) + 1
    for g, e, r in zip(got[1:], exp[1:], rows, strict=True):
        for i, f in enumerate(schema):
            if i in floats:
                assert _float_eq(f.type.kind, g[i], r[i]), (g[i], r[i])
            else:
                assert g[i] == e[i]


def _check_jsonl(schema, rows, out):
    want = naive_jsonl(schema, rows)
    if not any(f.type.is_float for f in schema):
        assert out == want
    lines = out.decode().split("\n")[:-1]  # str.splitlines also splits on U+0085 etc.
    assert len(lines) == len(rows)
    for line, r in zip(lines, rows, strict=True):
        obj = json.loads(line)
        assert list(obj) == schema.names
        for f, v in zip(schema, r, strict=True):
            g = obj[f.name]
            kind = f.type.kind
            if v is None:
                assert g is None
            elif f.type.is_float:
                assert g is None if not math.isfinite(v) else _float_eq(kind, repr(g), v)
            elif kind == "decimal":
                assert Decimal(g) == v
            elif kind == "json":
                assert g == json.loads(v)
            elif kind in ("date", "timestamp"):
                assert isinstance(g, str)
            else:
                assert g == v


@pytest.mark.parametrize("kind", list(KINDS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_type_matches_naive(kind, data):
    schema, rows_st = _table(["int32", kind], 40)
    rows = _normalize(schema, data.draw(rows_st))
    batch = batch_from_pylist(schema, rows)
    _check_csv(schema, rows, TextEncoder(schema, "csv").header() + TextEncoder(schema, "csv").encode_bytes(batch))
    _check_jsonl(schema, rows, TextEncoder(schema, "jsonl").encode_bytes(batch))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kinds=st.lists(st.sampled_from(list(KINDS)), min_size=1, max_size=6))
def test_mixed_schemas_match_naive(data, kinds):
    schema, rows_st = _table(kinds, 30)
    rows = _normalize(schema, data.draw(rows_st))
    strings = [f.name for f in schema if f.type.kind == "string"]
    dict_cols = data.draw(st.sets(st.sampled_from(strings))) if strings else set()
    batch = batch_from_pylist(schema, rows, dict_columns=dict_cols)
    enc = TextEncoder(schema, "csv")
    _check_csv(schema, rows, enc.header() + enc.encode_bytes(batch))
    _check_jsonl(schema, rows, TextEncoder(schema, "jsonl").encode_bytes(batch))


def test_chunks_span_many_rows_and_reuse_buffers():
    schema = Schema.from_dict({"id": "int64", "s": "string", "ts": "timestamp"})
    n = CHUNK_ROWS * 2 + 13
    rows = [(i, None if i % 7 == 0 else f"v{i},x" if i % 5 == 0 else f"v{i}",
             dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i)) for i in range(n)]
    batch = batch_from_pylist(schema, rows)
    enc = TextEncoder(schema, "csv")
    for _ in range(2):
        assert enc.header() + enc.encode_bytes(batch) == naive_csv(schema, rows)


def test_csv_reads_back_with_pyarrow():
    schema = Schema.from_dict({"i": "int64", "f": "float64", "b": "bool", "d": "date", "t": "timestamp",
                               "tz": "timestamptz", "dec": "decimal(12,3)", "s": "string"})
    rows = [(1, 1.0, True, dt.date(2024, 2, 29), dt.datetime(2024, 1, 2, 3, 4, 5, 6),
             dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), Decimal("-1.250"), 'a "b", c\nd'),
            (None, -2.5e-10, False, None, dt.datetime(1970, 1, 1), None, None, None),
            (-7, None, None, dt.date(1900, 1, 1), None, dt.datetime(1999, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
             Decimal("123456789.001"), "plain")]
    enc = TextEncoder(schema, "csv")
    out = enc.header() + enc.encode_bytes(batch_from_pylist(schema, rows))
    types = {f.name: f.type.to_arrow() for f in schema}
    t = pacsv.read_csv(io.BytesIO(out), parse_options=pacsv.ParseOptions(newlines_in_values=True),
                       convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True))
    assert t.to_pylist() == [dict(zip(schema.names, r, strict=True)) for r in rows]


def test_int_kernel_extremes():
    v = np.array([0, -1, 9, 10, -(2**63), 2**63 - 1], dtype=np.int64)
    out = np.empty(400, np.uint8)
    offs = np.empty(7, np.int64)
    w = k.render_ints(v, 6, np.zeros(1, np.uint8), False, np.zeros(0, np.uint8), out, offs)
    got = [bytes(out[offs[i]:offs[i + 1]]).decode() for i in range(6)]
    assert got == [str(int(x)) for x in v] and w == offs[6]
    assert k.render_ints(v, 6, np.zeros(1, np.uint8), False, np.zeros(0, np.uint8), out[:30], offs) == -1


def test_decimal_kernel_int64_min_and_scales():
    for scale in (0, 3, 19, 25):
        words = np.array([[-(2**63), -1], [5, 0], [-5, -1]], dtype=np.int64)
        out = np.empty(400, np.uint8)
        offs = np.empty(4, np.int64)
        k.render_decimals(words, 3, scale, np.zeros(1, np.uint8), False, np.zeros(0, np.uint8), -1, out, offs)
        got = [Decimal(bytes(out[offs[i]:offs[i + 1]]).decode()) for i in range(3)]
        assert got == [Decimal(int(x)).scaleb(-scale) for x in (-(2**63), 5, -5)]


@given(st.integers(-2_000_000, 2_000_000))
def test_date_kernel_matches_proleptic_calendar(days):
    out = np.empty(64, np.uint8)
    offs = np.empty(2, np.int64)
    k.render_dates(np.array([days], np.int32), 1, np.zeros(1, np.uint8), False, np.zeros(0, np.uint8), -1, out, offs)
    text = bytes(out[offs[0]:offs[1]]).decode()
    try:
        want = (dt.date(1970, 1, 1) + dt.timedelta(days=days)).isoformat()
    except OverflowError:
        assert len(text) >= 10
        return
    assert text == want


def test_overflowing_outputs_return_minus_one():
    offsets = np.array([0, 3], np.int32)
    data = np.frombuffer(b'a"b', np.uint8)
    none = np.zeros(1, np.uint8)
    offs = np.empty(2, np.int64)
    assert k.render_csv_strings(offsets, data, 1, none, False, 44, none[:0], np.empty(5, np.uint8), offs) == -1
    assert k.render_csv_strings(offsets, data, 1, none, False, 44, none[:0], np.empty(6, np.uint8), offs) == 6
    assert k.render_json_strings(offsets, data, 1, none, False, none[:0], np.empty(5, np.uint8), offs) == -1
    assert k.json_string_size(offsets, data, 1, none, False, 4) == 6
