"""Batch: fixed-capacity columnar numpy buffers, convertible to Arrow without copying.

A batch is allocated once (by a :class:`~nebula.pool.BatchPool`) and refilled many times. Kernels
write straight into its arrays; :meth:`Batch.to_arrow` wraps those arrays as Arrow buffers, so the
returned RecordBatch is only valid until the batch goes back to the pool.

Per column (``n`` = rows in use, ``cap`` = capacity):

- ``validity``: uint8 bitmap, LSB first, ``ceil(cap/8)`` bytes; bit set = value present. Zeroed by
  :meth:`reset`, so kernels only set bits.
- fixed-width types: ``values`` of ``type.numpy_dtype``, shape ``(cap,)``; decimal: int64 ``(cap, 2)``
  holding the little-endian low and high words of the 128-bit unscaled value.
- bool: ``values`` is a uint8 bitmap like ``validity`` (zeroed by reset).
- string/json/binary: ``offsets`` int32 ``(cap + 1,)`` and ``data`` uint8 (grows on demand, never
  shrinks); binary data is any bytes (nothing validates it as UTF-8), Arrow ``binary``.
- dictionary-encoded string: ``values`` int32 codes and ``dictionary`` an Arrow string array.
- struct/list: ``array``, an Arrow array the source builds once per batch (it owns its memory;
  nested values have no fixed-width storage to fill in place).
"""

from __future__ import annotations

import numpy as np

from .schema import Field, Schema

DEFAULT_STRING_BYTES = 32  # initial data bytes reserved per row of a string column


def _bitmap_bytes(n: int) -> int:
    return (n + 7) // 8 + 8  # 8 bytes of slack keep 64-bit word writes in bounds


class Column:
    """The buffers of one column; see the module docstring for the layout."""

    __slots__ = ("field", "capacity", "values", "validity", "offsets", "data", "null_count",
                 "dictionary", "dict_encoded", "array")

    def __init__(self, field: Field, capacity: int, *, string_bytes: int = DEFAULT_STRING_BYTES,
                 dict_encoded: bool = False) -> None:
        self.field = field
        self.capacity = capacity
        t = field.type
        self.validity = np.zeros(_bitmap_bytes(capacity), dtype=np.uint8)
        self.offsets = None
        self.data = None
        self.dictionary = None
        self.dict_encoded = dict_encoded
        self.null_count = 0
        self.array = None
        if t.is_nested:
            self.values = np.empty(0, dtype=np.uint8)
        elif t.is_varlen:
            self.offsets = np.zeros(capacity + 1, dtype=np.int32)
            self.data = np.empty(max(64, capacity * string_bytes), dtype=np.uint8)
            self.values = np.empty(capacity if dict_encoded else 0, dtype=np.int32)
        elif t.kind == "bool":
            self.values = np.zeros(_bitmap_bytes(capacity), dtype=np.uint8)
        elif t.kind == "decimal":
            self.values = np.zeros((capacity, 2), dtype=np.int64)
        else:
            self.values = np.empty(capacity, dtype=t.numpy_dtype)

    def reset(self) -> None:
        self.validity[:] = 0
        if self.field.type.kind == "bool":
            self.values[:] = 0
        self.null_count = 0
        self.dictionary = None
        self.array = None

    def reserve_data(self, nbytes: int) -> np.ndarray:
        """Make ``data`` hold at least ``nbytes``; returns the (possibly new) array."""
        if nbytes > self.data.shape[0]:
            if nbytes > 2**31 - 1:
                from .errors import DataError

                what = "bytes" if self.field.type.kind == "binary" else "text"
                raise DataError(f"column {self.field.name!r}: more than 2 GiB of {what} in one batch")
            self.data = np.empty(max(nbytes, int(self.data.shape[0] * 1.5)), dtype=np.uint8)
        return self.data

    def nbytes(self, n: int) -> int:
        """Bytes this column's first ``n`` rows occupy (what Arrow would see)."""
        t = self.field.type
        if t.is_nested:
            return self.array.nbytes if self.array is not None and n else 0
        total = (n + 7) // 8 if self.null_count else 0
        if t.is_varlen:
            if self.dictionary is not None:
                total += 4 * n + self.dictionary.nbytes
            else:
                total += 4 * (n + 1) + int(self.offsets[n]) if n else 0
        elif t.kind == "bool":
            total += (n + 7) // 8
        elif t.kind == "decimal":
            total += 16 * n
        else:
            total += t.numpy_dtype.itemsize * n
        return total

    def to_arrow(self, n: int, copy: bool = False):
        import pyarrow as pa

        def buf(a, upto):
            return pa.py_buffer(a[:upto].copy() if copy else a)

        t = self.field.type
        if t.is_nested:  # owned by this batch's fill, never reused: no copy needed
            if self.array is None:
                return pa.nulls(n, t.to_arrow())
            return self.array if len(self.array) == n else self.array.slice(0, n)
        at = t.to_arrow()
        nbits = (n + 7) // 8
        valid = buf(self.validity, nbits) if self.null_count else None
        if t.is_varlen and self.dictionary is not None:
            idx = pa.Array.from_buffers(pa.int32(), n, [valid, buf(self.values, n)], self.null_count)
            return pa.DictionaryArray.from_arrays(idx, self.dictionary)
        if t.is_varlen:
            return pa.Array.from_buffers(at, n, [valid, buf(self.offsets, n + 1),
                                                 buf(self.data, int(self.offsets[n]) if n else 0)],
                                         self.null_count)
        if t.kind == "bool":
            return pa.Array.from_buffers(at, n, [valid, buf(self.values, nbits)], self.null_count)
        return pa.Array.from_buffers(at, n, [valid, buf(self.values, n)], self.null_count)


class Batch:
    """Up to ``capacity`` rows of ``schema``, as one :class:`Column` per field.

    ``seq`` orders batches of one stream; ``length`` is the number of rows in use.
    """

    __slots__ = ("schema", "capacity", "columns", "length", "seq", "_arrow_schema", "source_rows")

    def __init__(self, schema: Schema, capacity: int, *, dict_columns: frozenset[str] = frozenset(),
                 string_bytes: int = DEFAULT_STRING_BYTES) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.schema = schema
        self.capacity = capacity
        self.columns = [Column(f, capacity, string_bytes=string_bytes, dict_encoded=f.name in dict_columns)
                        for f in schema]
        self.length = 0
        self.seq = -1
        self._arrow_schema = None
        self.source_rows = 0  # rows consumed from the source to make this batch (incl. rejected)

    @classmethod
    def of_columns(cls, schema: Schema, columns: list, length: int) -> Batch:
        """A batch over existing columns (a view for a destination; nothing is allocated)."""
        b = cls.__new__(cls)
        b.schema, b.capacity, b.columns, b.length = schema, length, list(columns), length
        b.seq, b._arrow_schema, b.source_rows = -1, None, length
        return b

    def reset(self) -> None:
        for c in self.columns:
            c.reset()
        self.length = 0
        self.seq = -1
        self.source_rows = 0

    def __len__(self) -> int:
        return self.length

    def column(self, name: str) -> Column:
        return self.columns[self.schema.index(name)]

    @property
    def nbytes(self) -> int:
        """Bytes held by the rows in use (Arrow's view of the data)."""
        return sum(c.nbytes(self.length) for c in self.columns)

    @property
    def allocated_bytes(self) -> int:
        total = 0
        for c in self.columns:
            for a in (c.values, c.validity, c.offsets, c.data):
                if a is not None:
                    total += a.nbytes
        return total

    def bytes_per_record(self) -> float:
        return self.nbytes / self.length if self.length else 0.0

    def to_arrow(self, copy: bool = False):
        """A ``pyarrow.RecordBatch`` of the rows in use.

        Without ``copy`` it shares this batch's memory and is valid only until the batch is reused;
        with ``copy`` it owns a copy of exactly the bytes in use.
        """
        import pyarrow as pa

        if self._arrow_schema is None:
            self._arrow_schema = self.schema.to_arrow()
        arrays = [c.to_arrow(self.length, copy) for c in self.columns]
        schema = self._arrow_schema
        if any(c.dictionary is not None for c in self.columns):
            schema = pa.schema([f.with_type(a.type) for f, a in zip(schema, arrays, strict=True)],
                               metadata=schema.metadata)
        return pa.RecordBatch.from_arrays(arrays, schema=schema)
