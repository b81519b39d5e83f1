"""CSV tokenizer: field byte spans from a buffer, RFC 4180 quoting, any line ending.

The tokenizer does not convert values; it records where each field's content lies so the typed
parse kernels (``parse.py``) can read the columns straight from the input bytes.

Outputs (preallocated by the caller; capacities are their lengths):

- ``starts``, ``ends`` int64: field content is ``buf[starts[i]:ends[i]]`` (quotes excluded).
- ``flags`` uint8: ``QUOTED`` (1) the field was quoted, ``ESCAPED`` (2) it holds ``""`` or an escape
  byte that a reader must undo.
- ``row_first`` int64 (rows + 1): row r owns fields ``row_first[r]:row_first[r+1]``.
- ``row_offset`` int64: byte position (in ``buf``) where row r starts; ``row_line`` int64: its
  1-based physical line number.

Blank lines and comment lines are skipped (they still count as lines).
"""

import numpy as np
from numba import njit

from .swar import first_flagged, load8, splat, zero_bytes

QUOTED = 1
ESCAPED = 2

# status codes returned by tokenize
DONE = 0  # the whole range was consumed
NEED_MORE = 1  # stopped at an incomplete record; resume at next_pos with more bytes
FULL = 2  # row or field capacity reached; resume at next_pos
ERROR = 3  # syntax error at err_pos

# Array indices are converted to unsigned (``_u``) where the kernels read and write: numba then
# skips its negative-index wraparound test on every access (~30% of the tokenizer's time). Every
# index here is a position or count, never negative.
_u = np.uintp

_LF8 = np.uint64(0x0A0A0A0A0A0A0A0A)
_CR8 = np.uint64(0x0D0D0D0D0D0D0D0D)

# error codes
E_NONE = 0
E_UNTERMINATED_QUOTE = 1
E_AFTER_QUOTE = 2


@njit(inline="always")
def _skip_plain(buf, q, end, a8, b8):
    """The first position from ``q`` whose byte is in ``a8``/``b8`` (bytes splat over a word) or is a
    line end, scanning whole 8-byte words while they hold none; the caller's byte loop goes on from
    there (also over the last < 8 bytes)."""
    while q + 8 <= end:
        w = load8(buf, q)
        m = zero_bytes(w ^ a8) | zero_bytes(w ^ b8) | zero_bytes(w ^ _LF8) | zero_bytes(w ^ _CR8)
        if m:
            return q + first_flagged(m)
        q += 8
    return q


@njit(nogil=True, cache=True, _nrt=False)
def tokenize(buf, pos, end, final, delim, quote, escape, comment,
             starts, ends, flags, row_first, row_offset, row_line, line_no):
    """Split ``buf[_u(pos:end)]`` into records and fields.

    Parameters
    ----------
    buf : uint8[:]
    pos, end : int
        Range to tokenize; ``end <= len(buf)``.
    final : bool
        True when no more bytes follow ``end`` (end of input): a last record without a line end is
        complete, and an open quote is an error. Otherwise an incomplete last record is left for the
        next call (status NEED_MORE, ``next_pos`` at its start).
    delim, quote, escape, comment : int
        Byte values; ``quote``, ``escape`` and ``comment`` are -1 when not used.
    line_no : int
        Physical line number of the byte at ``pos``.

    Returns
    -------
    (n_rows, n_fields, next_pos, next_line, status, err_code, err_pos, err_line)
    """
    max_fields = starts.shape[0]
    max_rows = row_offset.shape[0]
    d8 = splat(delim)
    q8 = splat(quote) if quote >= 0 else d8  # an unused byte repeats the delimiter: flags nothing new
    e8 = splat(escape) if escape >= 0 else d8
    qe8 = splat(escape) if escape >= 0 else q8  # inside quotes the delimiter is not special
    nr = 0
    nf = 0
    p = pos
    line = line_no
    status = DONE
    err_code = E_NONE
    err_pos = -1
    err_line = -1
    while p < end:
        c = buf[_u(p)]
        # blank line
        if c == 10 or c == 13:
            if c == 13:
                if p + 1 < end:
                    if buf[_u(p + 1)] == 10:
                        p += 1
                elif not final:
                    status = NEED_MORE
                    break
            p += 1
            line += 1
            continue
        # comment line
        if c == comment:
            q = p
            while q < end and buf[_u(q)] != 10 and buf[_u(q)] != 13:
                q += 1
            if q == end:
                if not final:
                    status = NEED_MORE
                    break
                p = end
                line += 1
                break
            if buf[_u(q)] == 13:
                if q + 1 < end:
                    if buf[_u(q + 1)] == 10:
                        q += 1
                elif not final:
                    status = NEED_MORE
                    break
            p = q + 1
            line += 1
            continue
        if nr >= max_rows:
            status = FULL
            break
        rec_start = p
        rec_line = line
        f0 = nf
        lines_in = 0
        incomplete = False
        full = False
        bad = False
        while True:
            # one field starting at p
            if nf >= max_fields:
                full = True
                break
            fl = 0
            field_lines = lines_in
            if p < end and buf[_u(p)] == quote:
                fl = QUOTED
                q = p + 1
                closed = False
                q = _skip_plain(buf, q, end, q8, qe8)  # to a quote, escape or line end
                while q < end:
                    b = buf[_u(q)]
                    if b == quote:
                        if q + 1 < end:
                            if buf[_u(q + 1)] == quote:
                                fl |= ESCAPED
                                q += 2
                                continue
                            closed = True
                            break
                        if final:
                            closed = True
                        break
                    if b == escape:
                        fl |= ESCAPED
                        q += 2
                        continue
                    if b == 10:
                        lines_in += 1
                    elif b == 13:
                        if q + 1 < end and buf[_u(q + 1)] != 10:
                            lines_in += 1
                        elif q + 1 >= end:
                            lines_in += 1
                    q += 1
                if not closed:
                    if final:
                        bad = True
                        err_code = E_UNTERMINATED_QUOTE
                        err_pos = p
                        lines_in = field_lines
                    else:
                        incomplete = True
                    break
                starts[_u(nf)] = p + 1
                ends[_u(nf)] = q
                flags[_u(nf)] = fl
                nf += 1
                p = q + 1
                if p >= end:
                    if not final:
                        incomplete = True
                    break
                b = buf[_u(p)]
                if b == delim:
                    p += 1
                    continue
                if b == 10 or b == 13:
                    break
                bad = True
                err_code = E_AFTER_QUOTE
                err_pos = p
                break
            else:
                q = p
                q = _skip_plain(buf, q, end, d8, e8)  # to a delimiter, escape or line end
                while q < end:
                    b = buf[_u(q)]
                    if b == delim or b == 10 or b == 13:
                        break
                    if b == escape:
                        fl |= ESCAPED
                        q += 2
                        continue
                    q += 1
                if q > end:
                    q = end
                if q >= end and not final:
                    incomplete = True
                    break
                starts[_u(nf)] = p
                ends[_u(nf)] = q
                flags[_u(nf)] = fl
                nf += 1
                p = q
                if p < end and buf[_u(p)] == delim:
                    p += 1
                    if p >= end:
                        if not final:
                            incomplete = True
                            break
                        # trailing delimiter at end of input: one more empty field
                        if nf >= max_fields:
                            full = True
                            break
                        starts[_u(nf)] = p
                        ends[_u(nf)] = p
                        flags[_u(nf)] = 0
                        nf += 1
                        break
                    continue
                break
        if bad:
            nf = f0
            status = ERROR
            err_line = rec_line + lines_in
            p = rec_start
            break
        if incomplete:
            nf = f0
            status = NEED_MORE
            p = rec_start
            break
        if full:
            nf = f0
            status = FULL
            p = rec_start
            break
        # consume the line end
        if p < end:
            if buf[_u(p)] == 13:
                if p + 1 < end:
                    if buf[_u(p + 1)] == 10:
                        p += 1
                elif not final:
                    nf = f0
                    status = NEED_MORE
                    p = rec_start
                    break
            p += 1
        row_first[_u(nr)] = f0
        row_offset[_u(nr)] = rec_start
        row_line[_u(nr)] = rec_line
        nr += 1
        line += 1 + lines_in
    row_first[_u(nr)] = nf
    return nr, nf, p, line, status, err_code, err_pos, err_line


@njit(nogil=True, cache=True, _nrt=False)
def find_line_starts(buf, pos, end, count):
    """Position after the ``count``-th line end in ``buf[pos:end]`` (quotes ignored), or -1."""
    p = pos
    seen = 0
    while p < end and seen < count:
        b = buf[p]
        if b == 10:
            seen += 1
        elif b == 13:
            if p + 1 < end and buf[p + 1] == 10:
                p += 1
            seen += 1
        p += 1
    if seen < count:
        return -1
    return p


@njit(nogil=True, cache=True, _nrt=False)
def field_counts(row_first, n, out):
    """``out[r] = fields in row r`` for r < n; returns (min, max)."""
    lo = np.int64(1) << 62
    hi = np.int64(0)
    for r in range(n):
        c = row_first[r + 1] - row_first[r]
        out[r] = c
        if c < lo:
            lo = c
        if c > hi:
            hi = c
    return lo, hi
