"""Turning a chunk of JSON value spans into typed batch columns (runs in worker threads).

One kernel call per column converts every row (GIL released). Rejected lines found by the
structural pass and rows discarded by the schema contract are sent to the reject sink first; a value
that does not fit its column (a user-typed column, or a string of an inferred timestamp column
that is not a timestamp) is an error or, by policy, rejects its row, and the clean rows are parsed
again (as in the CSV source: the rare path stays simple, the common path a straight run of kernels).
"""

from __future__ import annotations

import numpy as np

from ...errors import ParseError, TypeCoercionError
from ..base import ParseStats
from ._csv_parse import _dict_scratch, _scratch, _text  # the same per-thread scratch and messages

_NO_KINDS = np.zeros(1, dtype=np.uint8)  # with ns = 0 every row reads kind missing
_NO_SPANS = np.zeros(1, dtype=np.int64)


def parse_spans(src, tok, batch, rejects) -> ParseStats:
    from ...kernels import json as kj

    buf = tok.block.buf
    base = tok.block.base
    rejected = 0
    for i in range(tok.n_rej):  # lines the structural pass rejected
        code = int(tok.rej_code[i])
        reason = kj.ERROR_TEXT.get(code, "JSON syntax error")
        if code == kj.E_NOT_OBJECT:
            reason = "valid JSON but not an object: a record must be a JSON object"
        elif code == kj.E_DEPTH:
            reason = f"nesting deeper than {src.opts.max_depth} levels (max_depth)"
        if src.opts.on_error == "fail":
            raise ParseError(reason, path=tok.path, line=int(tok.rej_line[i]), offset=base + int(tok.rej_pos[i]))
        rejects.reject(reason=reason, line=int(tok.rej_line[i]), column=None, offset=base + int(tok.rej_pos[i]),
                       raw=bytes(buf[tok.rej_start[i]:tok.rej_end[i]]), path=tok.path)
        rejected += 1
    for r in tok.extra_rejects:  # the schema contract's discards
        rejects.reject(path=tok.path, **r)
    rejected += sum(1 for _ in tok.extra_rejects) if src.opts.contract == "discard-row" else 0
    if src.opts.contract == "discard-value":
        rejected += 0  # the rows stay (with nulls); each value is still listed as a reject

    schema = batch.schema
    n = tok.n_rows
    ns = tok.ns
    kinds, starts, ends = tok.kinds, tok.starts, tok.ends
    lines, offs = tok.row_line[:n], tok.row_start[:n]
    row_start, row_end = tok.row_start[:n], tok.row_end[:n]
    stop = src.opts.on_error == "fail"
    dmax = src.opts.dictionary_max
    m = n
    nested = any(f.type.is_nested for f in schema)
    tok_rows = np.arange(n) if nested else None  # the chunk row of each batch row (error rows are dropped)
    while True:
        row_err, slow = _scratch(m)
        err_col = None
        null_bad = None  # per row: the non-nullable column holding a null (-1: none)
        earliest = None  # on_error=fail: the first bad row over all columns, as (row, error)
        asm = _assembler(src, tok, tok_rows, stop) if nested else None
        for j, f in enumerate(schema):
            col = batch.columns[j]
            first = -1
            if f.type.is_nested:  # nested="keep": a struct/list assembled from the chunk's events
                col.array = asm.member(j, f, np.ascontiguousarray(kinds[:m * ns].reshape(m, ns)[:, j])) \
                    if j < ns else None
                col.null_count = m if col.array is None else col.array.null_count
            elif j < ns:
                first = _parse_column(buf, kinds, starts, ends, ns, j, f, col, m, row_err, slow, stop, dmax)
            else:  # a column added after this chunk was tokenized: no values here
                first = _parse_column(buf, _NO_KINDS, _NO_SPANS, _NO_SPANS, 0, 0, f, col, m, row_err, slow, stop,
                                      dmax)
            if first >= 0 and stop and (earliest is None or first < earliest[0]):
                earliest = (first, _coercion_error(src, tok, buf, base, kinds, starts, ends, ns, lines, first, j, f))
            if not f.nullable and col.null_count:
                null_rows = _null_rows(col, f, m, row_err)
                if null_rows.shape[0]:
                    r0 = int(null_rows[0])
                    if stop:
                        if earliest is None or r0 < earliest[0]:
                            earliest = (r0, _null_error(tok, base, lines, offs, r0, f))
                        continue
                    row_err[null_rows] = 1
                    null_bad = np.full(m, -1, dtype=np.int64) if null_bad is None else null_bad
                    null_bad[null_rows[null_bad[null_rows] < 0]] = j
                    first = r0 if first < 0 else min(first, r0)
            if first >= 0:
                if err_col is None:
                    err_col = np.full(m, -1, dtype=np.int64)
                err_col[(row_err[:m] != 0) & (err_col < 0)] = j
        if earliest is not None and not (asm is not None and asm.errors and min(asm.errors) < earliest[0]):
            raise earliest[1]
        if asm is not None and asm.errors:
            if stop:
                raise asm.errors[min(asm.errors)]
            if err_col is None:
                err_col = np.full(m, -1, dtype=np.int64)
            for r in asm.errors:
                if err_col[r] < 0:
                    err_col[r] = len(schema)  # the assembler holds its message
        if err_col is None:
            break
        bad_rows = np.flatnonzero(err_col >= 0)
        for r in bad_rows:
            r = int(r)
            j = int(err_col[r])
            if j == len(schema):
                e = asm.errors[r]
            elif null_bad is not None and null_bad[r] == j:
                e = _null_error(tok, base, lines, offs, r, schema[j])
            else:
                e = _coercion_error(src, tok, buf, base, kinds, starts, ends, ns, lines, r, j, schema[j])
            rejects.reject(reason=e.reason, line=e.line, column=e.column, offset=e.offset,
                           raw=bytes(buf[row_start[r]:row_end[r]]), path=tok.path)
        rejected += bad_rows.shape[0]
        keep = np.flatnonzero(err_col < 0)
        kinds = kinds[:m * ns].reshape(m, ns)[keep].ravel()
        starts = starts[:m * ns].reshape(m, ns)[keep].ravel()
        ends = ends[:m * ns].reshape(m, ns)[keep].ravel()
        lines, offs, row_start, row_end = lines[keep], offs[keep], row_start[keep], row_end[keep]
        if nested:
            tok_rows = tok_rows[keep]
        m = keep.shape[0]
        batch.reset()
    batch.length = m
    batch.source_rows = n + tok.n_rej
    return ParseStats(rows=m, rejected=rejected, bytes=0)


def _assembler(src, tok, tok_rows, stop):
    from ._json_nested import Assembler

    rowmap = np.full(max(tok.n_rows, 1), -1, dtype=np.int64)
    rowmap[tok_rows] = np.arange(tok_rows.shape[0])
    return Assembler(src, tok, rowmap, stop)


def _null_rows(col, f, m: int, row_err) -> np.ndarray:
    """Rows ``< m`` whose value is null (or missing) without being a parse error."""
    if col.array is not None:
        null = np.asarray(col.array.is_null(), dtype=bool)[:m]
    elif f.type.is_nested:  # no values in this chunk at all
        null = np.ones(m, dtype=bool)
    else:
        null = ~np.unpackbits(col.validity[:(m + 7) // 8], bitorder="little")[:m].astype(bool)
    return np.flatnonzero(null & (row_err[:m] == 0))


def _null_error(tok, base, lines, offs, r, f) -> TypeCoercionError:
    return TypeCoercionError(f"null or missing {f.name!r}, which the schema declares not nullable", path=tok.path,
                             line=int(lines[r]), column=f.name, offset=base + int(offs[r]))


def _coercion_error(src, tok, buf, base, kinds, starts, ends, ns, lines, r, j, f) -> TypeCoercionError:
    from ...kernels import json as kj

    i = r * ns + j
    s, e = int(starts[i]), int(ends[i])
    k = int(kinds[i])
    raw = bytes(buf[s:e])
    reason = f"cannot read {kj.KIND_NAMES[k]} {_text(raw)!r} as {f.type}"
    if f.type.kind == "binary":
        reason += " (expected a base64 string)"
    if f.name not in src._pinned:
        reason += (f" (the type was inferred from the first records; use --column {f.name}:string "
                   "or --no-infer-schema)")
    return TypeCoercionError(reason, path=tok.path, line=int(lines[r]), column=f.name, offset=base + s, raw=raw)


def _dict_column(buf, kinds, starts, ends, ns, j, col, m, limit) -> int:
    """Column ``j`` as codes + dictionary; Arrow's encoder when the batch has too many distinct values."""
    import pyarrow as pa

    from ...kernels import json as kj

    table, doff, ddata = _dict_scratch(limit)
    nulls, k, status = (int(x) for x in kj.extract_dict(buf, kinds, starts, ends, ns, j, m, table, doff, ddata,
                                                         limit, col.values, col.validity))
    if status == 0:
        col.dictionary = pa.Array.from_buffers(pa.string(), k, [None, pa.py_buffer(doff[:k + 1].copy()),
                                                                pa.py_buffer(ddata[:int(doff[k])].copy())])
        return nulls
    col.validity[:] = 0
    total = kj.text_column_size(kinds, starts, ends, ns, j, m)
    data = col.reserve_data(int(total))
    nulls, _ = kj.extract_text(buf, kinds, starts, ends, ns, j, m, False, col.offsets, data, col.validity)
    nulls = int(nulls)
    valid = pa.py_buffer(col.validity) if nulls else None
    arr = pa.Array.from_buffers(pa.string(), m, [valid, pa.py_buffer(col.offsets), pa.py_buffer(data)], nulls)
    enc = arr.dictionary_encode()
    col.values[:m] = np.asarray(enc.indices.fill_null(0))
    col.dictionary = enc.dictionary
    return nulls


def _parse_column(buf, kinds, starts, ends, ns, j, f, col, m, row_err, slow, stop, dict_max=4096) -> int:
    """Run the kernel for column ``j``; returns the first error row or -1."""
    from ...kernels import json as kj
    from ...kernels import parse as kp

    t = f.type
    kind = t.kind
    if kind == "string" and col.dict_encoded:
        nulls = _dict_column(buf, kinds, starts, ends, ns, j, col, m, dict_max)
        first = -1
    elif kind == "binary":  # base64 strings, the form the JSON lines destination writes
        from ...kernels.binary import decode_base64_column

        data = col.reserve_data(max(1, int(kj.text_column_size(kinds, starts, ends, ns, j, m))))
        nulls, _, first = decode_base64_column(buf, kinds, starts, ends, ns, j, m, col.offsets, data, col.validity,
                                               row_err, stop)
    elif t.is_varlen:
        total = kj.text_column_size(kinds, starts, ends, ns, j, m)
        data = col.reserve_data(int(total))
        nulls, _ = kj.extract_text(buf, kinds, starts, ends, ns, j, m, kind == "json", col.offsets, data,
                                   col.validity)
        first = -1
    elif t.is_integer:
        lo, hi = -(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1
        nulls, _, first = kj.extract_int(buf, kinds, starts, ends, ns, j, m, lo, hi, col.values, col.validity,
                                         row_err, stop)
    elif t.is_float:
        nulls, _, first, nslow = kj.extract_float(buf, kinds, starts, ends, ns, j, m, col.values, col.validity,
                                                  slow, row_err, stop)
        for q in range(nslow):
            r = int(slow[q])
            i = r * ns + j
            text = bytes(buf[starts[i]:ends[i]]).decode("ascii")
            col.values[r] = kp._round_float32(text) if t.kind == "float32" else float(text)
    elif kind == "decimal":
        nulls, _, first, nslow = kj.extract_decimal(buf, kinds, starts, ends, ns, j, m, t.precision, t.scale,
                                                    col.values, col.validity, slow, row_err, stop)
        for q in range(nslow):
            r = int(slow[q])
            i = r * ns + j
            u = kp._unscaled(bytes(buf[starts[i]:ends[i]]), t.scale) & ((1 << 128) - 1)
            lo, hi = u & ((1 << 64) - 1), u >> 64
            col.values[r, 0] = lo - (1 << 64) if lo >> 63 else lo
            col.values[r, 1] = hi - (1 << 64) if hi >> 63 else hi
    elif kind == "bool":
        nulls, _, first = kj.extract_bool(kinds, ns, j, m, col.values, col.validity, row_err, stop)
    elif kind in ("date", "timestamp"):
        nulls, _, first = kj.extract_temporal(buf, kinds, starts, ends, ns, j, m, kind == "date", t.tz is not None,
                                              col.values, col.validity, row_err, stop)
    else:  # pragma: no cover - every kind is handled above
        raise AssertionError(kind)
    col.null_count = int(nulls)
    return int(first)
