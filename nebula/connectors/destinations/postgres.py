"""PostgreSQL destination: binary COPY produced by kernels, one transaction per run.

The rows of a run stream through ONE ``COPY … FROM STDIN (FORMAT BINARY)`` whose tuples are written by
``nebula.kernels.pgcopy`` straight from the batch columns; the transaction commits at :meth:`commit`,
together with the pipeline's checkpoint (:meth:`stage_state`), so a run is all or nothing.

Type mapping (a new table; an existing column decides the wire type of its values):

=========================  ===================  ============================================
Nebula                     PostgreSQL            also accepted by an existing column
=========================  ===================  ============================================
int8, int16 / int32 / int64  smallint / integer / bigint   any int (range-checked), numeric
float32 / float64          real / double         float32 into double
bool                       boolean
decimal(p,s)               numeric(p,s)          numeric with room for p,s (else widened)
string                     text                  varchar, char
binary                     bytea                 bytea only (string values into bytea: an error)
json                       jsonb                 json, text
struct, list               jsonb (their JSON text)  json, text
date                       date                  timestamp, timestamptz
timestamp / timestamptz    timestamp / timestamptz  either (values are UTC µs)
=========================  ===================  ============================================

Modes: ``append`` copies into the table; ``replace`` loads ``<table>__nebula_new`` and swaps it in
(drop + rename) in the same transaction, so readers see the old or the new rows, never none;
``merge`` copies into a temporary table and upserts with ``INSERT … ON CONFLICT (key) DO UPDATE``
(the last row of a key wins). Schema evolution: missing columns are added (nullable); a column
narrower than the incoming values is widened with ``ALTER … TYPE`` when that is safe (real → double,
numeric precision/scale, date → timestamp, int → numeric; int → wider int only with the ``widen``
option, otherwise integers are range-checked value by value); anything else is a
:class:`~nebula.errors.SchemaEvolutionError`.

Options: ``table``, ``db_schema`` (PostgreSQL schema of the table), ``copy`` (``binary``, default, or
``csv``: text COPY rendered by the CSV encoder), ``widen`` (ALTER int columns wider instead of
range-checking, and any column to ``text`` when string values arrive for it; on by default for change
streams, whose source declares its types), ``connect_timeout`` (s) and ``retries`` (connection attempts in all), which override the run's resilience
policy (:mod:`nebula.connectors.resilience`; defaults 10 s and 5), and the
libpq connection options of :data:`LIBPQ_OPTIONS` (``password``, ``sslmode``, ``sslrootcert``, ``sslcert``,
``sslkey``, ...), which may also be written in the URL's query as libpq reads them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import numpy as np

from ...errors import (
    ConfigError,
    ConnectionFailed,
    DataError,
    DestinationError,
    SchemaEvolutionError,
    TypeCoercionError,
)
from ..base import CHANGE_OP, Capabilities, Destination, data_columns

CHUNK_ROWS = 16384  # a multiple of 8 (validity bytes); ~2 MB of tuples stays cache-resident
#: connection options given as source/destination options (YAML ``options:``) and passed on to libpq
LIBPQ_OPTIONS = ("password", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "sslcrl")
_OPTIONS = ("table", "db_schema", "copy", "widen", "connect_timeout", "retries", *LIBPQ_OPTIONS)
_INT_BYTES = {"int8": 2, "int16": 2, "int32": 4, "int64": 8}
_PG_INT_BYTES = {"int2": 2, "int4": 4, "int8": 8}
_PG_INT_NAME = {2: "smallint", 4: "integer", 8: "bigint"}
_INT_DIGITS = {"int2": 5, "int4": 10, "int8": 19}
_EMPTY = np.zeros(0, dtype=np.uint8)
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


# -- connections and names (shared with the PostgreSQL source) ------------------------------------
def quote_ident(name: str) -> str:
    if "\x00" in name:
        raise ConfigError(f"identifier {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\n", "; ")).strip(" ;")


def safe_message(url: str, text: str) -> str:
    """``text`` on one line with the URL's password (and any URL password) replaced by ``***``."""
    from ...redact import redact

    pw = _password(url)
    return redact(_one_line(text), {pw} if pw else set())


def libpq_url(url: str, options: dict) -> str:
    """``url`` with the :data:`LIBPQ_OPTIONS` of ``options`` folded in: ``password`` into the user info (URL-encoded),
    the others into the query (replacing the URL's own). Every connection made from the URL (copies, CDC
    replication, ``nebula cdc drop`` from a checkpoint) then uses them."""
    extra = {k: str(options[k]) for k in LIBPQ_OPTIONS if options.get(k) not in (None, "")}
    if not extra:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    password = extra.pop("password", None)
    if password is not None:
        userinfo, at, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0] if at else ""
        netloc = f"{user}:{quote(password, safe='')}@{hostport}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in extra]
    query += list(extra.items())
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment))


def connect(url: str, *, timeout: float | None = None, retries: int | None = None, autocommit: bool = False,
            policy=None, **params):
    """A psycopg connection to ``url`` (libpq URI) through the resilience layer (retries, breaker, timeouts).

    ``timeout`` (connect timeout, s) and ``retries`` (attempts in all) override the run's policy
    (:func:`nebula.connectors.resilience.current_policy`, or ``policy``). TCP keepalives and ``tcp_user_timeout``
    (the policy's ``timeout``) are on unless the URL sets them, so a dead peer ends a call instead of hanging
    it. ``params`` go to ``psycopg.connect``. Raises :class:`ConnectionFailed` (one line, no password):
    retryable when the server could not be reached, not when it refused the credentials or the database.
    """
    try:
        import psycopg
    except ImportError as e:
        raise ConfigError("PostgreSQL needs psycopg: pip install 'nebula[postgres]'") from e
    from ...redact import redact_url
    from ..resilience import current_policy, endpoint_of, retry_call

    p = policy or current_policy()
    if retries is not None:
        p = p.replace(attempts=max(1, int(retries)))
    wait = p.connect_timeout if timeout is None else float(timeout)
    kw = {"connect_timeout": max(1, math.ceil(wait)), "autocommit": autocommit, "application_name": "nebula"}
    query = urlsplit(url).query if "://" in url else url
    for k, v in (("keepalives", 1), ("keepalives_idle", 30), ("keepalives_interval", 10), ("keepalives_count", 3),
                 ("tcp_user_timeout", max(1000, int(p.timeout * 1000)))):
        if k not in query:
            kw[k] = v
    kw.update(params)

    def once():
        try:
            return psycopg.connect(url, **kw)
        except psycopg.OperationalError as e:
            msg = str(e)
            if _TLS_PROBLEM.search(msg):  # retrying cannot fix a certificate
                raise ConnectionFailed(f"{redact_url(url)}: {tls_message(safe_message(url, _reason(msg)))}",
                                       retryable=False) from None
            if re.search(r"authentication|password|does not exist|no pg_hba|permission denied|role ", msg, re.I):
                raise ConnectionFailed(f"{redact_url(url)}: PostgreSQL refused the connection: "
                                       f"{safe_message(url, _reason(msg))}", retryable=False) from None
            raise ConnectionFailed(f"{redact_url(url)}: cannot connect to PostgreSQL: "
                                   f"{safe_message(url, _reason(msg))}", retryable=True) from None
        except psycopg.ProgrammingError as e:  # a malformed URI / conninfo
            raise ConfigError(f"{redact_url(url)}: invalid PostgreSQL URL: {safe_message(url, str(e))}") from None

    return retry_call(once, endpoint=endpoint_of(url), policy=p, what="connect")


_TLS_PROBLEM = re.compile(r"certificate verify failed|does not match host name|certificate file|private key file|"
                          r"server does not support SSL|invalid sslmode|sslmode value|SSL certificate", re.I)


def tls_message(reason: str) -> str:
    """A one-line explanation of a failed TLS connection (``reason``: the driver's message, redacted)."""
    low = reason.lower()
    if "verify failed" in low:
        return ("TLS: the server certificate could not be verified (is sslrootcert the CA that signed it?): "
                + reason)
    if "does not match host name" in low:
        return "TLS: the server certificate does not name the host connected to: " + reason
    return "TLS: " + reason


def _reason(msg: str) -> str:
    return msg.removeprefix("connection failed: ")


def qualified(table: str, db_schema: str | None) -> str:
    return (quote_ident(db_schema) + "." if db_schema else "") + quote_ident(table)


def table_columns(cur, qname: str) -> dict[str, tuple[str, int, str]] | None:
    """``{column: (type name, typmod, formatted type)}`` of an existing table (in order), or None."""
    cur.execute("SELECT to_regclass(%s)::oid", (qname,))
    oid = cur.fetchone()[0]
    if oid is None:
        return None
    cur.execute("SELECT a.attname, t.typname, a.atttypmod, format_type(a.atttypid, a.atttypmod) "
                "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", (oid,))
    return {r[0]: (r[1], r[2], r[3]) for r in cur.fetchall()}


def numeric_typmod(typmod: int) -> tuple[int, int] | None:
    """(precision, scale) of a numeric column's typmod, None when unconstrained."""
    if typmod < 4:
        return None
    t = typmod - 4
    return (t >> 16) & 0xFFFF, t & 0xFFFF


def _pkey_name(table: str, suffix: str = "") -> str:
    return f"{table[:40]}{suffix}_pkey"  # within PostgreSQL's 63-byte names, whatever the table name


def pg_type(t) -> str:
    """The PostgreSQL column type of a :class:`~nebula.types.LogicalType`."""
    k = t.kind
    if k in _INT_BYTES:
        return _PG_INT_NAME[_INT_BYTES[k]]
    return {"float32": "real", "float64": "double precision", "bool": "boolean", "string": "text",
            "json": "jsonb", "date": "date", "binary": "bytea",
            "timestamp": "timestamptz" if t.tz else "timestamp",
            "decimal": f"numeric({t.precision},{t.scale})"}[k]


# -- wire plan per column -------------------------------------------------------------------------
class _Plan:
    """How one column goes on the wire: ``how`` in int/float/bool/text/bytes/numeric, plus parameters."""

    __slots__ = ("how", "width", "bias", "lo", "hi", "version", "scale", "convert", "pgname")

    def __init__(self, how, *, width=0, bias=0, lo=_I64_MIN, hi=_I64_MAX, version=-1, scale=0, convert=None,
                 pgname=""):
        self.how, self.width, self.bias, self.lo, self.hi = how, width, bias, lo, hi
        self.version, self.scale, self.convert, self.pgname = version, scale, convert, pgname


def _plan_for(t, typname: str, typmod: int, pgname: str) -> _Plan | None:
    """The wire plan for values of type ``t`` into a column of ``typname``, or None if impossible."""
    from ...kernels.pgcopy import PG_EPOCH_DAYS, PG_EPOCH_US

    k = t.kind
    if t.is_integer:
        if typname in _PG_INT_BYTES:
            w = _PG_INT_BYTES[typname]
            lo, hi = (-(2 ** (8 * w - 1)), 2 ** (8 * w - 1) - 1) if w < _INT_BYTES[k] else (_I64_MIN, _I64_MAX)
            return _Plan("int", width=w, lo=lo, hi=hi, pgname=pgname)
        if typname == "numeric":
            return _Plan("numeric", scale=0, convert="int_words", pgname=pgname)
        return None
    if k in ("float32", "float64"):
        if typname == "float8":
            return _Plan("float", width=8, convert="f64" if k == "float32" else None, pgname=pgname)
        if typname == "float4" and k == "float32":
            return _Plan("float", width=4, pgname=pgname)
        return None
    if k == "bool":
        return _Plan("bool", pgname=pgname) if typname == "bool" else None
    if k == "decimal":
        return _Plan("numeric", scale=t.scale, pgname=pgname) if typname == "numeric" else None
    if k == "string":
        return _Plan("text", pgname=pgname) if typname in ("text", "varchar", "bpchar") else None
    if k == "binary":
        return _Plan("bytes", pgname=pgname) if typname == "bytea" else None
    if k == "json":
        if typname == "jsonb":
            return _Plan("text", version=1, pgname=pgname)
        return _Plan("text", pgname=pgname) if typname in ("json", "text", "varchar") else None
    if k == "date":
        if typname == "date":
            return _Plan("int", width=4, bias=PG_EPOCH_DAYS, pgname=pgname)
        if typname in ("timestamp", "timestamptz"):
            return _Plan("int", width=8, bias=PG_EPOCH_US, convert="days_us", pgname=pgname)
        return None
    if k == "timestamp":
        if typname in ("timestamp", "timestamptz"):
            return _Plan("int", width=8, bias=PG_EPOCH_US, pgname=pgname)
        return None
    return None


def _widening(t, typname: str, typmod: int, widen_ints: bool) -> str | None:
    """The type to ALTER an existing ``typname`` column to so it holds ``t`` values, when that is safe."""
    k = t.kind
    if t.is_integer and typname in _PG_INT_BYTES and widen_ints and _INT_BYTES[k] > _PG_INT_BYTES[typname]:
        return _PG_INT_NAME[_INT_BYTES[k]]
    if k == "float64" and typname == "float4":
        return "double precision"
    if k == "decimal" and typname in _PG_INT_BYTES:
        intd = max(_INT_DIGITS[typname], t.precision - t.scale)
        return f"numeric({intd + t.scale},{t.scale})" if intd + t.scale <= 1000 else None
    if k == "decimal" and typname == "numeric":
        pm = numeric_typmod(typmod)
        if pm is None:
            return None
        p, s = pm
        if s >= t.scale and p - s >= t.precision - t.scale:
            return None
        s2 = max(s, t.scale)
        p2 = max(p - s, t.precision - t.scale) + s2
        return f"numeric({p2},{s2})" if p2 <= 1000 else None
    if k == "timestamp" and typname == "date":
        return "timestamptz" if t.tz else "timestamp"
    if k == "string" and widen_ints and typname not in ("text", "varchar", "bpchar", "bytea"):
        return "text"  # widen: a column that became text upstream (every type has a text form)
    return None


# -- the encoder ----------------------------------------------------------------------------------
def _string_buffers(arr):
    """(offsets int32, data uint8) of a pyarrow string array without nulls."""
    import pyarrow as pa

    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    if arr.offset:
        arr = pa.concat_arrays([arr])
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=len(arr) + 1)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else _EMPTY
    return offsets, data


class BinaryCopyEncoder:
    """Turns batches into binary COPY tuples (no header/trailer) following one :class:`_Plan` per column.

    :meth:`encode` yields uint8 views of one reused buffer: send each before asking for the next.
    """

    def __init__(self, schema, plans: list[_Plan], where: str = "") -> None:
        self.schema, self.plans, self.where = schema, plans, where
        self._out = np.empty(1 << 20, dtype=np.uint8)
        self._lens = np.empty(CHUNK_ROWS, dtype=np.int64)
        self._cursor = np.empty(CHUNK_ROWS, dtype=np.int64)
        self.rows = 0  # rows encoded so far (for error messages)

    def encode(self, batch) -> Iterator[np.ndarray]:
        from ...kernels import pgcopy as k

        n = batch.length
        for a in range(0, n, CHUNK_ROWS):
            b = min(n, a + CHUNK_ROWS)
            m = b - a
            lens = self._lens[:m]
            lens[:] = 2
            cols = [self._prepare(col, plan, a, b) for col, plan in zip(batch.columns, self.plans, strict=True)]
            for c in cols:
                self._size(c, m, lens)
            cursor = self._cursor[:m]
            cursor[0] = 0
            np.cumsum(lens[:-1], out=cursor[1:])
            total = int(cursor[m - 1] + lens[m - 1])
            if self._out.shape[0] < total:
                self._out = np.empty(max(total, self._out.shape[0] * 3 // 2), dtype=np.uint8)
            out = self._out
            k.put_row_headers(m, len(cols), out, cursor)
            for c in cols:
                self._fill(c, m, out, cursor, a)
            self.rows += m
            yield out[:total]

    def _prepare(self, col, plan, a, b):
        from ...kernels import pgcopy as k

        has_nulls = col.null_count > 0
        valid = col.validity[a >> 3:] if has_nulls else _EMPTY
        how = plan.how
        name = col.field.name
        if how == "bytes":  # bytea: the raw bytes are the value (NUL included), as text fields are laid out
            return ("text", plan, col.offsets[a:b + 1], col.data, valid, has_nulls)
        if how == "text":
            if col.dictionary is not None:
                doffs, ddata = _string_buffers(col.dictionary)
                bad = k.first_nul(doffs, ddata, len(col.dictionary), _EMPTY, False)
                codes = col.values[a:b]
                if bad >= 0:
                    rows = np.flatnonzero(codes == bad)
                    rows = [r for r in rows if not has_nulls or (valid[r >> 3] >> (r & 7)) & 1]
                    if rows:
                        self._nul(name, a + rows[0])
                return ("take", plan, doffs, ddata, codes, valid, has_nulls)
            offsets = col.offsets[a:b + 1]
            bad = k.first_nul(offsets, col.data, b - a, valid, has_nulls)
            if bad >= 0:
                self._nul(name, a + bad)
            return ("text", plan, offsets, col.data, valid, has_nulls)
        if how == "bool":
            return ("bool", plan, col.values[a >> 3:], valid, has_nulls)
        if how == "numeric":
            if plan.convert == "int_words":
                v = col.values[a:b].astype(np.int64)
                words = np.empty((b - a, 2), dtype=np.int64)
                words[:, 0] = v
                words[:, 1] = v >> 63
            else:
                words = col.values[a:b]
            return ("numeric", plan, words, valid, has_nulls)
        values = col.values[a:b]
        if plan.convert == "f64":
            values = values.astype(np.float64)
        elif plan.convert == "days_us":
            values = values.astype(np.int64) * 86400000000
        if how == "float":
            values = values.view(np.int64 if values.dtype.itemsize == 8 else np.int32)
        return ("int", plan, values, valid, has_nulls)

    def _size(self, c, m, lens):
        from ...kernels import pgcopy as k

        kind, plan = c[0], c[1]
        if kind == "text":
            k.add_text_sizes(c[2], m, c[4], c[5], 1 if plan.version >= 0 else 0, lens)
        elif kind == "take":
            k.add_text_sizes_take(c[2], c[4], m, c[5], c[6], 1 if plan.version >= 0 else 0, lens)
        elif kind == "numeric":
            k.add_numeric_sizes(c[2], m, plan.scale, c[3], c[4], lens)
        elif kind == "bool":
            k.add_fixed_sizes(m, c[3], c[4], 1, lens)
        else:
            k.add_fixed_sizes(m, c[3], c[4], plan.width, lens)

    def _fill(self, c, m, out, cursor, a):
        from ...kernels import pgcopy as k

        kind, plan = c[0], c[1]
        if kind == "text":
            k.put_texts(c[2], c[3], m, c[4], c[5], plan.version, out, cursor)
        elif kind == "take":
            k.put_texts_take(c[2], c[3], c[4], m, c[5], c[6], plan.version, out, cursor)
        elif kind == "numeric":
            k.put_numerics(c[2], m, plan.scale, c[3], c[4], out, cursor)
        elif kind == "bool":
            k.put_bools(c[2], m, c[3], c[4], out, cursor)
        else:
            bad = k.put_ints(c[2], m, plan.width, plan.bias, plan.lo, plan.hi, c[3], c[4], out, cursor)
            if bad >= 0:
                i = self.plans.index(plan)
                name = self.schema[i].name
                raise TypeCoercionError(
                    f"row {self.rows + a + bad + 1}: value {int(c[2][bad])} is out of range for the {plan.pgname} "
                    "column (widen it: ALTER TABLE … TYPE bigint, or the destination option widen: true)",
                    path=self.where, column=name)

    def _nul(self, name: str, row: int) -> None:
        raise DataError(f"row {self.rows + row + 1}: text contains a NUL character (0x00), which PostgreSQL "
                        "cannot store", path=self.where, column=name)


# -- the destination ------------------------------------------------------------------------------
class PostgresDestination(Destination):
    """Rows into a PostgreSQL table by binary COPY (see the module docstring)."""

    capabilities = Capabilities(modes=("append", "replace", "merge"), schemes=("postgresql", "postgres"),
                                exactly_once=True, schema_evolution=True,
                                notes="binary COPY from kernels; one transaction per run incl. the checkpoint")

    def __init__(self, url: str, *, options: dict | None = None) -> None:
        self.url = url
        self.options = dict(options or {})
        unknown = sorted(set(self.options) - set(_OPTIONS))
        if unknown:
            raise ConfigError(f"{self._label()}: unknown option(s) {', '.join(unknown)}; known: {', '.join(_OPTIONS)}")
        self.url = libpq_url(url, self.options)
        fmt = str(self.options.get("copy", "binary")).lower()
        if fmt not in ("binary", "csv"):
            raise ConfigError(f"{self._label()}: option copy must be binary or csv, got {fmt!r}")
        self._fmt = fmt
        self.conn = None
        self.table = ""
        self._qname = ""
        self._copy_cm = None
        self._copy = None
        self._encoder = None
        self._mode = "append"
        self._key: list[str] = []
        self._schema = None
        self._stage = ""
        self._state: tuple[str, dict] | None = None
        from ..resilience import current_policy

        self._policy = current_policy()

    def _label(self) -> str:
        from ...redact import redact_url

        return redact_url(self.url)

    def _connect(self, autocommit: bool = False):
        return connect(self.url, timeout=self.options.get("connect_timeout"), retries=self.options.get("retries"),
                       autocommit=autocommit, policy=self._policy)

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self, schema, *, mode: str = "append", table: str | None = None, key: list[str] | None = None) -> None:
        if mode not in self.capabilities.modes:
            raise ConfigError(f"{self._label()}: mode {mode!r} is not supported; use append, replace or merge")
        table = table or self.options.get("table")
        if not table:
            raise ConfigError(f"{self._label()}: a table name is needed (--table)")
        key = list(key or [])
        if mode == "merge" and not key:
            raise ConfigError(f"{self._label()}: merge needs a key (--key COL[,COL])")
        missing = [c for c in key if c not in schema]
        if missing:
            raise ConfigError(f"{self._label()}: key column(s) {', '.join(missing)} not in the schema")
        from ...nested import json_schema

        schema = json_schema(schema)  # struct/list columns (JSON nested="keep") are stored as jsonb
        self.table, self._mode, self._key, self._schema = table, mode, key, schema
        self._qname = qualified(table, self.options.get("db_schema"))
        self.conn = self._connect()
        try:
            plans = self._prepare(schema)
            self._start_copy(schema, plans)
        except BaseException as e:
            self.abort()
            raise self._map(e, "cannot prepare the load") from None

    def _prepare(self, schema) -> list[_Plan]:
        cur = self.conn.cursor()
        dbs = self.options.get("db_schema")
        if self._mode == "replace":
            self._stage = qualified(f"{self.table}__nebula_new", dbs)
            cur.execute(f"DROP TABLE IF EXISTS {self._stage}")  # a crashed run's leftover (never committed)
            self._create(cur, self._stage, schema, pkey=_pkey_name(self.table, "__nebula_new"))
            return [_plan_for(f.type, *self._pg_name(f.type)) for f in schema]
        data = self._data_schema(schema)
        existing = table_columns(cur, self._qname)
        if existing is None:
            self._create(cur, self._qname, data)
            plans = {f.name: _plan_for(f.type, *self._pg_name(f.type)) for f in data}
        else:
            plans = dict(zip(data.names, self._evolve(cur, existing, data), strict=True))
        if self._mode == "merge":
            self._ensure_unique(cur)
            self._stage = quote_ident(f"nebula_stage_{id(self):x}")
            cols = ", ".join(quote_ident(n) for n in data.names)
            cur.execute(f"CREATE TEMP TABLE {self._stage} ON COMMIT DROP AS SELECT {cols} FROM {self._qname} "
                        "WITH NO DATA")
            for f in schema:  # a change stream's _op/_pos/_commit_ts exist only in the stage
                if f.name not in plans:
                    cur.execute(f"ALTER TABLE {self._stage} ADD COLUMN {quote_ident(f.name)} {pg_type(f.type)}")
                    plans[f.name] = _plan_for(f.type, *self._pg_name(f.type))
        else:
            self._stage = self._qname
        return [plans[f.name] for f in schema]

    def _data_schema(self, schema):
        """The columns the target table stores: in merge mode a change stream's bookkeeping
        columns (:data:`~nebula.connectors.base.CHANGE_COLUMNS`) stay out of it."""
        from ...schema import Schema

        if self._mode != "merge":
            return schema
        keep = set(data_columns(schema))
        return Schema(f for f in schema if f.name in keep)

    @staticmethod
    def _pg_name(t) -> tuple[str, int, str]:
        name = pg_type(t)
        typname = {"smallint": "int2", "integer": "int4", "bigint": "int8", "real": "float4",
                   "double precision": "float8", "boolean": "bool"}.get(name, name.split("(")[0])
        typmod = (t.precision << 16 | t.scale) + 4 if t.kind == "decimal" else -1
        return typname, typmod, name

    def _create(self, cur, qname: str, schema, pkey: str | None = None) -> None:
        cols = [f"{quote_ident(f.name)} {pg_type(f.type)}{'' if f.nullable else ' NOT NULL'}" for f in schema]
        if self._key:
            cols.append(f"CONSTRAINT {quote_ident(pkey or _pkey_name(self.table))} "
                        f"PRIMARY KEY ({', '.join(quote_ident(k) for k in self._key)})")
        cur.execute(f"CREATE TABLE {qname} ({', '.join(cols)})")

    def _evolve(self, cur, existing: dict, schema, qname: str | None = None, widen_ints: bool | None = None
                ) -> list[_Plan]:
        qname = qname or self._qname
        if widen_ints is None:
            widen_ints = bool(self.options.get("widen", False))
        plans = []
        for f in schema:
            if f.name not in existing:
                cur.execute(f"ALTER TABLE {qname} ADD COLUMN {quote_ident(f.name)} {pg_type(f.type)}")
                plans.append(_plan_for(f.type, *self._pg_name(f.type)))
                continue
            typname, typmod, shown = existing[f.name]
            wider = _widening(f.type, typname, typmod, widen_ints)
            if wider is not None:
                cur.execute(f"ALTER TABLE {qname} ALTER COLUMN {quote_ident(f.name)} TYPE {wider}")
                cur.execute("SELECT t.typname, a.atttypmod, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                            "JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = to_regclass(%s) AND a.attname = %s",
                            (qname, f.name))
                typname, typmod, shown = cur.fetchone()
            plan = _plan_for(f.type, typname, typmod, shown)
            if plan is None:
                hint = "change the column or use --mode replace"
                if typname == "bytea":
                    hint = (f"read the column as binary: --column {f.name}:binary takes \\x-hex text from CSV and "
                            "base64 from JSON; or use --mode replace")
                raise SchemaEvolutionError(
                    f"{self._label()}: table {self.table!r} column {f.name!r} is {shown}; cannot write "
                    f"{f.type} values into it ({hint})")
            plans.append(plan)
        return plans

    def evolve(self, schema) -> None:
        """Mid-run schema change: end the current COPY, add/widen columns in the same transaction, go on
        with a new COPY of the evolved columns."""
        if self.conn is None:
            raise DestinationError(f"{self._label()}: evolve() before open()")
        from ...nested import json_schema

        schema = json_schema(schema)
        try:
            self._finish_copy()
            cur = self.conn.cursor()
            if self._mode == "replace":
                plans = self._evolve(cur, table_columns(cur, self._stage), schema, self._stage, widen_ints=True)
            else:
                data = self._data_schema(schema)
                by_name = dict(zip(data.names, self._evolve(cur, table_columns(cur, self._qname), data), strict=True))
                if self._mode == "merge":
                    target = table_columns(cur, self._qname)
                    stage = table_columns(cur, self._stage)
                    for f in schema:
                        want = target[f.name][2] if f.name in by_name else pg_type(f.type)
                        if f.name not in stage:
                            cur.execute(f"ALTER TABLE {self._stage} ADD COLUMN {quote_ident(f.name)} {want}")
                        elif stage[f.name][2] != want:
                            cur.execute(f"ALTER TABLE {self._stage} ALTER COLUMN {quote_ident(f.name)} TYPE {want}")
                        if f.name not in by_name:
                            by_name[f.name] = _plan_for(f.type, *self._pg_name(f.type))
                plans = [by_name[f.name] for f in schema]
            self._schema = schema
            rows = self._encoder.rows if isinstance(self._encoder, BinaryCopyEncoder) else 0
            self._start_copy(schema, plans)
            if isinstance(self._encoder, BinaryCopyEncoder):
                self._encoder.rows = rows
        except BaseException as e:
            self.abort()
            raise self._map(e, "cannot evolve the table") from None

    def _ensure_unique(self, cur) -> None:
        cur.execute("SELECT i.indkey::int2[] FROM pg_index i WHERE i.indrelid = to_regclass(%s) AND i.indisunique "
                    "AND i.indpred IS NULL", (self._qname,))
        cur2 = self.conn.cursor()
        cur2.execute("SELECT attnum, attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0",
                     (self._qname,))
        names = dict(cur2.fetchall())
        want = set(self._key)
        for (indkey,) in cur.fetchall():
            if {names.get(a) for a in indkey} == want:
                return
        idx = quote_ident(f"{self.table}__nebula_key")
        cur.execute(f"CREATE UNIQUE INDEX {idx} ON {self._qname} ({', '.join(quote_ident(k) for k in self._key)})")

    def _start_copy(self, schema, plans) -> None:
        cols = ", ".join(quote_ident(f.name) for f in schema)
        if self._fmt == "csv":
            from .files import TextEncoder

            self._encoder = TextEncoder(schema, "csv")
            sql = f"COPY {self._stage} ({cols}) FROM STDIN (FORMAT CSV)"
        else:
            from ...kernels.pgcopy import HEADER

            self._encoder = BinaryCopyEncoder(schema, plans, where=f"{self._label()} table {self.table}")
            sql = f"COPY {self._stage} ({cols}) FROM STDIN (FORMAT BINARY)"
        self._copy_cm = self.conn.cursor().copy(sql)
        self._copy = self._copy_cm.__enter__()
        if self._fmt == "binary":
            self._copy.write(HEADER)

    def write(self, batch) -> int:
        if self._copy is None:
            raise DestinationError(f"{self._label()}: write() before open()")
        if batch.length == 0:
            return 0
        from ...nested import json_batch

        batch = json_batch(batch)
        if self._mode == "merge":
            self._check_keys(batch)
        sent = 0
        try:
            for chunk in self._encoder.encode(batch):
                self._copy.write(memoryview(chunk))
                sent += chunk.shape[0]
        except Exception as e:
            raise self._map(e, f"COPY into {self.table!r} failed") from None
        return sent

    def _check_keys(self, batch) -> None:
        truncates = None
        if CHANGE_OP in self._schema:  # a truncate row of a change stream has no key
            rb = batch.to_arrow()
            import pyarrow.compute as pc

            truncates = pc.fill_null(pc.equal(rb.column(CHANGE_OP), "t"), False).to_numpy(zero_copy_only=False)
        for k in self._key:
            col = batch.column(k)
            if col.null_count:
                bits = np.unpackbits(col.validity, bitorder="little")[:batch.length]
                missing = (bits == 0) & ~truncates if truncates is not None else bits == 0
                if not missing.any():
                    continue
                row = int(np.flatnonzero(missing)[0])
                done = self._encoder.rows if isinstance(self._encoder, BinaryCopyEncoder) else 0
                raise DataError(f"row {done + row + 1}: the merge key is null (every row needs a key)",
                                path=f"{self._label()} table {self.table}", column=k)

    def stage_state(self, name: str, value: dict) -> None:
        self._state = (name, dict(value))

    def commit(self) -> None:
        if self.conn is None:
            return
        try:
            self._finish_copy()
            cur = self.conn.cursor()
            if self._mode == "merge":
                self._merge(cur)
            elif self._mode == "replace":
                cur.execute(f"DROP TABLE IF EXISTS {self._qname}")
                cur.execute(f"ALTER TABLE {self._stage} RENAME TO {quote_ident(self.table)}")
                if self._key:
                    cur.execute(f"ALTER TABLE {self._qname} RENAME CONSTRAINT "
                                f"{quote_ident(_pkey_name(self.table, '__nebula_new'))} TO "
                                f"{quote_ident(_pkey_name(self.table))}")
            if self._state is not None:
                from ...state import StateStore

                StateStore.set_in(self.conn, *self._state)
        except BaseException as e:
            self.abort()
            raise self._map(e, "cannot commit") from None
        try:
            self.conn.commit()
        except BaseException as e:
            self.abort()
            raise self._map(e, "cannot commit", committing=True) from None
        self._close()

    def _finish_copy(self) -> None:
        cm, self._copy_cm = self._copy_cm, None
        if cm is None:
            return
        if self._fmt == "binary":
            from ...kernels.pgcopy import TRAILER

            self._copy.write(TRAILER)
        self._copy = None
        cm.__exit__(None, None, None)

    def _merge(self, cur) -> None:
        """Upsert the last change of every key; with a change stream (``_op``), a last change that is a
        delete (``_op = 'd'``) deletes the row instead, and a truncate (``_op = 't'``) empties the table
        before the changes that follow it. All in the load's transaction."""
        data = [f.name for f in self._data_schema(self._schema)]
        names = [quote_ident(n) for n in data]
        keys = ", ".join(quote_ident(k) for k in self._key)
        cols = ", ".join(names)
        rest = [quote_ident(n) for n in data if n not in self._key]
        action = ("DO UPDATE SET " + ", ".join(f"{n} = EXCLUDED.{n}" for n in rest)) if rest else "DO NOTHING"
        last = f"SELECT DISTINCT ON ({keys}) * FROM {self._stage} ORDER BY {keys}, ctid DESC"
        if CHANGE_OP not in self._schema:
            cur.execute(f"INSERT INTO {self._qname} ({cols}) SELECT {cols} FROM ({last}) AS s ON CONFLICT ({keys}) "
                        f"{action}")
            return
        op = quote_ident(CHANGE_OP)
        cur.execute(f"SELECT max(ctid) FROM {self._stage} WHERE {op} = 't'")
        cut = cur.fetchone()[0]
        if cut is not None:  # a source TRUNCATE: every row goes; only the changes after it count
            cur.execute(f"DELETE FROM {self._qname}")
            cur.execute(f"DELETE FROM {self._stage} WHERE ctid <= %s", (cut,))
        match = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in self._key)
        cur.execute(f"DELETE FROM {self._qname} AS t USING ({last}) AS s WHERE s.{op} = 'd' AND {match}")
        cur.execute(f"INSERT INTO {self._qname} ({cols}) SELECT {cols} FROM ({last}) AS s "
                    f"WHERE s.{op} IS DISTINCT FROM 'd' ON CONFLICT ({keys}) {action}")

    def committed_state(self, name: str) -> dict | None:
        import json

        with self._connect(autocommit=True) as conn:
            row = conn.execute("SELECT to_regclass('state')").fetchone()
            if row[0] is None:
                return None
            row = conn.execute("SELECT value FROM state WHERE name = %s", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def abort(self) -> None:
        cm, self._copy_cm, self._copy = self._copy_cm, None, None
        if self.conn is None:
            return
        if cm is not None:
            try:
                cm.__exit__(DestinationError, DestinationError("aborted"), None)
            except Exception:  # noqa: BLE001 - the copy is being thrown away
                pass
        try:
            self.conn.rollback()
        except Exception:  # noqa: BLE001
            pass
        self._close()

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        self.abort()

    def location(self) -> str:
        return f"{self._label()} table {self.table}" if self.table else self._label()

    # -- errors ------------------------------------------------------------------------------------
    def _map(self, e: BaseException, what: str, committing: bool = False) -> BaseException:
        """A typed Nebula error for a psycopg error (others pass through). A connection lost during the
        COMMIT itself (``committing``) leaves the outcome unknown: the error says so (``commit_unknown``)."""
        try:
            import psycopg
        except ImportError:
            return e
        if not isinstance(e, psycopg.Error):
            return e
        where = f"{self._label()} table {self.table}"
        diag = getattr(e, "diag", None)
        primary = (diag.message_primary if diag is not None else None) or str(e)
        ctx = diag.context if diag is not None else None
        detail = primary + (f" ({_one_line(ctx)})" if ctx else "")
        detail = safe_message(self.url, detail)
        state = getattr(e, "sqlstate", None) or ""
        if isinstance(e, psycopg.OperationalError) and (state[:2] in ("", "08", "57") or state == "57P01"):
            if committing:
                err = ConnectionFailed(f"{where}: lost the connection during COMMIT ({detail}); whether this run "
                                       "was committed is unknown: check the table before running it again",
                                       retryable=True)
                err.commit_unknown = True
                return err
            return ConnectionFailed(f"{where}: lost the connection ({detail}); the transaction was rolled back "
                                    "and nothing of this run was committed: run it again", retryable=True)
        if state[:2] in ("22", "23"):
            m = re.search(r"column (\S+)", ctx or "")
            return DataError(f"{what}: {detail}", path=where, column=m.group(1).strip('"') if m else None)
        if state[:2] == "40" or state == "55P03":
            return DestinationError(f"{where}: {what}: {detail}", retryable=True)
        return DestinationError(f"{where}: {what}: {detail}")
