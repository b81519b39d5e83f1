"""PostgreSQL as a plain source: a whole table, or the rows past a saved cursor value.

The rows stream out of ``COPY (SELECT …) TO STDOUT (FORMAT BINARY)``; the reader thread cuts the
stream into chunks of whole tuples (PostgreSQL sends one tuple per CopyData message) and the workers
decode a chunk into a batch with the ``nebula.kernels.pgcopy`` decode kernels.

Type mapping: smallint/integer/bigint -> int16/int32/int64, real/double -> float32/float64, boolean ->
bool, numeric(p<=38,s) -> decimal(p,s), text/varchar/char -> string, json/jsonb -> json, bytea -> binary
(the raw bytes), date -> date, timestamp/timestamptz -> timestamp/timestamptz; anything else (uuid,
unconstrained numeric, arrays, intervals, …) is read as its text form (string).

Incremental: with ``cursor: updated_at`` a run reads the rows whose cursor is greater than the last
committed value and saves the greatest value it read (``state()``: ``{"column": …, "cursor": <text>}``).
The maximum and the rows come from one REPEATABLE READ snapshot, so what is read and what is saved
agree. Rows whose cursor is NULL are not read incrementally.

Options: ``table`` (required), ``cursor``, ``db_schema``, ``connect_timeout``, ``retries`` (the last two override
the run's resilience policy for the connection; a connection lost mid-read is a retryable error, which
:func:`nebula.copy` answers by running again from the last checkpoint).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from ...errors import ConfigError, DataError, SourceError
from ...schema import Field, Schema
from ...types import LogicalType
from ..base import Capabilities, ParseStats, RejectSink, Source
from ..destinations.postgres import (
    LIBPQ_OPTIONS,
    connect,
    libpq_url,
    numeric_typmod,
    qualified,
    quote_ident,
    safe_message,
    table_columns,
)

_OWN = ("table", "tables", "cursor", "db_schema", "connect_timeout", "retries", *LIBPQ_OPTIONS)
# passed to every source by the library API; a table has its own schema and types
_IGNORED = ("infer_schema", "columns", "schema", "on_error", "threads", "batch_rows", "dictionary",
            "dictionary_max", "sample_bytes", "block_size")
_DIRECT = {"int2": "int16", "int4": "int32", "int8": "int64", "float4": "float32", "float8": "float64",
           "bool": "bool", "text": "string", "varchar": "string", "bpchar": "string", "json": "json",
           "jsonb": "json", "date": "date", "timestamp": "timestamp", "bytea": "binary"}


def _logical(typname: str, typmod: int) -> tuple[LogicalType, bool]:
    """(our type, read as text) for a column of ``typname``."""
    if typname in _DIRECT:
        return LogicalType(_DIRECT[typname]), False
    if typname == "timestamptz":
        return LogicalType("timestamp", tz="UTC"), False
    if typname == "numeric":
        pm = numeric_typmod(typmod)
        if pm is not None and 1 <= pm[0] <= 38 and pm[1] <= pm[0]:
            return LogicalType("decimal", pm[0], pm[1]), False
    return LogicalType("string"), True


class _Chunk:
    __slots__ = ("data", "first", "seq")

    def __init__(self, data: bytes, first: bool, seq: int) -> None:
        self.data, self.first, self.seq = data, first, seq


class PostgresSource(Source):
    """Rows of one PostgreSQL table (see the module docstring)."""

    capabilities = Capabilities(schemes=("postgresql", "postgres"),
                                notes="full table or incremental by a cursor column; binary COPY decoded by kernels")

    def __init__(self, url: str, *, options: dict | None = None) -> None:
        self.url = url
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(_OWN) - set(_IGNORED))
        if unknown:
            raise ConfigError(f"{self._label()}: unknown option(s) {', '.join(unknown)}; known: {', '.join(_OWN)}")
        self.url = libpq_url(url, opts)
        self.options = opts
        self.table = opts.get("table")
        tables = [t.strip() for t in str(opts.get("tables") or "").split(",") if t.strip()]
        if not self.table and len(tables) == 1:  # --tables T on the CLI
            self.table = tables[0]
        elif not self.table and len(tables) > 1:
            raise ConfigError(f"{self._label()}: a plain PostgreSQL source reads one table; --tables named "
                              f"{len(tables)} (change data capture of several tables comes with --cdc)")
        if not self.table:
            raise ConfigError(f"{self._label()}: which table? use --tables NAME (or the source option table)")
        self.name = str(self.table)
        self.cursor = opts.get("cursor")
        self.batch_rows = int(opts.get("batch_rows") or 65536)
        self.bytes_read = 0
        self.warnings: list[str] = []
        self._qname = qualified(self.name, opts.get("db_schema"))
        self._schema: Schema | None = None
        self._select: list[str] = []
        self._conn = None
        self._previous: dict | None = None
        self._low: str | None = None
        self._high: str | None = None
        self._cursor_type = ""
        self._local = threading.local()
        self._skips: list[int] = []
        from ..resilience import current_policy

        self._policy = current_policy()

    def _label(self) -> str:
        from ...redact import redact_url

        return redact_url(self.url)

    # -- lifecycle ---------------------------------------------------------------------------------
    def resume(self, state: dict | None) -> None:
        self._previous = state
        if state and self.cursor and state.get("column") == self.cursor:
            self._low = state.get("cursor")

    def open(self, conn=None) -> None:
        """``conn``: read through this connection, already in its snapshot transaction (the CDC source's
        exported snapshot); it is not closed by :meth:`close`."""
        import psycopg

        self._borrowed = conn is not None
        if conn is None:
            conn = connect(self.url, timeout=self.options.get("connect_timeout"), retries=self.options.get("retries"),
                           policy=self._policy)
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
        self._conn = conn
        try:
            cur = self._conn.cursor()
            cols = table_columns(cur, self._qname)
            if cols is None:
                raise SourceError(f"{self._label()}: table {self.name!r} does not exist")
            fields = []
            for name, (typname, typmod, shown) in cols.items():
                t, as_text = _logical(typname, typmod)
                fields.append(Field(name, t))
                self._select.append(quote_ident(name) + ("::text" if as_text else ""))
                self._skips.append(1 if typname == "jsonb" else 0)
                if name == self.cursor:
                    self._cursor_type = shown
            self._schema = Schema(fields)
            if self.cursor:
                if self.cursor not in cols:
                    raise ConfigError(f"{self._label()}: cursor column {self.cursor!r} is not in table {self.name!r}")
                where, params = self._where(upper=False)
                cur.execute(f"SELECT max({quote_ident(self.cursor)})::text FROM {self._qname}{where}", params)
                self._high = cur.fetchone()[0]
        except psycopg.Error as e:
            self.close()
            raise SourceError(f"{self._label()}: cannot read table {self.name!r}: "
                              f"{safe_message(self.url, str(e))}") from None
        except BaseException:
            self.close()
            raise

    def _where(self, upper: bool = True) -> tuple[str, list]:
        if not self.cursor:
            return "", []
        c, t = quote_ident(self.cursor), self._cursor_type
        conds, params = [], []
        if self._low is not None:
            conds.append(f"{c} > %s::{t}")
            params.append(self._low)
        if upper:
            conds.append(f"{c} <= %s::{t}")
            params.append(self._high)
        return (" WHERE " + " AND ".join(conds)) if conds else "", params

    @property
    def schema(self) -> Schema:
        if self._schema is None:
            raise SourceError(f"{self._label()}: schema before open()")
        return self._schema

    def read(self) -> Iterator[_Chunk]:
        if self.cursor and self._high is None:
            return  # nothing past the saved cursor
        where, params = self._where()
        sql = f"COPY (SELECT {', '.join(self._select)} FROM {self._qname}{where}) TO STDOUT (FORMAT BINARY)"
        buf = bytearray()
        msgs = 0
        first = True
        seq = 0
        try:
            with self._conn.cursor().copy(sql, params or None) as copy:
                for data in copy:  # one CopyData message per tuple: cut chunks at message boundaries
                    buf += data
                    msgs += 1
                    if msgs >= self.batch_rows:
                        yield _Chunk(bytes(buf), first, seq)
                        self.bytes_read += len(buf)
                        first, seq, msgs = False, seq + 1, 0
                        buf = bytearray()
            if buf:
                self.bytes_read += len(buf)
                yield _Chunk(bytes(buf), first, seq)
        except Exception as e:
            import psycopg

            if isinstance(e, psycopg.Error):
                raise SourceError(f"{self._label()}: reading table {self.name!r} failed: "
                                  f"{safe_message(self.url, str(e))}", retryable=isinstance(e, psycopg.OperationalError)
                                  ) from None
            raise

    def parse(self, chunk: _Chunk, batch, rejects: RejectSink) -> ParseStats:
        from ...kernels import pgcopy as k

        buf = np.frombuffer(chunk.data, dtype=np.uint8)
        start = 0
        if chunk.first:
            if chunk.data[:11] != k.HEADER[:11]:
                raise DataError("not a binary COPY stream (bad signature)", path=self._label())
            ext = int.from_bytes(chunk.data[15:19], "big")
            start = 19 + ext
        ncols = len(self.schema)  # a CDC snapshot's batch has its change columns after these
        fpos, flen = self._scratch(batch.capacity, ncols)
        rows, nxt, err = k.index_tuples(buf, start, buf.shape[0], ncols, batch.capacity, fpos, flen)
        if err >= 0 or (nxt < buf.shape[0] and chunk.data[nxt:nxt + 2] != k.TRAILER):
            raise DataError(f"malformed COPY tuple at byte {max(err, nxt)} of chunk {chunk.seq}", path=self._label())
        for c, col in enumerate(batch.columns[:ncols]):
            nulls, bad = self._decode(k, buf, fpos, flen, c, rows, col)
            if bad >= 0:
                raise DataError(f"row {bad + 1} of chunk {chunk.seq}: value does not fit {col.field.type}",
                                path=f"{self._label()} table {self.name}", column=col.field.name)
            col.null_count = nulls
        batch.length = rows
        return ParseStats(rows=rows, bytes=len(chunk.data))

    def _scratch(self, cap: int, ncols: int):
        s = getattr(self._local, "s", None)
        if s is None or s[0].shape[0] < cap or s[0].shape[1] != ncols:
            s = (np.empty((cap, ncols), dtype=np.int64), np.empty((cap, ncols), dtype=np.int32))
            self._local.s = s
        return s

    def _decode(self, k, buf, fpos, flen, c, n, col):
        t = col.field.type
        kind = t.kind
        if t.is_varlen:
            skip = self._skips[c]
            data = col.reserve_data(max(1, k.text_bytes(flen, c, n, skip)))
            return k.get_texts(buf, fpos, flen, c, n, skip, col.offsets, data, col.validity)
        if kind == "bool":
            return k.get_bools(buf, fpos, flen, c, n, col.values, col.validity)
        if kind == "decimal":
            return k.get_numerics(buf, fpos, flen, c, n, t.scale, col.values, col.validity)
        if kind == "date":
            return k.get_ints(buf, fpos, flen, c, n, 4, k.PG_EPOCH_DAYS, col.values, col.validity)
        if kind == "timestamp":
            return k.get_ints(buf, fpos, flen, c, n, 8, k.PG_EPOCH_US, col.values, col.validity)
        values = col.values
        if kind in ("float32", "float64"):
            values = values.view(np.int32 if kind == "float32" else np.int64)
        return k.get_ints(buf, fpos, flen, c, n, values.dtype.itemsize, 0, values, col.validity)

    def state(self) -> dict | None:
        if self.cursor and self._high is not None:
            return {"column": self.cursor, "cursor": self._high}
        return self._previous

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not getattr(self, "_borrowed", False):
            try:
                conn.rollback()
                conn.close()
            except Exception:  # noqa: BLE001
                pass

