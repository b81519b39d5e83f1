"""Binary-as-text kernels (``\\x`` hex, base64) against Python's ``bytes.hex`` and ``base64``.

Run also with ``NUMBA_DISABLE_JIT=1`` so coverage sees inside the kernels.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nebula.kernels import binary as kb
from nebula.kernels import json as kj

VALUES = st.lists(st.none() | st.binary(max_size=40), max_size=30)


def _columns(values):
    """(offsets int32 n+1, data, validity, has_nulls) of a list of bytes/None."""
    offs = np.zeros(len(values) + 1, np.int32)
    np.cumsum([len(v or b"") for v in values], out=offs[1:])
    data = np.frombuffer(b"".join(v or b"" for v in values) + b"\x00", np.uint8)
    bits = np.packbits(np.array([v is not None for v in values] + [False] * 8, bool), bitorder="little")
    return offs, data, bits, any(v is None for v in values)


def _render(kernel, values, *extra, null=b"", bound=None):
    offs, data, valid, has_nulls = _columns(values)
    n = len(values)
    null_tok = np.frombuffer(null, np.uint8)
    out = np.empty(bound(int(offs[n]), n, len(null)), np.uint8)
    o = np.empty(n + 1, np.int64)
    w = kernel(offs, data, n, valid, has_nulls, null_tok, *extra, out, o)
    assert w == o[n] if n else w == 0
    return [bytes(out[o[i]:o[i + 1]]) for i in range(n)]


@settings(max_examples=150, deadline=None)
@given(VALUES)
def test_render_hex_matches_bytes_hex(values):
    got = _render(kb.render_hex, values, bound=kb.hex_text_bound)
    assert got == [b"" if v is None else b"\\x" + v.hex().encode() for v in values]


@settings(max_examples=150, deadline=None)
@given(VALUES, st.sampled_from([34, -1]))
def test_render_base64_matches_base64_module(values, quote):
    got = _render(kb.render_base64, values, quote, null=b"null", bound=kb.base64_text_bound)
    q = b'"' if quote >= 0 else b""
    assert got == [b"null" if v is None else q + base64.b64encode(v) + q for v in values]


def test_render_kernels_report_a_short_buffer_and_read_offsets_past_zero():
    offs, data, valid, _ = _columns([b"zz", b"\x01\xab", b"\xff"])
    o = np.empty(3, np.int64)
    out = np.empty(64, np.uint8)
    w = kb.render_hex(offs[1:], data, 2, valid, False, np.zeros(0, np.uint8), out, o)
    assert bytes(out[:w]) == b"\\x01ab\\xff"
    w = kb.render_base64(offs[1:], data, 2, valid, False, np.zeros(0, np.uint8), 34, out, o)
    assert bytes(out[:w]) == b'"Aas=""/w=="'
    tiny = np.empty(5, np.uint8)
    assert kb.render_hex(offs, data, 3, valid, False, np.zeros(0, np.uint8), tiny, o) == -1
    assert kb.render_base64(offs, data, 3, valid, False, np.zeros(0, np.uint8), 34, tiny, o) == -1


def _spans(fields):
    """CSV-style spans (quoted flag set for values, the empty unquoted span for None) over one buffer."""
    buf = b"".join(f or b"" for f in fields)
    starts, ends, flags = [], [], []
    p = 0
    for f in fields:
        starts.append(p)
        p += len(f or b"")
        ends.append(p)
        flags.append(0 if f is None else 1)
    n = len(fields)
    return (np.frombuffer(buf + b"\x00", np.uint8), np.array(starts, np.int64), np.array(ends, np.int64),
            np.array(flags, np.uint8), np.arange(n, dtype=np.int64), n)


def _parse_hex(fields, stop=False):
    buf, st_, en, fl, rows, n = _spans(fields)
    offs = np.zeros(n + 1, np.int32)
    data = np.empty(max(1, len(buf)), np.uint8)
    valid = np.zeros(n // 8 + 1, np.uint8)
    err = np.zeros(n, np.uint8)
    nulls, nerr, first = kb.parse_hex_column(buf, st_, en, fl, rows, 0, n, np.zeros(1, np.uint8),
                                             np.array([0, 0], np.int64), False, offs, data, valid, err, stop)
    bits = np.unpackbits(valid, bitorder="little")
    got = [bytes(data[offs[i]:offs[i + 1]]) if bits[i] else None for i in range(n)]
    return got, int(nulls), int(nerr), int(first), err


@settings(max_examples=150, deadline=None)
@given(VALUES, st.booleans())
def test_parse_hex_inverts_render_hex(values, upper):
    fields = [None if v is None else b"\\x" + (v.hex().upper() if upper else v.hex()).encode() for v in values]
    got, nulls, nerr, first, _ = _parse_hex(fields)
    assert got == values and nulls == sum(v is None for v in values) and nerr == 0 and first == -1


# b"": a quoted empty field is not the null marker, and not hex either
@pytest.mark.parametrize("bad", [b"00ff", b"\\x0", b"\\x0g", b"x00", b"\\y00", b"\\", b"\\x00 ", b"", b"\\x\xff\xff"])
def test_parse_hex_errors_are_located(bad):
    got, nulls, nerr, first, err = _parse_hex([b"\\x01", None, bad, b"\\xAB"])
    assert (nerr, first, list(err)) == (1, 2, [0, 0, 1, 0])
    assert got == [b"\x01", None, None, b"\xab"] and nulls == 2
    assert _parse_hex([b"\\x01", None, bad, b"\\xAB"], stop=True)[3] == 2


def _json_spans(items):
    """JSON value spans: ``items`` are (kind, text) pairs, text without quotes for strings."""
    buf = b"".join(t for _, t in items)
    kinds, starts, ends, p = [], [], [], 0
    for k, t in items:
        kinds.append(k)
        starts.append(p)
        p += len(t)
        ends.append(p)
    return (np.frombuffer(buf + b"\x00", np.uint8), np.array(kinds, np.uint8), np.array(starts, np.int64),
            np.array(ends, np.int64))


def _decode_b64(items, stop=False):
    buf, kinds, st_, en = _json_spans(items)
    n = len(items)
    offs = np.zeros(n + 1, np.int32)
    data = np.empty(max(1, int(kj.text_column_size(kinds, st_, en, 1, 0, n))), np.uint8)
    valid = np.zeros(n // 8 + 1, np.uint8)
    err = np.zeros(n, np.uint8)
    nulls, nerr, first = kb.decode_base64_column(buf, kinds, st_, en, 1, 0, n, offs, data, valid, err, stop)
    bits = np.unpackbits(valid, bitorder="little")
    return [bytes(data[offs[i]:offs[i + 1]]) if bits[i] else None for i in range(n)], int(nulls), int(nerr), \
        int(first)


@settings(max_examples=150, deadline=None)
@given(VALUES, st.sampled_from(["std", "unpadded", "urlsafe", "escaped"]))
def test_decode_base64_inverts_the_base64_module(values, form):
    items = []
    for v in values:
        if v is None:
            items.append((kj.K_NULL, b"null"))
            continue
        text = base64.b64encode(v)
        if form == "unpadded":
            text = text.rstrip(b"=")
        elif form == "urlsafe":
            text = base64.urlsafe_b64encode(v)
        kind = kj.K_STR
        if form == "escaped" and b"/" in text:
            text, kind = text.replace(b"/", b"\\/"), kj.K_STRESC
        items.append((kind, text))
    got, nulls, nerr, first = _decode_b64(items)
    assert got == values and nerr == 0 and first == -1 and nulls == sum(v is None for v in values)


@pytest.mark.parametrize("kind,text", [(kj.K_STR, b"QQ="), (kj.K_STR, b"Q"), (kj.K_STR, b"QQ==="), (kj.K_STR, b"Q=Q="),
                                       (kj.K_STR, b"QQ*="), (kj.K_STRESC, b"QQ\\n"), (kj.K_INT, b"12"),
                                       (kj.K_OBJECT, b"{}"), (kj.K_STR, b"AAA=A")])
def test_decode_base64_errors_are_located(kind, text):
    if kind in (kj.K_STR, kj.K_STRESC):  # Python's base64 refuses these texts too
        with pytest.raises(binascii.Error):
            base64.b64decode(text, validate=True)
    got, nulls, nerr, first = _decode_b64([(kj.K_STR, b"AQ=="), (kj.K_MISSING, b""), (kind, text)])
    assert (got, nulls, nerr, first) == ([b"\x01", None, None], 2, 1, 2)
    assert _decode_b64([(kind, text), (kj.K_STR, b"AQ==")], stop=True)[3] == 0


def test_decoders_fill_an_exactly_sized_output_and_refuse_a_smaller_one():
    values = [b"\x00" * 7, b"", b"\xff\xfe", bytes(range(100))]
    need = sum(map(len, values))
    n = len(values)
    buf, st_, en, fl, rows, _ = _spans([b"\\x" + v.hex().encode() for v in values])
    jbuf, kinds, jst, jen = _json_spans([(kj.K_STR, base64.b64encode(v)) for v in values])
    for size, ok in ((need, True), (need - 1, False)):
        offs = np.zeros(n + 1, np.int32)
        out = np.empty(size, np.uint8)
        valid = np.zeros(1, np.uint8)
        err = np.zeros(n, np.uint8)
        args = (offs, out, valid, err, False)
        calls = (lambda a=args: kb.parse_hex_column(buf, st_, en, fl, rows, 0, n, np.zeros(1, np.uint8),
                                                    np.array([0, 0], np.int64), False, *a),
                 lambda a=args: kb.decode_base64_column(jbuf, kinds, jst, jen, 1, 0, n, *a))
        for call in calls:
            if ok:
                assert call()[1] == 0 and bytes(out) == b"".join(values)
            else:
                with pytest.raises(ValueError, match="out_data too small"):
                    call()
