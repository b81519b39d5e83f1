"""Turning a chunk of CSV field spans into typed batch columns (runs in worker threads).

Per column one kernel call converts every row (GIL released). Rows with the wrong field count or
a value that does not fit are, by policy, an error, or rejected (then the clean rows are parsed
again: the rare path stays simple and the common path stays a straight run of kernels).
"""

from __future__ import annotations

import threading

import numpy as np

from ...errors import ParseError, TypeCoercionError
from ..base import ParseStats

_local = threading.local()


def _dict_scratch(max_entries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-thread hash table and dictionary buffers for ``max_entries`` entries."""
    d = getattr(_local, "d", None)
    if d is None or d[1].shape[0] < max_entries + 1:
        size = 1 << max(4, int(2 * max_entries - 1).bit_length())
        d = (np.empty(size, dtype=np.int32), np.empty(max_entries + 1, dtype=np.int32),
             np.empty(max(1 << 16, max_entries * 64), dtype=np.uint8))
        _local.d = d
    return d


def _dict_column(src, buf, tok, rows, j, col, m, row_err, stop, validate) -> tuple[int, int]:
    """Dictionary-encode column ``j`` into ``col``; falls back to Arrow's encoder on overflow."""
    import pyarrow as pa

    from ...kernels import dictionary as kd
    from ...kernels import parse as kp

    nd, no = src._nulls_string
    table, doff, ddata = _dict_scratch(src.opts.dictionary_max)
    nulls, nerr, first, k, status = kd.dict_encode_column(
        buf, tok.starts, tok.ends, tok.flags, rows, j, m, nd, no, src.opts.quoted_null, src._q, src._esc, table,
        doff, ddata, src.opts.dictionary_max, col.values, col.validity, row_err, stop, validate)
    if status == kd.OK:
        used = int(doff[k])
        col.dictionary = pa.Array.from_buffers(pa.string(), int(k), [None, pa.py_buffer(doff[:k + 1].copy()),
                                                                     pa.py_buffer(ddata[:used].copy())])
        return int(nulls), int(first)
    # too many distinct values in this batch: plain strings, then Arrow's (C++) dictionary encoder
    col.validity[:] = 0
    row_err[:m] = 0
    total = kp.string_column_size(buf, tok.starts, tok.ends, tok.flags, rows, j, m)
    data = col.reserve_data(int(total))
    nulls, nerr, first, _ = kp.gather_string_column(buf, tok.starts, tok.ends, tok.flags, rows, j, m, nd, no,
                                                    src.opts.quoted_null, src._q, src._esc, col.offsets, data,
                                                    col.validity, row_err, stop, validate)
    valid = pa.py_buffer(col.validity) if nulls else None
    arr = pa.Array.from_buffers(pa.string(), m, [valid, pa.py_buffer(col.offsets), pa.py_buffer(data)], int(nulls))
    enc = arr.dictionary_encode()
    col.values[:m] = np.asarray(enc.indices.fill_null(0))
    col.dictionary = enc.dictionary
    return int(nulls), int(first)


def _scratch(n: int) -> tuple[np.ndarray, np.ndarray]:
    s = getattr(_local, "s", None)
    if s is None or s[0].shape[0] < n:
        s = (np.zeros(max(n, 1024), dtype=np.uint8), np.empty(max(n, 1024), dtype=np.int64))
        _local.s = s
    s[0][:n] = 0
    return s


def _text(raw: bytes, limit: int = 60) -> str:
    t = raw.decode("utf-8", errors="replace")
    return t if len(t) <= limit else t[:limit] + "…"


def parse_tokens(src, tok, batch, rejects) -> ParseStats:
    o = src.opts
    schema = src.schema
    ncol = len(schema)
    n = tok.n_rows
    buf = tok.block.buf
    base = tok.block.base
    rf = tok.row_first
    counts = rf[1:n + 1] - rf[:n]
    bad = counts != ncol
    rows, lines, offs = rf[:n], tok.row_line[:n], tok.row_offset[:n]
    rejected = 0
    if bad.any():
        idx = np.flatnonzero(bad)
        if o.on_error == "fail":
            i = int(idx[0])
            raise ParseError(f"expected {ncol} fields, found {int(counts[i])}", path=tok.path,
                             line=int(lines[i]), column=_ragged_column(schema, int(counts[i])),
                             offset=base + int(offs[i]))
        ends = np.empty(n, dtype=np.int64)
        ends[:-1] = offs[1:]
        ends[-1] = tok.ends[rf[n] - 1] if rf[n] > 0 else offs[-1]
        for i in idx:  # only the rejected rows
            i = int(i)
            raw = _record_bytes(buf, tok, i, n)
            rejects.reject(reason=f"expected {ncol} fields, found {int(counts[i])}", line=int(lines[i]),
                           column=_ragged_column(schema, int(counts[i])), offset=base + int(offs[i]), raw=raw,
                           path=tok.path)
        keep = np.flatnonzero(~bad)
        rows, lines, offs = rows[keep], lines[keep], offs[keep]
        rejected += idx.shape[0]
    m = rows.shape[0]
    stop = o.on_error == "fail"
    validate = True
    lo = int(tok.row_offset[0]) if n else 0
    hi = min(int(tok.ends[rf[n] - 1]) + 1 if n and rf[n] > 0 else lo, tok.block.n)
    if src._has_text and n:
        from ...kernels.parse import first_invalid_utf8

        validate = first_invalid_utf8(buf, lo, hi) >= 0
    text_bytes = hi - lo  # no column's text can be longer than the chunk it comes from
    while True:
        row_err, slow = _scratch(m)
        err_col = None
        null_bad = None  # per row: the non-nullable column holding a null (-1: none), not a parse error
        earliest = None  # on_error=fail: the first bad row over all columns, as (row, error)
        for j, f in enumerate(schema):
            col = batch.columns[j]
            first = _parse_column(src, buf, tok, rows, j, f, col, m, row_err, slow, stop, validate, text_bytes)
            if first >= 0 and stop and (earliest is None or first < earliest[0]):
                earliest = (first, _coercion_error(src, tok, buf, base, rows, lines, first, j, f))
            if not f.nullable and col.null_count:
                null_rows = _null_rows(col, m, row_err)
                if null_rows.shape[0]:
                    if stop:
                        r0 = int(null_rows[0])
                        if earliest is None or r0 < earliest[0]:
                            earliest = (r0, _null_error(src, tok, buf, base, rows, lines, r0, j, f))
                        continue
                    row_err[null_rows] = 1
                    null_bad = np.full(m, -1, dtype=np.int64) if null_bad is None else null_bad
                    null_bad[null_rows] = j
                    first = int(null_rows[0]) if first < 0 else min(first, int(null_rows[0]))
            if first >= 0:
                if err_col is None:
                    err_col = np.full(m, -1, dtype=np.int64)
                err_col[(row_err[:m] != 0) & (err_col < 0)] = j
        if earliest is not None:
            raise earliest[1]
        if err_col is None:
            break
        bad_rows = np.flatnonzero(err_col >= 0)
        for r in bad_rows:  # only the rejected rows
            r = int(r)
            j = int(err_col[r])
            if null_bad is not None and null_bad[r] == j:
                e = _null_error(src, tok, buf, base, rows, lines, r, j, schema[j])
            else:
                e = _coercion_error(src, tok, buf, base, rows, lines, r, j, schema[j])
            rejects.reject(reason=e.reason, line=e.line, column=e.column, offset=e.offset,
                           raw=_record_bytes_at(buf, tok, int(rows[r]), int(offs[r])), path=tok.path)
        rejected += bad_rows.shape[0]
        keep = np.flatnonzero(err_col < 0)
        rows, lines, offs = rows[keep], lines[keep], offs[keep]
        m = rows.shape[0]
        batch.reset()
    batch.length = m
    batch.source_rows = n
    return ParseStats(rows=m, rejected=rejected, bytes=0)


def _ragged_column(schema, count: int) -> str | int:
    """The column a ragged row is reported at: the first missing one (by name) or the first extra one (1-based)."""
    return schema[count].name if count < len(schema) else len(schema) + 1


def _record_bytes(buf, tok, i: int, n: int) -> bytes:
    return _record_bytes_at(buf, tok, int(tok.row_first[i]), int(tok.row_offset[i]))


def _record_bytes_at(buf, tok, first_field: int, start: int) -> bytes:
    """Raw bytes of the record whose first field index is ``first_field`` (without its line end)."""
    # the record ends where its last field ends (plus a closing quote if quoted)
    nxt = int(np.searchsorted(tok.row_first[:tok.n_rows + 1], first_field, side="right"))
    last = int(tok.row_first[nxt]) - 1 if nxt <= tok.n_rows else first_field
    if last < first_field:
        return bytes(buf[start:start])
    end = int(tok.ends[last]) + (1 if tok.flags[last] & 1 else 0)
    return bytes(buf[start:end])


def _null_rows(col, m: int, row_err) -> np.ndarray:
    """Rows ``< m`` whose value is null (validity bit unset) without being a parse error."""
    valid = np.unpackbits(col.validity[:(m + 7) // 8], bitorder="little")[:m].astype(bool)
    return np.flatnonzero(~valid & (row_err[:m] == 0))


def _null_error(src, tok, buf, base, rows, lines, r, j, f) -> TypeCoercionError:
    fi = int(rows[r]) + j
    s, e = int(tok.starts[fi]), int(tok.ends[fi])
    return TypeCoercionError(f"null in column {f.name!r}, which the schema declares not nullable", path=tok.path,
                             line=int(lines[r]), column=f.name, offset=base + s, raw=bytes(buf[s:e]))


def _coercion_error(src, tok, buf, base, rows, lines, r, j, f) -> TypeCoercionError:
    fi = int(rows[r]) + j
    s, e = int(tok.starts[fi]), int(tok.ends[fi])
    raw = bytes(buf[s:e])
    t = f.type
    if t.kind == "binary":
        reason = f"cannot read {_text(raw)!r} as binary (expected \\x and two hex digits per byte)"
    elif t.is_varlen:
        reason = "invalid UTF-8 in a text value"
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as ue:
            s += ue.start
    else:
        reason = f"cannot read {_text(raw)!r} as {t}"
        if src.opts.infer_schema and f.name not in src.opts.columns and src.opts.schema is None:
            reason += (f" (the type was inferred from the first rows; use --column {f.name}:string "
                       "or --no-infer-schema)")
    return TypeCoercionError(reason, path=tok.path, line=int(lines[r]), column=f.name, offset=base + s, raw=raw)


def _parse_column(src, buf, tok, rows, j, f, col, m, row_err, slow, stop, validate=True,
                  text_bytes: int | None = None) -> int:
    """Run the kernel for column ``j``; returns the first error row or -1."""
    from ...kernels import parse as kp

    t = f.type
    kind = t.kind
    st, en, fl = tok.starts, tok.ends, tok.flags
    qn = src.opts.quoted_null
    if col.dict_encoded:
        nulls, first = _dict_column(src, buf, tok, rows, j, col, m, row_err, stop, validate)
    elif kind == "binary":  # \x + hex, the form the CSV destination writes
        from ...kernels.binary import parse_hex_column

        nd, no = src._nulls_typed
        total = text_bytes if text_bytes is not None else kp.string_column_size(buf, st, en, fl, rows, j, m)
        data = col.reserve_data(max(1, int(total) // 2))
        nulls, nerr, first = parse_hex_column(buf, st, en, fl, rows, j, m, nd, no, qn, col.offsets, data,
                                              col.validity, row_err, stop)
    elif t.is_varlen:
        nd, no = src._nulls_string
        total = text_bytes if text_bytes is not None else kp.string_column_size(buf, st, en, fl, rows, j, m)
        data = col.reserve_data(int(total))
        nulls, nerr, first, _ = kp.gather_string_column(buf, st, en, fl, rows, j, m, nd, no, qn, src._q, src._esc,
                                                        col.offsets, data, col.validity, row_err, stop, validate)
    else:
        nd, no = src._nulls_typed
        if t.is_integer:
            lo, hi = -(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1
            nulls, nerr, first = kp.parse_int_column(buf, st, en, fl, rows, j, m, nd, no, qn, lo, hi, col.values,
                                                     col.validity, row_err, stop)
        elif t.is_float:
            nulls, nerr, first, nslow = kp.parse_float_column(buf, st, en, fl, rows, j, m, nd, no, qn, col.values,
                                                              col.validity, slow, row_err, stop)
            if nslow:
                kp.fill_slow_floats(buf, st, en, rows, j, slow, nslow, col.values)
        elif kind == "bool":
            nulls, nerr, first = kp.parse_bool_column(buf, st, en, fl, rows, j, m, nd, no, qn, col.values,
                                                      col.validity, row_err, stop)
        elif kind == "date":
            nulls, nerr, first = kp.parse_date_column(buf, st, en, fl, rows, j, m, nd, no, qn, col.values,
                                                      col.validity, row_err, stop)
        elif kind == "timestamp":
            nulls, nerr, first = kp.parse_timestamp_column(buf, st, en, fl, rows, j, m, nd, no, qn, t.tz is not None,
                                                           col.values, col.validity, row_err, stop)
        elif kind == "decimal":
            nulls, nerr, first, nslow = kp.parse_decimal_column(buf, st, en, fl, rows, j, m, nd, no, qn, t.precision,
                                                                t.scale, col.values, col.validity, slow, row_err,
                                                                stop)
            if nslow:
                kp.fill_slow_decimals(buf, st, en, rows, j, slow, nslow, t.scale, col.values)
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(kind)
    col.null_count = int(nulls)
    return int(first)
