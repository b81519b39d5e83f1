"""MySQL / MariaDB source: a consistent snapshot of tables, then (``--cdc``) row changes from the binlog.

``mysql://user:pw@host:port/db`` (also ``mariadb://``). Options: ``tables`` (``a,b`` or ``db.a``; default:
every base table of the database), ``cdc``, ``server_id`` (replica id, default 0x4E42), ``connect_timeout``,
``retries`` (reconnections of a dropped binlog connection in a row, default the run policy's), ``password``
(instead of the URL's).
A single table's stream name is the table; several tables go to one destination each (see
:mod:`nebula.pipeline.cdc`).

TLS (options, or the URL's query: ``?ssl_ca=/etc/ca.pem``): ``ssl_ca`` (CA file), ``ssl_cert`` and ``ssl_key``
(client certificate), ``ssl_verify``: ``full`` (the default with a CA: the certificate and the host name are
checked), ``ca`` (the certificate only) or ``none`` (encrypted, nothing checked). Any of them turns TLS on, for
the snapshot connections and the binlog stream alike; a certificate that cannot be verified is a clear error.

Snapshot. ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` (REPEATABLE READ, session time zone UTC), then on
MariaDB ``SHOW STATUS LIKE 'binlog_snapshot_%'`` gives the binlog file/position consistent with it without a
global lock, and ``BINLOG_GTID_POS(file, pos)`` the GTID position at exactly that point. On MySQL the
snapshot is taken under a brief ``FLUSH TABLES WITH READ LOCK`` (needs RELOAD) to read ``SHOW MASTER
STATUS`` consistently (untested here: the tests run MariaDB). Consistent for InnoDB tables only.

Stream (``--cdc``): python-mysql-replication (PyMySQL) reads Write/Update/Delete rows events, following
rotations. Its decoder turns each row into a dict of Python values (that is the client library's work, in
Python); this module turns those value lists into Arrow arrays per column (``pyarrow.array`` converts in C)
and into pooled batches - no per-value formatting here. Checks at start, each a clear ConfigError:
``log_bin`` on, ``binlog_format=ROW``, ``binlog_row_image=FULL``, ``binlog_row_metadata=FULL``, and the
REPLICATION SLAVE and BINLOG MONITOR (MySQL: REPLICATION CLIENT) privileges.

Changes: the table's columns plus ``_op`` ('r' snapshot, 'c' insert, 'u' update with the after image, 'd'
delete with the before image; an update that changes the primary key is a 'd' of the before image then a
'u'; 't' a TRUNCATE TABLE or DROP TABLE, one row of nulls: merge destinations empty the table there), ``_pos`` (the transaction's GTID ``domain-server-seq`` / ``uuid:n``, else ``file:pos``) and
``_commit_ts`` (timestamptz; the binlog has whole seconds). In merge mode the snapshot replaces the table's
rows (a 't' row leads it, in the same commit), so a resync leaves no row the source no longer has. A change to
a captured table logged as a statement (a session with ``binlog_format`` STATEMENT or MIXED) cannot be
captured: a SourceError naming the position and the resync command, after the transactions before it.

Positions and resume: a transaction ends at its XidEvent (or COMMIT query, or is one DDL statement); the
checkpoint is ``{"file", "pos", "gtid"}`` after the last transaction handed to the destinations. MariaDB
resumes by GTID (``@slave_connect_state``), other servers by file/position; both exact. A purged binlog is
a clear error naming the resync command (``nebula state reset NAME [--state PATH]``). A dropped binlog connection is reopened from the last
complete transaction (the partial one is read again, never twice) with the resilience layer's backoff and
circuit breaker (:mod:`nebula.connectors.resilience`); connections are opened through it too.

Schema changes: the TableMapEvent's column names/types change after ALTER TABLE; the table's schema evolves
by :meth:`Schema.evolve` (strings allowed): added columns are added, widened types widen, a dropped column
stays (null from then on).

Types: TINYINT/SMALLINT/MEDIUMINT/INT/BIGINT -> int8/16/32/32/64 (unsigned: one size up; BIGINT UNSIGNED ->
decimal(20,0)); YEAR -> int16; BIT -> int64 (BIT(64): decimal(20,0)); DECIMAL(p,s) -> decimal(p,s) (p > 38:
string, plain notation); FLOAT/DOUBLE -> float32/float64; CHAR/VARCHAR/TEXT, ENUM, SET (``a,b``) -> string;
BINARY/VARBINARY/BLOB -> binary (the bytes; BINARY(n) padded to n with zero bytes, as stored); JSON -> json;
DATE -> date; DATETIME -> timestamp; TIMESTAMP -> timestamptz; TIME -> int64 microseconds. Zero dates
('0000-00-00', a zero TIMESTAMP) and invalid dates/datetimes ('2024-02-30' under ALLOW_INVALID_DATES) become
NULL in the snapshot and the stream alike, never an error: with ``--on-error dead-letter`` (or ``skip``) each is also counted as a rejected value
(dead-letter record naming table, column and position); the row itself is loaded.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np

from ...errors import ConfigError, ConnectionFailed, DataError, SourceError
from ...pipeline.cdc import TablePart
from ...schema import Field, Schema
from ...types import LogicalType
from ..base import Capabilities, ParseStats, Source

_TLS = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_verify")
_OWN = ("tables", "cdc", "server_id", "connect_timeout", "retries", "until_caught_up", "max_changes", "max_seconds",
        "password", *_TLS)
_IGNORED = ("infer_schema", "columns", "schema", "on_error", "threads", "batch_rows", "dictionary",
            "dictionary_max", "sample_bytes", "block_size")
_OPS = ("r", "c", "u", "d", "t")
_CHANGE = [Field("_op", LogicalType("string")), Field("_pos", LogicalType("string")),
           Field("_commit_ts", LogicalType("timestamp", tz="UTC"))]
_BAD_TEMPORAL = ("out of date range", "out of datetime range", "out of datetime2 range")
_PURGED = 1236


class _StreamLost(Exception):
    """The binlog connection failed (raised past the client library, which would reconnect on its own
    from a position we do not control)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"({code}) {message}")
        self.code = code


def _lenient_dates() -> None:
    """The binlog decoder reads an invalid DATE/DATETIME (``2024-02-30``, allowed by ALLOW_INVALID_DATES) as
    None, as it already does for zero dates and DATETIME2: its ``datetime.date(...)`` raised ValueError for the
    whole rows event. The value's bytes are consumed before that call, so the event decodes on."""
    from pymysqlreplication.row_event import RowsEvent

    if getattr(RowsEvent, "_nebula_lenient_dates", False):
        return
    for attr in ("_RowsEvent__read_date", "_RowsEvent__read_datetime"):
        def lenient(self, *a, _read=getattr(RowsEvent, attr)):
            try:
                return _read(self, *a)
            except ValueError:
                return None  # the caller records why: "out of date range" / "out of datetime range"
        setattr(RowsEvent, attr, lenient)
    RowsEvent._nebula_lenient_dates = True


def _strict_connect(**kw):
    import pymysql

    class _Conn(pymysql.connections.Connection):
        def _read_packet(self, *a, **k):
            try:
                return super()._read_packet(*a, **k)
            except pymysql.err.MySQLError as e:
                code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
                raise _StreamLost(code, str(e.args[1] if len(e.args) > 1 else e)) from e

    try:
        return _Conn(**kw)
    except pymysql.err.OperationalError as e:  # reconnecting while the server restarts: retried like a drop
        code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
        raise _StreamLost(code, str(e.args[1] if len(e.args) > 1 else e)) from e


# -- types ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Col:
    name: str
    kind: str  # how values arrive: int uint64 decimal bigdecimal float string binary date datetime
    #            timestamp time json enum set bit
    type: LogicalType
    pad: int = 0  # BINARY(n) in the binlog: n (the binlog drops its trailing zero bytes, the column has them)


_INTS = {"tinyint": ("int8", "int16"), "smallint": ("int16", "int32"), "mediumint": ("int32", "int32"),
         "int": ("int32", "int64"), "integer": ("int32", "int64"), "bigint": ("int64", None)}


def _col_from_catalog(name: str, data_type: str, column_type: str, precision, scale) -> _Col:
    """A column as information_schema.COLUMNS describes it."""
    dt = data_type.lower()
    unsigned = "unsigned" in column_type.lower()
    if dt in _INTS:
        t = _INTS[dt][1 if unsigned else 0]
        return _Col(name, "uint64", LogicalType("decimal", 20, 0)) if t is None else _Col(name, "int", LogicalType(t))
    if dt == "year":
        return _Col(name, "int", LogicalType("int16"))
    if dt == "bit":  # BIT(64) holds values past int64: decimal(20,0), like BIGINT UNSIGNED
        return _Col(name, "bit", LogicalType("decimal", 20, 0) if int(precision or 1) > 63 else LogicalType("int64"))
    if dt in ("decimal", "numeric"):
        p, s = int(precision or 10), int(scale or 0)
        return _Col(name, "decimal", LogicalType("decimal", p, s)) if p <= 38 else _Col(name, "bigdecimal",
                                                                                        LogicalType("string"))
    if dt in ("float", "double", "real"):
        return _Col(name, "float", LogicalType("float32" if dt == "float" else "float64"))
    if dt in ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"):
        return _Col(name, "binary", LogicalType("binary"))
    if dt == "json":
        return _Col(name, "json", LogicalType("json"))
    if dt in ("enum", "set"):
        return _Col(name, dt, LogicalType("string"))
    if dt == "date":
        return _Col(name, "date", LogicalType("date"))
    if dt == "datetime":
        return _Col(name, "datetime", LogicalType("timestamp"))
    if dt == "timestamp":
        return _Col(name, "timestamp", LogicalType("timestamp", tz="UTC"))
    if dt == "time":
        return _Col(name, "time", LogicalType("int64"))
    return _Col(name, "string", LogicalType("string"))


def _col_from_binlog(c) -> _Col:
    """A column as a TableMapEvent (with FULL metadata) describes it."""
    from pymysqlreplication.constants import FIELD_TYPE as F

    t, name, unsigned = c.type, c.name, bool(getattr(c, "unsigned", False))
    ints = {F.TINY: "tinyint", F.SHORT: "smallint", F.INT24: "mediumint", F.LONG: "int", F.LONGLONG: "bigint"}
    if t in ints:
        return _col_from_catalog(name, ints[t], "unsigned" if unsigned else "", None, None)
    if t == F.YEAR:
        return _col_from_catalog(name, "year", "", None, None)
    if t == F.BIT:
        return _col_from_catalog(name, "bit", "", getattr(c, "bits", None), None)
    if t == F.NEWDECIMAL:
        return _col_from_catalog(name, "decimal", "", c.precision, c.decimals)
    if t in (F.FLOAT, F.DOUBLE):
        return _col_from_catalog(name, "float" if t == F.FLOAT else "double", "", None, None)
    if t in (F.ENUM, F.SET):
        return _col_from_catalog(name, "enum" if t == F.ENUM else "set", "", None, None)
    if t == F.JSON:
        return _col_from_catalog(name, "json", "", None, None)
    if t in (F.DATE, F.NEWDATE):
        return _col_from_catalog(name, "date", "", None, None)
    if t in (F.DATETIME, F.DATETIME2):
        return _col_from_catalog(name, "datetime", "", None, None)
    if t in (F.TIMESTAMP, F.TIMESTAMP2):
        return _col_from_catalog(name, "timestamp", "", None, None)
    if t in (F.TIME, F.TIME2):
        return _col_from_catalog(name, "time", "", None, None)
    if t in (F.VARCHAR, F.STRING, F.VAR_STRING, F.BLOB, F.TINY_BLOB, F.MEDIUM_BLOB, F.LONG_BLOB):
        if (getattr(c, "character_set_name", None) or "").lower() == "binary":
            return _Col(name, "binary", LogicalType("binary"), int(getattr(c, "max_length", 0) or 0)
                        if t == F.STRING else 0)
        return _Col(name, "string", LogicalType("string"))
    return _Col(name, "string", LogicalType("string"))


def _build(col: _Col, values: list, bad: list[int] | None = None):
    """``values`` (Python objects from the driver or the binlog decoder) as an Arrow array of ``col.type``.

    ``bad`` (out) collects the row numbers whose temporal value was invalid (made null)."""
    import pyarrow as pa

    k = col.kind
    at = col.type.to_arrow()
    try:
        if k == "uint64":
            return pa.array(values, pa.uint64()).cast(at)
        if k == "bigdecimal":  # text from the snapshot (CAST AS CHAR), Decimal from the binlog: plain notation,
            # the column's scale (the decoder keeps trailing zeros), as MySQL prints it
            if any(not isinstance(v, str | None) for v in values):
                values = [v if v is None or isinstance(v, str) else format(v, "f") for v in values]
            return pa.array(values, pa.string())
        if k == "binary":  # bytes from PyMySQL (snapshot) and from the binlog decoder (binary charset)
            w = col.pad
            if w:
                values = [v if v is None or len(v) >= w else v + b"\0" * (w - len(v)) for v in values]
            return pa.array(values, pa.binary())
        if k == "set":
            if values and any(isinstance(v, set) for v in values):
                values = [None if v is None else ",".join(sorted(v)) if isinstance(v, set) else v for v in values]
            return pa.array(values, pa.string())
        if k == "time":
            if values and any(not isinstance(v, int | None) for v in values[:8]):
                return pa.array(values, pa.duration("us")).cast(pa.int64())
            return pa.array(values, pa.int64())
        if k == "json":
            return pa.array(values, pa.string())
        if k == "bit":
            if values and any(isinstance(v, str) for v in values[:8]):  # the binlog decoder gives '0101'
                values = [None if v is None else int(v, 2) for v in values]
            return pa.array(values, pa.uint64()).cast(at)
        if k == "timestamp":
            return _zero_timestamps(pa.array(values, at), bad)
        return pa.array(values, at)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        if k not in ("date", "datetime", "timestamp"):
            raise
    # zero dates / invalid datetimes arrive as text from the driver: null them, report them
    import datetime as dt

    ok = dt.date if k == "date" else dt.datetime
    clean = []
    for i, v in enumerate(values):
        if v is None or isinstance(v, ok):
            clean.append(v)
        else:
            clean.append(None)
            if bad is not None:
                bad.append(i)
    return _zero_timestamps(pa.array(clean, at), bad) if k == "timestamp" else pa.array(clean, at)


def _zero_timestamps(arr, bad: list[int] | None):
    """A zero TIMESTAMP is stored as epoch second 0 and the binlog decoder reads it as 1970-01-01 00:00:00;
    no valid TIMESTAMP is before 1970-01-01 00:00:01 UTC: those become null (reported, like zero dates)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    zero = pc.fill_null(pc.less(arr.cast(pa.int64()), 1_000_000), False)
    if not pc.any(zero).as_py():
        return arr
    if bad is not None:
        bad.extend(int(i) for i in np.flatnonzero(zero.to_numpy(zero_copy_only=False)))
    return pc.if_else(zero, pa.scalar(None, arr.type), arr)


# -- connections, URL -------------------------------------------------------------------------------------

def _parse_url(url: str, options: dict | None = None) -> dict:
    """PyMySQL connection arguments of a ``mysql://`` URL; ``options`` (``password``, TLS) override its query."""
    u = urlsplit(url)
    if u.scheme not in ("mysql", "mariadb"):
        raise ConfigError(f"not a mysql:// URL: {u.scheme}://…")
    db = u.path.lstrip("/")
    if not db:
        raise ConfigError("mysql:// URL needs a database: mysql://user:pw@host:port/db")
    opts = {k: v for k, v in parse_qsl(u.query) if k in _TLS}
    opts.update({k: str(v) for k, v in (options or {}).items() if k in (*_TLS, "password") and v not in (None, "")})
    args = {"host": u.hostname or "127.0.0.1", "port": u.port or 3306, "user": unquote(u.username or "root"),
            "password": opts.get("password", unquote(u.password or "")), "database": unquote(db)}
    if any(k in opts for k in _TLS):
        verify = opts.get("ssl_verify", "full" if opts.get("ssl_ca") else "none").lower()
        modes = {"full": (True, True), "true": (True, True), "1": (True, True), "yes": (True, True),
                 "ca": (True, False), "none": (False, False), "false": (False, False), "0": (False, False),
                 "no": (False, False)}
        if verify not in modes:
            raise ConfigError(f"ssl_verify must be full, ca or none, got {verify!r}")
        cert, host = modes[verify]
        args["ssl"] = {"ca": opts.get("ssl_ca"), "verify_mode": cert, "check_hostname": host,
                       **({"cert": opts["ssl_cert"]} if opts.get("ssl_cert") else {}),
                       **({"key": opts["ssl_key"]} if opts.get("ssl_key") else {})}
    return args


def _tls_failure(e: BaseException) -> bool:
    text = str(e).lower()
    return "certificate_verify_failed" in text or "certificate verify failed" in text


def _qi(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MysqlSource(Source):
    """Tables of a MySQL/MariaDB database, optionally followed by their binlog changes (see the module doc)."""

    capabilities = Capabilities(schemes=("mysql", "mariadb"), cdc=True, exactly_once=True, schema_evolution=True,
                                notes="consistent snapshot + binlog (ROW/FULL); GTID or file/pos checkpoints")

    def __init__(self, url: str, *, options: dict | None = None) -> None:
        from ...redact import redact_url

        self.url = url
        self.label = redact_url(url)
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(_OWN) - set(_IGNORED))
        if unknown:
            raise ConfigError(f"{self.label}: unknown option(s) {', '.join(unknown)}; known: {', '.join(_OWN)}")
        self.conn_args = _parse_url(url, opts)
        self.db = self.conn_args["database"]
        self.cdc = bool(opts.get("cdc"))
        self.on_error = opts.get("on_error") or "fail"
        self.batch_rows = int(opts.get("batch_rows") or 65536)
        self.server_id = int(opts.get("server_id") or 0x4E42)
        from ..resilience import current_policy, endpoint_of

        self._policy = current_policy()  # captured here: the binlog thread reconnects with the run's policy
        self._endpoint = endpoint_of(url)
        self.timeout = float(opts.get("connect_timeout") or self._policy.connect_timeout)
        self.retries = int(opts.get("retries") if opts.get("retries") is not None else self._policy.retries)
        want = opts.get("tables")
        if isinstance(want, str):
            want = [t.strip() for t in want.split(",") if t.strip()]
        self._want = [t.split(".", 1)[1] if "." in t else t for t in (want or [])]
        for t in want or []:
            if "." in t and t.split(".", 1)[0] != self.db:
                raise ConfigError(f"{self.label}: table {t!r} is not in database {self.db!r}")
        self.tables: list[str] = list(self._want)
        self.name = self.tables[0] if len(self.tables) == 1 else self.db
        self.bytes_read = 0
        self.warnings: list[str] = []
        self.resync_command = ""  # set by run_cdc: ``nebula state reset NAME [--state PATH]``
        self._schemas: dict[str, Schema] = {}  # data columns, evolved
        self._cols: dict[str, list[_Col]] = {}
        self._keys: dict[str, list[str]] = {}
        self._state: dict | None = None
        self._table_states: dict[str, tuple] = {}
        self._conn = None
        self._snapshot_pending = False
        self._pos: dict | None = None  # position of the last transaction handed out
        self._target: tuple | None = None
        self._mariadb = True
        self._reader: threading.Thread | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=64)
        self._stop = threading.Event()
        self._done = False
        self._error: BaseException | None = None  # the reader's error, raised after the round before it
        self._scanned: tuple = (0, 0)  # how far the reader has read, between transactions

    # -- ChangeSource protocol ----------------------------------------------------------------------------
    def resume(self, state: dict | None, table_states: dict | None = None) -> None:
        self._state = state if state and state.get("file") else None
        self._table_states = {t: _order(s) for t, s in (table_states or {}).items() if s and s.get("file")}
        # the store has no position (first run killed in its snapshot round, or the store was lost): the
        # destinations' checkpoints serve only if every table has one, else a new snapshot (never a gap)
        if self._state is None and self._table_states and set(self._table_states) >= set(self.tables):
            t, s = min(((t, s) for t, s in (table_states or {}).items() if s and s.get("file")),
                       key=lambda x: _order(x[1]))
            self._state = s

    def describe(self) -> None:
        """Connect and read the tables, their columns and keys (before :meth:`resume`)."""
        if self._conn is not None:
            return
        self._conn = self._connect()
        cur = self._conn.cursor()
        cur.execute("SELECT VERSION()")
        self._mariadb = "mariadb" in cur.fetchone()[0].lower()
        if not self.tables:
            cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND "
                        "TABLE_TYPE='BASE TABLE' ORDER BY TABLE_NAME", (self.db,))
            self.tables = [r[0] for r in cur.fetchall()]
            if not self.tables:
                raise SourceError(f"{self.label}: database {self.db!r} has no tables")
            self.name = self.tables[0] if len(self.tables) == 1 else self.db
        for t in self.tables:
            self._load_table(cur, t)

    def open(self) -> None:
        self.describe()
        cur = self._conn.cursor()
        if self.cdc:
            self._check_server(cur)
        if self._state is None:
            self._begin_snapshot(cur)
        else:
            self._pos = dict(self._state)
            self._check_not_purged(cur, self._pos["file"])
        if self.cdc:
            self._target = _order(self._server_position(cur))

    def _pos_label(self) -> str:
        p = self._pos
        return "" if not p else (p.get("gtid") or f"{p['file']}:{p['pos']}")

    def key_of(self, table: str) -> list[str]:
        return list(self._keys.get(table, []))

    def acknowledge(self, checkpoint: dict) -> None:
        pass  # a binlog reader holds nothing on the server

    def state(self) -> dict | None:
        return dict(self._pos) if (self.cdc and self._pos) else None

    @property
    def schema(self) -> Schema:  # the first table's (plain single-table use)
        return Schema([*self._schemas[self.tables[0]], *_CHANGE])

    # A change source is driven in rounds by nebula.pipeline.cdc.run_cdc (``next_round`` hands out one
    # ordinary source per table); it never runs under run_pipeline itself.
    def read(self):
        raise TypeError("MysqlSource is driven by nebula.pipeline.cdc.run_cdc (rounds), not run_pipeline")

    def parse(self, chunk, batch, rejects) -> ParseStats:
        raise TypeError("MysqlSource is driven by nebula.pipeline.cdc.run_cdc (rounds), not run_pipeline")

    # -- connection and checks ----------------------------------------------------------------------------
    def _connect(self, *, probe: bool = False, **extra):
        """A PyMySQL connection through the resilience layer (``probe``: one attempt, outside the breaker)."""
        import pymysql

        from ..resilience import retry_call

        a = self.conn_args

        def once():
            try:
                return pymysql.connect(host=a["host"], port=a["port"], user=a["user"], password=a["password"],
                                       database=a["database"], connect_timeout=self.timeout, autocommit=True,
                                       charset="utf8mb4", **({"ssl": a["ssl"]} if a.get("ssl") else {}), **extra)
            except pymysql.err.OperationalError as e:
                code = e.args[0] if e.args else 0
                if _tls_failure(e):  # retrying cannot fix a certificate
                    raise ConnectionFailed(f"{self.label}: TLS: the server certificate could not be verified (is "
                                           f"ssl_ca the CA that signed it?): {e.args[-1]}", retryable=False) from None
                if code in (1045, 1044, 1049):
                    raise ConfigError(f"{self.label}: {e.args[1]}") from None
                raise ConnectionFailed(f"{self.label}: cannot connect: {e.args[1] if len(e.args) > 1 else e}",
                                       retryable=True) from None

        policy = self._policy.replace(attempts=1) if probe else self._policy
        return retry_call(once, endpoint=self._endpoint, policy=policy, breaker=False if probe else None,
                          what="connect")

    def _check_server(self, cur) -> None:
        cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image', "
                    "'binlog_row_metadata')")
        v = {k.lower(): str(x) for k, x in cur.fetchall()}
        fix = "set it in the server's configuration ([mysqld]) and restart"
        if v.get("log_bin", "OFF").upper() not in ("ON", "1"):
            raise ConfigError(f"{self.label}: the binary log is off (log_bin); CDC reads it: enable log_bin, "
                              f"binlog_format=ROW, binlog_row_image=FULL, binlog_row_metadata=FULL ({fix})")
        for name, want in (("binlog_format", "ROW"), ("binlog_row_image", "FULL"), ("binlog_row_metadata", "FULL")):
            if v.get(name, "").upper() != want:
                raise ConfigError(f"{self.label}: {name} is {v.get(name) or 'not supported'}, CDC needs "
                                  f"{name}={want} ({fix})")
        cur.execute("SHOW GRANTS")
        grants = " ".join(r[0].upper() for r in cur.fetchall() if " ON *.* " in r[0].upper())
        have_all = "ALL PRIVILEGES" in grants
        missing = []
        if not have_all and "REPLICATION SLAVE" not in grants and "REPLICATION REPLICA" not in grants:
            missing.append("REPLICATION SLAVE")
        monitor = ("BINLOG MONITOR", "REPLICATION CLIENT", "SUPER")
        if not have_all and not any(m in grants for m in monitor):
            missing.append("BINLOG MONITOR" if self._mariadb else "REPLICATION CLIENT")
        if missing:
            raise ConfigError(f"{self.label}: user {self.conn_args['user']!r} lacks {', '.join(missing)}; CDC needs "
                              f"GRANT SELECT, RELOAD, {', '.join(missing)} ON *.* TO the user")

    def _server_position(self, cur) -> dict:
        try:
            cur.execute("SHOW MASTER STATUS")
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"{self.label}: cannot read the binlog position: {e}") from None
        row = cur.fetchone()
        if row is None:
            raise ConfigError(f"{self.label}: the binary log is off (log_bin)")
        return {"file": row[0], "pos": int(row[1])}

    def _check_not_purged(self, cur, file: str) -> None:
        if not self.cdc:
            return
        cur.execute("SHOW BINARY LOGS")
        have = [r[0] for r in cur.fetchall()]
        if file not in have:
            raise SourceError(self._purged_message(file))

    def _purged_message(self, what: str) -> str:
        return (f"{self.label}: the binlog needed to resume ({what}) was purged from the server; the changes "
                f"since the last checkpoint are lost to CDC. Resync: {self._resync()}, then run again: it takes a new "
                f"snapshot")

    def _resync(self) -> str:
        return self.resync_command or f"nebula state reset NAME (the pipeline's name, default {self.name!r})"

    def _statement(self, ev, query: str, where: str) -> list:
        """The segments of a statement in the binlog: a TRUNCATE or DROP TABLE of a captured table is a 't'
        segment (the change log records it, merge empties the table); a change to a captured table logged as a statement (a session with
        binlog_format STATEMENT or MIXED) cannot be captured: a SourceError, never a silent gap."""
        text = _SQL_NOISE.sub(" ", query).strip()
        m = _DML.match(text)
        if m is None:
            return []
        schema = ev.schema.decode("utf-8", "replace") if isinstance(ev.schema, bytes) else str(ev.schema or "")
        hit = [t for db, t in _names_in(text) if t in self._schemas and (db or schema) == self.db]
        if not hit:
            return []
        if m.group(1).upper().startswith(("TRUNCATE", "DROP")):  # DROP TABLE: its rows are gone too
            return [_Segment(t, (), "t", [{}], [{}]) for t in dict.fromkeys(hit)]
        raise SourceError(f"{self.label}: at {where}: a change to {self.db}.{hit[0]} was logged as a statement "
                          f"({text[:80]!r}: the writing session has binlog_format STATEMENT or MIXED); CDC reads row "
                          f"events only, so it cannot capture it. Make every writer use binlog_format=ROW, then "
                          f"resync: {self._resync()}")

    def _load_table(self, cur, table: str) -> None:
        cur.execute("SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, COLUMN_KEY "
                    "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION",
                    (self.db, table))
        rows = cur.fetchall()
        if not rows:
            raise SourceError(f"{self.label}: table {table!r} does not exist in {self.db!r}")
        cols = [_col_from_catalog(r[0], r[1], r[2], r[3], r[4]) for r in rows]
        self._cols[table] = cols
        self._schemas[table] = Schema(Field(c.name, c.type) for c in cols)
        cur.execute("SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA=%s AND "
                    "TABLE_NAME=%s AND CONSTRAINT_NAME='PRIMARY' ORDER BY ORDINAL_POSITION", (self.db, table))
        self._keys[table] = [r[0] for r in cur.fetchall()]

    def _begin_snapshot(self, cur) -> None:
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if self.cdc and not self._mariadb:
            cur.execute("FLUSH TABLES WITH READ LOCK")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            pos = self._server_position(cur)
            cur.execute("SELECT @@GLOBAL.gtid_executed")
            pos["gtid"] = (cur.fetchone()[0] or "").replace("\n", "")
            cur.execute("UNLOCK TABLES")
        else:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            pos = None
            if self.cdc:
                cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
                st = {k.lower(): x for k, x in cur.fetchall()}
                pos = {"file": st["binlog_snapshot_file"], "pos": int(st["binlog_snapshot_position"])}
                cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (pos["file"], pos["pos"]))
                pos["gtid"] = cur.fetchone()[0] or ""
        self._pos = pos
        self._snapshot_pending = True
        self._snapshot_ts = int(time.time() * 1_000_000)

    # -- rounds -------------------------------------------------------------------------------------------
    def next_round(self, *, max_changes: int, max_seconds: float, stop: threading.Event):
        from ...pipeline.cdc import Round

        if self._snapshot_pending:
            self._snapshot_pending = False
            parts = {t: _SnapshotPart(self, t) for t in self.tables}
            caught = not self.cdc or (self._pos is not None and _order(self._pos) >= self._target)
            return Round(parts=parts, checkpoint=self.state(), caught_up=caught, snapshot=True)
        if self._conn is not None:
            self._end_snapshot()
        if not self.cdc:
            return None
        if self._reader is None:
            self._reader = threading.Thread(target=self._read_binlog, name="nebula-binlog", daemon=True)
            self._reader.start()
        if self._error is not None:
            raise self._error
        txns: list[_Txn] = []
        changes = 0
        deadline = time.monotonic() + max_seconds
        caught = _order(self._pos) >= self._target
        while not stop.is_set() and changes < max_changes:
            if not caught and self._queue.empty() and self._scanned >= self._target:
                caught = True  # the reader passed the target between transactions, all of them drained
            if caught and self._queue.empty() and (txns or not getattr(self, "_told_caught_up", False)):
                break  # report what came, or the catch-up itself, at once; after that an idle stream waits
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                item = self._queue.get(timeout=min(0.1, left))
            except queue.Empty:
                if not self._reader.is_alive() and self._queue.empty():
                    raise SourceError(f"{self.label}: the binlog reader stopped") from None
                continue
            if isinstance(item, BaseException):
                if not txns:
                    raise item
                self._error = item  # the transactions before it are loaded (and checkpointed) first
                break
            txns.append(item)
            changes += item.changes
            caught = _order(item.pos) >= self._target
        parts = self._parts(txns)
        if txns:
            self._pos = dict(txns[-1].pos)
        self._told_caught_up = caught or getattr(self, "_told_caught_up", False)
        return Round(parts=parts, checkpoint=self.state(), caught_up=caught, changes=changes)

    def _parts(self, txns: list) -> dict:
        per: dict[str, list] = {}
        for tx in txns:
            order = _order(tx.pos)
            for seg in tx.segments:
                done = self._table_states.get(seg.table)
                if done is not None and order <= done:
                    continue  # this table committed it already (a crash fell between two tables' commits)
                per.setdefault(seg.table, []).append(seg)
        return {t: _ChangePart(self, t, segs) for t, segs in per.items()}

    def _end_snapshot(self) -> None:
        conn, self._conn = self._conn, None
        try:
            conn.commit()
            conn.close()
        except Exception:  # noqa: BLE001
            pass

    def close(self) -> None:
        self._stop.set()
        if self._conn is not None:
            self._end_snapshot()
        r, self._reader = self._reader, None
        if r is not None:
            r.join(timeout=5)

    def lag_bytes(self) -> int | None:
        """Binlog bytes past the last transaction handed out (``nebula_cdc_lag_bytes``, read after each round,
        on a short connection of its own); None when the server cannot tell."""
        if self._pos is None:
            return None
        try:
            conn = self._connect(probe=True)
            try:
                with conn.cursor() as cur:
                    cur.execute("SHOW BINARY LOGS")
                    logs = [(_order({"file": r[0], "pos": 0})[0], int(r[1])) for r in cur.fetchall()]
            finally:
                conn.close()
        except Exception:  # noqa: BLE001 - a status probe only
            return None
        num, pos = _order(self._pos)
        return sum(size for n, size in logs if n > num) + sum(max(0, size - pos) for n, size in logs if n == num)

    # -- the binlog reader thread ---------------------------------------------------------------------------
    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _read_binlog(self) -> None:
        from ...errors import CircuitOpenError
        from ..resilience import breaker_for, note_retry

        breaker = breaker_for(self._endpoint, self._policy)
        pos = dict(self._pos)
        failures = 0
        while not self._stop.is_set():
            try:
                if failures:
                    breaker.before_call()  # an open breaker ends the stream at once, naming the server
                for tx in self._stream_from(pos):
                    if not self._put(tx):
                        return
                    pos = dict(tx.pos)
                    if failures:
                        breaker.record_success()
                        failures = 0
                if self._stop.is_set():
                    return
                raise _StreamLost(0, "the server ended the binlog stream")
            except _StreamLost as e:
                if e.code == _PURGED:
                    self._put(SourceError(self._purged_message(f"{pos.get('gtid') or ''} {pos['file']}:{pos['pos']}")))
                    return
                failures += 1
                lost = ConnectionFailed(f"{self.label}: binlog connection lost: {e}")
                breaker.record_failure(lost)
                if failures > self.retries:
                    self._put(ConnectionFailed(f"{self.label}: binlog connection lost {failures} times in a row: {e}"))
                    return
                wait = self._policy.backoff(failures)
                note_retry(self._endpoint, lost, wait=wait, attempt=failures, attempts=self.retries + 1,
                           what="binlog stream")
                self.warnings.append(f"binlog connection lost ({e}); resumed from {pos['file']}:{pos['pos']}")
                if self._stop.wait(wait):
                    return
            except CircuitOpenError as e:
                self._put(e)
                return
            except Exception as e:  # noqa: BLE001 - handed to next_round
                self._put(e if isinstance(e, DataError | SourceError | ConfigError) else
                          SourceError(f"{self.label}: reading the binlog failed: {type(e).__name__}: {e}"))
                return

    def _stream_from(self, pos: dict):
        from pymysqlreplication import BinLogStreamReader
        from pymysqlreplication.event import (
            GtidEvent,
            HeartbeatLogEvent,
            MariadbGtidEvent,
            QueryEvent,
            RotateEvent,
            XidEvent,
        )
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

        _lenient_dates()
        a = self.conn_args
        settings = {"host": a["host"], "port": a["port"], "user": a["user"], "password": a["password"],
                    "connect_timeout": self.timeout, "read_timeout": 30, **({"ssl": a["ssl"]} if a.get("ssl") else {})}
        by_gtid = self._mariadb and bool(pos.get("gtid"))
        kw = dict(auto_position=pos["gtid"], is_mariadb=True) if by_gtid else dict(
            log_file=pos["file"], log_pos=pos["pos"], resume_stream=True)
        stream = BinLogStreamReader(
            connection_settings=settings, server_id=self.server_id, blocking=True, slave_heartbeat=1,
            only_schemas=[self.db], only_tables=list(self.tables), pymysql_wrapper=_strict_connect,
            only_events=[MariadbGtidEvent, GtidEvent, QueryEvent, XidEvent, RotateEvent, HeartbeatLogEvent,
                         WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent], enable_logging=False, **kw)
        file = pos["file"]
        domains = _gtid_domains(pos.get("gtid") or "")
        gtid = None
        segs: list[_Segment] = []
        in_txn = False
        try:
            while not self._stop.is_set():
                ev = stream.fetchone()
                if ev is None:
                    return
                if isinstance(ev, RotateEvent):
                    file = ev.next_binlog
                    if not in_txn and not segs:
                        self._scanned = _order({"file": file, "pos": ev.position})
                    continue
                if isinstance(ev, HeartbeatLogEvent):  # idle: the server is at this position
                    if not in_txn and not segs and gtid is None:
                        self._scanned = _order({"file": ev.ident or file, "pos": ev.packet.log_pos})
                    continue
                end = ev.packet.log_pos
                if isinstance(ev, MariadbGtidEvent | GtidEvent):
                    gtid, segs, in_txn = ev.gtid, [], False
                    continue
                if isinstance(ev, QueryEvent):
                    q = ev.query.strip().upper() if isinstance(ev.query, str) else ""
                    if q == "BEGIN":
                        in_txn = True
                        continue
                    if q != "COMMIT":
                        segs += self._statement(ev, ev.query if isinstance(ev.query, str) else "", f"{file}:{end}")
                        if in_txn:
                            continue
                elif not isinstance(ev, XidEvent):  # a rows event
                    segs.extend(self._segments(ev))
                    continue
                # transaction (or DDL statement) complete
                if gtid is not None:
                    domains = _gtid_advance(domains, gtid, self._mariadb)
                state = {"file": file, "pos": int(end), "gtid": _gtid_text(domains, self._mariadb)}
                label = gtid or f"{file}:{end}"
                ts = int(ev.timestamp) * 1_000_000
                for s in segs:
                    s.pos, s.ts = label, ts
                yield _Txn(state, segs)
                gtid, segs, in_txn = None, [], False
        finally:
            stream.close()

    def _segments(self, ev) -> list:
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent

        table = ev.table
        if table not in self._schemas:
            return []
        cols = tuple(_col_from_binlog(c) for c in ev.columns)
        try:
            rows = ev.rows
        except (ValueError, OverflowError) as e:  # the library's decoder on an invalid value
            raise DataError(f"binlog rows event for {self.db}.{table} could not be decoded: {e}",
                            path=self.label) from None
        if isinstance(ev, UpdateRowsEvent):
            key = self._keys.get(table) or []
            moved = [r for r in rows if any(r["before_values"].get(k) != r["after_values"].get(k) for k in key)]
            out = []
            if moved:
                out.append(_Segment(table, cols, "d", [r["before_values"] for r in moved],
                                    [r["before_none_sources"] for r in moved]))
            out.append(_Segment(table, cols, "u", [r["after_values"] for r in rows],
                                [r["after_none_sources"] for r in rows]))
            return out
        op = "d" if isinstance(ev, DeleteRowsEvent) else "c"
        return [_Segment(table, cols, op, [r["values"] for r in rows], [r["none_sources"] for r in rows])]

    # -- building batches -----------------------------------------------------------------------------------
    def evolve_table(self, table: str, cols: tuple) -> Schema:
        """The table's data schema after a rows event described by ``cols`` (evolved when it changed)."""
        cur = self._schemas[table]
        incoming = Schema(Field(c.name, c.type) for c in cols)
        if all(f.name in cur and cur[f.name].type == f.type for f in incoming):
            return cur
        new = cur.evolve(incoming, allow_string=True)
        self._schemas[table] = new
        return new


_SQL_NOISE = re.compile(r"/\*.*?\*/|(?:--|#)[^\n]*|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"", re.S)
_DML = re.compile(r"(INSERT|REPLACE|UPDATE|DELETE|LOAD|TRUNCATE|DROP\s+TABLE)\b", re.I)
_NAME = re.compile(r"(?:(`(?:[^`]|``)+`|[\w$]+)\s*\.\s*)?(`(?:[^`]|``)+`|[\w$]+)")


def _names_in(sql: str) -> list[tuple[str | None, str]]:
    """Every (database or None, name) an SQL text names (comments and string literals removed before)."""
    def unq(x: str) -> str:
        return x[1:-1].replace("``", "`") if x.startswith("`") else x

    return [(unq(m.group(1)) if m.group(1) else None, unq(m.group(2))) for m in _NAME.finditer(sql)]


def _order(s: dict) -> tuple:
    """A sortable (binlog number, offset) of a position."""
    f = s.get("file") or ""
    num = f.rsplit(".", 1)[-1]
    return (int(num) if num.isdigit() else 0, int(s.get("pos") or 0))


def _gtid_domains(text: str) -> dict:
    """MariaDB ``0-1-5,1-2-9`` -> {domain: gtid}; MySQL ``uuid:1-5,uuid2:1-3`` -> {uuid: intervals text}."""
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if ":" in part:
            sid, _, rest = part.partition(":")
            out[sid.lower()] = rest
        else:
            out[part.split("-", 1)[0]] = part
    return out


def _gtid_advance(domains: dict, gtid: str, mariadb: bool) -> dict:
    d = dict(domains)
    if mariadb or ":" not in gtid:
        d[gtid.split("-", 1)[0]] = gtid
    else:  # MySQL uuid:n -> add n to that uuid's interval set ``a-b:c-d`` (gaps are kept)
        sid, _, n = gtid.partition(":")
        sid, n = sid.lower(), int(n)
        intervals = []
        for iv in (x for x in d.get(sid, "").split(":") if x):
            a, _, b = iv.partition("-")
            intervals.append([int(a), int(b or a)])
        if intervals and intervals[-1][1] + 1 == n:
            intervals[-1][1] = n
        elif not any(a <= n <= b for a, b in intervals):
            intervals.append([n, n])
            intervals.sort()
        d[sid] = ":".join(f"{a}-{b}" if a != b else f"{a}" for a, b in intervals)
    return d


def _gtid_text(domains: dict, mariadb: bool) -> str:
    if mariadb:
        return ",".join(domains[k] for k in sorted(domains))
    return ",".join(f"{k}:{v}" for k, v in sorted(domains.items()))


@dataclass
class _Segment:
    table: str
    cols: tuple
    op: str
    rows: list  # dicts column -> value (the library's)
    nones: list  # per row: column -> why the value is None
    pos: str = ""
    ts: int = 0


@dataclass
class _Txn:
    pos: dict
    segments: list

    @property
    def changes(self) -> int:
        return sum(len(s.rows) for s in self.segments)


class _Part(TablePart):
    """One table's share of a round (see :class:`~nebula.pipeline.cdc.TablePart`)."""

    change_columns = _CHANGE

    def _emit(self, schema: Schema, data: Schema, arrays: dict, n: int, ops, pos, ts, batch):
        """Arrays by column name (missing ones null, others cast to the evolved type) into ``batch``."""
        import pyarrow as pa

        from ...pipeline.cdc import compact_last_by_key, fill_batch

        cols = []
        for f in data:
            a = arrays.get(f.name)
            at = f.type.to_arrow()
            if a is None:
                a = pa.nulls(n, at)
            elif a.type != at:
                a = a.cast(at)
            cols.append(a)
        cols += [ops, pos, ts]
        rb = pa.RecordBatch.from_arrays(cols, schema=schema.to_arrow())
        if self.merge_key:
            rb = compact_last_by_key(rb, self.merge_key)
        fill_batch(batch, rb)

    def _report(self, rejects, bad: list[tuple[int, str, str]]) -> None:
        if self.owner.on_error == "fail":
            return  # the documented rule: invalid temporal values become NULL
        for row, column, where in bad:
            rejects.reject(reason=f"invalid date/datetime in {self.owner.db}.{self.table} (loaded as NULL)",
                           line=row + 1, column=column, offset=None, raw=where.encode(), path=self.owner.label)


class _SnapshotPart(_Part):
    def read(self):
        import pymysql

        o = self.owner
        cols = o._cols[self.table]
        exprs = []
        for c in cols:
            q = _qi(c.name)
            if c.kind == "bit":
                q = f"{q} + 0"
            elif c.kind == "time":
                q = f"CAST(TIME_TO_SEC({q}) * 1000000 AS SIGNED)"
            elif c.kind in ("json", "set", "enum", "bigdecimal"):
                q = f"CAST({q} AS CHAR)"
            exprs.append(q)
        cur = pymysql.cursors.SSCursor(o._conn)
        try:
            cur.execute(f"SELECT {', '.join(exprs)} FROM {_qi(o.db)}.{_qi(self.table)}")
            first = True
            while True:
                rows = cur.fetchmany(o.batch_rows)
                if not rows and not (first and self.merge_key):
                    break
                yield (self._schema, rows, first)
                if not rows:
                    break
                first = False
        finally:
            cur.close()

    def parse(self, chunk, batch, rejects) -> ParseStats:
        import pyarrow as pa

        schema, rows, first = chunk
        o = self.owner
        n = len(rows)
        cols = o._cols[self.table]
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(cols)
        arrays, bad = {}, []
        for i, c in enumerate(cols):
            b: list[int] = []
            arrays[c.name] = _build(c, list(columns[i]), b)
            bad += [(r, c.name, f"snapshot row {r + 1}") for r in b]
        # merge mode: the snapshot replaces the table's rows (a resync after `nebula state reset` leaves no row
        # the source no longer has): a truncate row leads the first batch, in the same commit as the rows
        cut = 1 if first and self.merge_key else 0
        if cut:
            arrays = {k: pa.concat_arrays([pa.nulls(1, a.type), a]) for k, a in arrays.items()}
        codes = np.zeros(n + cut, np.int32)
        codes[:cut] = 1
        ops = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(["r", "t"])).cast(pa.string())
        label = o._pos_label()
        pos = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n + cut, np.int32)), pa.array([label])).cast(pa.string())
        ts = pa.array(np.full(n + cut, o._snapshot_ts, np.int64)).cast(pa.timestamp("us", tz="UTC"))
        data = Schema(f for f in schema if f.name not in ("_op", "_pos", "_commit_ts"))
        self._emit(schema, data, arrays, n + cut, ops, pos, ts, batch)
        self._report(rejects, bad)
        return ParseStats(rows=n)


class _ChangePart(_Part):
    def __init__(self, owner: MysqlSource, table: str, segments: list) -> None:
        super().__init__(owner, table)
        self.segments = segments

    def read(self):
        o = self.owner
        group: list = []
        rows = 0
        schema = None
        for s in self.segments:
            data = o.evolve_table(self.table, s.cols)
            full = Schema([*data, *_CHANGE])
            if group and (full != schema or rows + len(s.rows) > o.batch_rows):
                yield (schema, group)
                group, rows = [], 0
            schema = full
            group.append(s)
            rows += len(s.rows)
        if group:
            yield (schema, group)

    def parse(self, chunk, batch, rejects) -> ParseStats:
        import pyarrow as pa

        schema, segs = chunk
        data = Schema(f for f in schema if f.name not in ("_op", "_pos", "_commit_ts"))
        lens = np.array([len(s.rows) for s in segs], np.int64)
        n = int(lens.sum())
        rows = [r for s in segs for r in s.rows]
        nones = [x for s in segs for x in s.nones]
        cols = {c.name: c for c in segs[0].cols}
        for s in segs[1:]:
            for c in s.cols:
                cols.setdefault(c.name, c)
        seg_of = np.repeat(np.arange(len(segs)), lens)
        arrays, bad = {}, []
        for name, c in cols.items():
            b: list[int] = []
            arrays[name] = _build(c, [r.get(name) for r in rows], b)
            bad += [(i, name, segs[seg_of[i]].pos) for i in b]
        bad += [(i, k, segs[seg_of[i]].pos) for i, ns in enumerate(nones) if ns for k, why in ns.items()
                if why in _BAD_TEMPORAL]
        codes = np.repeat(np.array([_OPS.index(s.op) for s in segs], np.int32), lens)
        ops = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(list(_OPS))).cast(pa.string())
        labels = pa.array([s.pos for s in segs])
        pos = pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(len(segs), dtype=np.int32), lens)),
                                             labels).cast(pa.string())
        ts = pa.array(np.repeat(np.array([s.ts for s in segs], np.int64), lens)).cast(pa.timestamp("us", tz="UTC"))
        self._emit(schema, data, arrays, n, ops, pos, ts, batch)
        self._report(rejects, bad)
        return ParseStats(rows=n)

