"""Text encoders: render columns to CSV / JSON-lines field text, then assemble rows.

Encoding runs in two steps so each kernel stays a tight loop over one column:

1. ``render_*`` turns one column of ``n`` values into a column-local byte buffer ``out`` plus int64
   ``offs`` (``n + 1``): field ``i`` is ``out[offs[i]:offs[i+1]]``, already quoted/escaped, nulls
   as ``null_tok`` (empty for CSV, ``null`` for JSON). Fixed-width kinds need at most
   ``MAX_FIXED_WIDTH`` bytes per value plus the tokens; string kinds are sized exactly by the
   matching ``*_size`` kernel. Every render kernel returns the bytes written, or -1 when ``out`` is
   too small (nothing useful was written).
2. ``add_span_lengths`` sums each row's length over the columns, the caller prefix-sums those into
   row starts, and ``scatter_spans`` copies each column's fields (each after its constant prefix: a
   delimiter, or ``,"key":``) to their rows; ``finish_rows`` ends each row (``\\n`` or ``}\\n``).
   The ``*_take`` variants read the spans through dictionary codes.

Validity is an LSB-first bitmap; ``has_nulls`` False means every row is valid whatever the bits.
Floats are rendered to text outside (shortest round-trip text is not a kernel's job); their text
comes in as offsets + bytes and ``render_float_text`` only normalises it.
"""

import numpy as np
from numba import njit

_INT64_MIN_DIGITS = np.frombuffer(b"9223372036854775808", dtype=np.uint8)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

MAX_FIXED_WIDTH = 48  # longest rendering of an int64, date32, timestamp[us] or int64-range decimal
US_PER_DAY = 86400000000
NO_QUOTE = -1

_u = np.uintp  # unsigned indices: no negative-index wraparound test per access (see kernels/csv.py)


@njit(nogil=True, cache=True, _nrt=False)
def _valid(validity, has_nulls, i):
    return (not has_nulls) or ((validity[_u(i >> 3)] >> (i & 7)) & 1) == 1


@njit(nogil=True, cache=True, _nrt=False)
def _put_tok(out, p, tok):
    for j in range(tok.shape[0]):
        out[_u(p + j)] = tok[j]
    return p + tok.shape[0]


@njit(nogil=True, cache=True, _nrt=False)
def _put_digits(out, p, v, width):
    """Write ``v >= 0`` in decimal, left-padded with zeros to ``width``; returns the new position."""
    nd = 1
    t = v
    while t >= 10:
        t //= 10
        nd += 1
    if nd < width:
        nd = width
    q = p + nd - 1
    while q >= p:
        out[_u(q)] = 48 + v % 10
        v //= 10
        q -= 1
    return p + nd


@njit(nogil=True, cache=True, _nrt=False)
def _put_int(out, p, v, scale):
    """Write int64 ``v`` as a decimal with ``scale`` fraction digits (0: a plain integer)."""
    if v < 0:
        out[_u(p)] = 45
        p += 1
        if v == -9223372036854775807 - 1:  # |v| does not fit in int64
            return _put_int64_min_abs(out, p, scale)
        v = -v
    if scale == 0:
        return _put_digits(out, p, v, 1)
    if scale >= 19:  # |v| < 10**19: no integer digits, and 10**scale would overflow int64
        out[_u(p)] = 48
        out[_u(p + 1)] = 46
        return _put_digits(out, p + 2, v, scale)
    pow10 = 1
    for _ in range(scale):
        pow10 *= 10
    p = _put_digits(out, p, v // pow10, 1)
    out[_u(p)] = 46
    return _put_digits(out, p + 1, v % pow10, scale)


@njit(nogil=True, cache=True, _nrt=False)
def _put_int64_min_abs(out, p, scale):
    """Digits of 9223372036854775808 (-int64 min) with a point ``scale`` digits from the right."""
    digits = _INT64_MIN_DIGITS
    nd = 19
    if scale >= nd:
        out[_u(p)] = 48
        out[_u(p + 1)] = 46
        p += 2
        for _ in range(scale - nd):
            out[_u(p)] = 48
            p += 1
        for j in range(nd):
            out[_u(p)] = digits[j]
            p += 1
        return p
    for j in range(nd):
        if j == nd - scale:
            out[_u(p)] = 46
            p += 1
        out[_u(p)] = digits[j]
        p += 1
    return p


@njit(nogil=True, cache=True, _nrt=False)
def _civil(days):
    """(year, month, day) of a day count since 1970-01-01 in the proleptic Gregorian calendar."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return y, m, d


@njit(nogil=True, cache=True, _nrt=False)
def _put_date(out, p, days):
    y, m, d = _civil(days)
    if y < 0:
        out[_u(p)] = 45
        p += 1
        y = -y
    p = _put_digits(out, p, y, 4)
    out[_u(p)] = 45
    p = _put_digits(out, p + 1, m, 2)
    out[_u(p)] = 45
    return _put_digits(out, p + 1, d, 2)


@njit(nogil=True, cache=True, _nrt=False)
def render_ints(values, n, validity, has_nulls, null_tok, out, offs):
    """Integers (any int dtype) as decimal text."""
    p = 0
    cap = out.shape[0]
    offs[_u(0)] = 0
    for i in range(n):
        if p + MAX_FIXED_WIDTH + null_tok.shape[0] > cap:
            return -1
        if _valid(validity, has_nulls, i):
            p = _put_int(out, p, np.int64(values[_u(i)]), 0)
        else:
            p = _put_tok(out, p, null_tok)
        offs[_u(i + 1)] = p
    return p


@njit(nogil=True, cache=True, _nrt=False)
def render_bools(bits, n, validity, has_nulls, null_tok, true_tok, false_tok, out, offs):
    """Bit-packed booleans as ``true_tok`` / ``false_tok``."""
    p = 0
    cap = out.shape[0]
    w = max(null_tok.shape[0], max(true_tok.shape[0], false_tok.shape[0]))
    offs[_u(0)] = 0
    for i in range(n):
        if p + w > cap:
            return -1
        if not _valid(validity, has_nulls, i):
            p = _put_tok(out, p, null_tok)
        elif (bits[i >> 3] >> (i & 7)) & 1:
            p = _put_tok(out, p, true_tok)
        else:
            p = _put_tok(out, p, false_tok)
        offs[_u(i + 1)] = p
    return p


@njit(nogil=True, cache=True, _nrt=False)
def render_dates(days, n, validity, has_nulls, null_tok, quote, out, offs):
    """int32 days since the epoch as ``YYYY-MM-DD`` (wrapped in ``quote`` unless it is NO_QUOTE)."""
    p = 0
    cap = out.shape[0]
    offs[_u(0)] = 0
    for i in range(n):
        if p + MAX_FIXED_WIDTH + null_tok.shape[0] > cap:
            return -1
        if _valid(validity, has_nulls, i):
            if quote >= 0:
                out[_u(p)] = quote
                p += 1
            p = _put_date(out, p, np.int64(days[i]))
            if quote >= 0:
                out[_u(p)] = quote
                p += 1
        else:
            p = _put_tok(out, p, null_tok)
        offs[_u(i + 1)] = p
    return p


@njit(nogil=True, cache=True, _nrt=False)
def render_timestamps(us, n, validity, has_nulls, null_tok, quote, zulu, out, offs):
    """int64 µs since the epoch as ``YYYY-MM-DDTHH:MM:SS[.ffffff]``, plus ``Z`` when ``zulu``.

    The fraction is written (6 digits) only when non-zero, as ``datetime.isoformat`` does.
    """
    p = 0
    cap = out.shape[0]
    offs[_u(0)] = 0
    last_days = np.int64(-(2**62))  # timestamps cluster: reuse the previous row's date text
    last_pos = 0
    last_len = 0
    for i in range(n):
        if p + MAX_FIXED_WIDTH + null_tok.shape[0] > cap:
            return -1
        if _valid(validity, has_nulls, i):
            v = np.int64(us[i])
            days = v // US_PER_DAY
            rem = v - days * US_PER_DAY
            secs = rem // 1000000
            frac = rem - secs * 1000000
            if quote >= 0:
                out[_u(p)] = quote
                p += 1
            if days == last_days:
                for j in range(last_len):
                    out[_u(p + j)] = out[_u(last_pos + j)]
                p += last_len
            else:
                q = _put_date(out, p, days)
                last_days, last_pos, last_len = days, p, q - p
                p = q
            out[_u(p)] = 84
            p = _put_digits(out, p + 1, secs // 3600, 2)
            out[_u(p)] = 58
            p = _put_digits(out, p + 1, (secs // 60) % 60, 2)
            out[_u(p)] = 58
            p = _put_digits(out, p + 1, secs % 60, 2)
            if frac:
                out[_u(p)] = 46
                p = _put_digits(out, p + 1, frac, 6)
            if zulu:
                out[_u(p)] = 90
                p += 1
            if quote >= 0:
                out[_u(p)] = quote
                p += 1
        else:
            p = _put_tok(out, p, null_tok)
        offs[_u(i + 1)] = p
    return p


@njit(nogil=True, cache=True, _nrt=False)
def decimals_fit_int64(words, n, validity, has_nulls):
    """True when every valid 128-bit value (``words[:, 0]`` low, ``[:, 1]`` high) fits in int64."""
    for i in range(n):
        if _valid(validity, has_nulls, i) and words[i, 1] != (words[i, 0] >> 63):
            return False
    return True


@njit(nogil=True, cache=True, _nrt=False)
def render_decimals(words, n, scale, validity, has_nulls, null_tok, quote, out, offs):
    """Decimals whose unscaled value fits int64 (see ``decimals_fit_int64``) as ``-123.45``."""
    p = 0
    cap = out.shape[0]
    offs[_u(0)] = 0
    for i in range(n):
        if p + MAX_FIXED_WIDTH + scale + null_tok.shape[0] > cap:
            return -1
        if _valid(validity, has_nulls, i):
            if quote >= 0:
                out[_u(p)] = quote
                p += 1
            p = _put_int(out, p, words[i, 0], scale)
            if quote >= 0:
                out[_u(p)] = quote
                p += 1
        else:
            p = _put_tok(out, p, null_tok)
        offs[_u(i + 1)] = p
    return p


@njit(nogil=True, cache=True, _nrt=False)
def render_float_text(offsets, data, n, validity, has_nulls, null_tok, nonfinite_null, out, offs):
    """Copy rendered float text, adding ``.0`` to integral-looking values (``1`` -> ``1.0``) so
    readers keep the column a float; ``nan``/``inf`` become ``null_tok`` when ``nonfinite_null``."""
    p = 0
    cap = out.shape[0]
    offs[_u(0)] = 0
    for i in range(n):
        a = offsets[_u(i)]
        b = offsets[_u(i + 1)]
        if p + (b - a) + 2 + null_tok.shape[0] > cap:
            return -1
        if not _valid(validity, has_nulls, i) or b == a:
            p = _put_tok(out, p, null_tok)
            offs[_u(i + 1)] = p
            continue
        c0 = data[_u(a)]
        if c0 == 45 and b - a > 1:
            c0 = data[_u(a + 1)]
        if c0 == 110 or c0 == 105 or c0 == 78 or c0 == 73:  # nan / inf
            if nonfinite_null:
                p = _put_tok(out, p, null_tok)
                offs[_u(i + 1)] = p
                continue
        integral = True
        for j in range(a, b):
            c = data[_u(j)]
            out[_u(p)] = c
            p += 1
            if c == 46 or c == 101 or c == 69 or c == 110 or c == 105 or c == 78 or c == 73:
                integral = False
        if integral:
            out[_u(p)] = 46
            out[_u(p + 1)] = 48
            p += 2
        offs[_u(i + 1)] = p
    return p


@njit(nogil=True, cache=True, _nrt=False)
def csv_string_size(offsets, data, n, validity, has_nulls, delim, null_len):
    """Bytes the CSV rendering of a string column needs, and whether it equals the raw text.

    Returns ``(size, same)``: ``same`` is True when no field needs quoting and null rows are
    empty (in the data and in the rendering), so the column's own offsets and bytes can be used
    as the rendering.
    """
    size = 0
    same = True
    for i in range(n):
        a = offsets[_u(i)]
        b = offsets[_u(i + 1)]
        if not _valid(validity, has_nulls, i):
            if b != a or null_len > 0:
                same = False
            size += null_len
            continue
        q = b == a
        extra = 0
        for j in range(a, b):
            c = data[_u(j)]
            if c == 34:
                q = True
                extra += 1
            elif c == delim or c == 10 or c == 13:
                q = True
        if q:
            same = False
            size += b - a + extra + 2
        else:
            size += b - a
    return size, same


@njit(nogil=True, cache=True, _nrt=False)
def render_csv_strings(offsets, data, n, validity, has_nulls, delim, null_tok, out, offs):
    """RFC 4180 fields: quoted when holding ``delim``, ``"``, CR or LF, or when empty but not null
    (``""``); quotes doubled; nulls as ``null_tok`` (empty)."""
    p = 0
    cap = out.shape[0]
    offs[_u(0)] = 0
    for i in range(n):
        a = offsets[_u(i)]
        b = offsets[_u(i + 1)]
        if not _valid(validity, has_nulls, i):
            if p + null_tok.shape[0] > cap:
                return -1
            p = _put_tok(out, p, null_tok)
            offs[_u(i + 1)] = p
            continue
        q = b == a
        extra = 0
        for j in range(a, b):
            c = data[_u(j)]
            if c == 34:
                q = True
                extra += 1
            elif c == delim or c == 10 or c == 13:
                q = True
        if not q:
            if p + (b - a) > cap:
                return -1
            for j in range(a, b):
                out[_u(p)] = data[_u(j)]
                p += 1
        else:
            if p + (b - a) + extra + 2 > cap:
                return -1
            out[_u(p)] = 34
            p += 1
            for j in range(a, b):
                c = data[_u(j)]
                out[_u(p)] = c
                p += 1
                if c == 34:
                    out[_u(p)] = 34
                    p += 1
            out[_u(p)] = 34
            p += 1
        offs[_u(i + 1)] = p
    return p


@njit(nogil=True, cache=True, _nrt=False)
def _json_escape_len(c):
    if c == 34 or c == 92 or c == 8 or c == 9 or c == 10 or c == 12 or c == 13:
        return 2
    if c < 32:
        return 6
    return 1


@njit(nogil=True, cache=True, _nrt=False)
def json_string_size(offsets, data, n, validity, has_nulls, null_len):
    """Bytes ``render_json_strings`` needs for this column."""
    size = 0
    for i in range(n):
        if not _valid(validity, has_nulls, i):
            size += null_len
            continue
        size += 2
        for j in range(offsets[_u(i)], offsets[_u(i + 1)]):
            size += _json_escape_len(data[_u(j)])
    return size


@njit(nogil=True, cache=True, _nrt=False)
def render_json_strings(offsets, data, n, validity, has_nulls, null_tok, out, offs):
    """JSON string literals: ``"`` and ``\\`` escaped, control bytes as short escapes or
    ``\\u00XX``; other bytes (UTF-8 included) copied as they are."""
    p = 0
    cap = out.shape[0]
    hexd = _HEX_DIGITS
    offs[_u(0)] = 0
    for i in range(n):
        a = offsets[_u(i)]
        b = offsets[_u(i + 1)]
        if not _valid(validity, has_nulls, i):
            if p + null_tok.shape[0] > cap:
                return -1
            p = _put_tok(out, p, null_tok)
            offs[_u(i + 1)] = p
            continue
        if p + 2 > cap:
            return -1
        out[_u(p)] = 34
        p += 1
        for j in range(a, b):
            c = data[_u(j)]
            k = _json_escape_len(c)
            if p + k + 1 > cap:
                return -1
            if k == 1:
                out[_u(p)] = c
                p += 1
            elif k == 2:
                out[_u(p)] = 92
                if c == 8:
                    c = 98
                elif c == 9:
                    c = 116
                elif c == 10:
                    c = 110
                elif c == 12:
                    c = 102
                elif c == 13:
                    c = 114
                out[_u(p + 1)] = c
                p += 2
            else:
                out[_u(p)] = 92
                out[_u(p + 1)] = 117
                out[_u(p + 2)] = 48
                out[_u(p + 3)] = 48
                out[_u(p + 4)] = hexd[c >> 4]
                out[_u(p + 5)] = hexd[c & 15]
                p += 6
        out[_u(p)] = 34
        p += 1
        offs[_u(i + 1)] = p
    return p


@njit(nogil=True, cache=True, _nrt=False)
def render_raw_text(offsets, data, n, validity, has_nulls, null_tok, quote, out, offs):
    """Text copied as is (JSON documents, decimals rendered elsewhere), optionally wrapped in
    ``quote``; null or empty values become ``null_tok``."""
    p = 0
    cap = out.shape[0]
    offs[_u(0)] = 0
    for i in range(n):
        a = offsets[_u(i)]
        b = offsets[_u(i + 1)]
        if p + (b - a) + 2 + null_tok.shape[0] > cap:
            return -1
        if not _valid(validity, has_nulls, i) or b == a:
            p = _put_tok(out, p, null_tok)
        else:
            if quote >= 0:
                out[_u(p)] = quote
                p += 1
            for j in range(a, b):
                out[_u(p)] = data[_u(j)]
                p += 1
            if quote >= 0:
                out[_u(p)] = quote
                p += 1
        offs[_u(i + 1)] = p
    return p


@njit(nogil=True, cache=True, _nrt=False)
def add_span_lengths(offs, n, lens):
    """``lens[i] += offs[i+1] - offs[i]``."""
    for i in range(n):
        lens[_u(i)] += offs[_u(i + 1)] - offs[_u(i)]


@njit(nogil=True, cache=True, _nrt=False)
def _entry(codes, validity, has_nulls, null_entry, i):
    if _valid(validity, has_nulls, i):
        return np.int64(codes[_u(i)])
    return np.int64(null_entry)


@njit(nogil=True, cache=True, _nrt=False)
def add_span_lengths_take(offs, codes, n, validity, has_nulls, null_entry, lens):
    """Like ``add_span_lengths`` for row ``i`` showing entry ``codes[i]`` (``null_entry`` if null)."""
    for i in range(n):
        k = _entry(codes, validity, has_nulls, null_entry, i)
        lens[_u(i)] += offs[_u(k + 1)] - offs[_u(k)]


@njit(nogil=True, cache=True, _nrt=False)
def scatter_spans(buf, offs, n, prefix, out, cursor):
    """Append ``prefix`` then field ``i`` at ``out[cursor[i]:]`` and advance ``cursor[i]``."""
    for i in range(n):
        p = _put_tok(out, cursor[_u(i)], prefix)
        for j in range(offs[_u(i)], offs[_u(i + 1)]):
            out[_u(p)] = buf[_u(j)]
            p += 1
        cursor[_u(i)] = p


@njit(nogil=True, cache=True, _nrt=False)
def scatter_spans_take(buf, offs, codes, n, validity, has_nulls, null_entry, prefix, out, cursor):
    """``scatter_spans`` through dictionary codes (see ``add_span_lengths_take``)."""
    for i in range(n):
        k = _entry(codes, validity, has_nulls, null_entry, i)
        p = _put_tok(out, cursor[_u(i)], prefix)
        for j in range(offs[_u(k)], offs[_u(k + 1)]):
            out[_u(p)] = buf[_u(j)]
            p += 1
        cursor[_u(i)] = p


@njit(nogil=True, cache=True, _nrt=False)
def finish_rows(n, suffix, out, cursor):
    """Write ``suffix`` (the row end) at every row's cursor; returns the end of the last row."""
    p = 0
    for i in range(n):
        p = _put_tok(out, cursor[_u(i)], suffix)
    return p
