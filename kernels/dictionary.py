"""Dictionary encoding of text columns: int32 codes plus a dictionary, built by a hash table in a kernel.

The table is open addressing with linear probing over a power-of-two ``table`` of int32 slots (-1 =
empty). Entries live in ``dict_offsets`` (int32, entries + 1) and ``dict_data`` (uint8). When a new
value would exceed ``max_entries`` or the bytes of ``dict_data`` the kernel stops and reports
overflow, and the caller falls back to plain strings for that batch.
"""

import numpy as np
from numba import njit

from .parse import _is_null, _maybe_null, _null_filter, _unescape_into, _utf8_valid

OK = 0
OVERFLOW = 1

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_u = np.uintp  # unsigned indices: no negative-index wraparound test per access (see kernels/csv.py)


@njit(inline="always")
def _hash(data, s, e):
    h = _FNV_OFFSET
    for p in range(s, e):
        h = (h ^ np.uint64(data[_u(p)])) * _FNV_PRIME
    return h ^ (h >> np.uint64(29))


@njit(inline="always")
def _same(data, s, e, dd, a, b):
    if e - s != b - a:
        return False
    for t in range(e - s):
        if data[_u(s + t)] != dd[_u(a + t)]:
            return False
    return True


@njit(inline="always")
def _lookup(src, s, e, table, mask, dict_offsets, dict_data):
    """``(code, slot)``: the entry equal to ``src[s:e]`` (code -1 if none) and where probing ended."""
    slot = _hash(src, s, e) & mask
    while True:
        k = table[slot]
        if k < 0:
            return -1, slot
        if _same(src, s, e, dict_data, dict_offsets[_u(k)], dict_offsets[_u(k + 1)]):
            return k, slot
        slot = (slot + np.uint64(1)) & mask


@njit(nogil=True, cache=True, _nrt=False)
def dict_encode_column(buf, starts, ends, flags, row_first, col, n, null_data, null_offsets, quoted_null,
                       quote, escape, table, dict_offsets, dict_data, max_entries, out_codes, out_validity,
                       row_err, stop_at_first, validate):
    """Encode column ``col`` of rows ``0..n-1`` as codes into ``out_codes`` (int32).

    ``table`` (int32, power-of-two length >= 2 * max_entries) is cleared here. New entries are
    UTF-8 validated when ``validate`` (each distinct value once). Null rows get code 0 and no
    validity bit; invalid rows are errors as in the parse kernels.

    Returns ``(null_count, n_errors, first_err_row, n_entries, status)``; status OVERFLOW means
    the dictionary would exceed ``max_entries`` entries or ``dict_data``: the outputs are then
    incomplete.
    """
    table[:] = -1
    mask = np.uint64(table.shape[0] - 1)
    cap = dict_data.shape[0]
    nf = _null_filter(null_data, null_offsets)
    nb = buf.shape[0]
    nfields = min(starts.shape[0], ends.shape[0])
    nulls = 0
    nerr = 0
    first = -1
    n_entries = 0
    used = 0
    dict_offsets[_u(0)] = 0
    for r in range(n):
        out_codes[_u(r)] = 0
        i = row_first[_u(r)] + col
        ok = False
        if 0 <= i < nfields:
            s = starts[_u(i)]
            e = ends[_u(i)]
            if 0 <= s <= e <= nb:
                fl = flags[_u(i)]
                if _maybe_null(nf[4], e - s) and _is_null(buf, s, e, fl, null_data, null_offsets, quoted_null, nf):
                    nulls += 1
                    continue
                if (fl & 2) == 0:
                    code, slot = _lookup(buf, s, e, table, mask, dict_offsets, dict_data)
                    ln = e - s
                    if code < 0:
                        if n_entries >= max_entries or used + ln > cap:
                            return nulls, nerr, first, n_entries, OVERFLOW
                        for t in range(ln):  # not a slice copy: that could allocate, and kernels run without NRT
                            dict_data[_u(used + t)] = buf[_u(s + t)]
                else:  # undo escapes into the free tail of dict_data, then look that up
                    if used + (e - s) > cap:
                        return nulls, nerr, first, n_entries, OVERFLOW
                    w = _unescape_into(buf, s, e, quote, escape, dict_data, used)
                    code, slot = _lookup(dict_data, used, w, table, mask, dict_offsets, dict_data)
                    ln = w - used
                    if code < 0 and n_entries >= max_entries:
                        return nulls, nerr, first, n_entries, OVERFLOW
                if code >= 0:
                    ok = True
                elif not validate or _utf8_valid(dict_data, used, used + ln):
                    used += ln
                    code = n_entries
                    dict_offsets[_u(n_entries + 1)] = used
                    table[slot] = code
                    n_entries += 1
                    ok = True
                if ok:
                    out_codes[_u(r)] = code
                    out_validity[_u(r >> 3)] |= np.uint8(1 << (r & 7))
                    continue
        row_err[_u(r)] = 1
        nerr += 1
        nulls += 1
        if first < 0:
            first = r
        if stop_at_first:
            return nulls, nerr, first, n_entries, OK
    return nulls, nerr, first, n_entries, OK
