"""Parse kernels against the references in ``tests/naive_parse.py``."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nebula.kernels import parse as P

try:
    from tests import naive_parse as N
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    import naive_parse as N

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MARKERS = (b"", b"NA")
I64 = (-(2**63), 2**63 - 1)


# -- tokenizer stand-in --------------------------------------------------------------------------
def tokens(values, col=1):
    """Tokenizer arrays for one row per value, the value at column ``col`` between filler fields.

    A value is ``bytes`` or ``(bytes, flags)``. Fields are separated by ``,`` in ``buf`` so a kernel
    reading past a span would see foreign bytes.
    """
    parts, starts, ends, flags, row_first = [], [], [], [], []
    pos = 0
    for v in values:
        raw, fl = v if isinstance(v, tuple) else (v, 0)
        row_first.append(len(starts))
        for j, (b, f) in enumerate([(b"x", 0)] * col + [(raw, fl), (b"y", 0)]):
            if j:
                parts.append(b",")
                pos += 1
            starts.append(pos)
            parts.append(b)
            pos += len(b)
            ends.append(pos)
            flags.append(f)
    row_first.append(len(starts))
    buf = np.frombuffer(b"".join(parts) + b"9", dtype=np.uint8)[:-1].copy()
    return (buf, np.array(starts, np.int64), np.array(ends, np.int64), np.array(flags, np.uint8),
            np.array(row_first, np.int64), col, len(values))


def nulls(markers=MARKERS):
    data = np.frombuffer(b"".join(markers) + b"\0", np.uint8)[:-1].copy()
    return data, np.array(np.cumsum([0] + [len(m) for m in markers]), np.int64)


def common(values, markers=MARKERS, quoted_null=False, col=1):
    t = tokens(values, col)
    n = t[-1]
    return t, nulls(markers) + (quoted_null,), np.zeros(n // 8 + 1, np.uint8), np.zeros(n, np.uint8)


def bits(bm, n):
    return [bool(bm[r >> 3] >> (r & 7) & 1) for r in range(n)]


def run(kind, values, *, stop=False, markers=MARKERS, quoted_null=False, **kw):
    """Run one column kernel; returns ``(result tuple, [value or None per row], row_err list)``."""
    t, nl, validity, err = common(values, markers, quoted_null)
    n = t[-1]
    slow = np.zeros(n, np.int64)
    if kind == "int":
        out = np.zeros(n, kw.get("dtype", np.int64))
        res = P.parse_int_column(*t, *nl, kw.get("lo", I64[0]), kw.get("hi", I64[1]), out, validity, err, stop)
        vals = [int(x) for x in out]
    elif kind == "float":
        out = np.zeros(n, kw.get("dtype", np.float64))
        res = P.parse_float_column(*t, *nl, out, validity, slow, err, stop)
        P.fill_slow_floats(t[0], t[1], t[2], t[4], t[5], slow, res[3], out)
        vals = list(out)
    elif kind == "bool":
        out = np.zeros(n // 8 + 1, np.uint8)
        res = P.parse_bool_column(*t, *nl, out, validity, err, stop)
        vals = bits(out, n)
    elif kind == "date":
        out = np.zeros(n, np.int32)
        res = P.parse_date_column(*t, *nl, out, validity, err, stop)
        vals = [int(x) for x in out]
    elif kind == "ts":
        out = np.zeros(n, np.int64)
        res = P.parse_timestamp_column(*t, *nl, kw["want_tz"], out, validity, err, stop)
        vals = [int(x) for x in out]
    elif kind == "decimal":
        out = np.zeros((n, 2), np.int64)
        res = P.parse_decimal_column(*t, *nl, kw["precision"], kw["scale"], out, validity, slow, err, stop)
        P.fill_slow_decimals(t[0], t[1], t[2], t[4], t[5], slow, res[3], kw["scale"], out)
        vals = [int(lo) % 2**64 + (int(hi) % 2**64 << 64) for lo, hi in out]
    elif kind == "string":
        size = P.string_column_size(*t[:7])
        offsets = np.zeros(n + 1, np.int32)
        data = np.zeros(size, np.uint8)
        res = P.gather_string_column(*t, *nl, kw.get("quote", 34), kw.get("escape", -1), offsets, data,
                                     validity, err, stop)
        assert offsets[0] == 0 and res[3] <= size and (stop or offsets[n] == res[3])
        vals = [bytes(data[offsets[r]:offsets[r + 1]]) for r in range(n)]
    else:
        raise AssertionError(kind)
    valid = bits(validity, n)
    return res, [v if ok else None for v, ok in zip(vals, valid, strict=True)], list(err)


def check(kind, values, naive, markers=MARKERS, quoted_null=False, same=None, **kw):
    """Compare a kernel in continue mode with ``naive`` row by row, plus the returned counts."""
    res, got, err = run(kind, values, markers=markers, quoted_null=quoted_null, **kw)
    expect, expect_err = [], []
    for v in values:
        raw, fl = v if isinstance(v, tuple) else (v, 0)
        if N.naive_is_null(raw, bool(fl & 1), list(markers), quoted_null):
            expect.append(None)
            expect_err.append(0)
        else:
            x = naive(raw, fl)
            expect.append(x)
            expect_err.append(int(x is None))
    for v, g, x in zip(values, got, expect, strict=True):
        assert (same or (lambda a, b: a == b))(g, x), (v, g, x)
    assert err == expect_err
    first = expect_err.index(1) if 1 in expect_err else -1
    assert res[:3] == (sum(x is None for x in expect), sum(expect_err), first)
    return res


def same_float(a, b):
    if a is None or b is None:
        return a is b
    if math.isnan(b):
        return math.isnan(a)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


# -- strategies ----------------------------------------------------------------------------------
junk = st.binary(max_size=8)
int_text = st.one_of(
    st.integers(-(2**64), 2**64).map(lambda i: str(i).encode()),
    st.sampled_from([2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 127, 128, -128, -129]).map(
        lambda i: str(i).encode()),
    st.from_regex(rb"\A[+-]?[0-9]{0,25}\Z"),
    st.sampled_from([b"", b"-", b"+", b" 1", b"1 ", b"0x10", "９".encode(), b"--1", b"+-1", b"1.0",
                     b"NA", b"00000000000000000000000000001"]),
    junk,
)
float_text = st.one_of(
    st.floats().map(lambda x: repr(x).encode()),
    st.floats(width=32).map(lambda x: repr(x).encode()),
    st.tuples(st.floats(allow_nan=False), st.integers(0, 20)).map(lambda p: b"%.*e" % (p[1], p[0])),
    st.from_regex(rb"\A[+-]?[0-9]{0,25}(\.[0-9]{0,25})?([eE][+-]?[0-9]{1,3})?\Z"),
    st.from_regex(rb"\A[+-]?(nan|NaN|inf|INF|Infinity|infinitY|nana|in)\Z"),
    st.sampled_from([b"1e", b"1e400", b"-1e400", b"1e-400", b".", b"5.", b".5", b"e5", b"1e+", b"1.5E-3",
                     b"2.2250738585072011e-308", b"4.9e-324", b"9007199254740993", b"1e23", b"1e37",
                     b"123456789012345678901234567890", b"0.000000000000000000000000001",
                     b"999999999999999999e30", b"9999999999999999999e30", b"922337203685477581e25"]),
    int_text,
)


def _ts_text(t: dt.datetime, frac: str, tz: str, sep: str, secs: bool) -> bytes:
    s = t.strftime("%Y-%m-%d") + sep + t.strftime("%H:%M")
    if secs:
        s += t.strftime(":%S") + frac
    return (s + tz).encode()


ts_text = st.one_of(
    st.builds(_ts_text, st.datetimes(), st.sampled_from(["", ".5", ".123456", ".123456000", ".1234567",
                                                         ".000000001", ".", ".1234567890"]),
              st.sampled_from(["", "Z", "+01:00", "-05:30", "+0200", "-03", "+24:00", "+01:60", "z", "+1"]),
              st.sampled_from(["T", " ", "t"]), st.booleans()),
    st.dates().map(lambda d: d.isoformat().encode()),
    st.from_regex(rb"\A[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?\Z"),
    junk,
)


# -- integers ------------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(int_text, max_size=20), st.sampled_from([np.int8, np.int16, np.int32, np.int64]))
def test_int_matches_naive(values, dtype):
    info = np.iinfo(dtype)
    check("int", values, lambda raw, fl: N.naive_int(raw, int(info.min), int(info.max)),
          lo=int(info.min), hi=int(info.max), dtype=dtype)


def test_int_edges():
    vals = [b"", b"-", b"+", b"9223372036854775807", b"9223372036854775808", b"-9223372036854775808",
            b"-9223372036854775809", b" 1", b"1 ", "９".encode(), b"0x10", b"-0", b"+7", b"NA", (b"NA", 1)]
    res, got, err = run("int", vals)
    assert got == [None, None, None, 2**63 - 1, None, -(2**63), None, None, None, None, None, 0, 7, None, None]
    assert res == (11, 9, 1)


# -- floats --------------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(float_text, max_size=20))
def test_float64_matches_python(values):
    check("float", values, lambda raw, fl: N.naive_float(raw), same=same_float)


@SETTINGS
@given(st.lists(float_text, max_size=20))
def test_float32_correctly_rounded(values):
    def naive(raw, fl):
        x = N.naive_float32(raw)
        return None if x is None else float(x)

    check("float", values, naive, same=same_float, dtype=np.float32)


def test_float32_double_rounding_case():
    # 1 + 2**-24 + 2**-60: the nearest double is the float32 midpoint 1 + 2**-24, the true value is above it
    with localcontext() as ctx:
        ctx.prec = 100
        text = str(Decimal(1) + Decimal(2) ** -24 + Decimal(2) ** -60).encode()
    res, got, _ = run("float", [text, b"1.00000005960464477539062500000000001"], dtype=np.float32)
    assert got == [float(np.nextafter(np.float32(1), np.float32(2)))] * 2


def _near_midpoint(x: float, nudge: int, digits: int) -> bytes:
    """A decimal string at (``nudge`` 0), just above (1) or below (2) the midpoint after ``x``."""
    with localcontext() as ctx:
        ctx.prec = 900
        m = (Decimal(x) + Decimal(float(np.nextafter(x, math.inf)))) / 2
        m *= 1 + (0, 1, -1)[nudge] * Decimal(10) ** -digits
        mant, _, ex = format(m, "e").partition("e")
    return (mant[: digits + 2] + "e" + ex).encode()


@SETTINGS
@given(st.lists(st.builds(_near_midpoint, st.floats(min_value=1e-300, max_value=1e300), st.integers(0, 2),
                          st.integers(15, 40)), max_size=10))
def test_float64_near_midpoints(values):
    check("float", values, lambda raw, fl: N.naive_float(raw), same=same_float)


def test_float_eisel_lemire_covers_round_trip_reprs():
    vals = [repr(0.1 + 0.2).encode(), b"2.718281828459045", b"1.7976931348623157e308", b"5e-324",
            b"2.2250738585072014e-308", b"123456789012345678901234567890e-10", b"1e-30", b"6.02214076e23"]
    res, got, _ = run("float", vals)
    assert got == [float(v) for v in vals]
    assert res[3] == 1  # only the subnormal 5e-324 needs Python
    vals = [b"999999999999999999e30", b"9999999999999999999e30", b"922337203685477581e25", b"9007199254740993",
            b"9007199254740993e22", b"1" + b"0" * 40 + b"1e-20"]
    _, got, _ = run("float", vals)
    assert got == [float(v) for v in vals]


def test_float_edges():
    vals = [b"1e", b"1e400", b"-1e400", b".", b"0x10", b" 1", b"1 ", b"-", b"+", b"nan", b"-Infinity", b"5.",
            b".5", b"-0", b"1_0", b"infinit"]
    res, got, _ = run("float", vals)
    assert got[:3] == [None, math.inf, -math.inf] and got[3:9] == [None] * 6
    assert math.isnan(got[9]) and got[10] == -math.inf and got[11:13] == [5.0, 0.5]
    assert math.copysign(1, got[13]) == -1 and got[14:] == [None, None]
    assert res[1] == 9 and res[3] == 2  # the two 1e400 went through the slow path


def test_float_fast_path_common():
    vals = [b"0.1", b"3.14159", b"1e22", b"1e30", b"123456789012345", b"-2.5e-10"]
    res, got, _ = run("float", vals)
    assert got == [float(v) for v in vals] and res[3] == 0


# -- booleans ------------------------------------------------------------------------------------
bool_text = st.one_of(
    st.sampled_from(["true", "t", "yes", "y", "1", "false", "f", "no", "n", "0", "tru", "ye", "2", "",
                     "truee", "nope", "yess", "NA"]).flatmap(
        lambda w: st.lists(st.booleans(), min_size=len(w), max_size=len(w)).map(
            lambda up: "".join(c.upper() if u else c for c, u in zip(w, up, strict=True)).encode())),
    junk,
)


@SETTINGS
@given(st.lists(bool_text, max_size=20))
def test_bool_matches_naive(values):
    check("bool", values, lambda raw, fl: N.naive_bool(raw))


# -- dates and timestamps ------------------------------------------------------------------------
date_text = st.one_of(
    st.dates().map(lambda d: d.isoformat().encode()),
    st.from_regex(rb"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"),
    st.sampled_from([b"2023-02-29", b"2024-02-29", b"1900-02-29", b"2000-02-29", b"0000-01-01",
                     b"9999-12-31", b"2024-1-01", b"2024-01-01T00:00", b" 2024-01-01"]),
    junk,
)


@SETTINGS
@given(st.lists(date_text, max_size=20))
def test_date_matches_naive(values):
    check("date", values, lambda raw, fl: N.naive_date(raw))


@SETTINGS
@given(st.lists(ts_text, max_size=20), st.booleans())
def test_timestamp_matches_naive(values, want_tz):
    def naive(raw, fl):
        x = N.naive_timestamp(raw)
        return None if x is None or (x[1] and not want_tz) else x[0]

    check("ts", values, naive, want_tz=want_tz)


def test_timestamp_edges():
    vals = [b"2024-02-29T24:00:00", b"2023-12-31T23:59:60", b"2024-01-01T00:00:00.123456789",
            b"2024-01-01T00:00:00.123456000", b"2024-01-01", b"2024-01-01T01:00+01:00", b"1970-01-01 00:00Z",
            b"2024-01-01T00:00:00.5-0130"]
    _, got, _ = run("ts", vals, want_tz=True)
    assert got[:3] == [None] * 3
    assert got[3] == 1704067200_123456 and got[4] == 1704067200_000000 and got[5] == 1704067200_000000
    assert got[6] == 0 and got[7] == 1704067200_500000 + 5400_000000
    _, got, _ = run("ts", vals, want_tz=False)
    assert got[5:] == [None] * 3 and got[4] == 1704067200_000000


# -- decimals ------------------------------------------------------------------------------------
dec_text = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: str(d).encode()),
    st.from_regex(rb"\A[+-]?[0-9]{0,40}(\.[0-9]{0,12})?([eE][+-]?[0-9]{1,2})?\Z"),
    st.sampled_from([b"1.5e3", b"0e999999999999", b"1e-999999999999", b"99999999999999999999999999999999999999",
                     b"-9223372036854775808", b"9223372036854775807", b"nan", b"1.50", b"1.55"]),
    junk,
)


@SETTINGS
@given(st.lists(dec_text, max_size=20), st.integers(1, 38).flatmap(lambda p: st.tuples(st.just(p),
                                                                                       st.integers(0, p))))
def test_decimal_matches_naive(values, ps):
    p, s = ps
    check("decimal", values, lambda raw, fl: (lambda u: None if u is None else u % 2**128)(
        N.naive_decimal(raw, p, s)), precision=p, scale=s)


def test_decimal_edges():
    vals = [b"1.50", b"1.555", b"-1.5e1", b"123456", b"12345.6", b"-0.00", b".5", b"5.", b"1e", b""]
    res, got, _ = run("decimal", vals, precision=6, scale=2, markers=())
    assert got == [150, None, (-1500) % 2**128, None, None, 0, 50, 500, None, None]
    res, got, _ = run("decimal", [b"-12345678901234567890123456789.012345678"], precision=38, scale=9)
    assert got == [(-12345678901234567890123456789012345678) % 2**128] and res[3] == 1


# -- strings -------------------------------------------------------------------------------------
def _quoted(s: str):
    raw = s.encode()
    return (raw.replace(b'"', b'""'), 3) if b'"' in raw else (raw, 1)


string_field = st.one_of(
    st.text(max_size=12).map(lambda s: s.encode()),
    st.text(max_size=12).map(_quoted),
    st.binary(max_size=12),
    st.sampled_from([b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98\x80",
                     b"abcdefgh\xe2\x82\xac", b"abcdefghijklmnop\xff", (b'a""b', 2), (b'""', 2),
                     (b'a"', 2), (b"NA", 1), (b"", 1)]),
)


@SETTINGS
@given(st.lists(string_field, max_size=20), st.booleans())
def test_string_matches_decode(values, quoted_null):
    check("string", values, lambda raw, fl: N.naive_string(raw, bool(fl & 2)), quoted_null=quoted_null)


@SETTINGS
@given(st.lists(st.text(max_size=10).map(lambda s: (s.encode().replace(b"\\", b"\\\\")
                                                    .replace(b'"', b'\\"'), 2)), max_size=10))
def test_string_backslash_escape(values):
    _, got, _ = run("string", values, escape=92, markers=())
    assert got == [raw.replace(b'\\"', b'"').replace(b"\\\\", b"\\") for raw, _ in values]


def test_string_invalid_utf8_edges():
    vals = [b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"ok", b"\xe2\x82\xac", b"NA"]
    res, got, err = run("string", vals)
    assert got == [None, None, None, b"ok", "€".encode(), None]
    assert err == [1, 1, 1, 0, 0, 0] and res == (4, 3, 0, 5)


# -- inference -----------------------------------------------------------------------------------
infer_text = st.one_of(int_text, float_text, bool_text, date_text, ts_text)


@SETTINGS
@given(st.lists(infer_text, max_size=12))
def test_infer_matches_naive(values):
    t, nl, _, _ = common(values)
    mask, nonnull = P.infer_column(*t, *nl)
    expect = P.T_ALL
    count = 0
    for raw in values:
        if raw not in MARKERS:
            count += 1
            expect &= N.naive_candidates(raw)
    assert nonnull == count
    if count:
        assert mask == expect, values


def test_infer_examples():
    def infer(vals):
        t, nl, _, _ = common(vals)
        return P.infer_column(*t, *nl)

    assert infer([b"1", b"0", b"NA"]) == (P.T_INT | P.T_FLOAT, 2)
    assert infer([(b"12", 1), b"-3"])[0] == P.T_INT | P.T_FLOAT
    assert infer([b"1.5", b"nan"])[0] == P.T_FLOAT
    assert infer([b"True", b"false"])[0] == P.T_BOOL
    assert infer([b"2024-01-01", b"2024-01-02 10:00"])[0] == P.T_TS
    assert infer([b"2024-01-01"])[0] == P.T_DATE | P.T_TS
    assert infer([b"2024-01-01T00:00Z", b"2024-01-01T00:00+02:00"])[0] == P.T_TSTZ
    assert infer([b"9223372036854775808"])[0] == P.T_FLOAT
    assert infer([b"", b"NA"])[1] == 0


# -- error policy --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,kw", [("int", {}), ("float", {}), ("bool", {}), ("date", {}),
                                     ("ts", {"want_tz": False}), ("decimal", {"precision": 5, "scale": 1}),
                                     ("string", {})])
def test_stop_at_first_and_continue(kind, kw):
    good = {"int": b"1", "float": b"1", "bool": b"1", "date": b"2020-01-01", "ts": b"2020-01-01",
            "decimal": b"1", "string": b"a"}[kind]
    bad = b"\xff"
    vals = [good, b"NA", bad, good, bad]
    res, got, err = run(kind, vals, stop=True, **kw)
    assert res[:3] == (2, 1, 2) and err == [1 if r == 2 else 0 for r in range(5)]
    assert got[0] is not None and got[3] is None  # rows after the stop are untouched
    res, got, err = run(kind, vals, **kw)
    assert res[:3] == (3, 2, 2) and err == [0, 0, 1, 0, 1]
    assert [g is None for g in got] == [False, True, True, False, True]


def test_quoted_null_and_columns():
    vals = [(b"NA", 1), b"NA", (b"", 1), b""]
    _, got, _ = run("int", vals)
    assert got == [None] * 4
    res, _, err = run("int", vals, quoted_null=True)
    assert res == (4, 0, -1) and err == [0] * 4


def test_short_outputs_raise():
    t, nl, validity, err = common([b"1", b"2"])
    with pytest.raises(ValueError):
        P.parse_int_column(*t, *nl, *I64, np.zeros(1, np.int64), validity, err, False)
