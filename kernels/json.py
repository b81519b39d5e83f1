"""JSON kernels: a structural pass that splits a block into records and finds the key/value spans of
each record (flattening nested objects), and typed extraction of those spans into batch columns.

Structural pass (:func:`tokenize`): one iterative state machine per record (no recursion; containers
on an explicit stack of ``max_depth`` levels) validates the full JSON grammar -- strings with every
escape and ``\\uXXXX`` surrogate pairs, strict UTF-8, numbers, literals -- and, for the objects on the
path from the record's root (not those inside arrays), maps each key to a *node* of a key tree held in
flat arrays (parent, key bytes, column). A node with a column receives its value's span in the dense
per-chunk arrays ``kinds/starts/ends[row * ns + column]`` (``ns`` columns per row). Nodes met for the
first time are added by the kernel; the caller gives them columns and runs the pass again.

Value kinds (``K_*``): a string's span excludes its quotes; an array's (and a non-flattened object's)
span is its exact text. ``K_MISSING`` (0) marks a key absent from the record.

Extraction kernels read ``kinds/starts/ends`` of one column for rows ``0..n-1`` and follow the
conventions of :mod:`nebula.kernels.parse`: outputs preallocated, validity bits only set, errors
reported by ``row_err`` and ``(null_count, n_errors, first_err_row, ...)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .parse import (
    _parse_date_at,
    _parse_decimal_span,
    _parse_float_span,
    _parse_int_span,
    _parse_ts_span,
    _set_bit,
    digits18,
    first_invalid_utf8,
)
from .swar import HIGH8, load8, trailing_zeros, zero_bytes

# value kinds
K_MISSING, K_NULL, K_FALSE, K_TRUE, K_INT, K_BIGINT, K_HUGEINT, K_FLOAT, K_STR, K_STRESC, K_ARRAY, K_OBJECT = range(12)
KIND_NAMES = ("missing", "null", "bool", "bool", "integer", "big integer", "huge integer", "number", "string",
              "string", "array", "object")

# tokenize statuses
DONE, NEED_MORE, FULL, ERROR, TABLE_FULL, EVENTS_FULL = 0, 1, 2, 3, 4, 5
# modes
LINES, ARRAY = 0, 1

# error codes
(E_NONE, E_UNEXPECTED, E_TRUNCATED, E_TRAILING_COMMA, E_SINGLE_QUOTE, E_CONTROL, E_ESCAPE, E_SURROGATE,
 E_NAN_INF, E_NUMBER, E_LITERAL, E_GARBAGE, E_UTF8, E_DEPTH, E_NOT_OBJECT, E_LINE_ENDS, E_EXPECTED_KEY,
 E_EXPECTED_COLON, E_EXPECTED_COMMA_OBJ, E_EXPECTED_COMMA_ARR, E_EXPECTED_ARRAY_SEP) = range(21)

ERROR_TEXT = {
    E_UNEXPECTED: "unexpected character where a JSON value should start",
    E_TRUNCATED: "truncated JSON: the input ends inside a value",
    E_TRAILING_COMMA: "trailing comma (a ',' must be followed by another member)",
    E_SINGLE_QUOTE: "single quotes are not JSON (strings and keys take double quotes)",
    E_CONTROL: "unescaped control character in a string",
    E_ESCAPE: "invalid escape sequence in a string",
    E_SURROGATE: "lone UTF-16 surrogate in a \\u escape (a high surrogate must be followed by a low one)",
    E_NAN_INF: "NaN and Infinity are not JSON numbers",
    E_NUMBER: "malformed number",
    E_LITERAL: "invalid literal (expected true, false or null)",
    E_GARBAGE: "unexpected data after the JSON value",
    E_UTF8: "invalid UTF-8",
    E_DEPTH: "nesting deeper than the maximum depth",
    E_NOT_OBJECT: "not a JSON object",
    E_LINE_ENDS: "the line ends inside the record (a truncated record, or a raw newline in a string)",
    E_EXPECTED_KEY: "expected a double-quoted key or '}'",
    E_EXPECTED_COLON: "expected ':' after a key",
    E_EXPECTED_COMMA_OBJ: "expected ',' or '}' after an object member",
    E_EXPECTED_COMMA_ARR: "expected ',' or ']' after an array element",
    E_EXPECTED_ARRAY_SEP: "expected ',' or ']' between the records of the top-level array",
}

# meta slots (int64 array shared with the caller)
M_NODES, M_KDATA, M_NEED, M_KEYLEN = 0, 1, 2, 3
# node columns below zero
COL_NONE, COL_NULLS = -1, -2
# the columns of an event row (nested="keep"): see :func:`tokenize`
EV_SLOT, EV_PARENT, EV_START, EV_END, EV_ROW = range(5)
# the key of an array's element node: a byte no UTF-8 key holds, so it cannot collide with a member name
ELEMENT_KEY = np.array([255], dtype=np.uint8)

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_u = np.uintp  # unsigned indices where positions are read/written: no negative-index wraparound test (kernels/csv.py)


# -- scanning helpers ----------------------------------------------------------------------------
@njit(inline="always")
def _is_ws(c):
    return c == 32 or c == 10 or c == 13 or c == 9


@njit(inline="always")
def _is_delim(c):
    return c == 32 or c == 10 or c == 13 or c == 9 or c == 44 or c == 93 or c == 125


@njit(inline="always")
def _hexval(c):
    if 48 <= c <= 57:
        return np.int64(c) - 48
    c2 = np.int64(c) | 0x20
    if 97 <= c2 <= 102:
        return c2 - 87
    return -1


@njit(inline="always")
def _hex4(buf, p):
    v = 0
    for q in range(4):
        h = _hexval(buf[_u(p + q)])
        if h < 0:
            return -1
        v = v * 16 + h
    return v


_QUOTE8 = np.uint64(0x2222222222222222)
_BSLASH8 = np.uint64(0x5C5C5C5C5C5C5C5C)
_SPACE8 = np.uint64(0x2020202020202020)


@njit(inline="always")
def _plain8(buf, p):
    """``(word, plain)``: the 8 bytes at ``p`` as a little-endian uint64, and whether none of them is a
    quote, a backslash or a control character (a zero-byte test per byte, all operands uint64)."""
    w = load8(buf, p)
    return w, zero_bytes(w ^ _QUOTE8) | zero_bytes(w ^ _BSLASH8) | ((w - _SPACE8) & ~w & HIGH8)


@njit(inline="always")
def scan_string(buf, p, end, lines):
    """Scan a string body from ``p`` (after the opening quote) to its closing quote.

    Returns ``(status, q, escaped, code, err_pos)``: status 0 ok (content ``buf[p:q]``, quote at
    ``q``), 1 incomplete (``end`` reached), 2 error ``code`` at ``err_pos``.
    """
    s = p
    esc = False
    hi = 0
    hi8 = np.uint64(0)
    while p + 8 <= end:  # 8 bytes at a time up to the first quote, backslash or control character
        w, m = _plain8(buf, p)
        if m:
            k = trailing_zeros(m) >> np.uint64(3)  # the lowest flagged byte is exact (borrows only run upwards)
            hi8 |= w & ((np.uint64(1) << (k << np.uint64(3))) - np.uint64(1))
            p += np.int64(k)
            break
        hi8 |= w
        p += 8
    if hi8 & HIGH8:
        hi = 128
    while p < end:
        c = buf[_u(p)]
        if c == 34:
            if hi >= 128:
                bad = first_invalid_utf8(buf, s, p)
                if bad >= 0:
                    return 2, p, esc, E_UTF8, bad
            return 0, p, esc, E_NONE, 0
        if c == 92:
            esc = True
            if p + 1 >= end:
                return 1, p, esc, E_NONE, 0
            d = buf[_u(p + 1)]
            if d == 117:
                for q in range(p + 2, min(p + 6, end)):
                    if _hexval(buf[_u(q)]) < 0:
                        return 2, p, esc, E_ESCAPE, p
                if p + 6 > end:
                    return 1, p, esc, E_NONE, 0
                cp = _hex4(buf, p + 2)
                if 0xDC00 <= cp <= 0xDFFF:
                    return 2, p, esc, E_SURROGATE, p
                if 0xD800 <= cp <= 0xDBFF:
                    if (p + 6 < end and buf[_u(p + 6)] != 92) or (p + 7 < end and buf[_u(p + 7)] != 117):
                        return 2, p, esc, E_SURROGATE, p
                    for q in range(p + 8, min(p + 12, end)):
                        if _hexval(buf[_u(q)]) < 0:
                            return 2, p, esc, E_ESCAPE, p + 6
                    if p + 12 > end:
                        return 1, p, esc, E_NONE, 0
                    lo = _hex4(buf, p + 8)
                    if lo < 0xDC00 or lo > 0xDFFF:
                        return 2, p, esc, E_SURROGATE, p
                    p += 12
                    continue
                p += 6
                continue
            if d == 34 or d == 92 or d == 47 or d == 98 or d == 102 or d == 110 or d == 114 or d == 116:
                p += 2
                continue
            return 2, p, esc, E_ESCAPE, p
        if c < 32:
            return 2, p, esc, (E_LINE_ENDS if (c == 10 and lines) else E_CONTROL), p
        hi |= c
        p += 1
    return 1, p, esc, E_NONE, 0


@njit(inline="always")
def _scan_number(buf, p, end, eof):
    """``(status, q, kind, code)``: status 0 ok (number ``buf[p:q]``), 1 incomplete, 2 error at ``q``."""
    s = p
    if buf[_u(p)] == 45:
        p += 1
        if p >= end:
            return (1 if not eof else 2), p, 0, E_NUMBER
        if buf[_u(p)] == 73:  # -Infinity
            return 2, p, 0, E_NAN_INF
    c = buf[_u(p)]
    if c == 48:
        p += 1
    elif 49 <= c <= 57:
        while p < end and 48 <= buf[_u(p)] <= 57:
            p += 1
    else:
        return 2, p, 0, E_NUMBER
    nd = p - s - (1 if buf[_u(s)] == 45 else 0)
    isfloat = False
    if p < end and buf[_u(p)] == 46:
        isfloat = True
        p += 1
        q = p
        while p < end and 48 <= buf[_u(p)] <= 57:
            p += 1
        if p == q:
            return (1 if p >= end and not eof else 2), p, 0, E_NUMBER
    if p < end and (buf[_u(p)] == 101 or buf[_u(p)] == 69):
        isfloat = True
        p += 1
        if p < end and (buf[_u(p)] == 43 or buf[_u(p)] == 45):
            p += 1
        q = p
        while p < end and 48 <= buf[_u(p)] <= 57:
            p += 1
        if p == q:
            return (1 if p >= end and not eof else 2), p, 0, E_NUMBER
    if p >= end:
        if not eof:
            return 1, p, 0, E_NONE
    elif not _is_delim(buf[_u(p)]):
        return 2, p, 0, E_NUMBER
    if isfloat:
        return 0, p, K_FLOAT, E_NONE
    if nd <= 18:
        return 0, p, K_INT, E_NONE
    if nd == 19:
        ok, _ = _parse_int_span(buf, s, p, -9223372036854775807 - 1, 9223372036854775807)
        return 0, p, (K_INT if ok else K_BIGINT), E_NONE
    return 0, p, (K_BIGINT if nd <= 38 else K_HUGEINT), E_NONE


@njit(inline="always")
def _scan_literal(buf, p, end, eof):
    """``(status, q, kind, code)`` for true/false/null at ``p``."""
    c = buf[_u(p)]
    if c == 116:
        w0, w1, w2, w3, w4, ln, kind = 116, 114, 117, 101, 0, 4, K_TRUE
    elif c == 102:
        w0, w1, w2, w3, w4, ln, kind = 102, 97, 108, 115, 101, 5, K_FALSE
    else:
        w0, w1, w2, w3, w4, ln, kind = 110, 117, 108, 108, 0, 4, K_NULL
    for q in range(ln):
        if p + q >= end:
            return (1 if not eof else 2), p + q, 0, (E_NONE if not eof else E_LITERAL)
        w = w0 if q == 0 else (w1 if q == 1 else (w2 if q == 2 else (w3 if q == 3 else w4)))
        if buf[_u(p + q)] != w:
            return 2, p, 0, E_LITERAL
    q = p + ln
    if q >= end:
        if not eof:
            return 1, q, 0, E_NONE
    elif not _is_delim(buf[_u(q)]):
        return 2, p, 0, E_LITERAL
    return 0, q, kind, E_NONE


@njit(inline="always")
def _bad_value_code(c):
    if c == 39:
        return E_SINGLE_QUOTE
    if c == 78 or c == 73:  # NaN, Infinity
        return E_NAN_INF
    return E_UNEXPECTED


# -- the key tree ----------------------------------------------------------------------------------
@njit(inline="always")
def _key_hash(parent, kb, s, e):
    h = _FNV_OFFSET ^ np.uint64(parent + 1)
    for p in range(s, e):
        h = (h ^ np.uint64(kb[_u(p)])) * _FNV_PRIME
    return h ^ (h >> np.uint64(29))


@njit(inline="always")
def _node_is(k, parent, kb, s, e, node_parent, node_koff, node_kdata):
    if node_parent[_u(k)] != parent:
        return False
    a = node_koff[_u(k)]
    if node_koff[_u(k + 1)] - a != e - s:
        return False
    for t in range(e - s):
        if node_kdata[_u(a + t)] != kb[_u(s + t)]:
            return False
    return True


@njit(inline="always")
def _lookup(parent, prev, kb, s, e, node_parent, node_koff, node_kdata, node_col, node_first, node_next, htab,
            meta):
    """The node of key ``kb[s:e]`` under ``parent``, adding it if new; -1 when the table is full.

    ``prev`` is the previous key's node in the same object (-1 for the first key): the key that
    followed it last time is tried first, so regular data costs one comparison per key.
    """
    cand = node_first[_u(parent)] if prev < 0 else node_next[_u(prev)]
    if cand >= 0 and _node_is(cand, parent, kb, s, e, node_parent, node_koff, node_kdata):
        return cand
    mask = np.uint64(htab.shape[0] - 1)
    slot = _key_hash(parent, kb, s, e) & mask
    while True:
        k = htab[slot]
        if k < 0:
            break
        if _node_is(k, parent, kb, s, e, node_parent, node_koff, node_kdata):
            break
        slot = (slot + np.uint64(1)) & mask
    if k < 0:
        n = meta[M_NODES]
        used = meta[M_KDATA]
        if n + 1 >= node_parent.shape[0] or n * 2 + 2 > htab.shape[0] or used + (e - s) > node_kdata.shape[0]:
            meta[M_KEYLEN] = max(meta[M_KEYLEN], e - s)
            return -1
        for t in range(e - s):
            node_kdata[_u(used + t)] = kb[_u(s + t)]
        node_parent[_u(n)] = parent
        node_koff[_u(n + 1)] = used + (e - s)
        node_col[_u(n)] = COL_NONE
        node_first[_u(n)] = -1
        node_next[_u(n)] = -1
        htab[slot] = n
        meta[M_NODES] = n + 1
        meta[M_KDATA] = used + (e - s)
        k = n
    if prev < 0:
        node_first[_u(parent)] = k
    else:
        node_next[_u(prev)] = k
    return k


@njit(nogil=True, cache=True, _nrt=False)
def rebuild_hash(node_parent, node_koff, node_kdata, n_nodes, htab):
    """Fill ``htab`` (power-of-two length, all -1) with nodes ``1..n_nodes-1`` (node 0 is the root)."""
    htab[:] = -1
    mask = np.uint64(htab.shape[0] - 1)
    for k in range(1, n_nodes):
        slot = _key_hash(node_parent[k], node_kdata, node_koff[k], node_koff[k + 1]) & mask
        while htab[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        htab[slot] = k


# -- decoding --------------------------------------------------------------------------------------
@njit(inline="always")
def _put_utf8(out, w, cp):
    if cp < 0x80:
        out[_u(w)] = cp
        return w + 1
    if cp < 0x800:
        out[_u(w)] = 0xC0 | (cp >> 6)
        out[_u(w + 1)] = 0x80 | (cp & 0x3F)
        return w + 2
    if cp < 0x10000:
        out[_u(w)] = 0xE0 | (cp >> 12)
        out[_u(w + 1)] = 0x80 | ((cp >> 6) & 0x3F)
        out[_u(w + 2)] = 0x80 | (cp & 0x3F)
        return w + 3
    out[_u(w)] = 0xF0 | (cp >> 18)
    out[_u(w + 1)] = 0x80 | ((cp >> 12) & 0x3F)
    out[_u(w + 2)] = 0x80 | ((cp >> 6) & 0x3F)
    out[_u(w + 3)] = 0x80 | (cp & 0x3F)
    return w + 4


@njit(nogil=True, cache=True, _nrt=False)
def decode_string_into(buf, s, e, out, w):
    """Copy the string body ``buf[s:e]`` (validated by :func:`scan_string`) into ``out[w:]`` undoing
    escapes; returns the end in ``out``. The output is never longer than the input."""
    p = s
    while p < e:
        c = buf[_u(p)]
        if c != 92:
            out[_u(w)] = c
            w += 1
            p += 1
            continue
        d = buf[_u(p + 1)]
        if d == 117:
            cp = _hex4(buf, p + 2)
            p += 6
            if 0xD800 <= cp <= 0xDBFF:
                cp = 0x10000 + ((cp - 0xD800) << 10) + (_hex4(buf, p + 2) - 0xDC00)
                p += 6
            w = _put_utf8(out, w, cp)
            continue
        if d == 98:
            c = 8
        elif d == 102:
            c = 12
        elif d == 110:
            c = 10
        elif d == 114:
            c = 13
        elif d == 116:
            c = 9
        else:
            c = d
        out[_u(w)] = c
        w += 1
        p += 2
    return w


# -- one value -----------------------------------------------------------------------------------
@njit(inline="always")
def _emit(ev, evk, evn, slot, parent, kind, s, e, row):
    """Append an event (nested="keep"); its index, or -1 (and ``evn[1]`` set) when the list is full."""
    i = evn[0]
    if i >= evk.shape[0]:
        evn[1] = 1
        return -1
    ev[i, EV_SLOT] = slot
    ev[i, EV_PARENT] = parent
    ev[i, EV_START] = s
    ev[i, EV_END] = e
    ev[i, EV_ROW] = row
    evk[i] = kind
    evn[0] = i + 1
    return i


@njit(inline="always")
def _close_kept(d, p, kind, base, kinds, starts, ends, node_col, nstk, astk, estk, ev, pending, npend):
    """nested="keep": the container at depth ``d`` closed at ``p``; record its span, or list its node."""
    an = nstk[_u(d)]
    if an >= 0 and d >= 1:
        ei = estk[_u(d)]
        if ei >= 0:
            ev[ei, EV_END] = p + 1
        col = node_col[_u(an)]
        if col < 0:
            if npend < pending.shape[0]:
                pending[_u(npend)] = an * 2 + 1
                npend += 1
        elif d == 1:
            kinds[_u(base + col)] = kind
            starts[_u(base + col)] = astk[_u(d)]
            ends[_u(base + col)] = p + 1
    return npend


@njit(inline="always")
def parse_value(buf, p, end, eof, lines, root, max_depth, stk, nstk, pstk, astk, base, kinds, starts, ends,
                node_parent, node_koff, node_kdata, node_col, node_first, node_next, htab, meta, pending,
                kscratch, keep, estk, ev, evk, evn):
    """Parse the JSON value starting at ``buf[p]`` (not whitespace).

    ``root`` >= 0: the value is a record; its objects are flattened along nodes below ``root`` and each
    leaf with a column is stored at ``kinds/starts/ends[base + column]``; leaves of nodes without a
    column are listed in ``pending`` (``node * 2 + (1 if not null)``). ``root`` < 0: validate only.
    ``lines``: a newline inside the value is an error (JSON lines).

    ``keep`` (nested="keep" when ``(True,)``, flatten when ``()``: a tuple, so that each mode compiles to
    its own code and flatten's carries none of keep's branches): only the record's own members (depth 1) go to ``kinds/starts/ends``,
    objects and arrays there included (kind and exact text); arrays get an element node (key
    :data:`ELEMENT_KEY`) so their elements are tracked too, and every value deeper than the members
    -- and every member that is an object or array -- is appended to the events ``ev/evk`` (see
    :func:`tokenize`) with the index of its enclosing container's event as parent (the row,
    ``evn[2]``, for a member), so a value is found from its container. Node columns below the
    members number events, not ``kinds`` slots.

    Returns ``(status, q, code, err_pos, newlines, is_object, n_pending)``; status 0 ok (value ends at
    ``q``), 1 incomplete (needs bytes past ``end``), 2 error, 3 key table full.
    """
    d = 0
    nl = 0
    npend = 0
    is_obj = buf[_u(p)] == 123
    vnode = root if is_obj else -1
    st = 0  # 0 value, 1 key or '}', 2 key, 3 after a value, 4 value or ']', 5 value after ',' in an array
    while True:
        if st == 3 and d == 0:
            return 0, p, E_NONE, 0, nl, is_obj, npend
        if st != 0 or d > 0:
            while p < end and _is_ws(buf[_u(p)]):
                if buf[_u(p)] == 10:
                    if lines:
                        return 2, p, E_LINE_ENDS, p, nl, is_obj, npend
                    nl += 1
                p += 1
        if p >= end:
            if eof:
                return 2, p, E_TRUNCATED, p, nl, is_obj, npend
            return 1, p, E_NONE, 0, nl, is_obj, npend
        c = buf[_u(p)]
        if st == 3:
            top = stk[_u(d - 1)]
            if c == 44:
                p += 1
                st = 2 if top == 1 else 5
            elif c == 125 and top == 1:
                d -= 1
                if len(keep):
                    npend = _close_kept(d, p, K_OBJECT, base, kinds, starts, ends, node_col, nstk, astk, estk, ev,
                                        pending, npend)
                p += 1
            elif c == 93 and top == 2:
                d -= 1
                an = nstk[_u(d)]
                if len(keep):
                    npend = _close_kept(d, p, K_ARRAY, base, kinds, starts, ends, node_col, nstk, astk, estk, ev,
                                        pending, npend)
                elif an >= 0:
                    col = node_col[_u(an)]
                    if col >= 0:
                        kinds[_u(base + col)] = K_ARRAY
                        starts[_u(base + col)] = astk[_u(d)]
                        ends[_u(base + col)] = p + 1
                    elif npend < pending.shape[0]:
                        pending[_u(npend)] = an * 2 + 1
                        npend += 1
                p += 1
            else:
                return 2, p, (E_EXPECTED_COMMA_OBJ if top == 1 else E_EXPECTED_COMMA_ARR), p, nl, is_obj, npend
            continue
        if st == 1 or st == 2:
            if c == 125:
                if st == 2:
                    return 2, p, E_TRAILING_COMMA, p, nl, is_obj, npend
                d -= 1
                if len(keep):
                    npend = _close_kept(d, p, K_OBJECT, base, kinds, starts, ends, node_col, nstk, astk, estk, ev,
                                        pending, npend)
                p += 1
                st = 3
                continue
            if c != 34:
                return 2, p, (E_SINGLE_QUOTE if c == 39 else E_EXPECTED_KEY), p, nl, is_obj, npend
            ks = p + 1
            r, ke, esc, code, ep = scan_string(buf, ks, end, lines)
            if r == 1:
                if eof:
                    return 2, end, E_TRUNCATED, end, nl, is_obj, npend
                return 1, end, E_NONE, 0, nl, is_obj, npend
            if r == 2:
                return 2, ep, code, ep, nl, is_obj, npend
            p = ke + 1
            while p < end and _is_ws(buf[_u(p)]):
                if buf[_u(p)] == 10:
                    if lines:
                        return 2, p, E_LINE_ENDS, p, nl, is_obj, npend
                    nl += 1
                p += 1
            if p >= end:
                if eof:
                    return 2, p, E_TRUNCATED, p, nl, is_obj, npend
                return 1, p, E_NONE, 0, nl, is_obj, npend
            if buf[_u(p)] != 58:
                return 2, p, E_EXPECTED_COLON, p, nl, is_obj, npend
            p += 1
            parent = nstk[_u(d - 1)]
            vnode = -1
            if parent >= 0:
                kb = buf
                if esc:
                    if ke - ks > kscratch.shape[0]:
                        meta[M_KEYLEN] = max(meta[M_KEYLEN], ke - ks)
                        return 3, p, E_NONE, 0, nl, is_obj, npend
                    kb = kscratch
                    ke = decode_string_into(buf, ks, ke, kscratch, 0)
                    ks = 0
                vnode = _lookup(parent, pstk[_u(d - 1)], kb, ks, ke, node_parent, node_koff, node_kdata, node_col,
                                node_first, node_next, htab, meta)
                if vnode < 0:
                    return 3, p, E_NONE, 0, nl, is_obj, npend
                pstk[_u(d - 1)] = vnode
            st = 0
            continue
        if st == 4 or st == 5:
            if c == 93:
                if st == 5:
                    return 2, p, E_TRAILING_COMMA, p, nl, is_obj, npend
                st = 3  # an empty array: closed by the st == 3 branch
                continue
            vnode = pstk[_u(d - 1)] if len(keep) else -1  # an array's element node (nested="keep")
            st = 0
        # st == 0: a value at p
        if c == 123 or c == 91:
            if d >= max_depth:
                return 2, p, E_DEPTH, p, nl, is_obj, npend
            stk[_u(d)] = 1 if c == 123 else 2
            nstk[_u(d)] = vnode
            pstk[_u(d)] = -1
            astk[_u(d)] = p
            if len(keep):
                ei = -1
                if vnode >= 0 and d >= 1:
                    col = node_col[_u(vnode)]
                    if col >= 0:
                        kind = K_OBJECT if c == 123 else K_ARRAY
                        if d == 1:
                            ei = _emit(ev, evk, evn, -(col + 1), evn[2], kind, p, p, evn[2])
                        elif estk[_u(d - 1)] >= 0:
                            ei = _emit(ev, evk, evn, col, estk[_u(d - 1)], kind, p, p, evn[2])
                    if c == 91:
                        en = _lookup(vnode, -1, ELEMENT_KEY, 0, 1, node_parent, node_koff, node_kdata, node_col,
                                     node_first, node_next, htab, meta)
                        if en < 0:
                            return 3, p, E_NONE, 0, nl, is_obj, npend
                        pstk[_u(d)] = en
                estk[_u(d)] = ei
            d += 1
            p += 1
            st = 1 if c == 123 else 4
            continue
        if c == 34:
            r, q, esc, code, ep = scan_string(buf, p + 1, end, lines)
            if r == 1:
                if eof:
                    return 2, end, E_TRUNCATED, end, nl, is_obj, npend
                return 1, end, E_NONE, 0, nl, is_obj, npend
            if r == 2:
                return 2, ep, code, ep, nl, is_obj, npend
            kind = K_STRESC if esc else K_STR
            s = p + 1
            e = q
            p = q + 1
        elif c == 45 or 48 <= c <= 57:
            r, q, kind, code = _scan_number(buf, p, end, eof)
            if r == 1:
                return 1, q, E_NONE, 0, nl, is_obj, npend
            if r == 2:
                return 2, q, code, q, nl, is_obj, npend
            s = p
            e = q
            p = q
        elif c == 116 or c == 102 or c == 110:
            r, q, kind, code = _scan_literal(buf, p, end, eof)
            if r == 1:
                return 1, q, E_NONE, 0, nl, is_obj, npend
            if r == 2:
                return 2, q, code, q, nl, is_obj, npend
            s = p
            e = q
            p = q
        else:
            return 2, p, _bad_value_code(c), p, nl, is_obj, npend
        if vnode >= 0:
            col = node_col[_u(vnode)]
            if col >= 0:
                if len(keep) and d >= 2:
                    if estk[_u(d - 1)] >= 0:
                        _emit(ev, evk, evn, col, estk[_u(d - 1)], kind, s, e, evn[2])
                else:
                    kinds[_u(base + col)] = kind
                    starts[_u(base + col)] = s
                    ends[_u(base + col)] = e
            elif (col == COL_NONE or kind != K_NULL) and npend < pending.shape[0]:
                pending[_u(npend)] = vnode * 2 + (0 if kind == K_NULL else 1)
                npend += 1
        st = 3


# -- records of a block ----------------------------------------------------------------------------
# The structural kernels allocate nothing, so they are compiled without NRT: otherwise every array
# handed to an inlined helper costs an atomic incref/decref pair, per key and per value.
@njit(nogil=True, cache=True, _nrt=False)
def tokenize(buf, pos, end, eof, mode, state, line, max_rows, max_depth, skip_errors,
             node_parent, node_koff, node_kdata, node_col, node_first, node_next, node_seen, htab, meta,
             ns, kinds, starts, ends, colmask, row_start, row_end, row_line,
             rej_start, rej_end, rej_code, rej_pos, rej_line, stk, nstk, pstk, astk, pending, kscratch,
             keep, estk, ev, evk, evn, evmask):
    """Split ``buf[pos:end]`` into records and fill the per-row spans of their columns.

    ``mode`` LINES: one object per line (blank lines skipped). ARRAY: the elements of a top-level
    array; ``state`` 0 right after ``[``, 1 after an element, 2 after a ``,`` (carried between calls).
    ``kinds/starts/ends`` hold ``max_rows * ns`` slots; ``colmask[c]`` gets bit ``1 << kind`` of every
    value of column ``c`` in accepted rows. With ``skip_errors`` a bad line (LINES) or a non-object
    element is listed in ``rej_*`` and skipped; otherwise the first one stops the pass with ERROR.
    ``meta[M_NEED]`` is set when a node without a column got a value (``node_seen`` bit 1: a
    non-null value, bit 2: null): the caller gives it a column and tokenizes the chunk again.

    ``keep`` (nested="keep" when ``(True,)``, see :func:`parse_value`): the events of accepted records, in document
    order, are ``ev[i, EV_SLOT/EV_PARENT/EV_START/EV_END/EV_ROW]`` and ``evk[i]`` (kind) for
    ``i < evn[0]``. Slot ``-(c + 1)`` is a member of the record in column ``c`` (its parent is the
    row), slot ``s >= 0`` a node numbered ``s`` below the members (its parent the event of its
    container); an object's or array's span is its exact text. ``evmask[s]`` gets bit ``1 << kind``
    of every event of slot ``s``.

    Returns ``(n_rows, n_rej, next_pos, next_line, next_state, status, code, err_pos, err_line,
    rec_start)``; status DONE (input used up; ARRAY: after the closing ``]``), NEED_MORE (the record
    at ``next_pos`` continues past ``end``), FULL (``max_rows`` or the reject list is full), ERROR,
    TABLE_FULL (grow the key table, then go on from ``next_pos``), EVENTS_FULL (grow the events).
    """
    n = 0
    nrej = 0
    p = pos
    for cc in range(ns):
        colmask[cc] = 0
    if len(keep):
        evn[0] = 0
        evn[1] = 0
        for cc in range(evmask.shape[0]):
            evmask[cc] = 0
    while True:
        # between records
        if mode == LINES:
            while p < end and _is_ws(buf[_u(p)]):
                if buf[_u(p)] == 10:
                    line += 1
                p += 1
            if p >= end:
                return n, nrej, p, line, state, (DONE if eof else NEED_MORE), E_NONE, 0, line, p
        else:
            while p < end and _is_ws(buf[_u(p)]):
                if buf[_u(p)] == 10:
                    line += 1
                p += 1
            if p >= end:
                if eof:
                    return n, nrej, p, line, state, ERROR, E_TRUNCATED, p, line, p
                return n, nrej, p, line, state, NEED_MORE, E_NONE, 0, line, p
            c = buf[_u(p)]
            if state == 1:
                if c == 44:
                    p += 1
                    state = 2
                    continue
                if c == 93:
                    return n, nrej, p + 1, line, state, DONE, E_NONE, 0, line, p
                return n, nrej, p, line, state, ERROR, E_EXPECTED_ARRAY_SEP, p, line, p
            if c == 93:
                if state == 2:
                    return n, nrej, p, line, state, ERROR, E_TRAILING_COMMA, p, line, p
                return n, nrej, p + 1, line, state, DONE, E_NONE, 0, line, p
        if n >= max_rows or nrej >= rej_start.shape[0]:
            return n, nrej, p, line, state, FULL, E_NONE, 0, line, p
        base = n * ns
        for cc in range(ns):
            kinds[_u(base + cc)] = K_MISSING
        rec = p
        ne0 = ne1 = 0
        if len(keep):
            ne0 = evn[0]
            evn[2] = n
        st, q, code, ep, nl, is_obj, npend = parse_value(
            buf, p, end, eof, mode == LINES, 0, max_depth, stk, nstk, pstk, astk, base, kinds, starts, ends,
            node_parent, node_koff, node_kdata, node_col, node_first, node_next, htab, meta, pending, kscratch,
            keep, estk, ev, evk, evn)
        if len(keep):
            ne1 = evn[0]
            evn[0] = ne0  # kept only for an accepted record (below)
            if evn[1]:
                evn[1] = 0
                if st != 2:
                    return n, nrej, rec, line, state, EVENTS_FULL, E_NONE, 0, line, rec
        if st == 1:
            return n, nrej, rec, line, state, NEED_MORE, E_NONE, 0, line, rec
        if st == 3:
            return n, nrej, rec, line, state, TABLE_FULL, E_NONE, 0, line, rec
        if st == 0 and mode == LINES:  # only blanks may follow on the line
            while q < end and (buf[_u(q)] == 32 or buf[_u(q)] == 9 or buf[_u(q)] == 13):
                q += 1
            if q >= end and not eof:
                return n, nrej, rec, line, state, NEED_MORE, E_NONE, 0, line, rec
            if q < end and buf[_u(q)] != 10:
                st, code, ep = 2, E_GARBAGE, q
        if st == 0 and not is_obj:
            st, code, ep = 2, E_NOT_OBJECT, rec
        if st == 2:
            eline = line + nl
            if not skip_errors or (mode == ARRAY and code != E_NOT_OBJECT):
                return n, nrej, rec, line, state, ERROR, code, ep, eline, rec
            if mode == LINES:
                stop = ep if code != E_NOT_OBJECT else q
                while stop < end and buf[_u(stop)] != 10:
                    stop += 1
                if stop >= end and not eof:
                    return n, nrej, rec, line, state, NEED_MORE, E_NONE, 0, line, rec
                rec_stop = stop
                while rec_stop > rec and (buf[_u(rec_stop - 1)] == 13):
                    rec_stop -= 1
            else:
                stop = q
                rec_stop = q
            rej_start[_u(nrej)] = rec
            rej_end[_u(nrej)] = rec_stop
            rej_code[_u(nrej)] = code
            rej_pos[_u(nrej)] = ep
            rej_line[_u(nrej)] = eline
            nrej += 1
            p = stop
            line += nl
            if mode == ARRAY:
                state = 1
            continue
        # an accepted record
        for t in range(npend):
            nd = pending[t] >> 1
            node_seen[nd] |= np.uint8(1 if (pending[t] & 1) else 2)
            meta[M_NEED] = 1
        for cc in range(ns):
            k = kinds[_u(base + cc)]
            if k != K_MISSING:
                colmask[cc] |= np.int64(1) << np.int64(k)
        if len(keep):
            for i in range(ne0, ne1):
                sl = ev[i, EV_SLOT]
                if 0 <= sl < evmask.shape[0]:
                    evmask[sl] |= np.int64(1) << np.int64(evk[i])
            evn[0] = ne1
        row_start[_u(n)] = rec
        row_end[_u(n)] = q
        row_line[_u(n)] = line
        n += 1
        line += nl
        p = q
        if mode == ARRAY:
            state = 1


_Z8 = np.zeros(1, dtype=np.uint8)
_Z32 = np.full(1, -1, dtype=np.int32)
_Z64 = np.zeros(4, dtype=np.int64)
_ZEV = np.zeros((1, 5), dtype=np.int64)


def skip_value(buf, p, end, eof, max_depth, stk, nstk, pstk, astk):
    """Validate the value at ``buf[p]``: ``(status, q, code, err_pos, newlines)`` as :func:`parse_value`."""
    return _skip_value(buf, p, end, eof, max_depth, stk, nstk, pstk, astk, _Z8, _Z32, _Z64, _ZEV)


@njit(nogil=True, cache=True, _nrt=False)
def _skip_value(buf, p, end, eof, max_depth, stk, nstk, pstk, astk, z8, z32, z64, zev):
    st, q, code, ep, nl, _, _ = parse_value(buf, p, end, eof, False, -1, max_depth, stk, nstk, pstk, astk, 0, z8,
                                            z64, z64, z32, z64, z8, z32, z32, z32, z32, z64, z64, z8,
                                            (), z64, zev, z8, z64)
    return st, q, code, ep, nl


# -- typed extraction (worker threads) -----------------------------------------------------------
@njit(inline="always")
def _error(row_err, r, nerr, first):
    row_err[_u(r)] = 1
    return nerr + 1, (r if first < 0 else first)


@njit(nogil=True, cache=True, _nrt=False)
def extract_int(buf, kinds, starts, ends, ns, col, n, lo, hi, out_values, out_validity, row_err, stop_at_first):
    """JSON integers within ``lo..hi`` into ``out_values``; ``(null_count, n_errors, first_err_row)``."""
    nulls = 0
    nerr = 0
    first = -1
    for r in range(n):
        i = r * ns + col
        k = kinds[_u(i)]
        out_values[_u(r)] = 0
        if k <= K_NULL:
            nulls += 1
            continue
        ok = False
        v = 0
        if k == K_INT:
            s = starts[_u(i)]
            e = ends[_u(i)]
            p = s + 1 if (s < e and buf[_u(s)] == 45) else s
            if 0 < e - p <= 18:  # cannot overflow int64 (the scanner already checked the grammar)
                ok, v = digits18(buf, p, e)
                if p > s:
                    v = -v
                if ok and (v < lo or v > hi):
                    ok = False
            else:
                ok, v = _parse_int_span(buf, s, e, lo, hi)
        if ok:
            out_values[_u(r)] = v
            _set_bit(out_validity, r)
            continue
        nulls += 1
        nerr, first = _error(row_err, r, nerr, first)
        if stop_at_first:
            break
    return nulls, nerr, first


@njit(nogil=True, cache=True, _nrt=False)
def extract_float(buf, kinds, starts, ends, ns, col, n, out_values, out_validity, slow_rows, row_err,
                  stop_at_first):
    """JSON numbers into ``out_values`` (float64/32); rows beyond the exact fast path go to
    ``slow_rows`` (validity set). ``(null_count, n_errors, first_err_row, n_slow)``."""
    f32 = out_values.itemsize == 4
    nulls = 0
    nerr = 0
    first = -1
    nslow = 0
    for r in range(n):
        i = r * ns + col
        k = kinds[_u(i)]
        out_values[_u(r)] = 0
        if k <= K_NULL:
            nulls += 1
            continue
        st = 0
        v = 0.0
        if K_INT <= k <= K_FLOAT:
            st, v = _parse_float_span(buf, starts[_u(i)], ends[_u(i)])
            if st == 1 and f32:
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
        nulls += 1
        nerr, first = _error(row_err, r, nerr, first)
        if stop_at_first:
            break
    return nulls, nerr, first, nslow


@njit(nogil=True, cache=True, _nrt=False)
def extract_decimal(buf, kinds, starts, ends, ns, col, n, precision, scale, out_values, out_validity, slow_rows,
                    row_err, stop_at_first):
    """JSON numbers into decimal lo/hi words; values beyond int64 go to ``slow_rows``."""
    nulls = 0
    nerr = 0
    first = -1
    nslow = 0
    for r in range(n):
        i = r * ns + col
        k = kinds[_u(i)]
        out_values[r, 0] = 0
        out_values[r, 1] = 0
        if k <= K_NULL:
            nulls += 1
            continue
        st = 0
        v = 0
        if K_INT <= k <= K_FLOAT:
            st, v = _parse_decimal_span(buf, starts[_u(i)], ends[_u(i)], precision, scale)
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
        nulls += 1
        nerr, first = _error(row_err, r, nerr, first)
        if stop_at_first:
            break
    return nulls, nerr, first, nslow


@njit(nogil=True, cache=True, _nrt=False)
def extract_bool(kinds, ns, col, n, out_values, out_validity, row_err, stop_at_first):
    """true/false into the ``out_values`` bitmap (zeroed by the caller)."""
    nulls = 0
    nerr = 0
    first = -1
    for r in range(n):
        k = kinds[_u(r * ns + col)]
        if k <= K_NULL:
            nulls += 1
            continue
        if k == K_TRUE or k == K_FALSE:
            if k == K_TRUE:
                _set_bit(out_values, r)
            _set_bit(out_validity, r)
            continue
        nulls += 1
        nerr, first = _error(row_err, r, nerr, first)
        if stop_at_first:
            break
    return nulls, nerr, first


@njit(nogil=True, cache=True, _nrt=False)
def extract_temporal(buf, kinds, starts, ends, ns, col, n, is_date, want_tz, out_values, out_validity, row_err,
                     stop_at_first):
    """ISO-8601 strings into int32 days (``is_date``) or int64 µs (UTC; see parse_timestamp_column)."""
    nulls = 0
    nerr = 0
    first = -1
    for r in range(n):
        i = r * ns + col
        k = kinds[_u(i)]
        out_values[_u(r)] = 0
        if k <= K_NULL:
            nulls += 1
            continue
        ok = False
        v = 0
        if k == K_STR:
            s = starts[_u(i)]
            e = ends[_u(i)]
            if is_date:
                if e - s == 10:
                    ok, v = _parse_date_at(buf, s, e)
            else:
                ok, v, tz = _parse_ts_span(buf, s, e)
                ok = ok and (want_tz or not tz)
        if ok:
            out_values[_u(r)] = v
            _set_bit(out_validity, r)
            continue
        nulls += 1
        nerr, first = _error(row_err, r, nerr, first)
        if stop_at_first:
            break
    return nulls, nerr, first


@njit(nogil=True, cache=True, _nrt=False)
def text_column_size(kinds, starts, ends, ns, col, n):
    """Upper bound of the bytes :func:`extract_text` writes (quotes included)."""
    total = 0
    for r in range(n):
        i = r * ns + col
        if kinds[_u(i)] > K_NULL:
            total += ends[_u(i)] - starts[_u(i)] + 2
    return total


@njit(nogil=True, cache=True, _nrt=False)
def extract_text(buf, kinds, starts, ends, ns, col, n, as_json, out_offsets, out_data, out_validity):
    """Strings (escapes decoded) or, for other kinds, their JSON text into Arrow offsets + data.

    ``as_json``: every value as its exact JSON text (strings keep their quotes and escapes).
    Returns ``(null_count, total_bytes)``; ``out_data`` must hold :func:`text_column_size` bytes.
    """
    if out_offsets.shape[0] < n + 1:
        raise ValueError("extract_text: out_offsets is shorter than n + 1")
    nulls = 0
    w = 0
    out_offsets[_u(0)] = 0
    for r in range(n):
        i = r * ns + col
        k = kinds[_u(i)]
        if k <= K_NULL:
            nulls += 1
            out_offsets[_u(r + 1)] = w
            continue
        s = starts[_u(i)]
        e = ends[_u(i)]
        if (k == K_STR or k == K_STRESC) and as_json:
            s -= 1
            e += 1
        if w + (e - s) > out_data.shape[0]:
            raise ValueError("extract_text: out_data too small (use text_column_size)")
        if k == K_STRESC and not as_json:
            w = decode_string_into(buf, s, e, out_data, w)
        else:
            for t in range(e - s):  # not a slice copy: that could allocate, and kernels run without NRT
                out_data[_u(w + t)] = buf[_u(s + t)]
            w += e - s
        out_offsets[_u(r + 1)] = w
        _set_bit(out_validity, r)
    return nulls, w


@njit(nogil=True, cache=True, _nrt=False)
def infer_strings(buf, kinds, starts, ends, ns, col, n):
    """``(mask, n_strings)``: AND over the string values of column ``col`` of the temporal ``T_*`` bits
    (``T_DATE`` 8, ``T_TS`` 16, ``T_TSTZ`` 32) each could be; other kinds clear the mask."""
    mask = 8 | 16 | 32
    cnt = 0
    for r in range(n):
        i = r * ns + col
        k = kinds[_u(i)]
        if k <= K_NULL:
            continue
        cnt += 1
        if k != K_STR:
            mask = 0
            continue
        if mask == 0:
            continue
        s = starts[_u(i)]
        e = ends[_u(i)]
        m = 0
        if e - s >= 10:
            ok, _, tz = _parse_ts_span(buf, s, e)
            if ok:
                m = 32 if tz else 16
                if e - s == 10:
                    m |= 8
        mask &= m
    return mask, cnt


# -- cutting JSON lines into chunks (reader thread) -------------------------------------------------
@njit(nogil=True, cache=True, _nrt=False)
def cut_lines(buf, pos, end, max_lines):
    """``(cut, n_lines)``: ``buf[pos:cut]`` holds whole lines -- up to the ``max_lines``-th newline
    after ``pos``, else up to the last newline before ``end`` -- and ``n_lines`` newlines; ``cut``
    is ``pos`` when there is none. A raw newline never occurs inside a valid JSON value, so each
    piece can be tokenized on its own (in parallel)."""
    n = 0
    p = pos
    step = 4096
    while p + step <= end:
        c = 0
        for i in range(p, p + step):
            if buf[_u(i)] == 10:
                c += 1
        if n + c >= max_lines:
            break
        n += c
        p += step
    while p < end:
        if buf[_u(p)] == 10:
            n += 1
            if n >= max_lines:
                return p + 1, n
        p += 1
    q = end - 1
    while q >= pos and buf[_u(q)] != 10:
        q -= 1
    return q + 1, n


# -- dictionary-encoded text columns (worker threads) --------------------------------------------------
@njit(inline="always")
def _dict_find(src, s, e, table, mask, dict_offsets, dict_data):
    h = _FNV_OFFSET
    for p in range(s, e):
        h = (h ^ np.uint64(src[_u(p)])) * _FNV_PRIME
    slot = (h ^ (h >> np.uint64(29))) & mask
    ln = e - s
    while True:
        k = table[slot]
        if k < 0:
            return -1, slot
        a = dict_offsets[_u(k)]
        if dict_offsets[_u(k + 1)] - a == ln:
            same = True
            for t in range(ln):
                if dict_data[_u(a + t)] != src[_u(s + t)]:
                    same = False
                    break
            if same:
                return k, slot
        slot = (slot + np.uint64(1)) & mask


@njit(nogil=True, cache=True, _nrt=False)
def extract_dict(buf, kinds, starts, ends, ns, col, n, table, dict_offsets, dict_data, max_entries, out_codes,
                 out_validity):
    """JSON strings of column ``col`` (escapes decoded) as int32 codes into a dictionary.

    ``table`` (int32, power-of-two length >= 2 * ``max_entries``) is cleared here; entries go to
    ``dict_offsets`` (int32) / ``dict_data``. Returns ``(null_count, n_entries, status)``; status 1
    when the dictionary would exceed ``max_entries`` or ``dict_data``, or a value is not a string
    (the caller then writes plain text): the outputs are incomplete.
    """
    table[:] = -1
    mask = np.uint64(table.shape[0] - 1)
    cap = dict_data.shape[0]
    nulls = 0
    n_entries = 0
    used = 0
    dict_offsets[_u(0)] = 0
    for r in range(n):
        i = r * ns + col
        k = kinds[_u(i)]
        out_codes[_u(r)] = 0
        if k <= K_NULL:
            nulls += 1
            continue
        s = starts[_u(i)]
        e = ends[_u(i)]
        if k == K_STR:
            code, slot = _dict_find(buf, s, e, table, mask, dict_offsets, dict_data)
            ln = e - s
            if code < 0:
                if n_entries >= max_entries or used + ln > cap:
                    return nulls, n_entries, 1
                for t in range(ln):
                    dict_data[_u(used + t)] = buf[_u(s + t)]
        elif k == K_STRESC:
            if used + (e - s) > cap:
                return nulls, n_entries, 1
            w = decode_string_into(buf, s, e, dict_data, used)
            code, slot = _dict_find(dict_data, used, w, table, mask, dict_offsets, dict_data)
            ln = w - used
            if code < 0 and n_entries >= max_entries:
                return nulls, n_entries, 1
        else:
            return nulls, n_entries, 1
        if code < 0:
            used += ln
            code = n_entries
            dict_offsets[_u(n_entries + 1)] = used
            table[slot] = code
            n_entries += 1
        out_codes[_u(r)] = code
        _set_bit(out_validity, r)
    return nulls, n_entries, 0


# -- nested Arrow values as JSON text (destinations that store text) ----------------------------------------
_NULL_TEXT = np.frombuffer(b"null", dtype=np.uint8)


@njit(inline="always")
def _is_valid(validity, has_nulls, i):
    return (not has_nulls) or ((validity[_u(i >> 3)] >> (i & 7)) & 1) == 1


@njit(inline="always")
def _copy_span(src, a, b, out, w):
    for j in range(a, b):
        out[_u(w)] = src[_u(j)]
        w += 1
    return w


@njit(nogil=True, cache=True, _nrt=False)
def render_struct(n, cdata, coffs, keys, koffs, validity, has_nulls, out, offs):
    """Rows of a struct as JSON objects ``{"k0":v0,"k1":v1}`` (``null`` where the struct is null).

    Child ``c``'s text of row ``i`` is ``cdata[coffs[c, i]:coffs[c, i + 1]]``; ``keys[koffs[c]:koffs[c +
    1]]`` is its ``"name":`` already escaped. ``out`` must hold the children's text plus ``n`` times
    the keys, braces and commas (or ``null``); row ``i`` ends up at ``out[offs[i]:offs[i + 1]]``.
    """
    nc = coffs.shape[0]
    w = 0
    offs[_u(0)] = 0
    for i in range(n):
        if not _is_valid(validity, has_nulls, i):
            w = _copy_span(_NULL_TEXT, 0, 4, out, w)
        else:
            out[_u(w)] = 123
            w += 1
            for c in range(nc):
                if c:
                    out[_u(w)] = 44
                    w += 1
                w = _copy_span(keys, koffs[_u(c)], koffs[_u(c + 1)], out, w)
                w = _copy_span(cdata, coffs[c, i], coffs[c, i + 1], out, w)
            out[_u(w)] = 125
            w += 1
        offs[_u(i + 1)] = w
    return w


@njit(nogil=True, cache=True, _nrt=False)
def render_list(n, edata, eoffs, loffs, validity, has_nulls, out, offs):
    """Rows of a list as JSON arrays ``[e0,e1]`` (``null`` where the list is null): the elements of
    row ``i`` are ``loffs[i]..loffs[i + 1]``, element ``k``'s text ``edata[eoffs[k]:eoffs[k + 1]]``."""
    w = 0
    offs[_u(0)] = 0
    for i in range(n):
        if not _is_valid(validity, has_nulls, i):
            w = _copy_span(_NULL_TEXT, 0, 4, out, w)
        else:
            out[_u(w)] = 91
            w += 1
            for k in range(loffs[_u(i)], loffs[_u(i + 1)]):
                if k > loffs[_u(i)]:
                    out[_u(w)] = 44
                    w += 1
                w = _copy_span(edata, eoffs[_u(k)], eoffs[_u(k + 1)], out, w)
            out[_u(w)] = 93
            w += 1
        offs[_u(i + 1)] = w
    return w
