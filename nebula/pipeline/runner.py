"""Running one pipeline: reader thread -> parse workers -> writer, with bounded queues and pools.

- The reader thread pulls raw chunks from ``source.read()`` into a bounded queue.
- Each worker first borrows a batch from the pool, then takes the next chunk, so a chunk is only ever
  taken by a worker that already holds a batch (no deadlock however the pool is sized), and the pool
  bounds how far parsing can run ahead of writing.
- The calling thread is the writer: it writes batches in input order, returns them to the pool, and
  on success commits. Ctrl-C (KeyboardInterrupt) or any error stops every thread, aborts the
  destination (nothing half-written stays visible) and re-raises.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

from ..errors import Interrupted, NebulaError, TooManyRejected
from ..pool import BatchPool, PoolClosed

_END = object()


@dataclass
class StageMetrics:
    """Counters of one stage; they add up into the run summary."""

    rows: int = 0
    rejected: int = 0
    bytes: int = 0
    batches: int = 0
    seconds: float = 0.0

    def __add__(self, other: StageMetrics) -> StageMetrics:
        return StageMetrics(self.rows + other.rows, self.rejected + other.rejected, self.bytes + other.bytes,
                            self.batches + other.batches, self.seconds + other.seconds)


@dataclass
class RunResult:
    """The summary of a run (also printed by the CLI and rendered in notebooks)."""

    name: str
    source: str
    destination: str
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    status: str = "ok"
    run_id: str = ""
    dead_letter: str | None = None
    schema: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    bytes_per_record: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rows_per_second"] = round(self.rows_per_second, 1)
        d["seconds"] = round(self.seconds, 4)
        return d

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>"
                       for k, v in self.to_dict().items() if k not in ("schema", "warnings"))
        return f"<table><caption>nebula run {self.name}</caption>{rows}</table>"


class _Failure:
    def __init__(self) -> None:
        self.exc: BaseException | None = None
        self.event = threading.Event()

    def set(self, exc: BaseException) -> None:
        if self.exc is None:
            self.exc = exc
        self.event.set()


class _Pools:
    """Batches for every schema a source produces: a :class:`BatchPool` of the current schema, replaced
    when a chunk arrives with an evolved schema (:meth:`Source.chunk_schema`).

    ``switch`` never blocks: the worker gives back its batch and gets a fresh, unpooled batch of the
    new schema (a worker holding the oldest chunk must never wait for a batch); later acquires come
    from the new pool. Batches of an old schema go back to their own pool.
    """

    def __init__(self, schema, capacity: int, size: int, **batch_opts) -> None:
        self._args = (capacity, size, batch_opts)
        self._lock = threading.Lock()
        self.current = BatchPool(schema, capacity, size, **batch_opts)
        self._owner: dict[int, BatchPool] = {}
        self._pools = [self.current]

    def acquire(self):
        pool = self.current
        batch = pool.acquire()
        with self._lock:
            self._owner[id(batch)] = pool
        return batch

    def switch(self, batch, schema):
        from ..batch import Batch

        capacity, size, opts = self._args
        with self._lock:
            if self.current.schema != schema:
                self.current = BatchPool(schema, capacity, size, **opts)
                self._pools.append(self.current)
        self.release(batch)
        return Batch(schema, capacity, **opts)

    def release(self, batch) -> None:
        with self._lock:
            pool = self._owner.pop(id(batch), None)
        if pool is not None:
            pool.release(batch)

    def in_use(self) -> int:
        """Batches lent out now (every schema's pool; a gauge sampled per batch)."""
        return sum(p.in_use for p in self._pools)

    @property
    def capacity(self) -> int:
        return self.current.size

    def close(self) -> None:
        for p in self._pools:
            p.close()


def run_pipeline(source, destination, *, name: str = "pipeline", threads: int = 2, batch_rows: int = 65536,
                 mode: str = "append", table: str | None = None, key: list[str] | None = None,
                 rejects=None, max_rejected: int | None = None, progress=None,
                 source_label: str = "", dest_label: str = "", meter=None) -> RunResult:
    """Move everything from an opened ``source`` into ``destination``; returns the :class:`RunResult`.

    ``rejects`` is a :class:`~nebula.pipeline.deadletter.Rejects` (counts and stores rejected rows).
    ``meter`` (a :class:`~nebula.pipeline.observe.PipelineMeter`) gets the metrics, once per batch; without
    one the run makes its own.
    """
    from .deadletter import Rejects
    from .observe import PipelineMeter

    own_meter = meter is None
    if own_meter:
        meter = PipelineMeter(name, source=source, destination=destination)
    else:
        meter.bind_destination(destination)

    t0 = time.perf_counter()
    rejects = rejects or Rejects(policy="fail")
    schema = source.schema
    threads = max(1, int(threads))
    held = max(0, int(destination.holds_batches(batch_rows) or 0)) if hasattr(destination, "holds_batches") else 0
    pool = _Pools(schema, batch_rows, threads + 2 + held,
                  dict_columns=frozenset(getattr(source, "dict_columns", None) or ()))
    if held:  # the destination keeps batches (no copy) and gives each back when done with it
        destination.bind_release(pool.release)
    work: queue.Queue = queue.Queue(maxsize=threads + 1)
    done: dict[int, tuple] = {}
    done_cv = threading.Condition()
    fail = _Failure()
    stop = threading.Event()
    read_metrics = StageMetrics()
    result = RunResult(name=name, source=source_label, destination=dest_label, run_id=uuid.uuid4().hex[:12],
                       schema=schema.to_dict(), warnings=list(getattr(source, "warnings", [])))
    bpr_rows = 0
    bpr_bytes = 0

    def put(item) -> bool:
        while not stop.is_set():
            try:
                work.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        seq = 0
        read_time = meter.read_time
        clock = time.perf_counter
        try:
            chunks = iter(source.read())
            while True:
                t = clock()
                chunk = next(chunks, _END)
                read_time.observe(clock() - t)
                if chunk is _END:
                    break
                if not put((seq, chunk)):
                    source.release(chunk)
                    return
                seq += 1
        except BaseException as e:  # noqa: BLE001 - handed to the writer thread
            fail.set(e)
        finally:
            for _ in range(threads):
                if not put(_END):
                    break

    def worker() -> None:
        parse_time = meter.parse_time
        while not stop.is_set():
            try:
                batch = pool.acquire()
            except PoolClosed:
                return
            item = None
            while not stop.is_set():
                try:
                    item = work.get(timeout=0.1)
                    break
                except queue.Empty:
                    continue
            if item is None or item is _END:
                pool.release(batch)
                return
            seq, chunk = item
            try:
                t = time.perf_counter()
                want = source.chunk_schema(chunk)
                if want is not None and want != batch.schema:  # the source's schema evolved
                    batch = pool.switch(batch, want)
                stats = source.parse(chunk, batch, rejects)
                dt = time.perf_counter() - t
                parse_time.observe(dt)
            except BaseException as e:  # noqa: BLE001
                pool.release(batch)
                fail.set(e)
                stop.set()
                return
            finally:
                source.release(chunk)
            with done_cv:
                done[seq] = (batch, stats, dt)
                done_cv.notify_all()

    ths = [threading.Thread(target=reader, name="nebula-reader", daemon=True)]
    ths += [threading.Thread(target=worker, name=f"nebula-parse-{i}", daemon=True) for i in range(threads)]
    written_schema = schema
    committed = False
    seen_bytes = 0
    try:
        meter.stage = "open"
        destination.open(schema, mode=mode, table=table, key=key)  # inside: an interrupt here aborts too
        meter.stage = "write"
        for t in ths:
            t.start()
        nxt = 0
        while True:
            with done_cv:
                while nxt not in done:
                    if fail.event.is_set():
                        raise fail.exc
                    if not any(t.is_alive() for t in ths[1:]) and nxt not in done:
                        break
                    done_cv.wait(0.1)
                item = done.pop(nxt, None)
            if item is None:
                if fail.exc is not None:
                    raise fail.exc
                break
            batch, stats, parse_s = item
            handed = False
            try:
                read_metrics.rows += stats.rows + stats.rejected
                read_metrics.rejected += stats.rejected
                read_metrics.batches += 1
                write_s = 0.0
                n = batch.length
                wrote = 0
                if n:
                    if batch.schema != written_schema:
                        destination.evolve(batch.schema)
                        written_schema = batch.schema
                    nb = batch.nbytes
                    bpr_rows += n
                    bpr_bytes += nb
                    tw = time.perf_counter()
                    handed = bool(held)  # from here on the destination gives the batch back
                    wrote = destination.write(batch) or 0
                    write_s = time.perf_counter() - tw
                    meter.write_time.observe(write_s)
                    result.bytes_written += wrote
                    result.rows_written += n
            finally:
                if not handed:
                    pool.release(batch)
            now_bytes = int(getattr(source, "bytes_read", 0) or 0)
            meter.batch(read=stats.rows + stats.rejected, rejected=stats.rejected, written=n, bytes_written=wrote,
                        bytes_read=now_bytes - seen_bytes, seconds=max(parse_s, write_s))
            seen_bytes = now_bytes
            meter.gauges(pool_in_use=pool.in_use(), pool_capacity=pool.capacity, chunks=work.qsize(),
                         parsed=len(done))
            if max_rejected is not None and rejects.count > max_rejected:
                raise TooManyRejected(f"{rejects.count} rows rejected, more than --max-rejected {max_rejected}")
            if progress is not None:
                progress.update(rows=result.rows_written, rejected=rejects.count,
                                bytes=getattr(source, "bytes_read", 0))
            nxt += 1
        if fail.exc is not None:
            raise fail.exc
        rejects.flush()
        checkpoint = source.state()
        if checkpoint is not None:  # saved in the destination's own transaction when it can (exactly-once)
            destination.stage_state(name, checkpoint)
        meter.stage = "commit"
        tw = time.perf_counter()
        destination.commit()
        meter.commit_time.observe(time.perf_counter() - tw)
        committed = True
        stored = getattr(destination, "bytes_committed", None)  # a file's real size (compressed, with footer)
        if stored is not None and int(stored) >= result.bytes_written:
            meter.bytes_written(int(stored) - result.bytes_written)
            result.bytes_written = int(stored)
    except KeyboardInterrupt:
        if own_meter:
            meter.fail(Interrupted("interrupted"))
        raise Interrupted("interrupted; nothing was committed") from None
    except BaseException as e:
        if own_meter:
            meter.fail(e)
        raise
    finally:
        stop.set()
        pool.close()
        for t in ths:
            if t.ident is not None:
                t.join(timeout=5)
        if not committed:
            try:
                destination.abort()
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
        try:
            destination.close()
        except NebulaError:
            if committed:
                raise
        if progress is not None:
            progress.close()
    result.schema = written_schema.to_dict()
    result.rows_read = read_metrics.rows
    result.rows_rejected = rejects.count
    result.bytes_read = int(getattr(source, "bytes_read", 0) or 0)
    meter.bytes_read(result.bytes_read - seen_bytes)
    meter.gauges(pool_in_use=0, pool_capacity=pool.capacity, chunks=0, parsed=0)
    if own_meter:
        meter.finish()
    result.seconds = time.perf_counter() - t0
    result.dead_letter = rejects.location
    result.bytes_per_record = round(bpr_bytes / bpr_rows, 2) if bpr_rows else 0.0
    return result
