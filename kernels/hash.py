"""Row hashes over key columns, and "keep the last change per key" for change streams.

Merge-mode CDC (MySQL binlog, PostgreSQL logical replication) hands a destination at most one change per
key per batch: the last one, since every change carries the full row (or the delete). The caller
hashes the key columns into one uint64 per row (:func:`hash_fixed_into` for fixed-width columns viewed
as int64, :func:`hash_varlen_into` for offsets + bytes), then :func:`last_per_key` groups equal hashes
with an open-addressing table and marks, per group, the last row. The caller checks that rows of one
group really have equal keys (64-bit hashes collide with odds of ~n²/2⁶⁵) and falls back to an exact
path if not, so the result is exact.

Nulls hash as a fixed value distinct from any hashed bytes with high probability; all nulls of a column
are equal to each other (as SQL's ``IS NOT DISTINCT FROM``).
"""

import numpy as np
from numba import njit

_SEED = np.uint64(0x9E3779B97F4A7C15)
_NULL = np.uint64(0x5BD1E9955BD1E995)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(inline="always")
def _mix(h, v):
    """splitmix64 finalizer of ``h ^ v`` (v already uint64)."""
    z = (h ^ v) + _SEED
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _valid(validity, i):
    return (validity[i >> 3] >> (i & 7)) & 1


@njit(nogil=True, cache=True, _nrt=False)
def hash_fixed_into(values, validity, has_nulls, n, out):
    """Mix column ``values`` (int64, shape (n,)) into ``out`` (uint64, (n,)).

    ``validity`` is an LSB-first bitmap (bit set = present), read only when ``has_nulls``.
    """
    for i in range(n):
        if has_nulls and not _valid(validity, i):
            out[i] = _mix(out[i], _NULL)
        else:
            out[i] = _mix(out[i], np.uint64(values[i]))


@njit(nogil=True, cache=True, _nrt=False)
def hash_varlen_into(offsets, data, validity, has_nulls, n, out):
    """Mix text/binary values ``data[offsets[i]:offsets[i+1]]`` (uint8 bytes, int32/int64 offsets) into ``out``."""
    for i in range(n):
        if has_nulls and not _valid(validity, i):
            out[i] = _mix(out[i], _NULL)
            continue
        s = offsets[i]
        e = offsets[i + 1]
        h = np.uint64(0xCBF29CE484222325)
        p = s
        while p + 8 <= e:  # 8 bytes at a time, little endian
            w = np.uint64(0)
            for b in range(8):
                w |= np.uint64(data[p + b]) << np.uint64(8 * b)
            h = _mix(h, w)
            p += 8
        w = np.uint64(e - s) << np.uint64(56)
        b = 0
        while p < e:
            w |= np.uint64(data[p]) << np.uint64(8 * b)
            p += 1
            b += 1
        out[i] = _mix(out[i], _mix(h, w))


@njit(nogil=True, cache=True)
def last_per_key(hashes, n, table, group, keep):
    """Group rows ``0..n-1`` by ``hashes`` and mark the last row of each group.

    Parameters
    ----------
    hashes : uint64 (n,)
    table : int64 (power of two >= 2n), scratch; cleared here
    group : int64 (n,), out: the first row of each row's group (its representative)
    keep : uint8 (n,), out: 1 on the last row of each group, else 0

    Returns
    -------
    int
        The number of groups (rows kept).
    """
    mask = np.uint64(table.shape[0] - 1)
    table[:] = -1
    last = np.empty(n, np.int64)
    groups = 0
    for i in range(n):
        h = hashes[i]
        slot = h & mask
        while True:
            r = table[slot]
            if r < 0:
                table[slot] = i
                group[i] = i
                last[i] = i
                groups += 1
                break
            if hashes[r] == h:
                group[i] = r
                last[r] = i
                break
            slot = (slot + np.uint64(1)) & mask
    keep[:n] = 0
    for i in range(n):
        if group[i] == i:
            keep[last[i]] = 1
    return groups


def table_size(n):
    """The scratch table length :func:`last_per_key` needs for ``n`` rows."""
    return 1 << max(4, int(2 * max(n, 1) - 1).bit_length())
