"""Splitting a batch by partition: dense partition codes per row, then a stable counting sort.

The Python side (``nebula.connectors.destinations.partitioned``) turns each key column into int64
values (dictionary codes, dictionary-encoded strings, integers, ``date(ts)`` days); these kernels
number the distinct key tuples densely in order of first appearance and compute the row
permutation that groups the rows of each partition together, keeping their input order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

US_PER_DAY = 86_400_000_000
_EMPTY_SLOT = -1


@njit(nogil=True, cache=True, _nrt=False)
def days_from_micros(ts, n, out):
    """Days since 1970-01-01 (floor, so instants before the epoch fall on the right day).

    Parameters
    ----------
    ts : int64[n]  microseconds since the epoch (UTC)
    out : int64[n]  written
    """
    for i in range(n):
        v = ts[i]
        d = v // US_PER_DAY
        out[i] = d
    return n


@njit(nogil=True, cache=True)
def factorize_int64(values, valid, n, has_nulls, codes, uniques, null_seen):
    """Dense codes of ``values`` in order of first appearance; nulls share one code.

    Parameters
    ----------
    values : int64[n]
    valid : uint8[n]  1 = present (read only when ``has_nulls``)
    codes : int64[n]  written: 0 .. k-1
    uniques : int64[n]  written: the value of each code (``uniques[c]`` is undefined for the null code)
    null_seen : int64[1]  written: the null code, or -1 when there is no null

    Returns
    -------
    k : int  the number of distinct values (the null counted once)
    """
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    table = np.full(size, _EMPTY_SLOT, dtype=np.int64)
    k = 0
    null_code = -1
    for i in range(n):
        if has_nulls and valid[i] == 0:
            if null_code < 0:
                null_code = k
                k += 1
            codes[i] = null_code
            continue
        v = values[i]
        h = (v * np.int64(-7046029254386353131)) ^ (v >> 29)
        slot = h & mask
        while True:
            c = table[slot]
            if c == _EMPTY_SLOT:
                table[slot] = k
                uniques[k] = v
                codes[i] = k
                k += 1
                break
            if uniques[c] == v:
                codes[i] = c
                break
            slot = (slot + 1) & mask
    null_seen[0] = null_code
    return k


@njit(nogil=True, cache=True, _nrt=False)
def combine_codes(a, b, card_b, n, out):
    """``out[i] = a[i] * card_b + b[i]``: one code per pair (dense again after a factorize)."""
    for i in range(n):
        out[i] = a[i] * card_b + b[i]
    return n


@njit(nogil=True, cache=True)
def stable_counting_sort(codes, n, nparts, perm, starts):
    """The permutation grouping rows by ``codes``, stable within a partition.

    Parameters
    ----------
    codes : int64[n]  in 0 .. nparts-1
    perm : int64[n]  written: rows of partition p are ``perm[starts[p]:starts[p+1]]``, ascending
    starts : int64[nparts + 1]  written

    Returns
    -------
    int : -1 if a code is out of range (nothing useful written), else ``n``
    """
    for p in range(nparts + 1):
        starts[p] = 0
    for i in range(n):
        c = codes[i]
        if c < 0 or c >= nparts:
            return -1
        starts[c + 1] += 1
    for p in range(nparts):
        starts[p + 1] += starts[p]
    cursor = starts[:nparts].copy()
    for i in range(n):
        c = codes[i]
        perm[cursor[c]] = i
        cursor[c] += 1
    return n
