"""Eight bytes at a time ("SIMD within a register") for the tokenizers' scans.

``load8`` reads 8 bytes as a little-endian uint64; ``zero_bytes(x)`` flags (high bit) each zero byte
of ``x``, so ``zero_bytes(w ^ splat(b))`` flags the bytes equal to ``b``. Only the lowest flag is
exact -- a borrow can flag a byte above a real match, never one below -- which is all a scan for the
first special byte needs: ``first_flagged(m)`` is its index (0..7).
"""

import numpy as np
from numba import config as _numba_config
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

if _numba_config.DISABLE_JIT:  # an intrinsic only exists compiled; coverage runs use this

    def trailing_zeros(x):  # noqa: F811
        x = int(x)
        return np.uint64((x & -x).bit_length() - 1)

_u = np.uintp
ONES8 = np.uint64(0x0101010101010101)
HIGH8 = np.uint64(0x8080808080808080)


@njit(inline="always")
def load8(buf, p):
    """The 8 bytes at ``p`` (``p + 8 <= len(buf)``) as a little-endian uint64. LLVM merges the eight
    byte loads into one unaligned load; ``buf[p:p + 8].view(np.uint64)[0]`` costs ~25 instructions of
    slice and view checks around that load."""
    q = _u(p)
    return (np.uint64(buf[q]) | (np.uint64(buf[q + _u(1)]) << np.uint64(8))
            | (np.uint64(buf[q + _u(2)]) << np.uint64(16)) | (np.uint64(buf[q + _u(3)]) << np.uint64(24))
            | (np.uint64(buf[q + _u(4)]) << np.uint64(32)) | (np.uint64(buf[q + _u(5)]) << np.uint64(40))
            | (np.uint64(buf[q + _u(6)]) << np.uint64(48)) | (np.uint64(buf[q + _u(7)]) << np.uint64(56)))


@njit(inline="always")
def splat(b):
    """Byte ``b`` (0..255) in all eight lanes."""
    return np.uint64(b & 0xFF) * ONES8


@njit(inline="always")
def zero_bytes(x):
    """The high bit of each zero byte of ``x`` (the lowest one exact, see the module doc)."""
    return (x - ONES8) & ~x & HIGH8


@njit(inline="always")
def first_flagged(m):
    """Index (0..7) of the lowest flagged byte of a non-zero mask."""
    return np.int64(trailing_zeros(m) >> np.uint64(3))
