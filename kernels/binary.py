"""Binary values as text and back: ``\\x`` hex (CSV, PostgreSQL's bytea text form) and base64 (JSON).

Text formats cannot carry arbitrary bytes, so a ``binary`` column has one documented text form per
format: CSV fields (and PostgreSQL's text COPY, pgoutput's text tuples) hold ``\\x`` followed by two
lower-case hex digits per byte (``\\x`` alone is the empty value, so it differs from a null); JSON
lines hold a base64 string (RFC 4648, padded), the JSON convention for bytes.

Rendering follows :mod:`nebula.kernels.encode` (column-local ``out`` + int64 ``offs``, nulls as
``null_tok``, the bytes written or -1 when ``out`` is too small). Decoding follows the column kernels
of :mod:`nebula.kernels.parse` (``parse_hex_column``: CSV/pgoutput field spans) and
:mod:`nebula.kernels.json` (``decode_base64_column``: JSON value spans): outputs preallocated,
validity bits only set, errors by ``row_err`` and ``(null_count, n_errors, first_err_row)``. Decoded
values go to Arrow offsets (int32, ``n + 1``) + data; a decoded value is never longer than its text,
so ``out_data`` sized by the text length is enough.
"""

import numpy as np
from numba import njit

from .json import K_NULL as _K_NULL
from .json import K_STR as _K_STR
from .json import K_STRESC as _K_STRESC
from .parse import _check_args, _is_null, _maybe_null, _null_filter, _set_bit

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_B64 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", dtype=np.uint8)


def _b64_values() -> np.ndarray:
    v = np.full(256, -1, dtype=np.int8)
    for i, c in enumerate(_B64):
        v[c] = i
    v[ord("-")] = 62  # the URL-safe alphabet decodes too (its two letters mean nothing else)
    v[ord("_")] = 63
    return v


_B64_VALUE = _b64_values()
_HEX_VALUE = np.full(256, -1, dtype=np.int8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_VALUE[_c] = _i
    _HEX_VALUE[ord(chr(_c).upper())] = _i


@njit(nogil=True, cache=True, _nrt=False)
def _valid(validity, has_nulls, i):
    return (not has_nulls) or ((validity[i >> 3] >> (i & 7)) & 1) == 1


@njit(nogil=True, cache=True, _nrt=False)
def _put_tok(out, p, tok):
    for j in range(tok.shape[0]):
        out[p + j] = tok[j]
    return p + tok.shape[0]


# -- render -----------------------------------------------------------------------------------------
def hex_text_bound(nbytes: int, n: int, null_len: int) -> int:
    """Bytes :func:`render_hex` may write for ``n`` values of ``nbytes`` bytes in all."""
    return 2 * nbytes + n * (2 + null_len) + 8


def base64_text_bound(nbytes: int, n: int, null_len: int) -> int:
    """Bytes :func:`render_base64` may write for ``n`` values of ``nbytes`` bytes in all."""
    return (4 * nbytes) // 3 + n * (6 + null_len) + 8


@njit(nogil=True, cache=True, _nrt=False)
def render_hex(offsets, data, n, validity, has_nulls, null_tok, out, offs):
    """Each value as ``\\x`` + lower-case hex (``offsets`` int32, ``n + 1``, may start past 0)."""
    p = 0
    cap = out.shape[0]
    offs[0] = 0
    for i in range(n):
        if not _valid(validity, has_nulls, i):
            if p + null_tok.shape[0] > cap:
                return -1
            p = _put_tok(out, p, null_tok)
            offs[i + 1] = p
            continue
        a = offsets[i]
        b = offsets[i + 1]
        if p + 2 + 2 * (b - a) > cap:
            return -1
        out[p] = 92  # backslash
        out[p + 1] = 120  # x
        p += 2
        for j in range(a, b):
            c = data[j]
            out[p] = _HEX[c >> 4]
            out[p + 1] = _HEX[c & 15]
            p += 2
        offs[i + 1] = p
    return p


@njit(nogil=True, cache=True, _nrt=False)
def render_base64(offsets, data, n, validity, has_nulls, null_tok, quote, out, offs):
    """Each value as padded base64 (RFC 4648 alphabet), wrapped in ``quote`` when ``quote >= 0``."""
    p = 0
    cap = out.shape[0]
    offs[0] = 0
    q = 1 if quote >= 0 else 0
    for i in range(n):
        if not _valid(validity, has_nulls, i):
            if p + null_tok.shape[0] > cap:
                return -1
            p = _put_tok(out, p, null_tok)
            offs[i + 1] = p
            continue
        a = offsets[i]
        b = offsets[i + 1]
        m = b - a
        if p + 2 * q + 4 * ((m + 2) // 3) > cap:
            return -1
        if q:
            out[p] = quote
            p += 1
        j = a
        while j + 3 <= b:
            v = (np.int64(data[j]) << 16) | (np.int64(data[j + 1]) << 8) | np.int64(data[j + 2])
            out[p] = _B64[(v >> 18) & 63]
            out[p + 1] = _B64[(v >> 12) & 63]
            out[p + 2] = _B64[(v >> 6) & 63]
            out[p + 3] = _B64[v & 63]
            p += 4
            j += 3
        left = b - j
        if left:
            v = np.int64(data[j]) << 16
            if left == 2:
                v |= np.int64(data[j + 1]) << 8
            out[p] = _B64[(v >> 18) & 63]
            out[p + 1] = _B64[(v >> 12) & 63]
            out[p + 2] = _B64[(v >> 6) & 63] if left == 2 else 61  # '='
            out[p + 3] = 61
            p += 4
        if q:
            out[p] = quote
            p += 1
        offs[i + 1] = p
    return p


# -- decode -----------------------------------------------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def _unhex_into(buf, s, e, out, w):
    """Decode ``\\x`` + hex pairs at ``buf[s:e]`` into ``out[w:]``; returns the end in ``out`` or -1."""
    if e - s < 2 or buf[s] != 92 or (buf[s + 1] | 0x20) != 120 or (e - s) % 2 != 0:
        return -1
    bad = 0
    for p in range(s + 2, e, 2):  # branch-free: any invalid digit sets the sign bit of ``bad``
        hi = np.int32(_HEX_VALUE[buf[p]])
        lo = np.int32(_HEX_VALUE[buf[p + 1]])
        bad |= hi | lo
        out[w] = (hi << 4) | (lo & 15)
        w += 1
    return -1 if bad < 0 else w


@njit(nogil=True, cache=True, _nrt=False)
def parse_hex_column(buf, starts, ends, flags, row_first, col, n, null_data, null_offsets, quoted_null,
                     out_offsets, out_data, out_validity, row_err, stop_at_first):
    """``\\x``-hex fields (either case) of field spans (the :mod:`nebula.kernels.parse` layout) as bytes.

    ``out_data`` needs half the fields' text bytes (:func:`nebula.kernels.parse.string_column_size`
    is enough). Anything but ``\\x`` and an even number of hex digits is an error (the row gets an
    empty slot). Returns ``(null_count, n_errors, first_err_row)``.
    """
    _check_args(n, row_first, row_err, out_validity)
    if out_offsets.shape[0] < n + 1:
        raise ValueError("parse_hex_column: out_offsets is shorter than n + 1")
    nulls = 0
    nerr = 0
    first = -1
    pos = 0
    out_offsets[0] = 0
    cap = out_data.shape[0]
    nf = _null_filter(null_data, null_offsets)
    nb = buf.shape[0]
    nfields = min(starts.shape[0], ends.shape[0])
    for r in range(n):
        i = row_first[r] + col
        end = -1
        if 0 <= i < nfields:
            s = starts[i]
            e = ends[i]
            if 0 <= s <= e <= nb:
                if _maybe_null(nf[4], e - s) and _is_null(buf, s, e, flags[i], null_data, null_offsets, quoted_null,
                                                          nf):
                    nulls += 1
                    out_offsets[r + 1] = pos
                    continue
                if pos + (e - s) // 2 - 1 > cap:  # the most a "\\x" + hex field decodes to
                    raise ValueError("parse_hex_column: out_data too small (use string_column_size)")
                end = _unhex_into(buf, s, e, out_data, pos)
        if end >= 0:
            pos = end
            out_offsets[r + 1] = pos
            _set_bit(out_validity, r)
            continue
        out_offsets[r + 1] = pos
        row_err[r] = 1
        nerr += 1
        nulls += 1
        if first < 0:
            first = r
        if stop_at_first:
            return nulls, nerr, first
    return nulls, nerr, first


@njit(nogil=True, cache=True, _nrt=False)
def _unbase64_into(buf, s, e, escaped, out, w):
    """Decode the base64 text ``buf[s:e]`` (padding optional; in an escaped JSON string only ``\\/`` may
    appear) into ``out[w:]``; returns the end in ``out`` or -1."""
    acc = np.int64(0)
    bits = 0
    pad = 0
    p = s
    while p < e:
        c = buf[p]
        p += 1
        if c == 92 and escaped:  # JSON allows "\/" for "/"
            if p >= e or buf[p] != 47:
                return -1
            c = buf[p]
            p += 1
        if c == 61:  # '='
            pad += 1
            continue
        v = _B64_VALUE[c]
        if v < 0 or pad:
            return -1
        acc = ((acc << 6) | v) & 0xFFFFFF
        bits += 6
        if bits >= 8:
            bits -= 8
            out[w] = (acc >> bits) & 0xFF
            w += 1
    if bits >= 6 or pad > 2 or (pad and (bits // 2 != pad)):
        return -1  # a lone sixth of a byte, or padding that does not match the length
    return w


@njit(nogil=True, cache=True, _nrt=False)
def decode_base64_column(buf, kinds, starts, ends, ns, col, n, out_offsets, out_data, out_validity, row_err,
                         stop_at_first):
    """Base64 JSON strings of column ``col`` (the :mod:`nebula.kernels.json` span layout) as bytes.

    Missing/null values are nulls; a non-string or text that is not base64 is an error.
    ``out_data`` needs :func:`nebula.kernels.json.text_column_size` bytes at most.
    Returns ``(null_count, n_errors, first_err_row)``.
    """
    if out_offsets.shape[0] < n + 1 or out_validity.shape[0] * 8 < n or row_err.shape[0] < n:
        raise ValueError("decode_base64_column: an output is shorter than n rows")
    nulls = 0
    nerr = 0
    first = -1
    w = 0
    out_offsets[0] = 0
    cap = out_data.shape[0]
    for r in range(n):
        i = r * ns + col
        k = kinds[i]
        if k <= _K_NULL:
            nulls += 1
            out_offsets[r + 1] = w
            continue
        end = -1
        if k == _K_STR or k == _K_STRESC:
            s = starts[i]
            e = ends[i]
            pads = 0
            while pads < 2 and e - pads > s and buf[e - 1 - pads] == 61:
                pads += 1
            if w + (3 * (e - s - pads)) // 4 > cap:  # the most this base64 text decodes to
                raise ValueError("decode_base64_column: out_data too small (use text_column_size)")
            end = _unbase64_into(buf, s, e, k == _K_STRESC, out_data, w)
        if end >= 0:
            w = end
            out_offsets[r + 1] = w
            _set_bit(out_validity, r)
            continue
        out_offsets[r + 1] = w
        row_err[r] = 1
        nerr += 1
        nulls += 1
        if first < 0:
            first = r
        if stop_at_first:
            return nulls, nerr, first
    return nulls, nerr, first
