"""Helpers shared by the destination tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from nebula.batch import Batch
from nebula.schema import Schema


def _bits(mask: np.ndarray, out: np.ndarray) -> None:
    packed = np.packbits(mask.astype(np.uint8), bitorder="little")
    out[:] = 0
    out[:packed.shape[0]] = packed


def fill_batch(batch: Batch, columns: list[list]) -> Batch:
    """Fill ``batch`` from one Python list per column, the way the parse kernels would."""
    batch.reset()
    n = len(columns[0]) if columns else 0
    assert n <= batch.capacity
    for col, values in zip(batch.columns, columns, strict=True):
        t = col.field.type
        arr = pa.array(values, type=t.to_arrow())
        valid = np.array([v is not None for v in values], dtype=bool)
        _bits(valid, col.validity)
        col.null_count = int(n - valid.sum())
        bufs = arr.buffers()
        if t.is_varlen and col.dict_encoded:
            d = pa.array(values, type=pa.string()).dictionary_encode()
            codes = np.asarray(d.indices.fill_null(0), dtype=np.int32)
            col.values[:n] = codes
            col.values[n:] = -7  # garbage past the end
            if col.null_count:
                col.values[:n][~valid] = 12345  # null rows hold any code
            col.dictionary = d.dictionary
        elif t.is_varlen:
            offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1)
            data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
            col.offsets[:n + 1] = offsets
            col.reserve_data(max(1, int(offsets[n])))[:offsets[n]] = data[:offsets[n]]
        elif t.kind == "bool":
            bits = np.array([bool(v) for v in values], dtype=bool)
            _bits(bits, col.values)
        elif t.kind == "decimal":
            words = np.frombuffer(bufs[1], dtype=np.int64, count=2 * n).reshape(n, 2)
            col.values[:n] = words
        else:
            raw = np.frombuffer(bufs[1], dtype=t.numpy_dtype, count=n)
            col.values[:n] = raw
            if col.null_count:
                col.values[:n][~valid] = 0
    batch.length = n
    return batch


def batch_from_pylist(schema: Schema, rows: list, *, dict_columns=(), capacity: int | None = None) -> Batch:
    """A Batch of ``schema`` holding ``rows`` (tuples or dicts keyed by column name)."""
    names = schema.names
    cols = [[(r[name] if isinstance(r, dict) else r[i]) for r in rows] for i, name in enumerate(names)]
    batch = Batch(schema, capacity or max(1, len(rows)), dict_columns=frozenset(dict_columns))
    return fill_batch(batch, cols)
