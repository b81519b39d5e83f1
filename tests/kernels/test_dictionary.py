"""Dictionary-encoding kernel: codes + dictionary decode back to the values; overflow; UTF-8."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nebula.kernels import dictionary as kd


def spans(values: list[bytes | None]):
    """One field per row; None = empty unquoted field (null); others quoted, ``"`` doubled."""
    buf = bytearray()
    starts, ends, flags = [], [], []
    for v in values:
        if v is None:
            starts.append(len(buf))
            ends.append(len(buf))
            flags.append(0)
            continue
        esc = v.replace(b'"', b'""')
        starts.append(len(buf))
        buf += esc
        ends.append(len(buf))
        flags.append(1 | (2 if esc != v else 0))
    n = len(values)
    return (np.frombuffer(bytes(buf) or b"\0", np.uint8).copy(), np.array(starts, np.int64),
            np.array(ends, np.int64), np.array(flags, np.uint8), np.arange(n + 1, dtype=np.int64))


def encode(values, max_entries=64, validate=True, stop=False):
    buf, s, e, f, rf = spans(values)
    n = len(values)
    table = np.empty(1 << max(4, (2 * max_entries - 1).bit_length()), np.int32)
    doff = np.empty(max_entries + 1, np.int32)
    ddata = np.empty(4096, np.uint8)
    codes = np.empty(max(n, 1), np.int32)
    valid = np.zeros(n // 8 + 9, np.uint8)
    err = np.zeros(max(n, 1), np.uint8)
    nulls = np.frombuffer(b"\0", np.uint8), np.array([0, 0], np.int64)
    r = kd.dict_encode_column(buf, s, e, f, rf, 0, n, nulls[0], nulls[1], False, ord('"'), -1, table, doff, ddata,
                              max_entries, codes, valid, err, stop, validate)
    k = int(r[3])
    dictionary = [bytes(ddata[doff[i]:doff[i + 1]]) for i in range(k)]
    out = []
    for i in range(n):
        ok = (valid[i >> 3] >> (i & 7)) & 1
        out.append(dictionary[codes[i]] if ok else None)
    return r, out, dictionary, err[:n]


pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # FNV wraps


values_st = st.lists(st.one_of(st.none(), st.sampled_from([b"a", b"bb", b'q"x', b"", "é".encode(), b"zz"]),
                               st.text(max_size=4).map(str.encode)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(values_st)
def test_decodes_to_the_values(values):
    r, out, dictionary, _ = encode(values, max_entries=256)
    assert r[4] == kd.OK
    assert out == values
    assert len(set(dictionary)) == len(dictionary)  # no duplicates
    assert r[0] == sum(v is None for v in values)


def test_overflow_is_reported():
    r, *_ = encode([str(i).encode() for i in range(20)], max_entries=8)
    assert r[4] == kd.OVERFLOW


def test_invalid_utf8_is_an_error_row():
    r, out, _, err = encode([b"ok", b"bad\xff", b"ok"])
    assert r[4] == kd.OK and r[1] == 1 and r[2] == 1 and list(err) == [0, 1, 0]
    assert out == [b"ok", None, b"ok"]
    r, *_ = encode([b"ok", b"bad\xff", b"ok"], stop=True)
    assert r[2] == 1
