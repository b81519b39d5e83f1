"""Writing one Parquet file whose row groups are encoded in parallel.

pyarrow's writer encodes and compresses one row group at a time on one thread, which makes it the
slowest stage of csv -> parquet on two cores. Here each row group is written by pyarrow as a small
complete Parquet file in memory, on a pool of encoder threads (Arrow releases the GIL); a sequencer
appends the row groups' bytes to the output in order and remembers their metadata; on close the
footers are merged into one — offsets shifted by where each row group landed, ordinals renumbered —
with the Thrift codec of :mod:`._thrift`. Readers see an ordinary Parquet file.

Memory: at most ``encoders`` row groups are being encoded (the caller waits for a free encoder), so the pending data
is bounded by the row-group size, whatever the input size.
"""

from __future__ import annotations

import io
import struct
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from . import _thrift as th

MAGIC = b"PAR1"

# field ids in parquet.thrift
_FMD_NUM_ROWS, _FMD_ROW_GROUPS = 3, 4
_RG_COLUMNS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 5, 7
_CC_FILE_OFFSET, _CC_META, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX = 2, 3, 4, 6
_CMD_DATA_PAGE, _CMD_INDEX_PAGE, _CMD_DICT_PAGE, _CMD_BLOOM = 9, 10, 11, 14


def split_file(blob) -> tuple[memoryview, dict]:
    """``(row group bytes, FileMetaData tree)`` of a whole Parquet file held in memory (bytes or a
    buffer); the row group bytes are a view of ``blob``, not a copy."""
    mv = memoryview(blob)
    if len(mv) < 12 or mv[:4] != MAGIC or mv[-4:] != MAGIC:
        raise th.ThriftError("not a Parquet file")
    (flen,) = struct.unpack("<i", mv[-8:-4])
    start = len(mv) - 8 - flen
    meta, _ = th.decode_struct(bytes(mv[start:len(mv) - 8]))
    return mv[4:start], meta


def _shift(fields: dict, fid: int, delta: int) -> None:
    if fid in fields:
        t, v = fields[fid]
        if v:  # 0 means "absent" for some writers' deprecated offsets
            fields[fid] = (t, v + delta)


def shift_row_group(rg: dict, delta: int, ordinal: int) -> dict:
    """A RowGroup tree moved ``delta`` bytes later in the file, renumbered ``ordinal``."""
    _shift(rg, _RG_FILE_OFFSET, delta)
    if _RG_ORDINAL in rg:
        rg[_RG_ORDINAL] = (th.I16, ordinal)
    _, columns = rg[_RG_COLUMNS][1]
    for cc in columns:
        _shift(cc, _CC_FILE_OFFSET, delta)
        _shift(cc, _CC_OFFSET_INDEX, delta)
        _shift(cc, _CC_COLUMN_INDEX, delta)
        if _CC_META in cc:
            md = cc[_CC_META][1]
            for fid in (_CMD_DATA_PAGE, _CMD_INDEX_PAGE, _CMD_DICT_PAGE, _CMD_BLOOM):
                _shift(md, fid, delta)
    return rg


class ParallelParquetWriter:
    """``write_table`` queues a row group for encoding; ``close`` waits, then writes the footer.

    ``sink`` is a binary file object opened for writing (local file or stream). ``writer_options``
    are pyarrow ``ParquetWriter`` options (compression, compression_level, use_dictionary, ...).
    """

    def __init__(self, sink, schema, *, encoders: int = 2, **writer_options) -> None:
        self._own = isinstance(sink, str)
        self.sink = open(sink, "wb") if self._own else sink  # noqa: SIM115 - closed in close()/abort()
        self.schema = schema
        self.options = writer_options
        self._pool = ThreadPoolExecutor(max(1, encoders), thread_name_prefix="nebula-parquet-encode")
        self._pending: deque[Future] = deque()
        self._slots = threading.Semaphore(max(1, encoders))
        self._pos = 0
        self._meta: dict | None = None
        self._row_groups: list = []
        self._rows = 0
        self._closed = False
        self.sink.write(MAGIC)
        self._pos = len(MAGIC)

    def _encode(self, table, overrides: dict | None = None) -> memoryview:
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        opts = {**self.options, **overrides} if overrides else self.options
        pq.write_table(table, buf, row_group_size=max(1, table.num_rows), **opts)
        return buf.getbuffer()  # a view: the row group's bytes are not copied again

    def _encode_prepared(self, prepare) -> memoryview:
        made = prepare()
        if isinstance(made, tuple):
            return self._encode(*made)
        return self._encode(made)

    @property
    def position(self) -> int:
        """Bytes written to the sink so far (magic and finished row groups; the footer comes on close)."""
        return self._pos

    def write_prepared(self, prepare, done=None) -> None:
        """Queue one row group that an encoder thread first builds with ``prepare()`` (returning a
        ``pyarrow.Table``, or ``(table, options)`` whose writer options override the file's for this
        row group, e.g. ``use_dictionary``), then encodes: assembling the table (conversions,
        dictionary unification) runs off the caller's thread too. Blocks while enough row groups
        are in flight. ``done()``, if given, runs once the row group is encoded, has failed or was
        cancelled (the memory ``prepare`` reads from can then be reused)."""
        self._slots.acquire()
        fut = self._pool.submit(self._encode_prepared, prepare)

        def finished(_f) -> None:
            try:
                if done is not None:
                    done()
            finally:
                self._slots.release()

        fut.add_done_callback(finished)
        self._pending.append(fut)
        self._drain(block=False)

    def write_table(self, table, row_group_size: int | None = None) -> None:
        """Queue ``table`` as one row group, or several of ``row_group_size`` rows (blocks while
        enough row groups are in flight)."""
        if table.num_rows == 0:
            return
        if row_group_size and table.num_rows > row_group_size:
            for off in range(0, table.num_rows, row_group_size):
                self.write_table(table.slice(off, row_group_size))
            return
        self._slots.acquire()
        fut = self._pool.submit(self._encode, table)
        fut.add_done_callback(lambda _f: self._slots.release())
        self._pending.append(fut)
        self._drain(block=False)

    def _drain(self, block: bool) -> None:
        while self._pending and (block or self._pending[0].done()):
            blob = self._pending.popleft().result()  # re-raises the encoder's error here
            self._append(blob)

    def _append(self, blob: bytes) -> None:
        data, meta = split_file(blob)
        if self._meta is None:
            self._meta = meta
        delta = self._pos - len(MAGIC)
        _, groups = meta[_FMD_ROW_GROUPS][1]
        for rg in groups:
            self._row_groups.append(shift_row_group(rg, delta, len(self._row_groups)))
        self._rows += meta[_FMD_NUM_ROWS][1]
        self.sink.write(data)
        self._pos += len(data)

    def close(self) -> None:
        """Finish: every row group written, then the merged footer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._drain(block=True)
            if self._meta is None:  # no rows at all: a valid empty file with the schema
                self._append(self._encode(self.schema.empty_table()))
            meta = dict(self._meta)
            meta[_FMD_NUM_ROWS] = (th.I64, self._rows)
            meta[_FMD_ROW_GROUPS] = (th.LIST, (th.STRUCT, self._row_groups))
            footer = th.encode_struct(meta)
            self.sink.write(footer)
            self.sink.write(struct.pack("<i", len(footer)))
            self.sink.write(MAGIC)
            if self._own:
                self.sink.close()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop encoding; nothing more is written."""
        self._closed = True
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._own:
            self.sink.close()
