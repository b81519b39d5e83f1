"""pgoutput change decoding kernels against a slow, obviously right Python decoder.

Run also with ``NUMBA_DISABLE_JIT=1`` so coverage sees inside the kernels.
"""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nebula.kernels import parse as kpar
from nebula.kernels import pgoutput as k


# -- encoding messages (what the server sends) and the naive decoder -----------------------------------
def tuple_data(values) -> bytes:
    """``values``: None (null), "u" marker object, or bytes (text)."""
    out = struct.pack(">h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is UNCHANGED:
            out += b"u"
        else:
            out += b"t" + struct.pack(">i", len(v)) + v
    return out


UNCHANGED = object()


def message(kind: str, oid: int, new=None, old=None, old_kind=b"K") -> bytes:
    m = kind.encode() + struct.pack(">I", oid)
    if old is not None:
        m += old_kind + tuple_data(old)
    if new is not None:
        m += b"N" + tuple_data(new)
    return m


def naive_decode(msgs: list[bytes]) -> list[tuple]:
    """``(message, op, oid, [values])`` per output row: value bytes, None for null, "u" for unchanged."""
    rows = []
    for mi, m in enumerate(msgs):
        t = chr(m[0])
        oid = struct.unpack_from(">I", m, 1)[0]
        p = 5
        while p < len(m):
            marker = chr(m[p])
            p += 1
            op = {"N": {"I": 1, "U": 2, "D": 3}[t], "K": 3, "O": 3 if t == "D" else 4}[marker]
            (nc,) = struct.unpack_from(">h", m, p)
            p += 2
            vals = []
            for _ in range(nc):
                kind = chr(m[p])
                p += 1
                if kind == "t":
                    (ln,) = struct.unpack_from(">i", m, p)
                    vals.append(m[p + 4:p + 4 + ln])
                    p += 4 + ln
                else:
                    vals.append(None if kind == "n" else "u")
            rows.append((mi, op, oid, vals))
    return rows


def kernel_decode(msgs: list[bytes]):
    buf = np.frombuffer(b"".join(msgs) or b"\0", np.uint8)
    lens = np.array([len(m) for m in msgs], np.int64)
    ends = np.cumsum(lens)
    starts = ends - lens
    n = len(msgs)
    rows, fields, bad = k.count_changes(buf, starts, ends, n)
    if bad >= 0:
        return None, bad
    arrs = dict(row_msg=np.zeros(rows, np.int64), row_op=np.zeros(rows, np.int8), row_rel=np.zeros(rows, np.int64),
                row_first=np.zeros(rows, np.int64), row_ncols=np.zeros(rows, np.int32))
    f = max(1, fields)
    st_, en, fl, kd = np.zeros(f, np.int64), np.zeros(f, np.int64), np.zeros(f, np.uint8), np.zeros(f, np.uint8)
    r, nf, bad = k.index_changes(buf, starts, ends, n, *arrs.values(), st_, en, fl, kd)
    assert (r, nf) == (rows, fields)
    out = []
    for i in range(rows):
        vals = []
        for c in range(arrs["row_ncols"][i]):
            j = arrs["row_first"][i] + c
            if kd[j] == k.KIND_TEXT:
                assert fl[j] == 1
                vals.append(bytes(buf[st_[j]:en[j]]))
            else:
                assert fl[j] == 0 and st_[j] == en[j]
                vals.append(None if kd[j] == k.KIND_NULL else "u")
        out.append((int(arrs["row_msg"][i]), int(arrs["row_op"][i]), int(arrs["row_rel"][i]), vals))
    return out, (buf, st_, en, fl, arrs["row_first"])


values = st.lists(st.one_of(st.none(), st.just(UNCHANGED), st.binary(max_size=12)), min_size=0, max_size=5)
messages = st.one_of(
    st.builds(lambda oid, v: message("I", oid, v), st.integers(0, 2**32 - 1), values),
    st.builds(lambda oid, v, o, ok: message("U", oid, v, o, ok), st.integers(0, 2**32 - 1), values,
              st.one_of(st.none(), values), st.sampled_from([b"K", b"O"])),
    st.builds(lambda oid, o, ok: message("D", oid, None, o, ok), st.integers(0, 2**32 - 1), values,
              st.sampled_from([b"K", b"O"])),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, max_size=8))
def test_kernel_matches_naive_decoder(msgs):
    got, _ = kernel_decode(msgs)
    assert got == naive_decode(msgs)


@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_truncated_messages_are_reported_not_raised(msgs, data):
    i = data.draw(st.integers(0, len(msgs) - 1))
    m = msgs[i]
    cut = data.draw(st.integers(1, len(m) - 1))
    bad = [*msgs[:i], m[:cut], *msgs[i + 1:]]
    got, info = kernel_decode(bad)
    if got is None:
        assert info == i
    else:  # a cut at a tuple boundary can still be well-formed (fewer tuples)
        assert got == naive_decode(bad)


def test_spans_feed_the_parse_kernels():
    """Spans in the CSV kernels' layout: ints and text parse, null is null, an empty text is not."""
    msgs = [message("I", 7, [b"1", b"abc"]), message("I", 7, [None, b""]), message("U", 7, [b"-5", b"x"])]
    rows, (buf, st_, en, fl, rf) = kernel_decode(msgs)
    nd, no = np.zeros(1, np.uint8), np.array([0, 0], np.int64)
    n = 3
    vals, valid, err = np.zeros(n, np.int64), np.zeros(9, np.uint8), np.zeros(n, np.uint8)
    nulls, nerr, _ = kpar.parse_int_column(buf, st_, en, fl, rf, 0, n, nd, no, False, -(2**63), 2**63 - 1,
                                           vals, valid, err, True)
    assert (nulls, nerr) == (1, 0) and vals[0] == 1 and vals[2] == -5 and valid[0] == 0b101
    offs, data, valid = np.zeros(n + 1, np.int32), np.zeros(16, np.uint8), np.zeros(9, np.uint8)
    nulls, nerr, _, total = kpar.gather_string_column(buf, st_, en, fl, rf, 1, n, nd, no, False, 34, -1, offs, data,
                                                      valid, err, True)
    assert (nulls, nerr, total) == (0, 0, 4) and bytes(data[:4]) == b"abcx" and list(offs) == [0, 3, 3, 4]


def test_fill_unchanged_from_the_previous_image_of_the_key():
    msgs = [message("U", 1, [b"1", b"big"], [b"1", b"big"], b"O"), message("U", 1, [b"1", UNCHANGED]),
            message("U", 1, [b"2", UNCHANGED])]
    buf = np.frombuffer(b"".join(msgs), np.uint8)
    lens = np.array([len(m) for m in msgs], np.int64)
    ends = np.cumsum(lens)
    rows, fields, _ = k.count_changes(buf, ends - lens, ends, 3)
    rm, ro, rr, rf, rn = (np.zeros(rows, d) for d in (np.int64, np.int8, np.int64, np.int64, np.int32))
    st_, en, fl, kd = np.zeros(fields, np.int64), np.zeros(fields, np.int64), np.zeros(fields, np.uint8), \
        np.zeros(fields, np.uint8)
    k.index_changes(buf, ends - lens, ends, 3, rm, ro, rr, rf, rn, st_, en, fl, kd)
    order = np.arange(rows, dtype=np.int64)
    key = np.array([0, 0, 0, 1], np.int64)  # old image, new image, next update of key 1, key 2
    left = k.fill_unchanged(rf, order, rows, 1, kd, st_, en, fl, key, np.zeros(2, np.int64))
    assert left == 1  # key 2 had no earlier image
    assert bytes(buf[st_[rf[2] + 1]:en[rf[2] + 1]]) == b"big" and kd[rf[3] + 1] == k.KIND_UNCHANGED


def test_old_key_changed():
    msgs = [message("U", 1, [b"1", b"a"], [b"1", b"b"], b"O"), message("U", 1, [b"2", b"a"], [b"1", b"a"], b"O"),
            message("U", 1, [b"3", b"a"], [None, b"a"], b"O")]
    buf = np.frombuffer(b"".join(msgs), np.uint8)
    lens = np.array([len(m) for m in msgs], np.int64)
    ends = np.cumsum(lens)
    rows, fields, _ = k.count_changes(buf, ends - lens, ends, 3)
    rm, ro, rr, rf, rn = (np.zeros(rows, d) for d in (np.int64, np.int8, np.int64, np.int64, np.int32))
    st_, en, fl, kd = (np.zeros(fields, d) for d in (np.int64, np.int64, np.uint8, np.uint8))
    k.index_changes(buf, ends - lens, ends, 3, rm, ro, rr, rf, rn, st_, en, fl, kd)
    olds = np.flatnonzero(ro == k.OP_OLD).astype(np.int64)
    out = np.zeros(3, np.uint8)
    k.old_key_changed(buf, st_, en, kd, rf, olds, 3, np.array([0], np.int64), out)
    assert list(out) == [0, 1, 1]
