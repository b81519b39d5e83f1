"""Nested (struct/list) columns for destinations that store text, and across schema changes.

Parquet and in-memory tables take struct and list columns as they are. CSV, JSON lines, SQLite and
PostgreSQL store each nested value as its JSON text (a ``json`` column: TEXT in SQLite, ``jsonb`` in
PostgreSQL, a JSON value in JSON lines, a quoted field in CSV): :func:`json_schema` and
:func:`json_batch` give them that view of a schema and a batch. A null struct or list stays null (SQL
NULL, JSON ``null``); inside, fields and elements are rendered like JSON lines output renders the
same scalar types (decimals and timestamps as strings, non-finite floats as ``null``).

The text is produced by kernels, leaves first (the JSON lines encoder's), then each struct/list level
(``kernels.json.render_struct`` / ``render_list``): one pass per type node, not per value.

:func:`conform_array` casts an array to a widened nested type (a new struct field is null for the
older rows; a field that became ``json`` is rendered as text).
"""

from __future__ import annotations

import json

import numpy as np

from .schema import Field, Schema
from .types import JSON, LogicalType


def json_schema(schema: Schema) -> Schema:
    """``schema`` with every struct/list column as a ``json`` column (the same object if it has none)."""
    if not any(f.type.is_nested for f in schema):
        return schema
    return Schema(Field(f.name, JSON, f.nullable, f.metadata) if f.type.is_nested else f for f in schema)


def json_batch(batch):
    """``batch`` with its struct/list columns replaced by ``json`` text columns (other columns shared)."""
    from .batch import Batch, Column

    if not any(f.type.is_nested for f in batch.schema):
        return batch
    n = batch.length
    schema = json_schema(batch.schema)
    cols = []
    for c, f in zip(batch.columns, schema, strict=True):
        if not c.field.type.is_nested:
            cols.append(c)
            continue
        text = json_text(c.to_arrow(n))
        col = Column(f, 1, string_bytes=0)
        col.capacity = n
        bufs = text.buffers()
        col.null_count = text.null_count
        if text.null_count:
            col.validity = np.frombuffer(bufs[0], dtype=np.uint8)
        col.offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1)
        col.data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
        cols.append(col)
    return Batch.of_columns(schema, cols, n)


def json_text(arr, *, is_json: bool = False):
    """A ``pyarrow.string`` array of the JSON text of each value of ``arr`` (nulls stay null)."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.offset:
        arr = pa.concat_arrays([arr])
    n = len(arr)
    data, offs = _render(arr, is_json)
    if int(offs[n]) > 2**31 - 1:
        from .errors import DataError

        raise DataError("more than 2 GiB of JSON text in one batch of a nested column")
    valid = arr.buffers()[0] if arr.null_count else None
    return pa.Array.from_buffers(pa.string(), n, [valid, pa.py_buffer(offs[:n + 1].astype(np.int32)),
                                                  pa.py_buffer(data[:int(offs[n])])], arr.null_count)


def _validity(arr) -> tuple[np.ndarray, bool]:
    if not arr.null_count:
        return np.zeros(1, dtype=np.uint8), False
    return np.frombuffer(arr.buffers()[0], dtype=np.uint8), True


def _render(arr, is_json: bool) -> tuple[np.ndarray, np.ndarray]:
    """(text bytes, int64 offsets) of every value of ``arr`` (offset 0), ``null`` for nulls."""
    import pyarrow as pa

    from .kernels import json as kj

    t = arr.type
    n = len(arr)
    if pa.types.is_struct(t):
        parts = [_render(arr.field(i), _field_is_json(t.field(i))) for i in range(t.num_fields)]
        keys = b"".join(json.dumps(t.field(i).name, ensure_ascii=False).encode() + b":" for i in range(t.num_fields))
        koffs = np.zeros(t.num_fields + 1, dtype=np.int64)
        np.cumsum([len(json.dumps(t.field(i).name, ensure_ascii=False).encode()) + 1 for i in range(t.num_fields)],
                  out=koffs[1:])
        cdata = np.concatenate([d[:int(o[n])] for d, o in parts]) if parts else np.zeros(0, np.uint8)
        coffs = np.zeros((len(parts), n + 1), dtype=np.int64)
        base = 0
        for c, (_, o) in enumerate(parts):
            coffs[c] = o[:n + 1] + base
            base += int(o[n])
        size = base + n * max(4, 2 + len(keys) + max(len(parts) - 1, 0))
        out = np.empty(max(size, 1), dtype=np.uint8)
        offs = np.empty(n + 1, dtype=np.int64)
        valid, has_nulls = _validity(arr)
        kj.render_struct(n, cdata, coffs, np.frombuffer(keys, dtype=np.uint8) if keys else np.zeros(1, np.uint8),
                         koffs, valid, has_nulls, out, offs)
        return out, offs
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        loffs = np.frombuffer(arr.buffers()[1], dtype=np.int32 if pa.types.is_list(t) else np.int64, count=n + 1)
        lo, hi = int(loffs[0]), int(loffs[n])
        values = arr.values.slice(lo, hi - lo)
        if values.offset:
            values = pa.concat_arrays([values])
        edata, eoffs = _render(values, _field_is_json(t.value_field))
        size = int(eoffs[hi - lo]) + n * 6 + (hi - lo)
        out = np.empty(max(size, 1), dtype=np.uint8)
        offs = np.empty(n + 1, dtype=np.int64)
        valid, has_nulls = _validity(arr)
        kj.render_list(n, edata, eoffs, (loffs - lo).astype(np.int64), valid, has_nulls, out, offs)
        return out, offs
    return _render_leaf(arr, is_json)


def _field_is_json(f) -> bool:
    return (f.metadata or {}).get(b"nebula.type") == b"json"


def _render_leaf(arr, is_json: bool) -> tuple[np.ndarray, np.ndarray]:
    """A scalar array through the JSON lines encoder (so nested values read like top-level ones)."""
    import pyarrow as pa

    from .connectors.destinations.files import TextEncoder
    from .connectors.destinations.partitioned import _ArrowColumn

    n = len(arr)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_null(arr.type):
        arr = pa.nulls(n, pa.string())
    t = JSON if is_json and pa.types.is_string(arr.type) else LogicalType.from_arrow(arr.type)
    if pa.types.is_large_string(arr.type) or str(arr.type) != str(t.to_arrow()):
        arr = arr.cast(t.to_arrow())
    f = Field("v", t)
    enc = TextEncoder(Schema([f]), "jsonl")
    buf, offs = enc._render(0, _ArrowColumn(f, arr), 0, n)[:2]
    return buf, offs


def conform_array(arr, t: LogicalType, *, is_json: bool = False):
    """``arr`` as an array of type ``t`` (a widened type: new struct fields null, ``json`` as text)."""
    import pyarrow as pa

    target = t.to_arrow()
    if arr.type == target:
        return arr
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count == len(arr):  # e.g. a field typed string while only nulls had been seen
        return pa.nulls(len(arr), target)
    at = arr.type
    nested_in = pa.types.is_struct(at) or pa.types.is_list(at) or pa.types.is_large_list(at)
    if t.kind in ("string", "json") and nested_in:
        return json_text(arr)
    if t.kind == "struct" and pa.types.is_struct(at):
        if arr.offset:
            arr = pa.concat_arrays([arr])
        names = [at.field(i).name for i in range(at.num_fields)]
        kids = [conform_array(arr.field(names.index(name)), ct) if name in names else pa.nulls(len(arr), ct.to_arrow())
                for name, ct in t.fields]
        valid = arr.buffers()[0] if arr.null_count else None
        return pa.Array.from_buffers(target, len(arr), [valid], arr.null_count, children=kids)
    if t.kind == "list" and (pa.types.is_list(at) or pa.types.is_large_list(at)):
        if arr.offset:
            arr = pa.concat_arrays([arr])
        values = conform_array(arr.values, t.element)
        offsets = arr.offsets.cast(pa.int32())
        return pa.ListArray.from_arrays(offsets, values, type=target, mask=arr.is_null() if arr.null_count else None)
    return arr.cast(target)


__all__ = ["json_schema", "json_batch", "json_text", "conform_array"]
