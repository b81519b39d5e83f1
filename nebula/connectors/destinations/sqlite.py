"""SQLite destination (stdlib ``sqlite3``): one transaction per run, made visible at commit.

Type mapping (SQLite has affinities, not types; the text forms keep values exact and sortable):

=========================  =========  ==============================================
Nebula                     SQLite     stored as
=========================  =========  ==============================================
int8..int64                INTEGER    integer
float32/float64            REAL       real (NaN becomes NULL: SQLite has no NaN)
bool                       INTEGER    0 / 1
decimal(p,s)               TEXT       exact text ``-12.50`` (NUMERIC would round it)
string, json               TEXT       text
binary                     BLOB       blob (the bytes as they are)
struct, list               TEXT       its JSON text (JSON ``nested="keep"``)
date                       TEXT       ``YYYY-MM-DD``
timestamp                  TEXT       ``YYYY-MM-DDTHH:MM:SS.ffffff``, ``Z`` added when tz-aware (UTC)
=========================  =========  ==============================================

Modes: ``append`` inserts; ``replace`` loads ``<table>__nebula_new`` and swaps it in at commit
(readers see the old table or the new one); ``merge`` upserts on ``key`` through a unique index.

Change streams (CDC): in ``merge`` mode, when the batches carry an ``_op`` column, rows with ``_op == 'd'``
delete by key, ``_op == 't'`` (a source TRUNCATE) deletes every row, the others upsert, in batch order, and the change columns (``_op``, ``_pos``, ``_lsn``,
``_commit_ts``) are not stored. The pipeline's checkpoint (:meth:`stage_state`) is written to a ``state``
table of the same database inside the run's transaction, so rows and checkpoint commit together.
"""

from __future__ import annotations

import os
import sqlite3

from ...errors import ConfigError, DestinationError, SchemaEvolutionError
from ..base import CHANGE_OP, Capabilities, Destination, data_columns

_SQL_TYPE = {"int8": "INTEGER", "int16": "INTEGER", "int32": "INTEGER", "int64": "INTEGER", "bool": "INTEGER",
             "float32": "REAL", "float64": "REAL", "decimal": "TEXT", "string": "TEXT", "json": "TEXT",
             "date": "TEXT", "timestamp": "TEXT", "struct": "TEXT", "list": "TEXT", "binary": "BLOB"}
# affinities an existing column may have for each of our kinds to receive its values unchanged
_ACCEPTS = {"INTEGER": ("INTEGER", "REAL", "NUMERIC", "BLOB"), "REAL": ("REAL", "NUMERIC", "BLOB"),
            "TEXT": ("TEXT", "BLOB"), "BLOB": ("BLOB",)}


def quote_ident(name: str) -> str:
    """``name`` as an SQLite identifier (any text works, quotes doubled)."""
    if "\x00" in name:
        raise ConfigError(f"identifier {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def _affinity(declared: str) -> str:
    """SQLite's column affinity of a declared type (section 3.1 of the SQLite datatype docs)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``; a plain path as is."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://"):]
        if not rest.startswith("/") or len(rest) < 2:
            raise ConfigError(f"{url}: expected sqlite:///relative.db or sqlite:////absolute/path.db")
        return rest[1:].split("?", 1)[0]
    return url


class SqliteDestination(Destination):
    """Rows into a table of an SQLite database file.

    Options: ``table`` (used when :meth:`open` gets none), ``timeout`` (seconds to wait for a
    locked database, default 30).
    """

    capabilities = Capabilities(modes=("append", "replace", "merge"), schemes=("sqlite",), exactly_once=True,
                                schema_evolution=True,
                                notes="one transaction per run; replace swaps tables atomically; WAL")

    def __init__(self, url: str, *, options: dict | None = None) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.options = dict(options or {})
        unknown = sorted(set(self.options) - {"table", "timeout"})
        if unknown:
            raise ConfigError(f"{url}: unknown option(s) {', '.join(unknown)}; known: table, timeout")
        self.conn: sqlite3.Connection | None = None
        self.table = ""
        self._target = ""
        self._mode = "append"
        self._key: list[str] = []
        self._sql = ""
        self._schema = None
        self._delete_sql = ""
        self._changes = False
        self._state: tuple[str, dict] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self, schema, *, mode: str = "append", table: str | None = None, key: list[str] | None = None) -> None:
        if mode not in self.capabilities.modes:
            raise ConfigError(f"{self.url}: mode {mode!r} is not supported; use append, replace or merge")
        table = table or self.options.get("table")
        if not table:
            raise ConfigError(f"{self.url}: a table name is needed (--table)")
        key = list(key or [])
        if mode == "merge" and not key:
            raise ConfigError(f"{self.url}: merge needs a key (--key COL[,COL])")
        missing = [k for k in key if k not in schema]
        if missing:
            raise ConfigError(f"{self.url}: key column(s) {', '.join(missing)} not in the schema")
        self.table, self._mode, self._key = table, mode, key
        self._state = None
        schema = self._stored(schema)
        self._schema = schema
        try:
            d = os.path.dirname(os.path.abspath(self.path))
            if os.path.isdir(self.path):
                raise IsADirectoryError(21, "is a directory")
            os.makedirs(d, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=float(self.options.get("timeout", 30)),
                                        isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # WAL syncs nothing while loading whatever this says; FULL adds the one fsync at COMMIT
            # that makes a committed run (and the checkpoint saved after it) survive a power cut
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("BEGIN IMMEDIATE")
            self._prepare(schema)
        except (sqlite3.Error, OSError) as e:
            self.abort()
            raise self._error(e, "cannot open") from e
        except BaseException:
            self.abort()
            raise

    def _prepare(self, schema) -> None:
        t = self.table
        if self._mode == "replace":
            self._target = f"{t}__nebula_new"
            self.conn.execute(f"DROP TABLE IF EXISTS {quote_ident(self._target)}")  # a crashed run's leftover
            self._create(self._target, schema, index=False)
        else:
            self._target = t
            existing = self._columns(t)
            if existing is None:
                self._create(t, schema, index=bool(self._key))
            else:
                self._evolve(t, existing, schema)
                if self._mode == "merge":
                    self._ensure_unique(t)
        self._sql = self._insert_sql(schema)

    def evolve(self, schema) -> None:
        """Columns new in ``schema`` are added (ALTER TABLE ADD COLUMN, nullable). A widened type
        keeps the column's declared type: SQLite stores each value with its own type anyway."""
        if self.conn is None:
            raise DestinationError(f"{self.url}: evolve() before open()")
        schema = self._stored(schema)
        try:
            existing = self._columns(self._target) or {}
            for f in schema:
                if f.name not in existing:
                    self.conn.execute(f"ALTER TABLE {quote_ident(self._target)} ADD COLUMN {quote_ident(f.name)} "
                                      f"{_SQL_TYPE[f.type.kind]}")
        except sqlite3.Error as e:
            raise self._error(e, "cannot add columns") from e
        self._schema = schema
        self._sql = self._insert_sql(schema)

    def _stored(self, schema):
        """``schema`` without the change columns when merging a change stream (they steer, not store)."""
        from ...schema import Schema

        self._changes = self._mode == "merge" and CHANGE_OP in schema
        if not self._changes:
            return schema
        keep = set(data_columns(schema))
        return Schema(f for f in schema if f.name in keep)

    def _insert_sql(self, schema) -> str:
        cols = ", ".join(quote_ident(f.name) for f in schema)
        marks = ", ".join("?" for _ in schema)
        sql = f"INSERT INTO {quote_ident(self._target)} ({cols}) VALUES ({marks})"
        if self._mode == "merge":
            keys = ", ".join(quote_ident(k) for k in self._key)
            rest = [f.name for f in schema if f.name not in self._key]
            if rest:
                sets = ", ".join(f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in rest)
                sql += f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"
            else:
                sql += f" ON CONFLICT ({keys}) DO NOTHING"
            self._delete_sql = (f"DELETE FROM {quote_ident(self._target)} WHERE "
                                + " AND ".join(f"{quote_ident(k)} IS ?" for k in self._key))
        return sql

    def _columns(self, table: str) -> dict[str, str] | None:
        rows = self.conn.execute(f"PRAGMA table_info({quote_ident(table)})").fetchall()
        return {r[1]: r[2] for r in rows} if rows else None

    def _create(self, table: str, schema, *, index: bool) -> None:
        cols = ", ".join(f"{quote_ident(f.name)} {_SQL_TYPE[f.type.kind]}{'' if f.nullable else ' NOT NULL'}"
                         for f in schema)
        self.conn.execute(f"CREATE TABLE {quote_ident(table)} ({cols})")
        if index:
            self._create_key_index(table)

    def _create_key_index(self, table: str) -> None:
        keys = ", ".join(quote_ident(k) for k in self._key)
        self.conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {quote_ident(table + '__nebula_key')} "
                          f"ON {quote_ident(table)} ({keys})")

    def _ensure_unique(self, table: str) -> None:
        want = set(self._key)
        for idx in self.conn.execute(f"PRAGMA index_list({quote_ident(table)})").fetchall():
            if idx[2]:  # unique
                cols = {r[2] for r in self.conn.execute(f"PRAGMA index_info({quote_ident(idx[1])})")}
                if cols == want:
                    return
        self._create_key_index(table)

    def _evolve(self, table: str, existing: dict[str, str], schema) -> None:
        """Add missing columns (nullable); refuse columns whose affinity cannot hold our values."""
        for f in schema:
            ours = _SQL_TYPE[f.type.kind]
            if f.name in existing:
                have = _affinity(existing[f.name])
                if have not in _ACCEPTS[ours]:
                    raise SchemaEvolutionError(
                        f"{self.url}: table {table!r} column {f.name!r} is {existing[f.name] or 'untyped'} "
                        f"({have} affinity); cannot write {f.type} values ({ours}) into it")
            else:
                self.conn.execute(f"ALTER TABLE {quote_ident(table)} ADD COLUMN {quote_ident(f.name)} {ours}")

    def write(self, batch) -> int:
        if self.conn is None:
            raise DestinationError(f"{self.url}: write() before open()")
        if batch.length == 0:
            return 0
        rb = batch.to_arrow()
        try:
            if self._changes:
                self._write_changes(rb)
            else:
                cols = [_python_values(rb.column(i), f.type) for i, f in enumerate(self._schema)]
                self.conn.executemany(self._sql, zip(*cols, strict=True))
        except sqlite3.Error as e:
            raise self._error(e, f"cannot insert into {self.table!r}") from e
        return rb.nbytes

    def _write_changes(self, rb) -> None:
        """Upserts, deletes (``_op == 'd'``) and truncates (``_op == 't'``: every row goes) in batch order:
        one statement or executemany per run of the same kind."""
        import numpy as np
        import pyarrow.compute as pc

        op = rb.column(CHANGE_OP)
        kind = (pc.fill_null(pc.equal(op, "d"), False).to_numpy(zero_copy_only=False).astype(np.int8)
                + 2 * pc.fill_null(pc.equal(op, "t"), False).to_numpy(zero_copy_only=False).astype(np.int8))
        cuts = [0, *(np.flatnonzero(np.diff(kind)) + 1).tolist(), len(kind)]
        names = rb.schema.names
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            part = rb.slice(a, b - a)
            if kind[a] == 2:
                self.conn.execute(f"DELETE FROM {quote_ident(self._target)}")
            elif kind[a] == 1:
                cols = [_python_values(part.column(names.index(k)), self._schema[k].type) for k in self._key]
                self.conn.executemany(self._delete_sql, zip(*cols, strict=True))
            else:
                cols = [_python_values(part.column(names.index(f.name)), f.type) for f in self._schema]
                self.conn.executemany(self._sql, zip(*cols, strict=True))

    def stage_state(self, name: str, value: dict) -> None:
        self._state = (name, dict(value))

    def committed_state(self, name: str) -> dict | None:
        """The checkpoint committed with the rows (``state`` table of this database), if any."""
        if not os.path.isfile(self.path):
            return None
        import json

        try:
            conn = sqlite3.connect(self.path, timeout=float(self.options.get("timeout", 30)))
            try:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='state'").fetchone() is None:
                    return None
                row = conn.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise self._error(e, "cannot read the committed checkpoint") from e
        return None if row is None else json.loads(row[0])

    def commit(self) -> None:
        if self.conn is None:
            return
        try:
            if self._state is not None:
                from ...state import StateStore

                StateStore.set_in(self.conn, *self._state)
            if self._mode == "replace":
                t = quote_ident(self.table)
                self.conn.execute(f"DROP TABLE IF EXISTS {t}")
                self.conn.execute(f"ALTER TABLE {quote_ident(self._target)} RENAME TO {t}")
                if self._key:
                    self._create_key_index(self.table)
            self.conn.execute("COMMIT")
        except sqlite3.Error as e:
            self.abort()
            raise self._error(e, "cannot commit") from e
        self._close()

    def abort(self) -> None:
        if self.conn is not None:
            try:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._close()

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self.abort()

    def location(self) -> str:
        return f"{self.path}:{self.table}" if self.table else self.path

    def _error(self, e: Exception, what: str) -> DestinationError:
        reason = getattr(e, "strerror", None) or str(e)
        busy = isinstance(e, sqlite3.OperationalError) and "locked" in str(e)
        return DestinationError(f"{self.path}: {what}: {reason}", retryable=busy)


def _python_values(arr, t) -> list:
    """One column as the Python values sqlite3 binds, converted by Arrow kernels, not per value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    k = t.kind
    if t.is_nested:
        from ...nested import json_text

        arr = json_text(arr)
    elif k == "decimal" or k == "date":
        arr = arr.cast(pa.string())
    elif k == "timestamp":
        naive = arr.view(pa.timestamp("us")) if t.tz is not None else arr
        arr = pc.strftime(naive, format="%Y-%m-%dT%H:%M:%S")
        if t.tz is not None:
            arr = pc.binary_join_element_wise(arr, pa.scalar("Z"), "")
    elif k == "float32":
        arr = arr.cast(pa.float64())
    return arr.to_pylist()
