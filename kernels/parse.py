"""Typed value parsing from tokenized CSV fields.

Every column kernel reads field ``row_first[r] + col`` of rows ``0..n-1``, whose bytes are
``buf[starts[i]:ends[i]]`` (quotes already stripped), and writes into preallocated outputs (see
:mod:`nebula.batch` for the layout). ``flags`` bit 0 marks a quoted field, bit 1 a field holding escapes.

Nulls: a field is null when it is unquoted (or ``quoted_null``) and equals one marker of
``null_data[null_offsets[k]:null_offsets[k + 1]]`` exactly.

Errors never raise: a value that does not parse or does not fit makes the kernel return at once when
``stop_at_first``; otherwise it sets ``row_err[r] = 1``, leaves the validity bit unset, and goes on.
Every kernel returns ``(null_count, n_errors, first_err_row, ...)``; ``null_count`` counts the rows
whose validity bit is unset (null markers and errors), ``first_err_row`` is -1 when there was none.
Only argument errors (outputs too short for ``n`` rows) raise ``ValueError``.

Escapes inside a non-string field are not undone, so such a field is parsed as written (and a
doubled quote never forms a number, date or boolean).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
from numba import njit

T_INT, T_FLOAT, T_BOOL, T_DATE, T_TS, T_TSTZ = 1, 2, 4, 8, 16, 32
T_ALL = 63

_I64_MAX = 9223372036854775807
_I64_MIN = -9223372036854775808
_TWO53 = 9007199254740992
_POW10 = np.array([10.0 ** k for k in range(23)], dtype=np.float64)  # all exact doubles
_US_PER_DAY = 86400000000
_F32_MIN_NORMAL = 1.1754943508222875e-38
_F32_MAX = 3.4028234663852886e38
# indices converted to unsigned where arrays are read/written: numba skips its negative-index
# wraparound test (every index here is checked non-negative first)
_u = np.uintp


# -- shared helpers ------------------------------------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def _check_args(n, row_first, row_err, out_validity):
    if n < 0 or row_first.shape[0] < n or row_err.shape[0] < n or out_validity.shape[0] * 8 < n:
        raise ValueError("parse kernel: an output or row_first is shorter than n rows")


@njit(inline="always")
def _set_bit(bitmap, r):
    bitmap[_u(r >> 3)] |= np.uint8(1 << (r & 7))


@njit(inline="always")
def _field(starts, ends, i, nfields, nb):
    """``(i, start, end)`` of field ``i``; ``i = -1`` when ``i`` or its span is out of bounds.

    Callers pass ``nfields = min(len(starts), len(ends))`` and ``nb = len(buf)`` computed once:
    reading array shapes inside a helper inlined into a row loop made numba's code several times
    slower (the same holds for :func:`_maybe_null`)."""
    if i < 0 or i >= nfields:
        return -1, 0, 0
    s = starts[_u(i)]
    e = ends[_u(i)]
    if s < 0 or e < s or e > nb:
        return -1, 0, 0
    return i, s, e


@njit(inline="always")
def _null_filter(null_data, null_offsets):
    """Scalars that let :func:`_is_null` reject most values without comparing bytes: a 256-bit set
    of the markers' first bytes (four words), a 64-bit set of their lengths, whether the empty
    marker is present, and whether any marker is 64 bytes or longer.

    The sets are int64 words tested with ``(w >> k) & 1``: the same test on uint64 words costs numba
    a conversion per value and made every column kernel several times slower."""
    one = np.int64(1)
    w0 = np.int64(0)
    w1 = np.int64(0)
    w2 = np.int64(0)
    w3 = np.int64(0)
    lens = np.int64(0)
    has_empty = False
    long_marker = False
    for k in range(null_offsets.shape[0] - 1):
        a = null_offsets[_u(k)]
        ln = null_offsets[_u(k + 1)] - a
        if ln == 0:
            has_empty = True
            continue
        c = np.int64(null_data[_u(a)])
        bit = one << (c & 63)
        q = c >> 6
        if q == 0:
            w0 |= bit
        elif q == 1:
            w1 |= bit
        elif q == 2:
            w2 |= bit
        else:
            w3 |= bit
        if ln < 64:
            lens |= one << np.int64(ln)
        else:
            long_marker = True
    return w0, w1, w2, w3, lens, has_empty, long_marker


@njit(inline="always")
def _is_null(buf, s, e, fl, null_data, null_offsets, quoted_null, nf):
    if (fl & 1) != 0 and not quoted_null:
        return False
    ln = e - s
    if ln == 0:
        return nf[5]
    if ln < 64:
        if ((nf[4] >> ln) & 1) == 0:
            return False
    elif not nf[6]:
        return False
    c = np.int64(buf[_u(s)])
    q = c >> 6
    w = nf[0] if q == 0 else (nf[1] if q == 1 else (nf[2] if q == 2 else nf[3]))
    if ((w >> (c & 63)) & 1) == 0:
        return False
    for k in range(null_offsets.shape[0] - 1):
        a = null_offsets[_u(k)]
        if null_offsets[_u(k + 1)] - a != ln:
            continue
        same = True
        for t in range(ln):
            if buf[_u(s + t)] != null_data[_u(a + t)]:
                same = False
                break
        if same:
            return True
    return False


@njit(inline="always")
def _digit(buf, p):
    """The digit value of ``buf[p]``, or -1."""
    d = np.int64(buf[_u(p)]) - 48
    return d if 0 <= d <= 9 else -1


@njit(inline="always")
def _lower_is(buf, p, letter):
    return (np.int64(buf[_u(p)]) | 0x20) == letter


@njit(inline="always")
def _two_digits(buf, p):
    a = _digit(buf, p)
    b = _digit(buf, p + 1)
    if a < 0 or b < 0:
        return -1
    return a * 10 + b


# -- integers ------------------------------------------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def _parse_int_span(buf, s, e, lo, hi):
    """``(ok, value)`` for ``[+-]digits`` within ``lo..hi``; never overflows int64."""
    if s >= e:
        return False, 0
    neg = buf[_u(s)] == 45
    p = s + 1 if (neg or buf[_u(s)] == 43) else s
    if p >= e:
        return False, 0
    v = 0  # accumulated as a negative number, so int64 min is reachable
    for q in range(p, e):
        d = _digit(buf, q)
        if d < 0:
            return False, 0
        if v < -922337203685477580 or (v == -922337203685477580 and d > 8):
            return False, 0
        v = v * 10 - d
    if not neg:
        if v == _I64_MIN:
            return False, 0
        v = -v
    if v < lo or v > hi:
        return False, 0
    return True, v


@njit(inline="always")
def digits18(buf, p, e):
    """``(ok, value)`` of the 1..18 ASCII digits ``buf[p:e]`` (so many cannot overflow int64: a tight
    loop; the callers take longer spans to :func:`_parse_int_span`)."""
    v = 0
    for q in range(p, e):
        d = np.int64(buf[_u(q)]) - 48
        if d < 0 or d > 9:
            return False, 0
        v = v * 10 + d
    return True, v


@njit(inline="always")
def _maybe_null(lens, ln):
    """False when no null marker is ``ln`` bytes long (``lens`` is :func:`_null_filter`'s length set):
    the one test most values need before :func:`_is_null`."""
    return ln == 0 or ln >= 64 or ((lens >> ln) & 1) != 0


@njit(nogil=True, cache=True, _nrt=False)
def parse_int_column(buf, starts, ends, flags, row_first, col, n, null_data, null_offsets, quoted_null,
                     lo, hi, out_values, out_validity, row_err, stop_at_first):
    """Integers ``[+-]digits`` into ``out_values`` (int8..int64), rejecting values outside ``lo..hi``.

    Up to 18 digits cannot overflow int64 and take a tight loop; longer ones take the checked path.

    Returns ``(null_count, n_errors, first_err_row)``.
    """
    _check_args(n, row_first, row_err, out_validity)
    if out_values.shape[0] < n:
        raise ValueError("parse kernel: out_values is shorter than n rows")
    nulls = 0
    nerr = 0
    first = -1
    nf = _null_filter(null_data, null_offsets)
    nb = buf.shape[0]
    nfields = min(starts.shape[0], ends.shape[0])
    for r in range(n):
        out_values[_u(r)] = 0
        i = row_first[_u(r)] + col
        ok = False
        v = 0
        if 0 <= i < nfields:
            s = starts[_u(i)]
            e = ends[_u(i)]
            if 0 <= s <= e <= nb:
                if _maybe_null(nf[4], e - s) and _is_null(buf, s, e, flags[_u(i)], null_data, null_offsets, quoted_null, nf):
                    nulls += 1
                    continue
                p = s
                neg = False
                if p < e and (buf[_u(p)] == 45 or buf[_u(p)] == 43):
                    neg = buf[_u(p)] == 45
                    p += 1
                nd = e - p
                if 0 < nd <= 18:
                    ok, v = digits18(buf, p, e)
                    if neg:
                        v = -v
                    if ok and (v < lo or v > hi):
                        ok = False
                elif nd > 18:
                    ok, v = _parse_int_span(buf, s, e, lo, hi)
        if ok:
            out_values[_u(r)] = v
            _set_bit(out_validity, r)
            continue
        out_values[_u(r)] = 0
        row_err[_u(r)] = 1
        nerr += 1
        nulls += 1
        if first < 0:
            first = r
        if stop_at_first:
            return nulls, nerr, first
    return nulls, nerr, first


# -- floats --------------------------------------------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def _parse_special(buf, p, e, neg):
    """``nan``, ``inf``, ``infinity`` (any case) at ``buf[p:e]``: ``(status, value)``."""
    ln = e - p
    if ln == 3 and _lower_is(buf, p, 110) and _lower_is(buf, p + 1, 97) and _lower_is(buf, p + 2, 110):
        return 1, -np.nan if neg else np.nan
    if ln != 3 and ln != 8:
        return 0, 0.0
    if not (_lower_is(buf, p, 105) and _lower_is(buf, p + 1, 110) and _lower_is(buf, p + 2, 102)):
        return 0, 0.0
    if ln == 8:
        for q, c in enumerate((105, 110, 105, 116, 121)):  # "inity"
            if not _lower_is(buf, p + 3 + q, c):
                return 0, 0.0
    return 1, -np.inf if neg else np.inf


def _pow5_table(qmin: int, qmax: int):
    """128-bit floors ``T`` of ``5**q`` scaled into ``[2**127, 2**128)``: ``5**q = T' * 2**E`` with
    ``T <= T' < T + 1``."""
    hi = np.zeros(qmax - qmin + 1, np.uint64)
    lo = np.zeros_like(hi)
    e2 = np.zeros(hi.shape[0], np.int64)
    for q in range(qmin, qmax + 1):
        if q >= 0:
            p = 5**q
            b = p.bit_length()
            t, e = (p << (128 - b), b - 128) if b <= 128 else (p >> (b - 128), b - 128)
        else:
            p = 5**-q
            b = p.bit_length()
            t, e = (1 << (b + 127)) // p, -(b + 127)
        hi[q - qmin], lo[q - qmin], e2[q - qmin] = t >> 64, t & (2**64 - 1), e
    return hi, lo, e2


_Q_MIN, _Q_MAX = -342, 308
_P5_HI, _P5_LO, _P5_E2 = _pow5_table(_Q_MIN, _Q_MAX)
_U0, _U1, _U32, _U63 = np.uint64(0), np.uint64(1), np.uint64(32), np.uint64(63)
_M32, _M64 = np.uint64(0xFFFFFFFF), np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(inline="always")
def _mul64(a, b):
    """``(hi, lo)`` of the 128-bit product of two uint64."""
    a0, a1, b0, b1 = a & _M32, a >> _U32, b & _M32, b >> _U32
    p00, p01, p10 = a0 * b0, a0 * b1, a1 * b0
    mid = (p00 >> _U32) + (p01 & _M32) + (p10 & _M32)
    return a1 * b1 + (p01 >> _U32) + (p10 >> _U32) + (mid >> _U32), (p00 & _M32) | ((mid & _M32) << _U32)


@njit(inline="always")
def _add64(a, b):
    """``(sum mod 2**64, carry)`` of two uint64, without wrapping arithmetic."""
    room = _M64 - b
    if a > room:
        return a - room - _U1, _U1
    return a + b, _U0


@njit(nogil=True, cache=True, _nrt=False)
def _eisel_lemire(w, q):
    """``(ok, double)`` nearest to ``w * 10**q`` (``0 < w < 2**63``), after Eisel and Lemire.

    The 192-bit product of the normalized ``w`` and the truncated ``5**q`` is a lower bound ``X`` of
    the exact scaled value, which lies in ``[X, X + w)``. When both ends keep the same 54 leading bits
    and neither is a tie, that prefix decides the rounding; otherwise (and for subnormal or overflowing
    results) ``ok`` is False and the caller falls back to an exact parser.
    """
    if q < _Q_MIN or q > _Q_MAX or w <= 0:
        return False, 0.0
    x = np.uint64(w)
    lz = 0
    for step in (32, 16, 8, 4, 2, 1):
        if (x >> np.uint64(64 - step)) == _U0:
            x = x << np.uint64(step)
            lz += step
    h1, l1 = _mul64(x, _P5_HI[q - _Q_MIN])
    h2, l2 = _mul64(x, _P5_LO[q - _Q_MIN])
    w1, c = _add64(l1, h2)
    w0 = h1 + c
    shift = 10 if (w0 >> _U63) == _U1 else 9
    ushift = np.uint64(shift)
    m54 = w0 >> ushift
    rest = w0 & ((_U1 << ushift) - _U1)
    if (m54 & _U1) == _U1 and rest == _U0 and w1 == _U0 and l2 == _U0:
        return False, 0.0  # a tie at the lower end
    y2, c = _add64(l2, x - _U1)
    y1, c = _add64(w1, c)
    y0 = w0 + c
    if (y0 >> ushift) != m54 or ((m54 & _U1) == _U1 and (y0 & ((_U1 << ushift) - _U1)) == _U0
                                 and y1 == _U0 and y2 == _U0):
        return False, 0.0  # the interval crosses a rounding boundary, or its upper end is a tie
    m = (m54 + (m54 & _U1)) >> _U1
    e2 = shift + 129 + _P5_E2[q - _Q_MIN] + q - lz
    if m == (_U1 << np.uint64(53)):
        m = m >> _U1
        e2 += 1
    if e2 < -1074 or e2 + 53 > 1024:
        return False, 0.0
    return True, math.ldexp(np.float64(m), int(e2))


@njit(nogil=True, cache=True, _nrt=False)
def _parse_float_span(buf, s, e):
    """``(status, value)``: 0 invalid, 1 exact double in ``value``, 2 valid but needs the slow path.

    Grammar ``[+-](digits[.digits]|.digits)[(e|E)[+-]digits]`` or ``[+-](nan|inf|infinity)``.
    Status 1 uses Clinger's fast path: a mantissa of at most 2**53 times an exact power of ten.
    """
    if s >= e:
        return 0, 0.0
    neg = buf[_u(s)] == 45
    p = s + 1 if (neg or buf[_u(s)] == 43) else s
    if p >= e:
        return 0, 0.0
    if _lower_is(buf, p, 110) or _lower_is(buf, p, 105):
        return _parse_special(buf, p, e, neg)
    w = 0
    nd = 0
    exp10 = 0
    inexact = False
    ndigits = 0
    while p < e:
        d = _digit(buf, p)
        if d < 0:
            break
        ndigits += 1
        if nd < 18:
            w = w * 10 + d
            nd += 1 if w != 0 else 0
        else:
            exp10 += 1
            inexact = inexact or d != 0
        p += 1
    if p < e and buf[_u(p)] == 46:
        p += 1
        while p < e:
            d = _digit(buf, p)
            if d < 0:
                break
            ndigits += 1
            if nd < 18:
                w = w * 10 + d
                nd += 1 if w != 0 else 0
                exp10 -= 1
            else:
                inexact = inexact or d != 0
            p += 1
    if ndigits == 0:
        return 0, 0.0
    if p < e and _lower_is(buf, p, 101):
        p += 1
        eneg = p < e and buf[_u(p)] == 45
        if p < e and (buf[_u(p)] == 45 or buf[_u(p)] == 43):
            p += 1
        ev = 0
        ed = 0
        while p < e:
            d = _digit(buf, p)
            if d < 0:
                break
            if ev < 100000000:
                ev = ev * 10 + d
            ed += 1
            p += 1
        if ed == 0:
            return 0, 0.0
        exp10 += -ev if eneg else ev
    if p != e:
        return 0, 0.0
    if w == 0:
        return 1, -0.0 if neg else 0.0
    if not inexact:
        while w > _TWO53 and w % 10 == 0:
            w //= 10
            exp10 += 1
        while 22 < exp10 <= 22 + 15 and w <= _TWO53 // 10:
            w *= 10
            exp10 -= 1
        if w <= _TWO53 and -22 <= exp10 <= 22:
            v = np.float64(w) * _POW10[exp10] if exp10 >= 0 else np.float64(w) / _POW10[-exp10]
            return 1, -v if neg else v
    ok, v = _eisel_lemire(w, exp10)
    if ok and inexact:  # the digits lie strictly between w and w + 1: both must round alike
        ok2, v2 = _eisel_lemire(w + 1, exp10)
        ok = ok2 and v2 == v
    if not ok:
        return 2, 0.0
    return 1, -v if neg else v


@njit(inline="always")
def _is_f32_midpoint(v):
    """True when double ``v`` (normal float32 range) lies exactly halfway between two float32."""
    m, _ = math.frexp(v)
    t = abs(m) * 33554432.0  # 2**25: the bit just below float32's 24-bit significand
    return t == math.floor(t) and (np.int64(t) & 1) == 1


@njit(inline="always")
def _float_fast(buf, s, e):
    """``(1, value)`` for ``[+-]digits[.digits]`` with at most 15 digits (exact by Clinger: an
    integer below 2**53 divided by an exact power of ten rounds once); ``(0, 0.0)`` otherwise."""
    p = s
    neg = False
    if p < e and (buf[_u(p)] == 45 or buf[_u(p)] == 43):
        neg = buf[_u(p)] == 45
        p += 1
    w = np.int64(0)
    nd = 0
    frac = -1
    while p < e:
        c = np.int64(buf[_u(p)])
        if c == 46 and frac < 0:
            frac = 0
            p += 1
            continue
        d = c - 48
        if d < 0 or d > 9 or nd == 15:  # a 16th digit: not exact here (and w could wrap)
            return 0, 0.0
        w = w * 10 + d
        nd += 1
        if frac >= 0:
            frac += 1
        p += 1
    if nd == 0:
        return 0, 0.0
    v = np.float64(w)
    if frac > 0:
        v = v / _POW10[frac]
    return 1, -v if neg else v


@njit(nogil=True, cache=True, _nrt=False)
def parse_float_column(buf, starts, ends, flags, row_first, col, n, null_data, null_offsets, quoted_null,
                       out_values, out_validity, slow_rows, row_err, stop_at_first):
    """Floats into ``out_values`` (float32 or float64), correctly rounded.

    Values outside the exact fast path are valid but left for :func:`fill_slow_floats`: their row goes
    to ``slow_rows[:n_slow]`` and their validity bit is set. Returns
    ``(null_count, n_errors, first_err_row, n_slow)``.
    """
    _check_args(n, row_first, row_err, out_validity)
    if out_values.shape[0] < n or slow_rows.shape[0] < n:
        raise ValueError("parse kernel: out_values or slow_rows is shorter than n rows")
    f32 = out_values.itemsize == 4
    nulls = 0
    nerr = 0
    first = -1
    nslow = 0
    nf = _null_filter(null_data, null_offsets)
    nb = buf.shape[0]
    nfields = min(starts.shape[0], ends.shape[0])
    for r in range(n):
        i, s, e = _field(starts, ends, row_first[_u(r)] + col, nfields, nb)
        out_values[_u(r)] = 0
        if i >= 0 and _maybe_null(nf[4], e - s) and _is_null(buf, s, e, flags[_u(i)], null_data, null_offsets,
                                                            quoted_null, nf):
            nulls += 1
            continue
        st = 0
        v = 0.0
        if i >= 0:
            if not f32:
                st, v = _float_fast(buf, s, e)
            if st == 0:
                st, v = _parse_float_span(buf, s, e)
        if st == 1 and f32 and v == v and abs(v) != np.inf and v != 0.0 and (
                abs(v) < _F32_MIN_NORMAL or abs(v) > _F32_MAX or _is_f32_midpoint(v)):
            st = 2
        if st == 1:
            out_values[_u(r)] = v
            _set_bit(out_validity, r)
            continue
        if st == 2:
            slow_rows[_u(nslow)] = r
            nslow += 1
            _set_bit(out_validity, r)
            continue
        row_err[_u(r)] = 1
        nerr += 1
        nulls += 1
        if first < 0:
            first = r
        if stop_at_first:
            return nulls, nerr, first, nslow
    return nulls, nerr, first, nslow


def _round_float32(text: str) -> np.float32:
    """Correctly rounded float32 of a decimal string (no double rounding)."""
    d = float(text)
    with np.errstate(over="ignore"):
        f = np.float32(d)
        if not math.isfinite(d) or d == 0.0 or float(f) == d:
            return f
        fv = float(f) if np.isfinite(f) else math.copysign(2.0 ** 128, d)
        g = np.nextafter(f, np.float32(math.copysign(np.inf, d - fv)))
    gv = float(g) if np.isfinite(g) else math.copysign(2.0 ** 128, d)
    if (fv + gv) / 2 != d:
        return f  # not a float32 midpoint: rounding through the double was exact enough
    x = Fraction(text)
    df, dg = abs(x - Fraction(fv)), abs(x - Fraction(gv))
    if df != dg:
        return f if df < dg else g
    return f if int(np.array(f).view(np.uint32)) & 1 == 0 else g


def fill_slow_floats(buf, starts, ends, row_first, col, slow_rows, n_slow, out_values) -> None:
    """Fill the rows :func:`parse_float_column` left in ``slow_rows[:n_slow]`` using Python's parser."""
    f32 = out_values.dtype == np.float32
    for k in range(n_slow):
        r = int(slow_rows[_u(k)])
        i = int(row_first[_u(r)]) + col
        text = bytes(buf[starts[_u(i)]:ends[_u(i)]]).decode("ascii")
        out_values[_u(r)] = _round_float32(text) if f32 else float(text)


# -- booleans ------------------------------------------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def _word_is(buf, s, e, w0, w1, w2, w3, w4):
    """``buf[s:e]`` equals the lowercase word of up to 5 letters (0-padded), ignoring ASCII case."""
    ln = e - s
    for q, c in enumerate((w0, w1, w2, w3, w4)):
        if q >= ln:
            return c == 0
        if c == 0 or not _lower_is(buf, s + q, c):
            return False
    return ln == 5


@njit(nogil=True, cache=True, _nrt=False)
def _parse_bool_span(buf, s, e, words_only):
    """``(ok, value)``; ``words_only`` accepts just true/false (used by inference)."""
    ln = e - s
    if ln == 4 and _word_is(buf, s, e, 116, 114, 117, 101, 0):
        return True, True
    if ln == 5 and _word_is(buf, s, e, 102, 97, 108, 115, 101):
        return True, False
    if words_only or ln == 0 or ln > 3:
        return False, False
    if ln == 1:
        c = np.int64(buf[_u(s)])
        if c == 49 or (c | 0x20) == 116 or (c | 0x20) == 121:
            return True, True
        if c == 48 or (c | 0x20) == 102 or (c | 0x20) == 110:
            return True, False
        return False, False
    if _word_is(buf, s, e, 121, 101, 115, 0, 0):
        return True, True
    if _word_is(buf, s, e, 110, 111, 0, 0, 0):
        return True, False
    return False, False


@njit(nogil=True, cache=True, _nrt=False)
def parse_bool_column(buf, starts, ends, flags, row_first, col, n, null_data, null_offsets, quoted_null,
                      out_values, out_validity, row_err, stop_at_first):
    """Booleans (true/t/yes/y/1, false/f/no/n/0, any case) into the ``out_values`` bitmap.

    ``out_values`` must be zeroed by the caller. Returns ``(null_count, n_errors, first_err_row)``.
    """
    _check_args(n, row_first, row_err, out_validity)
    if out_values.shape[0] * 8 < n:
        raise ValueError("parse kernel: out_values is shorter than n rows")
    nulls = 0
    nerr = 0
    first = -1
    nf = _null_filter(null_data, null_offsets)
    nb = buf.shape[0]
    nfields = min(starts.shape[0], ends.shape[0])
    for r in range(n):
        i, s, e = _field(starts, ends, row_first[_u(r)] + col, nfields, nb)
        if i >= 0 and _maybe_null(nf[4], e - s) and _is_null(buf, s, e, flags[_u(i)], null_data, null_offsets,
                                                            quoted_null, nf):
            nulls += 1
            continue
        ok = False
        v = False
        if i >= 0:
            ok, v = _parse_bool_span(buf, s, e, False)
        if ok:
            if v:
                _set_bit(out_values, r)
            _set_bit(out_validity, r)
            continue
        row_err[_u(r)] = 1
        nerr += 1
        nulls += 1
        if first < 0:
            first = r
        if stop_at_first:
            return nulls, nerr, first
    return nulls, nerr, first


# -- dates and timestamps ------------------------------------------------------------------------
@njit(inline="always")
def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years, March-based years)."""
    y -= 1 if m <= 2 else 0
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@njit(inline="always")
def _days_in_month(y, m):
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if (m == 4 or m == 6 or m == 9 or m == 11) else 31


@njit(nogil=True, cache=True, _nrt=False)
def _parse_date_at(buf, s, e):
    """``(ok, days)`` for ``YYYY-MM-DD`` at ``buf[s:s+10]`` (``e`` bounds the read)."""
    if e - s < 10 or buf[_u(s + 4)] != 45 or buf[_u(s + 7)] != 45:
        return False, 0
    a = _two_digits(buf, s)
    b = _two_digits(buf, s + 2)
    m = _two_digits(buf, s + 5)
    d = _two_digits(buf, s + 8)
    if a < 0 or b < 0 or m < 1 or m > 12 or d < 1:
        return False, 0
    y = a * 100 + b
    if y < 1 or d > _days_in_month(y, m):
        return False, 0
    return True, _days_from_civil(y, m, d)


@njit(nogil=True, cache=True, _nrt=False)
def _parse_ts_span(buf, s, e):
    """``(ok, micros_utc, has_offset)`` for ``date[(T| )HH:MM[:SS[.f{1,9}]][Z|±HH[[:]MM]]]``."""
    ok, days = _parse_date_at(buf, s, e)
    if not ok:
        return False, 0, False
    us = days * _US_PER_DAY
    p = s + 10
    if p == e:
        return True, us, False
    if (buf[_u(p)] != 84 and buf[_u(p)] != 32) or e - p < 6 or buf[_u(p + 3)] != 58:
        return False, 0, False
    hh = _two_digits(buf, p + 1)
    mi = _two_digits(buf, p + 4)
    if hh < 0 or hh > 23 or mi < 0 or mi > 59:
        return False, 0, False
    sec = 0
    frac = 0
    p += 6
    if p < e and buf[_u(p)] == 58:
        if e - p < 3:
            return False, 0, False
        sec = _two_digits(buf, p + 1)
        if sec < 0 or sec > 59:
            return False, 0, False
        p += 3
        if p < e and buf[_u(p)] == 46:
            p += 1
            nf = 0
            while p < e:
                d = _digit(buf, p)
                if d < 0:
                    break
                nf += 1
                if nf > 9 or (nf > 6 and d != 0):
                    return False, 0, False
                if nf <= 6:
                    frac = frac * 10 + d
                p += 1
            if nf == 0:
                return False, 0, False
            for _ in range(nf, 6):
                frac *= 10
    us += (hh * 3600 + mi * 60 + sec) * 1000000 + frac
    if p == e:
        return True, us, False
    if buf[_u(p)] == 90 and p + 1 == e:
        return True, us, True
    if buf[_u(p)] != 43 and buf[_u(p)] != 45:
        return False, 0, False
    sign = -1 if buf[_u(p)] == 45 else 1
    ln = e - p - 1
    if ln != 2 and ln != 4 and not (ln == 5 and buf[_u(p + 3)] == 58):
        return False, 0, False
    oh = _two_digits(buf, p + 1)
    om = 0 if ln == 2 else _two_digits(buf, p + ln - 1)
    if oh < 0 or oh > 23 or om < 0 or om > 59:
        return False, 0, False
    return True, us - sign * (oh * 3600 + om * 60) * 1000000, True


@njit(nogil=True, cache=True, _nrt=False)
def parse_date_column(buf, starts, ends, flags, row_first, col, n, null_data, null_offsets, quoted_null,
                      out_values, out_validity, row_err, stop_at_first):
    """``YYYY-MM-DD`` (years 0001..9999) into int32 days since 1970-01-01.

    Returns ``(null_count, n_errors, first_err_row)``.
    """
    _check_args(n, row_first, row_err, out_validity)
    if out_values.shape[0] < n:
        raise ValueError("parse kernel: out_values is shorter than n rows")
    nulls = 0
    nerr = 0
    first = -1
    nf = _null_filter(null_data, null_offsets)
    nb = buf.shape[0]
    nfields = min(starts.shape[0], ends.shape[0])
    for r in range(n):
        i, s, e = _field(starts, ends, row_first[_u(r)] + col, nfields, nb)
        out_values[_u(r)] = 0
        if i >= 0 and _maybe_null(nf[4], e - s) and _is_null(buf, s, e, flags[_u(i)], null_data, null_offsets,
                                                            quoted_null, nf):
            nulls += 1
            continue
        ok = False
        v = 0
        if i >= 0 and e - s == 10:
            ok, v = _parse_date_at(buf, s, e)
        if ok:
            out_values[_u(r)] = v
            _set_bit(out_validity, r)
            continue
        row_err[_u(r)] = 1
        nerr += 1
        nulls += 1
        if first < 0:
            first = r
        if stop_at_first:
            return nulls, nerr, first
    return nulls, nerr, first


@njit(inline="always")
def _d2(buf, p):
    """Two ASCII digits at ``p`` as a number, or a negative value."""
    a = np.int64(buf[_u(p)]) - 48
    b = np.int64(buf[_u(p + 1)]) - 48
    if a < 0 or a > 9 or b < 0 or b > 9:
        return -1000
    return a * 10 + b


@njit(inline="always")
def _ts19_fast(buf, s, e):
    """``(ok, micros)`` for exactly ``YYYY-MM-DD[T ]HH:MM:SS`` (the common case); else not ok."""
    if e - s != 19 or buf[_u(s + 4)] != 45 or buf[_u(s + 7)] != 45 or buf[_u(s + 13)] != 58 or buf[_u(s + 16)] != 58:
        return False, 0
    sep = buf[_u(s + 10)]
    if sep != 84 and sep != 32:
        return False, 0
    y = _d2(buf, s) * 100 + _d2(buf, s + 2)
    mo = _d2(buf, s + 5)
    d = _d2(buf, s + 8)
    hh = _d2(buf, s + 11)
    mi = _d2(buf, s + 14)
    ss = _d2(buf, s + 17)
    if y < 1 or mo < 1 or mo > 12 or d < 1 or hh < 0 or hh > 23 or mi < 0 or mi > 59 or ss < 0 or ss > 59:
        return False, 0
    if d > _days_in_month(y, mo):
        return False, 0
    return True, _days_from_civil(y, mo, d) * _US_PER_DAY + (hh * 3600 + mi * 60 + ss) * 1000000


@njit(nogil=True, cache=True, _nrt=False)
def parse_timestamp_column(buf, starts, ends, flags, row_first, col, n, null_data, null_offsets,
                           quoted_null, want_tz, out_values, out_validity, row_err, stop_at_first):
    """ISO-8601 timestamps into int64 µs since the epoch (UTC; an offset is subtracted).

    ``want_tz`` False (naive column) rejects values carrying ``Z`` or an offset; True takes values
    without one as UTC. Fraction digits past the sixth must be zeros. Returns
    ``(null_count, n_errors, first_err_row)``.
    """
    _check_args(n, row_first, row_err, out_validity)
    if out_values.shape[0] < n:
        raise ValueError("parse kernel: out_values is shorter than n rows")
    nulls = 0
    nerr = 0
    first = -1
    nf = _null_filter(null_data, null_offsets)
    nb = buf.shape[0]
    nfields = min(starts.shape[0], ends.shape[0])
    for r in range(n):
        i, s, e = _field(starts, ends, row_first[_u(r)] + col, nfields, nb)
        out_values[_u(r)] = 0
        if i >= 0 and _maybe_null(nf[4], e - s) and _is_null(buf, s, e, flags[_u(i)], null_data, null_offsets,
                                                            quoted_null, nf):
            nulls += 1
            continue
        ok = False
        v = 0
        tz = False
        if i >= 0:
            ok, v = _ts19_fast(buf, s, e)
            if not ok:
                ok, v, tz = _parse_ts_span(buf, s, e)
        if ok and (want_tz or not tz):
            out_values[_u(r)] = v
            _set_bit(out_validity, r)
            continue
        row_err[_u(r)] = 1
        nerr += 1
        nulls += 1
        if first < 0:
            first = r
        if stop_at_first:
            return nulls, nerr, first
    return nulls, nerr, first


# -- decimals ------------------------------------------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def _parse_decimal_span(buf, s, e, precision, scale):
    """``(status, unscaled)``: 0 invalid or does not fit ``decimal(precision, scale)``, 1 value in
    ``unscaled``, 2 valid but its unscaled value exceeds int64 (left for the slow path).

    Grammar ``[+-](digits[.digits]|.digits)[(e|E)[+-]digits]``. Trailing zeros are stripped while
    reading, so the value is ``w * 10**k`` with ``w`` free of trailing zeros: ``k < 0`` then means
    nonzero digits past the scale.
    """
    if s >= e:
        return 0, 0
    neg = buf[_u(s)] == 45
    p = s + 1 if (neg or buf[_u(s)] == 43) else s
    w = 0
    big = False
    nsig = 0  # digits from the first to the last nonzero digit
    pend = 0  # zeros seen after the last nonzero digit
    nfrac = 0
    ndigits = 0
    frac = False
    while p < e:
        d = _digit(buf, p)
        if d < 0:
            if buf[_u(p)] == 46 and not frac:
                frac = True
                p += 1
                continue
            break
        ndigits += 1
        nfrac += 1 if frac else 0
        if d == 0:
            pend += 1 if nsig > 0 else 0
        else:
            nsig += pend + 1
            for _ in range(pend):
                if big or w > _I64_MAX // 10:
                    big = True
                    break
                w *= 10
            if big or w > (_I64_MAX - d) // 10:
                big = True
            else:
                w = w * 10 + d
            pend = 0
        p += 1
    if ndigits == 0:
        return 0, 0
    exp = 0
    if p < e and _lower_is(buf, p, 101):
        p += 1
        eneg = p < e and buf[_u(p)] == 45
        if p < e and (buf[_u(p)] == 45 or buf[_u(p)] == 43):
            p += 1
        ed = 0
        while p < e:
            d = _digit(buf, p)
            if d < 0:
                break
            if exp < 100000000:
                exp = exp * 10 + d
            ed += 1
            p += 1
        if ed == 0:
            return 0, 0
        exp = -exp if eneg else exp
    if p != e:
        return 0, 0
    if nsig == 0:
        return 1, 0
    k = pend + exp - nfrac + scale
    if k < 0 or nsig + k > precision:
        return 0, 0
    if big:
        return 2, 0
    for _ in range(k):
        if w > _I64_MAX // 10:
            return 2, 0
        w *= 10
    return 1, -w if neg else w


@njit(nogil=True, cache=True, _nrt=False)
def parse_decimal_column(buf, starts, ends, flags, row_first, col, n, null_data, null_offsets, quoted_null,
                         precision, scale, out_values, out_validity, slow_rows, row_err, stop_at_first):
    """Decimals into ``out_values`` ``(cap, 2)`` int64: lo and hi words of the 128-bit unscaled value.

    Digits past ``scale`` must be zeros; integer digits plus ``scale`` must fit ``precision``. Valid
    values beyond int64 go to ``slow_rows[:n_slow]`` (validity set) for :func:`fill_slow_decimals`.
    Returns ``(null_count, n_errors, first_err_row, n_slow)``.
    """
    _check_args(n, row_first, row_err, out_validity)
    if out_values.shape[0] < n or slow_rows.shape[0] < n:
        raise ValueError("parse kernel: out_values or slow_rows is shorter than n rows")
    nulls = 0
    nerr = 0
    first = -1
    nslow = 0
    nf = _null_filter(null_data, null_offsets)
    nb = buf.shape[0]
    nfields = min(starts.shape[0], ends.shape[0])
    for r in range(n):
        i, s, e = _field(starts, ends, row_first[_u(r)] + col, nfields, nb)
        out_values[r, 0] = 0
        out_values[r, 1] = 0
        if i >= 0 and _maybe_null(nf[4], e - s) and _is_null(buf, s, e, flags[_u(i)], null_data, null_offsets,
                                                            quoted_null, nf):
            nulls += 1
            continue
        st = 0
        v = 0
        if i >= 0:
            st, v = _parse_decimal_span(buf, s, e, precision, scale)
        if st == 1:
            out_values[r, 0] = v
            out_values[r, 1] = -1 if v < 0 else 0
            _set_bit(out_validity, r)
            continue
        if st == 2:
            slow_rows[_u(nslow)] = r
            nslow += 1
            _set_bit(out_validity, r)
            continue
        row_err[_u(r)] = 1
        nerr += 1
        nulls += 1
        if first < 0:
            first = r
        if stop_at_first:
            return nulls, nerr, first, nslow
    return nulls, nerr, first, nslow


_DECIMAL_TEXT = re.compile(rb"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?)([0-9]+))?")


def _unscaled(text: bytes, scale: int) -> int:
    """The exact unscaled integer of a decimal string the kernel already validated."""
    m = _DECIMAL_TEXT.fullmatch(text)
    sign, ipart, fpart, esign, edigits = m.groups()
    fpart = fpart or b""
    digits = (ipart + fpart).lstrip(b"0")
    stripped = digits.rstrip(b"0")
    exp = int(edigits.lstrip(b"0") or b"0") if edigits else 0
    k = (-exp if esign == b"-" else exp) - len(fpart) + (len(digits) - len(stripped)) + scale
    value = int(stripped or b"0") * 10 ** k if stripped else 0  # k >= 0 for validated values
    return -value if sign == b"-" else value


def fill_slow_decimals(buf, starts, ends, row_first, col, slow_rows, n_slow, scale, out_values) -> None:
    """Fill the rows :func:`parse_decimal_column` left in ``slow_rows[:n_slow]`` (exact Python ints)."""
    for k in range(n_slow):
        r = int(slow_rows[_u(k)])
        i = int(row_first[_u(r)]) + col
        u = _unscaled(bytes(buf[starts[_u(i)]:ends[_u(i)]]), scale) & ((1 << 128) - 1)
        lo, hi = u & ((1 << 64) - 1), u >> 64
        out_values[r, 0] = lo - (1 << 64) if lo >> 63 else lo
        out_values[r, 1] = hi - (1 << 64) if hi >> 63 else hi


# -- strings -------------------------------------------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def string_column_size(buf, starts, ends, flags, row_first, col, n):
    """Upper bound of the bytes :func:`gather_string_column` writes for rows ``0..n-1``."""
    total = 0
    nb = buf.shape[0]
    nfields = min(starts.shape[0], ends.shape[0])
    for r in range(n):
        i, s, e = _field(starts, ends, row_first[_u(r)] + col, nfields, nb)
        if i >= 0:
            total += e - s
    return total


@njit(nogil=True, cache=True, _nrt=False)
def first_invalid_utf8(buf, start, end):
    """Offset of the first byte of ``buf[start:end]`` that is not valid UTF-8, or -1.

    ASCII runs are skipped eight bytes at a time; sequences are checked strictly (no overlongs,
    surrogates or code points past U+10FFFF). A sequence cut by ``end`` is invalid.
    """
    p = start
    while p < end:
        if p + 8 <= end and ((buf[_u(p)] | buf[_u(p + 1)] | buf[_u(p + 2)] | buf[_u(p + 3)] | buf[_u(p + 4)] | buf[_u(p + 5)]
                              | buf[_u(p + 6)] | buf[_u(p + 7)]) & 0x80) == 0:
            p += 8
            continue
        c = np.int64(buf[_u(p)])
        if c < 0x80:
            p += 1
            continue
        if c < 0xC2 or c > 0xF4:
            return p
        need = 1 if c < 0xE0 else (2 if c < 0xF0 else 3)
        if p + need >= end:
            return p
        lo = 0x80
        hi = 0xBF
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F
        elif c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F
        c1 = np.int64(buf[_u(p + 1)])
        if c1 < lo or c1 > hi:
            return p
        for q in range(2, need + 1):
            cq = np.int64(buf[_u(p + q)])
            if cq < 0x80 or cq > 0xBF:
                return p
        p += need + 1
    return -1


@njit(inline="always")
def _utf8_valid(data, s, e):
    """Strict UTF-8 (no overlongs, surrogates, or code points past U+10FFFF) of ``data[s:e]``."""
    return first_invalid_utf8(data, s, e) < 0


@njit(inline="always")
def _unescape_into(buf, s, e, quote, escape, out, w):
    """Copy ``buf[s:e]`` to ``out[w:]`` undoing ``quote quote`` and ``escape x``; returns the end in ``out``."""
    p = s
    while p < e:
        c = buf[_u(p)]
        if p + 1 < e and ((c == quote and buf[_u(p + 1)] == quote) or (escape >= 0 and c == escape)):
            p += 1
            c = buf[_u(p)]
        out[_u(w)] = c
        w += 1
        p += 1
    return w


@njit(nogil=True, cache=True, _nrt=False)
def gather_string_column(buf, starts, ends, flags, row_first, col, n, null_data, null_offsets, quoted_null,
                         quote, escape, out_offsets, out_data, out_validity, row_err, stop_at_first,
                         validate=True):
    """Copy each value into ``out_data`` (undoing ``quote quote`` and, when ``escape >= 0``,
    ``escape x`` in fields flagged with escapes), write Arrow ``out_offsets`` (int32, ``n + 1``), and
    validate UTF-8 unless ``validate`` is False (the caller validated the whole input range with
    :func:`first_invalid_utf8`). Null and invalid rows get an empty slot.

    Returns ``(null_count, n_errors, first_err_row, total_bytes)``.
    """
    _check_args(n, row_first, row_err, out_validity)
    if out_offsets.shape[0] < n + 1:
        raise ValueError("parse kernel: out_offsets is shorter than n + 1")
    nulls = 0
    nerr = 0
    first = -1
    pos = 0
    out_offsets[_u(0)] = 0
    cap = out_data.shape[0]
    nf = _null_filter(null_data, null_offsets)
    nb = buf.shape[0]
    nfields = min(starts.shape[0], ends.shape[0])
    for r in range(n):
        i = row_first[_u(r)] + col
        ok = False
        end = pos
        if 0 <= i < nfields:
            s = starts[_u(i)]
            e = ends[_u(i)]
            if 0 <= s <= e <= nb:
                fl = flags[_u(i)]
                if _maybe_null(nf[4], e - s) and _is_null(buf, s, e, fl, null_data, null_offsets, quoted_null, nf):
                    nulls += 1
                    out_offsets[_u(r + 1)] = pos
                    continue
                ln = e - s
                if pos + ln > cap or pos + ln > 2147483647:
                    raise ValueError("parse kernel: out_data too small (use string_column_size)")
                if (fl & 2) == 0:
                    for t in range(ln):
                        out_data[_u(pos + t)] = buf[_u(s + t)]
                    end = pos + ln
                else:
                    end = _unescape_into(buf, s, e, quote, escape, out_data, pos)
                ok = not validate or _utf8_valid(out_data, pos, end)
        if ok:
            pos = end
            out_offsets[_u(r + 1)] = pos
            _set_bit(out_validity, r)
            continue
        out_offsets[_u(r + 1)] = pos
        row_err[_u(r)] = 1
        nerr += 1
        nulls += 1
        if first < 0:
            first = r
        if stop_at_first:
            return nulls, nerr, first, pos
    return nulls, nerr, first, pos


# -- inference -----------------------------------------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def _candidates(buf, s, e):
    """The ``T_*`` bits of the types one value could be."""
    m = 0
    ok, _ = _parse_int_span(buf, s, e, _I64_MIN, _I64_MAX)
    if ok:
        m |= T_INT
    st, _ = _parse_float_span(buf, s, e)
    if st != 0:
        m |= T_FLOAT
    ok, _ = _parse_bool_span(buf, s, e, True)
    if ok:
        m |= T_BOOL
    if e - s >= 10:
        ok, _, tz = _parse_ts_span(buf, s, e)
        if ok:
            m |= T_TSTZ if tz else T_TS
            if e - s == 10:
                m |= T_DATE
    return m


@njit(nogil=True, cache=True, _nrt=False)
def infer_column(buf, starts, ends, flags, row_first, col, n, null_data, null_offsets, quoted_null):
    """``(mask, n_nonnull)``: the AND of :func:`_candidates` over the non-null values of rows ``0..n-1``.

    Bits: ``T_INT`` fits int64, ``T_FLOAT`` float syntax (ints, nan, inf too), ``T_BOOL`` true/false
    words only, ``T_DATE`` a date, ``T_TS`` a timestamp without offset (a date too), ``T_TSTZ`` one
    with ``Z`` or an offset. The mask is meaningless when ``n_nonnull`` is 0.
    """
    mask = T_ALL
    nonnull = 0
    nf = _null_filter(null_data, null_offsets)
    nb = buf.shape[0]
    nfields = min(starts.shape[0], ends.shape[0])
    for r in range(min(n, row_first.shape[0])):
        i, s, e = _field(starts, ends, row_first[_u(r)] + col, nfields, nb)
        if i < 0:
            mask = 0
            nonnull += 1
            continue
        if _is_null(buf, s, e, flags[_u(i)], null_data, null_offsets, quoted_null, nf):
            continue
        nonnull += 1
        if mask != 0:
            mask &= _candidates(buf, s, e)
    return mask, nonnull
