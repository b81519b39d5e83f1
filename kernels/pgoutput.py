"""PostgreSQL logical replication (``pgoutput``, protocol 1): row changes into field spans.

A round's change messages (the payloads of XLogData messages whose first byte is ``I``, ``U`` or
``D``) are concatenated into one uint8 buffer; message ``m`` is ``buf[msg_starts[m]:msg_ends[m]]``.
Layouts (PostgreSQL docs, "Logical Replication Message Formats"), integers big-endian:

- ``I`` int32 relation oid, ``N``, TupleData
- ``U`` int32 relation oid, optionally ``K`` (key changed) or ``O`` (replica identity full) and the old
  TupleData, then ``N`` and the new TupleData
- ``D`` int32 relation oid, ``K`` or ``O``, TupleData
- TupleData: int16 column count, per column a kind byte: ``n`` null, ``u`` unchanged TOAST value (not
  sent), ``t`` int32 length + text bytes, ``b`` int32 length + binary bytes.

:func:`index_changes` writes one output row per tuple (an update with an old tuple gives two: the old
one first) and one field span per column, in the span layout the ``nebula.kernels.parse`` column
kernels read: field ``row_first[r] + c`` is ``buf[starts[i]:ends[i]]`` with ``flags[i] = 1`` (quoted,
so an empty text is never null) for a value and an empty unquoted span (``flags[i] = 0``, the empty
null marker) for ``n`` and ``u``; ``kinds[i]`` keeps the kind byte so unchanged TOAST values can be
told from nulls. Row ops: :data:`OP_INSERT`, :data:`OP_UPDATE`, :data:`OP_DELETE` (a ``D``, or the
``K`` old key of an update that changed the key), :data:`OP_OLD` (an ``O`` old image of an update).

:func:`count_changes` sizes the outputs. Kernels never raise: they return the first malformed
message (-1 when none).
"""

import numpy as np
from numba import njit

OP_INSERT, OP_UPDATE, OP_DELETE, OP_OLD = 1, 2, 3, 4
KIND_NULL, KIND_UNCHANGED, KIND_TEXT, KIND_BINARY = 110, 117, 116, 98  # 'n' 'u' 't' 'b'


@njit(inline="always")
def _i32(buf, p):
    v = (np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16) | (np.int64(buf[p + 2]) << 8) | np.int64(buf[p + 3])
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@njit(inline="always")
def _i16(buf, p):
    return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])


@njit(nogil=True, cache=True, _nrt=False)
def _skip_tuple(buf, p, e):
    """``(end, ncols)`` of the TupleData at ``p`` (``end < 0``: malformed)."""
    if p + 2 > e:
        return -1, 0
    nc = _i16(buf, p)
    p += 2
    for _ in range(nc):
        if p >= e:
            return -1, 0
        k = buf[p]
        p += 1
        if k == KIND_TEXT or k == KIND_BINARY:
            if p + 4 > e:
                return -1, 0
            ln = _i32(buf, p)
            p += 4
            if ln < 0 or p + ln > e:
                return -1, 0
            p += ln
        elif k != KIND_NULL and k != KIND_UNCHANGED:
            return -1, 0
    return p, nc


@njit(nogil=True, cache=True, _nrt=False)
def count_changes(buf, msg_starts, msg_ends, n_msgs):
    """``(rows, fields, first_bad_message)`` that :func:`index_changes` will write."""
    rows = 0
    fields = 0
    for m in range(n_msgs):
        p = msg_starts[m]
        e = msg_ends[m]
        if p + 6 > e:
            return rows, fields, m
        t = buf[p]
        p += 5
        while p < e:
            k = buf[p]
            if k != 78 and k != 75 and k != 79:  # N K O
                return rows, fields, m
            if t == 73 and k != 78:  # an insert has only a new tuple
                return rows, fields, m
            p, nc = _skip_tuple(buf, p + 1, e)
            if p < 0:
                return rows, fields, m
            rows += 1
            fields += nc
    return rows, fields, -1


@njit(nogil=True, cache=True, _nrt=False)
def index_changes(buf, msg_starts, msg_ends, n_msgs, row_msg, row_op, row_rel, row_first, row_ncols,
                  starts, ends, flags, kinds):
    """Fill the row and field arrays (sized by :func:`count_changes`); returns ``(rows, fields, first_bad)``.

    ``row_msg`` int64 message index, ``row_op`` int8, ``row_rel`` int64 relation oid, ``row_first`` int64
    first field, ``row_ncols`` int32; ``starts``/``ends`` int64, ``flags``/``kinds`` uint8.
    """
    r = 0
    f = 0
    for m in range(n_msgs):
        p = msg_starts[m]
        e = msg_ends[m]
        if p + 6 > e:
            return r, f, m
        t = buf[p]
        rel = _i32(buf, p + 1) & np.int64(0xFFFFFFFF)
        p += 5
        while p < e:
            k = buf[p]
            if k == 78:
                op = OP_INSERT if t == 73 else (OP_UPDATE if t == 85 else OP_DELETE)
            elif k == 75:
                op = OP_DELETE
            elif k == 79:
                op = OP_DELETE if t == 68 else OP_OLD
            else:
                return r, f, m
            p += 1
            if p + 2 > e or r >= row_msg.shape[0]:
                return r, f, m
            nc = _i16(buf, p)
            p += 2
            if f + nc > starts.shape[0]:
                return r, f, m
            row_msg[r] = m
            row_op[r] = op
            row_rel[r] = rel
            row_first[r] = f
            row_ncols[r] = nc
            for _ in range(nc):
                if p >= e:
                    return r, f, m
                kd = buf[p]
                p += 1
                kinds[f] = kd
                if kd == KIND_TEXT or kd == KIND_BINARY:
                    if p + 4 > e:
                        return r, f, m
                    ln = _i32(buf, p)
                    p += 4
                    if ln < 0 or p + ln > e:
                        return r, f, m
                    starts[f] = p
                    ends[f] = p + ln
                    flags[f] = 1
                    p += ln
                elif kd == KIND_NULL or kd == KIND_UNCHANGED:
                    starts[f] = p
                    ends[f] = p
                    flags[f] = 0
                else:
                    return r, f, m
                f += 1
            r += 1
    return r, f, -1


@njit(nogil=True, cache=True, _nrt=False)
def fill_unchanged(row_first, rows, n, col, kinds, starts, ends, flags, row_key, prev_field):
    """Unchanged TOAST values of column ``col`` taken from the same key's previous image in this round.

    ``rows[:n]`` are output rows of one relation in commit order, ``row_key[j]`` a key id (equal keys,
    equal ids; -1 none), ``prev_field`` scratch of at least ``max(row_key) + 1`` entries. A ``u`` field
    gets the span of the last earlier field of its key that carried a value; returns how many ``u``
    fields remain (no earlier image in the round).
    """
    for j in range(prev_field.shape[0]):
        prev_field[j] = -1
    left = 0
    for j in range(n):
        i = row_first[rows[j]] + col
        k = row_key[j]
        if kinds[i] == KIND_UNCHANGED:
            q = prev_field[k] if k >= 0 else -1
            if q >= 0:
                starts[i] = starts[q]
                ends[i] = ends[q]
                flags[i] = flags[q]
                kinds[i] = kinds[q]
            else:
                left += 1
                continue
        if k >= 0:
            prev_field[k] = i
    return left


@njit(nogil=True, cache=True, _nrt=False)
def old_key_changed(buf, starts, ends, kinds, row_first, old_rows, n, key_cols, out):
    """``out[j] = 1`` when the ``O`` old image ``old_rows[j]`` differs from its new image (the next output row)
    in a key column of ``key_cols``: that old key must be deleted (replica identity full sends the old image
    with every update, ``K`` only when the key changed)."""
    for j in range(n):
        o = old_rows[j]
        a = row_first[o]
        b = row_first[o + 1]
        changed = 0
        for c in key_cols:
            ka = kinds[a + c]
            kb = kinds[b + c]
            if ka != kb:
                changed = 1
                break
            la = ends[a + c] - starts[a + c]
            if la != ends[b + c] - starts[b + c]:
                changed = 1
                break
            for t in range(la):
                if buf[starts[a + c] + t] != buf[starts[b + c] + t]:
                    changed = 1
                    break
            if changed:
                break
        out[j] = changed
