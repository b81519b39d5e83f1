"""Change data capture as rounds of ordinary pipeline runs (shared by the MySQL and PostgreSQL CDC sources).

A CDC source (:class:`ChangeSource`) reads its log (binlog, WAL) in a background thread and cuts it into
**rounds**: a bounded slice of whole transactions (up to ``max_changes`` changes or ``max_seconds``, or
until caught up). :func:`run_cdc` hands each round to :func:`~nebula.pipeline.runner.run_pipeline` once per
table, into one destination per table, then saves the round's checkpoint and acknowledges it to the source
(PostgreSQL: the flush LSN). The first round is the snapshot (``_op = 'r'``), taken consistently with the
position the stream starts from.

Checkpoints. A round's checkpoint is the position after its last transaction. Each table's destination
stages it under its state name (``NAME`` for one table, ``NAME:TABLE`` for several) so a database
destination commits rows and position together; the state store gets it once every table committed. On
restart the source resumes from the earliest of the store's and the destinations' checkpoints and skips, per
table, the transactions that table already committed: no loss, no duplicate, even if a crash fell between
two tables' commits. (A destination without its own checkpoint - a file - relies on the store: a crash between
its commit and the store's write repeats that round in it.)

Destinations: ``append`` writes the change log (table columns plus ``_op``, the position, ``_commit_ts``);
``merge`` writes the state: changes to one key within a batch are first compacted to the last one by the
``nebula.kernels.hash`` kernels (:func:`compact_last_by_key`), then the destination upserts and deletes.

Stopping: ``until_caught_up`` stops after the round that reached the log position current when the run
began; otherwise the loop runs until ``stop`` is set (SIGTERM) or Ctrl-C, and always ends between rounds,
after a commit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..connectors.base import Source
from ..schema import Schema
from .runner import RunResult


@dataclass
class Round:
    """One slice of the change stream."""

    parts: dict  # table -> a Source of this round's changes of that table, in commit order
    checkpoint: dict | None  # the position after the round (every transaction in it complete)
    caught_up: bool = False  # the round reached the position current when the run began
    changes: int = 0
    snapshot: bool = False


class TablePart(Source):
    """One table's share of a round, as an ordinary Source for ``run_pipeline``: the table's columns followed
    by the change source's ``change_columns`` (``_op``, a position, ``_commit_ts``). Subclasses read and parse."""

    merge_key: list[str] | None = None
    change_columns: list = []

    def __init__(self, owner, table: str) -> None:
        self.owner = owner
        self.table = table
        self.name = table
        self._schema = Schema([*owner._schemas[table], *self.change_columns])

    @property
    def schema(self) -> Schema:
        return self._schema

    def chunk_schema(self, chunk):
        return chunk[0]

    def state(self):
        return self.owner.state()


class ChangeSource(Protocol):
    name: str
    tables: list[str]

    def describe(self) -> None: ...
    def resume(self, state: dict | None, table_states: dict[str, dict] | None = None) -> None: ...
    def open(self) -> None: ...
    def key_of(self, table: str) -> list[str]: ...
    def next_round(self, *, max_changes: int, max_seconds: float, stop: threading.Event) -> Round | None: ...
    def acknowledge(self, checkpoint: dict) -> None: ...
    def close(self) -> None: ...


@dataclass
class CdcOptions:
    max_changes: int = 100_000
    max_seconds: float = 2.0
    until_caught_up: bool = False
    max_rounds: int | None = None  # tests
    warnings: list[str] = field(default_factory=list)


def state_name(name: str, table: str, tables: list[str]) -> str:
    return name if len(tables) == 1 else f"{name}:{table}"


def run_cdc(src, make_destination, *, name: str, mode: str, key: list[str] | None, store, rejects,
            threads: int = 2, batch_rows: int = 65536, opts: CdcOptions | None = None,
            stop: threading.Event | None = None, source_label: str = "", on_round=None,
            table: str | None = None, meter=None) -> RunResult:
    """Run ``src`` (a :class:`ChangeSource`, not yet opened) round by round into one destination per table.

    ``make_destination(table)`` returns a fresh destination; ``store`` is a StateStore or None; ``meter`` a
    :class:`~nebula.pipeline.observe.PipelineMeter` for the whole stream (made here when not given).
    """
    from ..state import DEFAULT_PATH
    from .observe import PipelineMeter
    from .runner import run_pipeline

    if meter is None:
        meter = PipelineMeter(name, source=src)

    opts = opts or CdcOptions()
    stop = stop or threading.Event()
    table_override = table
    t0 = time.perf_counter()
    total = RunResult(name=name, source=source_label, destination="")
    src.describe()
    tables = list(src.tables)
    previous = store.get(name) if store is not None else None
    table_states = {}
    # after `nebula state reset NAME` (no entry in the store) the destinations' checkpoints are ignored
    if store is None or previous is not None:
        for t in tables:
            s = make_destination(t).committed_state(state_name(name, t, tables))
            if s is not None:
                table_states[t] = s
    if hasattr(src, "resync_command"):  # named in errors that need a new snapshot (a purged binlog, ...)
        src.resync_command = f"nebula state reset {name}" + (
            "" if store is None or str(store.path) == DEFAULT_PATH else f" --state {store.path}")
    src.resume(previous, table_states)
    src.open()
    if store is not None and previous is None and src.state() is not None:
        store.set(name, {"snapshot": "started"})  # marks the destinations' checkpoints as ours from now on
    tables = list(src.tables)
    rounds = 0
    dests: list[str] = []
    seen_bytes = int(getattr(src, "bytes_read", 0) or 0)
    try:
        while not stop.is_set():
            meter.stage = "cdc-wait"
            rnd = src.next_round(max_changes=opts.max_changes, max_seconds=opts.max_seconds, stop=stop)
            if rnd is None:
                break
            for table, part in rnd.parts.items():
                dst = make_destination(table)
                target = table if len(tables) > 1 else (table_override or table)
                k = key or src.key_of(table)
                m = "merge" if mode == "merge" else mode
                if m == "merge" and not k:
                    from ..errors import ConfigError

                    raise ConfigError(f"table {table!r} has no primary key: give --key for --mode merge")
                part.merge_key = k if m == "merge" else None
                r = run_pipeline(part, dst, name=state_name(name, table, tables), threads=threads,
                                 batch_rows=batch_rows, mode=m, table=target or table, key=k if m == "merge" else None,
                                 rejects=rejects, source_label=source_label, dest_label=dst.location(), meter=meter)
                total.rows_read += r.rows_read
                total.rows_written += r.rows_written
                total.bytes_written += r.bytes_written
                total.schema = r.schema
                if dst.location() not in dests:
                    dests.append(dst.location())
            if rnd.checkpoint is not None:
                if store is not None:
                    store.set(name, rnd.checkpoint)
                src.acknowledge(rnd.checkpoint)
            now_bytes = int(getattr(src, "bytes_read", 0) or 0)
            meter.bytes_read(now_bytes - seen_bytes)
            seen_bytes = now_bytes
            meter.cdc_round(src)
            rounds += 1
            if on_round is not None:
                on_round(rnd)
            if (rnd.caught_up and opts.until_caught_up) or (opts.max_rounds and rounds >= opts.max_rounds):
                break
    except KeyboardInterrupt:
        pass  # between rounds nothing is half-written: the last round committed or was aborted
    finally:
        src.close()
    total.destination = ", ".join(dests)
    total.rows_rejected = rejects.count
    total.bytes_read = int(getattr(src, "bytes_read", 0) or 0)
    total.seconds = time.perf_counter() - t0
    total.warnings = list(getattr(src, "warnings", []))
    total.dead_letter = rejects.location
    return total


# -- Arrow record batches into pooled batches, and merge compaction --------------------------------------

def compact_last_by_key(rb, key: list[str]):
    """``rb`` (a ``pyarrow.RecordBatch``) with only the last row of each distinct ``key``, in row order.

    Hashing and grouping run in ``nebula.kernels.hash``; rows grouped together are then checked to have
    equal keys (a hash collision falls back to exact grouping in Python).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..kernels import hash as kh

    n = rb.num_rows
    if n <= 1:
        return rb
    hashes = np.zeros(n, np.uint64)
    cols = [rb.column(rb.schema.get_field_index(k)) for k in key]
    for c in cols:
        _hash_column(kh, c, n, hashes)
    table = np.empty(kh.table_size(n), np.int64)
    group = np.empty(n, np.int64)
    keep = np.empty(n, np.uint8)
    groups = kh.last_per_key(hashes, n, table, group, keep)
    if groups == n:
        return rb
    rep = pa.array(group)
    for c in cols:
        other = c.take(rep)
        same = pc.or_(pc.fill_null(pc.equal(c, other), False), pc.and_(c.is_null(), other.is_null()))
        if not pc.all(same).as_py():  # a 64-bit hash collision: group exactly
            last: dict = {}
            keys = list(zip(*(x.to_pylist() for x in cols), strict=True))
            for i, kv in enumerate(keys):
                last[kv] = i
            return rb.take(pa.array(sorted(last.values()), pa.int64()))
    return rb.take(pa.array(np.flatnonzero(keep)))


def _hash_column(kh, arr, n: int, out: np.ndarray) -> None:
    import pyarrow as pa

    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    valid = _validity(arr, n)
    has_nulls = arr.null_count > 0
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_binary(t):
        bufs = arr.buffers()
        offs = np.frombuffer(bufs[1], np.int32)[arr.offset:arr.offset + n + 1]
        data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
        kh.hash_varlen_into(offs, data, valid, has_nulls, n, out)
    elif pa.types.is_decimal(t):
        words = np.frombuffer(arr.buffers()[1], np.int64).reshape(-1, 2)[arr.offset:arr.offset + n]
        kh.hash_fixed_into(np.ascontiguousarray(words[:, 0]), valid, has_nulls, n, out)
        kh.hash_fixed_into(np.ascontiguousarray(words[:, 1]), valid, has_nulls, n, out)
    else:
        if pa.types.is_floating(t):
            vals = arr.cast(pa.float64()).fill_null(0).to_numpy().view(np.int64)
        elif pa.types.is_boolean(t):
            vals = arr.cast(pa.int64()).fill_null(0).to_numpy()
        else:
            vals = np.frombuffer(arr.buffers()[1], t.to_pandas_dtype() if not (
                pa.types.is_timestamp(t) or pa.types.is_date(t)) else (np.int64 if t.bit_width == 64 else np.int32)
            )[arr.offset:arr.offset + n].astype(np.int64)
        kh.hash_fixed_into(np.ascontiguousarray(vals), valid, has_nulls, n, out)


def _validity(arr, n: int) -> np.ndarray:
    bits = np.packbits(arr.is_valid().to_numpy(zero_copy_only=False), bitorder="little")
    out = np.zeros(n // 8 + 9, np.uint8)
    out[:bits.shape[0]] = bits
    return out


def fill_batch(batch, rb) -> None:
    """Copy ``rb`` (columns in ``batch.schema`` order and Arrow types) into the pooled ``batch``."""
    import pyarrow as pa

    n = rb.num_rows
    for i, col in enumerate(batch.columns):
        arr = rb.column(i)
        t = col.field.type
        col.null_count = arr.null_count
        if arr.null_count:
            bits = np.packbits(arr.is_valid().to_numpy(zero_copy_only=False), bitorder="little")
            col.validity[:bits.shape[0]] = bits
        else:
            col.validity[:(n + 7) // 8] = 0xFF
        if n == 0:
            continue
        bufs = arr.buffers()
        off = arr.offset
        if t.is_varlen:
            offs = np.frombuffer(bufs[1], np.int32)[off:off + n + 1]
            start, end = int(offs[0]), int(offs[-1])
            data = col.reserve_data(max(1, end - start))
            col.offsets[:n + 1] = offs - start
            if end > start:
                data[:end - start] = np.frombuffer(bufs[2], np.uint8)[start:end]
        elif t.kind == "bool":
            v = arr.fill_null(False).to_numpy(zero_copy_only=False)
            bits = np.packbits(v, bitorder="little")
            col.values[:bits.shape[0]] = bits
        elif t.kind == "decimal":
            col.values[:n] = np.frombuffer(bufs[1], np.int64).reshape(-1, 2)[off:off + n]
        else:
            col.values[:n] = np.frombuffer(bufs[1], col.values.dtype)[off:off + n]
    batch.length = n
    if not isinstance(rb, pa.RecordBatch):
        raise TypeError("fill_batch needs a RecordBatch")


# -- the library/CLI entry: nebula.copy() of a change source ---------------------------------------------

def destination_for(dest, table: str, tables: list[str], o):
    """The destination of ``table``: ``dest`` itself for one table; for several, a database URL gets
    the source table's name as its table, a path must say where with a ``{table}`` placeholder."""
    from ..api import make_destination
    from ..connectors.base import Destination
    from ..connectors.registry import scheme_of
    from ..errors import ConfigError

    if isinstance(dest, Destination):
        if len(tables) > 1:
            raise ConfigError("several tables need a destination URL, not one Destination object")
        return dest
    url = str(dest)
    if "{table}" in url:
        url = url.replace("{table}", table)
    elif len(tables) > 1 and scheme_of(url) == "file":
        raise ConfigError(f"{len(tables)} tables into one file: put {{table}} in the path, e.g. out/{{table}}.jsonl")
    if scheme_of(url) in ("postgresql", "postgres") and "widen" not in o.dest_options:
        # the source's declared types are the truth: ALTER TABLE ... MODIFY to a wider type (SMALLINT -> BIGINT,
        # INT -> VARCHAR) mid-stream widens the destination column (plain copies range-check inferred ints)
        import dataclasses

        o = dataclasses.replace(o, dest_options={**o.dest_options, "widen": True})
    return make_destination(url, o)


def copy_changes(src, source_label: str, dest, o, *, store, rejects, name: str, meter=None) -> RunResult:
    """:func:`nebula.copy` for a change source: rounds until caught up / stopped (SIGTERM stops cleanly)."""
    import signal

    from ..errors import ConfigError

    so = o.source_options
    if o.table and len(src.tables or []) > 1:
        raise ConfigError("--table names one destination table; with several --tables each keeps its name")
    mode = o.mode or "append"
    if mode == "replace":
        raise ConfigError("a change stream is appended (change log) or merged (--mode merge), not replaced")
    opts = CdcOptions(max_changes=int(so.get("max_changes") or 100_000),
                      max_seconds=float(so.get("max_seconds") or 2.0),
                      until_caught_up=bool(so.get("until_caught_up")) or not so.get("cdc"))
    stop = threading.Event()
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def make(table: str):
        return destination_for(dest, table, src.tables, o)

    try:
        result = run_cdc(src, make, name=name, mode=mode, key=o.key, store=store, rejects=rejects,
                         threads=o.threads or 2, batch_rows=o.batch_rows or 65536, opts=opts, stop=stop,
                         source_label=source_label, table=o.table, meter=meter)
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    return result
