"""PostgreSQL binary COPY kernels against a slow, obviously right Python encoder and decoder.

Run also with ``NUMBA_DISABLE_JIT=1`` so coverage sees inside the kernels.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nebula.connectors.destinations.postgres import BinaryCopyEncoder, PostgresDestination, _plan_for
from nebula.errors import DataError, TypeCoercionError
from nebula.kernels import pgcopy as k
from nebula.schema import Schema

try:
    from tests.destinations import batch_from_pylist
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from destinations import batch_from_pylist

PG_EPOCH = dt.datetime(2000, 1, 1)
decimal.getcontext().prec = 100  # 38-digit values must not round through the default 28-digit context


# -- the naive reference --------------------------------------------------------------------------
def naive_numeric(value: Decimal, scale: int) -> bytes:
    """NUMERIC's binary form, from the decimal digits as text."""
    u = int(value.scaleb(scale))
    if u == 0:
        return struct.pack(">hhHh", 0, 0, 0, scale)
    s = str(abs(u)).rjust(scale + 1, "0")
    ip, fp = s[:len(s) - scale].lstrip("0"), s[len(s) - scale:]
    ip = ip.rjust((len(ip) + 3) // 4 * 4, "0")
    fp = fp.ljust((len(fp) + 3) // 4 * 4, "0")
    groups = [int(ip[i:i + 4]) for i in range(0, len(ip), 4)] + [int(fp[i:i + 4]) for i in range(0, len(fp), 4)]
    weight = len(ip) // 4 - 1
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    return struct.pack(">hhHh", len(groups), weight, 0x4000 if u < 0 else 0, scale) + struct.pack(
        f">{len(groups)}h", *groups)


def naive_field(v, t) -> bytes:
    if v is None:
        return struct.pack(">i", -1)
    k_ = t.kind
    if k_ in ("int8", "int16"):
        b = struct.pack(">h", v)
    elif k_ == "int32":
        b = struct.pack(">i", v)
    elif k_ == "int64":
        b = struct.pack(">q", v)
    elif k_ == "float32":
        b = struct.pack(">f", v)
    elif k_ == "float64":
        b = struct.pack(">d", v)
    elif k_ == "bool":
        b = bytes([1 if v else 0])
    elif k_ == "decimal":
        b = naive_numeric(v, t.scale)
    elif k_ == "string":
        b = v.encode()
    elif k_ == "json":
        b = b"\x01" + v.encode()
    elif k_ == "binary":
        b = v  # bytea: the bytes themselves
    elif k_ == "date":
        b = struct.pack(">i", (v - PG_EPOCH.date()).days)
    else:
        naive = v.replace(tzinfo=None) - (v.utcoffset() or dt.timedelta(0)) if v.tzinfo else v
        d = naive - PG_EPOCH
        b = struct.pack(">q", (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds)
    return struct.pack(">i", len(b)) + b


def naive_tuples(schema, rows) -> bytes:
    out = b""
    for r in rows:
        out += struct.pack(">h", len(schema)) + b"".join(naive_field(v, f.type) for v, f in zip(r, schema, strict=True))
    return out


def encode(schema, rows, dict_columns=()) -> bytes:
    plans = [_plan_for(f.type, *PostgresDestination._pg_name(f.type)) for f in schema]
    enc = BinaryCopyEncoder(schema, plans)
    batch = batch_from_pylist(schema, rows, dict_columns=dict_columns)
    return b"".join(bytes(c) for c in enc.encode(batch))


# -- tests ----------------------------------------------------------------------------------------
SCHEMA = Schema.from_dict({
    "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64", "f32": "float32", "f64": "float64", "b": "bool",
    "dec": "decimal(38,4)", "s": "string", "j": "json", "d": "date", "ts": "timestamp", "tz": "timestamptz",
})
ROWS = [
    (-128, -32768, -2**31, -2**63, 1.5, -0.1, True, Decimal("-12345678901234567890123456789012.3456"), "ünï\n\"x\"",
     '{"a": [1, 2]}', dt.date(1, 1, 1), dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
     dt.datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=dt.UTC)),
    (None,) * 13,
    (127, 32767, 2**31 - 1, 2**63 - 1, float("inf"), float("nan"), False, Decimal("0.0001"), "", "null",
     dt.date(9999, 12, 31), dt.datetime(2000, 1, 1), dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)),
    (0, 0, 0, 0, 0.0, -0.0, None, Decimal("0"), "a" * 300, "[]", dt.date(2000, 1, 1), None, None),
]


def test_every_type_matches_the_reference():
    got = encode(SCHEMA, ROWS)
    want = naive_tuples(SCHEMA, ROWS)
    assert got == want


def test_dictionary_column_matches_plain():
    schema = Schema.from_dict({"s": "string", "n": "int32"})
    rows = [("x", 1), (None, 2), ("yy", None), ("x", 4), ("", 5)]
    assert encode(schema, rows, dict_columns={"s"}) == naive_tuples(schema, rows) == encode(schema, rows)


def test_chunks_longer_than_one_kernel_call():
    from nebula.connectors.destinations.postgres import CHUNK_ROWS

    schema = Schema.from_dict({"a": "int64", "s": "string"})
    rows = [(i if i % 7 else None, str(i) if i % 5 else None) for i in range(CHUNK_ROWS * 2 + 13)]
    assert encode(schema, rows) == naive_tuples(schema, rows)


@pytest.mark.parametrize("text", ["1.5", "-1.5", "10000", "-99999999.9999", "0.0001", "12345.6789", "1e20",
                                  "170141183460469231731687303715884105727", "-170141183460469231731687303715884105727",
                                  "-170141183460469231731687303715884105728"])
@pytest.mark.parametrize("scale", [0, 1, 2, 3, 4, 5, 8, 9, 19, 38])
def test_numeric_edges(text, scale):
    u = int(Decimal(text))
    if scale and abs(u) >= 10**38:
        u = u // 10**scale if u > 0 else -(-u // 10**scale)
    value = Decimal(u).scaleb(-scale)
    _check_numeric(value, scale)


def _check_numeric(value: Decimal, scale: int) -> None:
    u = int(value.scaleb(scale))
    words = np.array([[np.int64(np.uint64(u & (2**64 - 1)).view(np.int64)), u >> 64]], dtype=np.int64)
    lens = np.zeros(1, dtype=np.int64)
    k.add_numeric_sizes(words, 1, scale, np.zeros(1, np.uint8), False, lens)
    out = np.zeros(int(lens[0]) + 8, dtype=np.uint8)
    cursor = np.zeros(1, dtype=np.int64)
    k.put_numerics(words, 1, scale, np.zeros(1, np.uint8), False, out, cursor)
    want = naive_numeric(value, scale)
    assert int(cursor[0]) == lens[0] == 4 + len(want)
    assert bytes(out[4:cursor[0]]) == want
    # and back
    fpos = np.array([[4]], dtype=np.int64)
    flen = np.array([[len(want)]], dtype=np.int32)
    back = np.zeros((1, 2), dtype=np.int64)
    valid = np.zeros(8, dtype=np.uint8)
    nulls, bad = k.get_numerics(out, fpos, flen, 0, 1, scale, back, valid)
    assert (nulls, bad) == (0, -1)
    assert (int(back[0, 1]) << 64) + int(np.int64(back[0, 0]).view(np.uint64)) == u


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(-(2**127) + 1, 2**127 - 1), st.integers(0, 38))
def test_numeric_property(u, scale):
    _check_numeric(Decimal(u).scaleb(-scale), scale)


ROW = st.tuples(st.none() | st.integers(-2**63, 2**63 - 1), st.none() | st.text(max_size=20).filter(lambda s: "\0" not in s),
                st.none() | st.booleans(), st.none() | st.floats(allow_nan=False))


@settings(max_examples=100, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=60))
def test_rows_property(rows):
    schema = Schema.from_dict({"a": "int64", "s": "string", "b": "bool", "f": "float64"})
    data = encode(schema, rows)
    assert data == naive_tuples(schema, rows)
    # decode back
    n = len(rows)
    fpos = np.zeros((n, 4), dtype=np.int64)
    flen = np.zeros((n, 4), dtype=np.int32)
    buf = np.frombuffer(data + k.TRAILER, dtype=np.uint8)
    got, nxt, err = k.index_tuples(buf, 0, buf.shape[0], 4, n + 5, fpos, flen)
    assert (got, err) == (n, -1) and nxt == len(data)
    vals = np.zeros(n, dtype=np.int64)
    valid = np.zeros(n // 8 + 9, dtype=np.uint8)
    nulls, bad = k.get_ints(buf, fpos, flen, 0, n, 8, 0, vals, valid)
    assert bad == -1 and nulls == sum(r[0] is None for r in rows)
    assert [int(v) if r[0] is not None else None for v, r in zip(vals, rows, strict=True)] == [r[0] for r in rows]
    offs = np.zeros(n + 1, dtype=np.int32)
    tdata = np.zeros(k.text_bytes(flen, 1, n, 0) + 1, dtype=np.uint8)
    valid[:] = 0
    nulls, bad = k.get_texts(buf, fpos, flen, 1, n, 0, offs, tdata, valid)
    assert bad == -1
    texts = [bytes(tdata[offs[i]:offs[i + 1]]).decode() if (valid[i >> 3] >> (i & 7)) & 1 else None for i in range(n)]
    assert texts == [r[1] for r in rows]


def test_index_tuples_incomplete_and_bad_count():
    schema = Schema.from_dict({"a": "int64", "s": "string"})
    data = encode(schema, [(1, "abc"), (2, "de")])
    buf = np.frombuffer(data, dtype=np.uint8)
    fpos = np.zeros((4, 2), dtype=np.int64)
    flen = np.zeros((4, 2), dtype=np.int32)
    rows, nxt, err = k.index_tuples(buf, 0, len(data) - 1, 2, 4, fpos, flen)
    assert (rows, err) == (1, -1) and nxt == len(data) - (2 + 12 + 4 + 2)
    rows, nxt, err = k.index_tuples(buf, 0, len(data), 3, 4, fpos, flen)
    assert (rows, err) == (0, 0)


def test_nul_in_text_is_a_data_error_naming_row_and_column():
    schema = Schema.from_dict({"a": "int64", "s": "string"})
    with pytest.raises(DataError, match=r"column 's'.*row 3: text contains a NUL"):
        encode(schema, [(1, "x"), (2, None), (3, "a\0b")])
    with pytest.raises(DataError, match=r"row 2: text contains a NUL"):
        encode(schema, [(1, "x"), (2, "\0"), (3, "x")], dict_columns={"s"})


def test_int_range_check_into_narrower_column():
    schema = Schema.from_dict({"a": "int64"})
    plan = _plan_for(schema["a"].type, "int4", -1, "integer")
    enc = BinaryCopyEncoder(schema, [plan])
    ok = b"".join(bytes(c) for c in enc.encode(batch_from_pylist(schema, [(2**31 - 1,), (-2**31,), (None,)])))
    assert ok == b"".join(struct.pack(">h", 1) + f for f in (struct.pack(">ii", 4, 2**31 - 1),
                                                             struct.pack(">ii", 4, -2**31), struct.pack(">i", -1)))
    with pytest.raises(TypeCoercionError, match=r"row 5: value 2147483648 is out of range for the integer column"):
        list(enc.encode(batch_from_pylist(schema, [(1,), (2**31,)])))


# -- bytea ----------------------------------------------------------------------------------------
BYTEA = Schema.from_dict({"id": "int32", "v": "binary"})
BYTES = st.none() | st.binary(max_size=64) | st.sampled_from([b"", b"\x00", b"\xff" * 3, b"\x00a\x00", bytes(range(256))])


def _decode_bytea(data: bytes, n: int) -> list:
    fpos = np.zeros((n, 2), dtype=np.int64)
    flen = np.zeros((n, 2), dtype=np.int32)
    buf = np.frombuffer(data + k.TRAILER, dtype=np.uint8)
    got, nxt, err = k.index_tuples(buf, 0, buf.shape[0], 2, n + 1, fpos, flen)
    assert (got, nxt, err) == (n, len(data), -1)
    offs = np.zeros(n + 1, dtype=np.int32)
    out = np.zeros(k.text_bytes(flen, 1, n, 0) + 1, dtype=np.uint8)
    valid = np.zeros(n // 8 + 9, dtype=np.uint8)
    nulls, bad = k.get_texts(buf, fpos, flen, 1, n, 0, offs, out, valid)
    assert bad == -1
    return [bytes(out[offs[i]:offs[i + 1]]) if (valid[i >> 3] >> (i & 7)) & 1 else None for i in range(n)]


def test_bytea_is_the_raw_bytes_with_their_length():
    rows = [(1, b"\x00"), (2, None), (3, b""), (4, b"\xff\x00\xfe"), (5, bytes(range(256)))]
    got = encode(BYTEA, rows)
    assert got == naive_tuples(BYTEA, rows)
    assert got.startswith(struct.pack(">hii", 2, 4, 1) + struct.pack(">i", 1) + b"\x00")  # NUL is data, not an error
    assert struct.pack(">hii", 2, 4, 3) + struct.pack(">i", 0) in got  # empty is length 0, not NULL (-1)
    assert _decode_bytea(got, len(rows)) == [v for _, v in rows]


@settings(max_examples=100, deadline=None)
@given(st.lists(BYTES, min_size=1, max_size=50))
def test_bytea_property_encode_then_decode(values):
    rows = list(enumerate(values))
    data = encode(BYTEA, rows)
    assert data == naive_tuples(BYTEA, rows)
    assert _decode_bytea(data, len(rows)) == values


def test_bytea_over_several_chunks_and_a_large_value():
    from nebula.connectors.destinations.postgres import CHUNK_ROWS

    big = bytes(range(256)) * 4096  # 1 MiB, every byte value
    rows = [(i, None if i % 11 == 0 else big[i % 256:i % 256 + i % 97]) for i in range(CHUNK_ROWS + 77)] + [(-1, big)]
    data = encode(BYTEA, rows)
    assert data == naive_tuples(BYTEA, rows)
    assert _decode_bytea(data, len(rows)) == [v for _, v in rows]


def test_bytea_plan_only_for_bytea_columns():
    t = BYTEA["v"].type
    assert _plan_for(t, "bytea", -1, "bytea").how == "bytes"
    assert all(_plan_for(t, name, -1, name) is None for name in ("text", "varchar", "json", "jsonb", "int4"))
    assert _plan_for(Schema.from_dict({"s": "string"})["s"].type, "bytea", -1, "bytea") is None
    assert PostgresDestination._pg_name(t) == ("bytea", -1, "bytea")
