"""In-memory and null destinations (for the library's ``read_*`` functions, tests and benchmarks)."""

from __future__ import annotations

from ..base import Capabilities, Destination


class MemoryDestination(Destination):
    """Collects copies of the batches; :meth:`table` returns them as one ``pyarrow.Table``."""

    capabilities = Capabilities(modes=("append", "replace"), notes="in-process pyarrow.Table")

    def __init__(self, url: str = "memory://", *, options: dict | None = None) -> None:
        self._pending: list = []
        self._batches: list = []
        self.schema = None
        self._evolved = False

    def open(self, schema, *, mode="append", table=None, key=None) -> None:
        self.schema = schema
        self._evolved = False
        self._pending = []
        if mode == "replace":
            self._batches = []

    def write(self, batch) -> int:
        rb = batch.to_arrow(copy=True)
        self._pending.append(rb)
        return rb.nbytes

    def evolve(self, schema) -> None:
        """Later batches have ``schema``; :meth:`table` casts the earlier ones to it."""
        self.schema = schema
        self._evolved = True

    def commit(self) -> None:
        self._batches.extend(self._pending)
        self._pending = []

    def abort(self) -> None:
        self._pending = []

    def table(self):
        import pyarrow as pa

        if not self._batches:
            return self.schema.to_arrow().empty_table()
        if not self._evolved:
            return pa.Table.from_batches(self._batches)
        target = self.schema.to_arrow()
        return pa.Table.from_batches([conform_to(b, target) for b in self._batches], schema=target)


    def location(self) -> str:
        return "memory"


class NullDestination(Destination):
    """Discards everything (measures a source alone)."""

    capabilities = Capabilities(modes=("append", "replace", "merge"), notes="discards rows")

    def __init__(self, url: str = "null://", *, options: dict | None = None) -> None:
        self.rows = 0

    def open(self, schema, *, mode="append", table=None, key=None) -> None:
        self.rows = 0

    def write(self, batch) -> int:
        self.rows += batch.length
        return 0

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def location(self) -> str:
        return "null"


def conform_to(rb, target):
    """``rb`` as ``target``: its columns cast to the (widened) types, missing columns all null."""
    import pyarrow as pa

    if rb.schema.equals(target):
        return rb
    cols = []
    for f in target:
        i = rb.schema.get_field_index(f.name)
        if i < 0:
            cols.append(pa.nulls(rb.num_rows, f.type))
            continue
        col = rb.column(i)
        if pa.types.is_dictionary(col.type) and not pa.types.is_dictionary(f.type):
            col = col.dictionary_decode()
        if col.type != f.type and any(pa.types.is_struct(x) or pa.types.is_list(x) for x in (col.type, f.type)):
            from ...nested import conform_array
            from ...types import LogicalType

            cols.append(conform_array(col, LogicalType.from_arrow(f.type) if f.metadata is None or
                                      f.metadata.get(b"nebula.type") != b"json" else LogicalType("json")))
            continue
        cols.append(col if col.type == f.type else col.cast(f.type))
    return pa.RecordBatch.from_arrays(cols, schema=target)
