"""PostgreSQL binary COPY: encode batch columns into tuples, and decode tuples back into columns.

The stream (PostgreSQL docs, "COPY", binary format) is ``HEADER``, then per tuple an int16 field
count and per field an int32 byte length (-1 = NULL) followed by the value in network byte order,
then ``TRAILER``. Values:

=============  =====================================================================
int2/4/8       two's complement, big-endian
float4/8       IEEE 754, big-endian (the caller passes the values viewed as int32/int64)
bool           one byte 0/1
date           int32 days since 2000-01-01
timestamp(tz)  int64 µs since 2000-01-01 (UTC for timestamptz)
numeric        int16 ndigits, int16 weight, uint16 sign, int16 dscale, ndigits int16 base-10000
               digits, most significant first; value = sum(d[i] * 10000**(weight - i))
text, json     the UTF-8 bytes; jsonb: a version byte 1, then the text
bytea          the bytes as they are (any byte, NUL included): text fields' layout, so the text kernels
               (``add_text_sizes``/``put_texts`` with no version, ``get_texts`` with no skip) carry it
=============  =====================================================================

Encoding is two passes over the columns of ``n`` rows: the ``add_*_sizes`` kernels add each field's
encoded size to ``lens`` (int64, one per row, starting at 2 for the field count); the caller
prefix-sums ``lens`` into ``cursor`` (each row's start in ``out``), :func:`put_row_headers` writes
the field counts, and the ``put_*`` kernels write one column each at ``cursor``, advancing it. Kernels
never raise: they return the first row they could not encode (-1 when none).

Decoding: :func:`index_tuples` finds the position and length of every field of whole tuples in a
buffer; the ``get_*`` kernels then fill one column each.

Validity is an LSB-first bitmap; ``has_nulls`` False means every row is valid whatever the bits.
"""

import numpy as np
from numba import njit

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, ext length
TRAILER = b"\xff\xff"
PG_EPOCH_DAYS = 10957  # 2000-01-01 - 1970-01-01 in days
PG_EPOCH_US = 946684800000000  # ... in µs
NUMERIC_POS = 0x0000
NUMERIC_NEG = 0x4000
NUMERIC_NAN = 0xC000
MAX_GROUPS = 16  # base-10000 digits of a 128-bit integer (39 decimal digits) plus padding

_u = np.uintp  # unsigned indices: no negative-index wraparound test per access (see kernels/csv.py)


@njit(nogil=True, cache=True, _nrt=False)
def _valid(validity, has_nulls, i):
    return (not has_nulls) or ((validity[_u(i >> 3)] >> (i & 7)) & 1) == 1


@njit(nogil=True, cache=True, _nrt=False)
def _put_be(out, p, v, width):
    """Write the low ``width`` bytes of int64 ``v`` big-endian at ``p``; returns the next position."""
    for j in range(width):
        out[_u(p + j)] = (v >> (8 * (width - 1 - j))) & 0xFF
    return p + width


@njit(nogil=True, cache=True, _nrt=False)
def _put_len(out, p, v):
    out[_u(p)] = (v >> 24) & 0xFF
    out[_u(p + 1)] = (v >> 16) & 0xFF
    out[_u(p + 2)] = (v >> 8) & 0xFF
    out[_u(p + 3)] = v & 0xFF
    return p + 4


# -- sizes ----------------------------------------------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def add_fixed_sizes(n, validity, has_nulls, width, lens):
    """Add ``4 + width`` (NULL: 4) to ``lens[i]`` for each of ``n`` rows."""
    if not has_nulls:
        for i in range(n):
            lens[_u(i)] += 4 + width
        return
    for i in range(n):
        lens[_u(i)] += (4 + width) if _valid(validity, True, i) else 4


@njit(nogil=True, cache=True, _nrt=False)
def add_text_sizes(offsets, n, validity, has_nulls, extra, lens):
    """Add ``4 + extra + length`` (NULL: 4) of each text value (``offsets`` int32, ``n + 1``)."""
    for i in range(n):
        if _valid(validity, has_nulls, i):
            lens[_u(i)] += 4 + extra + (offsets[_u(i + 1)] - offsets[_u(i)])
        else:
            lens[_u(i)] += 4


@njit(nogil=True, cache=True, _nrt=False)
def add_text_sizes_take(doffs, codes, n, validity, has_nulls, extra, lens):
    """As :func:`add_text_sizes` for a dictionary column: value ``i`` is entry ``codes[i]``."""
    for i in range(n):
        if _valid(validity, has_nulls, i):
            c = codes[_u(i)]
            lens[_u(i)] += 4 + extra + (doffs[_u(c + 1)] - doffs[_u(c)])
        else:
            lens[_u(i)] += 4


@njit(nogil=True, cache=True, _nrt=False)
def first_nul(offsets, data, n, validity, has_nulls):
    """The first valid row whose text holds a NUL byte (PostgreSQL text cannot), or -1."""
    a = offsets[_u(0)]
    b = offsets[_u(n)]
    m = 255
    for j in range(a, b):  # a reduction the compiler vectorises; rows are located only on a hit
        m = min(m, data[_u(j)])
    if m != 0:
        return -1
    for i in range(n):
        if _valid(validity, has_nulls, i):
            for j in range(offsets[_u(i)], offsets[_u(i + 1)]):
                if data[_u(j)] == 0:
                    return i
    return -1


@njit(nogil=True, cache=True, _nrt=False)
def _numeric_groups(lo, hi, scale, groups):
    """Base-10000 digits (least significant first) of ``|hi:lo| / 10**scale`` into ``groups``.

    The lowest group is aligned so that groups ``0..f-1`` are the fraction. Returns
    ``(k, f, negative)`` with ``k`` groups written; the top group is non-zero unless ``k == 0``.
    """
    neg = hi < 0
    pad = (4 - scale % 4) % 4
    f = (scale + pad) // 4
    first = 10 ** (4 - pad)
    mult = 10 ** pad
    k = 0
    if (hi == 0 and lo >= 0) or (hi == -1 and lo < 0 and lo != -9223372036854775807 - 1):
        v = -lo if neg else lo
        d = first
        while v != 0:
            r = v % d
            v //= d
            groups[_u(k)] = r * mult if k == 0 else r
            k += 1
            d = 10000
        return k, f, neg
    l0 = lo & 0xFFFFFFFF
    l1 = (lo >> 32) & 0xFFFFFFFF
    l2 = hi & 0xFFFFFFFF
    l3 = (hi >> 32) & 0xFFFFFFFF
    if neg:  # two's complement of the 128-bit value, on 32-bit limbs
        l0 = (l0 ^ 0xFFFFFFFF) + 1
        l1 = (l1 ^ 0xFFFFFFFF) + (l0 >> 32)
        l0 &= 0xFFFFFFFF
        l2 = (l2 ^ 0xFFFFFFFF) + (l1 >> 32)
        l1 &= 0xFFFFFFFF
        l3 = ((l3 ^ 0xFFFFFFFF) + (l2 >> 32)) & 0xFFFFFFFF
        l2 &= 0xFFFFFFFF
    d = first
    while (l0 | l1 | l2 | l3) != 0:
        t = l3
        l3 = t // d
        r = t - l3 * d
        t = (r << 32) | l2
        l2 = t // d
        r = t - l2 * d
        t = (r << 32) | l1
        l1 = t // d
        r = t - l1 * d
        t = (r << 32) | l0
        l0 = t // d
        r = t - l0 * d
        groups[_u(k)] = r * mult if k == 0 else r
        k += 1
        d = 10000
    return k, f, neg


@njit(nogil=True, cache=True)
def add_numeric_sizes(words, n, scale, validity, has_nulls, lens):
    """Add the NUMERIC size ``4 + 8 + 2 * ndigits`` (NULL: 4) of each decimal (``words`` int64 (n, 2))."""
    groups = np.empty(MAX_GROUPS, dtype=np.int64)
    for i in range(n):
        if not _valid(validity, has_nulls, i):
            lens[_u(i)] += 4
            continue
        k, f, neg = _numeric_groups(words[i, 0], words[i, 1], scale, groups)
        b = 0
        while b < k and groups[_u(b)] == 0:
            b += 1
        lens[_u(i)] += 12 + 2 * (k - b)


# -- fill -----------------------------------------------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def put_row_headers(n, ncols, out, cursor):
    """Write each row's int16 field count at ``cursor[i]`` and advance it."""
    for i in range(n):
        p = cursor[_u(i)]
        out[_u(p)] = (ncols >> 8) & 0xFF
        out[_u(p + 1)] = ncols & 0xFF
        cursor[_u(i)] = p + 2


@njit(nogil=True, cache=True, inline="always")
def _put8(out, p, v):
    out[_u(p)] = (v >> 56) & 0xFF
    out[_u(p + 1)] = (v >> 48) & 0xFF
    out[_u(p + 2)] = (v >> 40) & 0xFF
    out[_u(p + 3)] = (v >> 32) & 0xFF
    out[_u(p + 4)] = (v >> 24) & 0xFF
    out[_u(p + 5)] = (v >> 16) & 0xFF
    out[_u(p + 6)] = (v >> 8) & 0xFF
    out[_u(p + 7)] = v & 0xFF


@njit(nogil=True, cache=True, inline="always")
def _put4(out, p, v):
    out[_u(p)] = (v >> 24) & 0xFF
    out[_u(p + 1)] = (v >> 16) & 0xFF
    out[_u(p + 2)] = (v >> 8) & 0xFF
    out[_u(p + 3)] = v & 0xFF


@njit(inline="always")
def _is_infinity(v, width):
    """PostgreSQL's binary +-infinity of a date (int32) or timestamp (int64): the type's max and min. They
    are carried as they are (an Arrow date32/timestamp at that extreme), not shifted between epochs."""
    if width == 8:
        return v == 9223372036854775807 or v == -9223372036854775808
    return width == 4 and (v == 2147483647 or v == -2147483648)


@njit(nogil=True, cache=True, _nrt=False)
def _put_ints_w(values, n, width, bias, lo, hi, validity, has_nulls, out, cursor):
    for i in range(n):
        p = cursor[_u(i)]
        if has_nulls and ((validity[_u(i >> 3)] >> (i & 7)) & 1) == 0:
            _put4(out, p, -1)
            cursor[_u(i)] = p + 4
            continue
        v = np.int64(values[_u(i)])
        if bias == 0 or not _is_infinity(v, width):  # dates/timestamps: +-infinity keep PostgreSQL's sentinels
            v -= bias
        if v < lo or v > hi:
            return i
        if width == 8:
            _put4(out, p, 8)
            _put8(out, p + 4, v)
        elif width == 4:
            _put4(out, p, 4)
            _put4(out, p + 4, v)
        else:
            _put4(out, p, 2)
            out[_u(p + 4)] = (v >> 8) & 0xFF
            out[_u(p + 5)] = v & 0xFF
        cursor[_u(i)] = p + 4 + width
    return -1


@njit(nogil=True, cache=True, _nrt=False)
def put_ints(values, n, width, bias, lo, hi, validity, has_nulls, out, cursor):
    """Integers (any int dtype; floats viewed as ints) minus ``bias`` as ``width``-byte big-endian fields.

    Returns the first valid row whose ``value - bias`` is outside ``[lo, hi]`` (nothing after it is
    written), or -1.
    """
    # one specialised loop per width and null-ness: the byte stores then fuse into a bswap + store
    if width == 8:
        if has_nulls:
            return _put_ints_w(values, n, 8, bias, lo, hi, validity, True, out, cursor)
        return _put_ints_w(values, n, 8, bias, lo, hi, validity, False, out, cursor)
    if width == 4:
        if has_nulls:
            return _put_ints_w(values, n, 4, bias, lo, hi, validity, True, out, cursor)
        return _put_ints_w(values, n, 4, bias, lo, hi, validity, False, out, cursor)
    if has_nulls:
        return _put_ints_w(values, n, 2, bias, lo, hi, validity, True, out, cursor)
    return _put_ints_w(values, n, 2, bias, lo, hi, validity, False, out, cursor)


@njit(nogil=True, cache=True, _nrt=False)
def put_bools(bits, n, validity, has_nulls, out, cursor):
    """Bit-packed booleans as one-byte fields."""
    for i in range(n):
        p = cursor[_u(i)]
        if _valid(validity, has_nulls, i):
            p = _put_len(out, p, 1)
            out[_u(p)] = (bits[i >> 3] >> (i & 7)) & 1
            cursor[_u(i)] = p + 1
        else:
            cursor[_u(i)] = _put_len(out, p, -1)


@njit(nogil=True, cache=True, inline="always")
def _copy(out, p, src, a, m):
    # a byte loop, not a slice copy: numba's slice copy can allocate, and these kernels run without NRT
    # (LLVM vectorizes the loop)
    for j in range(m):
        out[_u(p + j)] = src[a + j]


@njit(nogil=True, cache=True, _nrt=False)
def put_texts(offsets, data, n, validity, has_nulls, version, out, cursor):
    """Text values as fields; ``version >= 0`` prefixes that byte (jsonb: 1)."""
    extra = 1 if version >= 0 else 0
    for i in range(n):
        p = cursor[_u(i)]
        if _valid(validity, has_nulls, i):
            a = offsets[_u(i)]
            m = offsets[_u(i + 1)] - a
            p = _put_len(out, p, m + extra)
            if extra:
                out[_u(p)] = version
                p += 1
            _copy(out, p, data, a, m)
            cursor[_u(i)] = p + m
        else:
            cursor[_u(i)] = _put_len(out, p, -1)


@njit(nogil=True, cache=True, _nrt=False)
def put_texts_take(doffs, ddata, codes, n, validity, has_nulls, version, out, cursor):
    """As :func:`put_texts` for a dictionary column: value ``i`` is entry ``codes[i]``."""
    extra = 1 if version >= 0 else 0
    for i in range(n):
        p = cursor[_u(i)]
        if _valid(validity, has_nulls, i):
            c = codes[_u(i)]
            a = doffs[_u(c)]
            m = doffs[_u(c + 1)] - a
            p = _put_len(out, p, m + extra)
            if extra:
                out[_u(p)] = version
                p += 1
            _copy(out, p, ddata, a, m)
            cursor[_u(i)] = p + m
        else:
            cursor[_u(i)] = _put_len(out, p, -1)


@njit(nogil=True, cache=True)
def put_numerics(words, n, scale, validity, has_nulls, out, cursor):
    """128-bit unscaled decimals of ``scale`` (``words`` int64 (n, 2): low, high) as NUMERIC fields."""
    groups = np.empty(MAX_GROUPS, dtype=np.int64)
    for i in range(n):
        p = cursor[_u(i)]
        if not _valid(validity, has_nulls, i):
            cursor[_u(i)] = _put_len(out, p, -1)
            continue
        k, f, neg = _numeric_groups(words[i, 0], words[i, 1], scale, groups)
        b = 0
        while b < k and groups[_u(b)] == 0:
            b += 1
        nd = k - b
        weight = k - 1 - f if nd > 0 else 0
        p = _put_len(out, p, 8 + 2 * nd)
        p = _put_be(out, p, nd, 2)
        p = _put_be(out, p, weight, 2)
        p = _put_be(out, p, NUMERIC_NEG if (neg and nd > 0) else NUMERIC_POS, 2)
        p = _put_be(out, p, scale, 2)
        for g in range(k - 1, b - 1, -1):
            p = _put_be(out, p, groups[_u(g)], 2)
        cursor[_u(i)] = p


# -- decode ---------------------------------------------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def _get_be(buf, p, width):
    """Read ``width`` bytes big-endian as a signed int64."""
    v = np.int64(0)
    for j in range(width):
        v = (v << 8) | np.int64(buf[_u(p + j)])
    if width < 8:
        sh = 64 - 8 * width
        v = (v << sh) >> sh
    return v


@njit(nogil=True, cache=True, _nrt=False)
def index_tuples(buf, start, end, ncols, max_rows, fpos, flen):
    """Locate the fields of the whole tuples in ``buf[start:end]``.

    Fills ``fpos`` (int64 (rows, ncols): where each value starts) and ``flen`` (int32: its length, -1
    for NULL). Stops at the trailer (field count -1), at ``max_rows`` or at ``end``. Returns
    ``(rows, next_position, error_position)``: ``error_position`` is -1, or where a tuple has the
    wrong field count or runs past ``end`` (an incomplete tuple is left for the next call when it
    is the last one: ``next_position`` then points at its start).
    """
    p = start
    rows = 0
    while rows < max_rows and p + 2 <= end:
        nf = _get_be(buf, p, 2)
        if nf == -1:
            return rows, p, -1
        if nf != ncols:
            return rows, p, p
        q = p + 2
        complete = True
        for c in range(ncols):
            if q + 4 > end:
                complete = False
                break
            m = _get_be(buf, q, 4)
            q += 4
            if m < 0:
                flen[rows, c] = -1
                fpos[rows, c] = q
                continue
            if q + m > end:
                complete = False
                break
            fpos[rows, c] = q
            flen[rows, c] = m
            q += m
        if not complete:
            return rows, p, -1
        rows += 1
        p = q
    return rows, p, -1


@njit(nogil=True, cache=True, _nrt=False)
def get_ints(buf, fpos, flen, col, n, width, bias, values, validity):
    """Big-endian ``width``-byte fields of column ``col`` plus ``bias`` into ``values`` (any int dtype).

    Returns ``(null_count, first_bad_row)``: a bad row has a length other than ``width``.
    """
    nulls = 0
    for i in range(n):
        m = flen[i, col]
        if m < 0:
            nulls += 1
            values[_u(i)] = 0
            continue
        if m != width:
            return nulls, i
        v = _get_be(buf, fpos[i, col], width)
        values[_u(i)] = v if bias != 0 and _is_infinity(v, width) else v + bias
        validity[_u(i >> 3)] |= np.uint8(1 << (i & 7))
    return nulls, -1


@njit(nogil=True, cache=True, _nrt=False)
def get_bools(buf, fpos, flen, col, n, bits, validity):
    nulls = 0
    for i in range(n):
        m = flen[i, col]
        if m < 0:
            nulls += 1
            continue
        if m != 1:
            return nulls, i
        if buf[fpos[i, col]] != 0:
            bits[i >> 3] |= np.uint8(1 << (i & 7))
        validity[_u(i >> 3)] |= np.uint8(1 << (i & 7))
    return nulls, -1


@njit(nogil=True, cache=True, _nrt=False)
def text_bytes(flen, col, n, skip):
    """Bytes the text values of column ``col`` need once ``skip`` leading bytes (jsonb version) are dropped."""
    total = 0
    for i in range(n):
        m = flen[i, col]
        if m > skip:
            total += m - skip
    return total


@njit(nogil=True, cache=True, _nrt=False)
def get_texts(buf, fpos, flen, col, n, skip, offsets, data, validity):
    """Text (or bytea) fields into ``offsets`` (int32, n + 1) + ``data``, dropping ``skip`` leading bytes.

    Returns ``(null_count, first_bad_row)``: bad when shorter than ``skip``. Bytes are copied as they are
    (PostgreSQL text never holds NUL; bytea may).
    """
    nulls = 0
    q = 0
    offsets[_u(0)] = 0
    for i in range(n):
        m = flen[i, col]
        if m < 0:
            nulls += 1
            offsets[_u(i + 1)] = q
            continue
        if m < skip:
            return nulls, i
        a = fpos[i, col] + skip
        for j in range(m - skip):
            data[_u(q + j)] = buf[_u(a + j)]
        q += m - skip
        offsets[_u(i + 1)] = q
        validity[_u(i >> 3)] |= np.uint8(1 << (i & 7))
    return nulls, -1


@njit(nogil=True, cache=True, _nrt=False)
def get_numerics(buf, fpos, flen, col, n, scale, words, validity):
    """NUMERIC fields as 128-bit unscaled integers of ``scale`` into ``words`` (int64 (n, 2)).

    Returns ``(null_count, first_bad_row)``: bad is NaN/infinity, a value with more fraction digits
    than ``scale``, or one beyond 128 bits.
    """
    nulls = 0
    for i in range(n):
        m = flen[i, col]
        if m < 0:
            nulls += 1
            words[i, 0] = 0
            words[i, 1] = 0
            continue
        p = fpos[i, col]
        if m < 8:
            return nulls, i
        nd = _get_be(buf, p, 2)
        weight = _get_be(buf, p + 2, 2)
        sign = _get_be(buf, p + 4, 2) & 0xFFFF
        if sign != NUMERIC_POS and sign != NUMERIC_NEG or m != 8 + 2 * nd:
            return nulls, i
        # 32-bit limbs of the magnitude, little end first
        l0 = np.int64(0)
        l1 = np.int64(0)
        l2 = np.int64(0)
        l3 = np.int64(0)
        ok = True
        # value = digits * 10000**(weight - nd + 1); unscaled = value * 10**scale
        exp10 = 4 * (weight - nd + 1) + scale
        extra = exp10 if exp10 > 0 else 0
        drop = -exp10 if exp10 < 0 else 0  # trailing decimal digits beyond ``scale``: must be zeros
        for g in range(nd):
            d = _get_be(buf, p + 8 + 2 * g, 2)
            keep = 4 - (drop - 4 * (nd - 1 - g))
            keep = 4 if keep > 4 else (0 if keep < 0 else keep)
            cut = 10 ** (4 - keep)
            if d % cut != 0:
                ok = False
            mul = 10 ** keep
            t = l0 * mul + d // cut
            l0 = t & 0xFFFFFFFF
            t = l1 * mul + (t >> 32)
            l1 = t & 0xFFFFFFFF
            t = l2 * mul + (t >> 32)
            l2 = t & 0xFFFFFFFF
            t = l3 * mul + (t >> 32)
            l3 = t & 0xFFFFFFFF
            if (t >> 32) != 0:
                ok = False
        for _ in range(extra):
            t = l0 * 10
            l0 = t & 0xFFFFFFFF
            t = l1 * 10 + (t >> 32)
            l1 = t & 0xFFFFFFFF
            t = l2 * 10 + (t >> 32)
            l2 = t & 0xFFFFFFFF
            t = l3 * 10 + (t >> 32)
            l3 = t & 0xFFFFFFFF
            if (t >> 32) != 0:
                ok = False
        top = (l3 >> 31) != 0  # beyond int128, except the magnitude of its minimum
        if not ok or top and not (sign == NUMERIC_NEG and l3 == 0x80000000 and (l2 | l1 | l0) == 0):
            return nulls, i
        if sign == NUMERIC_NEG:
            l0 = (l0 ^ 0xFFFFFFFF) + 1
            l1 = (l1 ^ 0xFFFFFFFF) + (l0 >> 32)
            l0 &= 0xFFFFFFFF
            l2 = (l2 ^ 0xFFFFFFFF) + (l1 >> 32)
            l1 &= 0xFFFFFFFF
            l3 = ((l3 ^ 0xFFFFFFFF) + (l2 >> 32)) & 0xFFFFFFFF
            l2 &= 0xFFFFFFFF
        words[i, 0] = l0 | (l1 << 32)
        words[i, 1] = l2 | (l3 << 32)
        validity[_u(i >> 3)] |= np.uint8(1 << (i & 7))
    return nulls, -1
