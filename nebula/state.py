"""Checkpoint store: named JSON states and a log of runs, in one SQLite file.

A pipeline saves its checkpoint (file offsets, cursor values, a PostgreSQL LSN, a binlog position…) only
after its destination has committed, so a crash re-reads and never loses. The store is a plain SQLite
database (stdlib ``sqlite3``) in WAL mode:

- safe across threads: every call opens its own short-lived connection;
- safe across processes: writes take the write lock up front (``BEGIN IMMEDIATE``) and wait for it
  (``busy_timeout``) instead of failing with "database is locked".

Tables::

    state(name TEXT PRIMARY KEY, value TEXT  -- JSON object, updated_at TEXT  -- ISO-8601 UTC)
    runs(run_id TEXT PRIMARY KEY, name TEXT, started_at TEXT, finished_at TEXT, status TEXT,
         rows_read INTEGER, rows_written INTEGER, rows_rejected INTEGER, bytes_read INTEGER,
         summary TEXT  -- JSON object)

Exactly-once into a database destination: when the destination lives in a SQL database, the checkpoint
can be written *inside the destination's own transaction* with :meth:`StateStore.set_in` (a
``state`` table with the schema above, created in that database if missing); the data and the
checkpoint then commit or roll back together. Read it back with :meth:`StateStore.get_in`, or, for a
SQLite destination, with ``StateStore(<that database file>)``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_PATH = ".nebula/state.db"
_BUSY_TIMEOUT_MS = 30_000

_STATE_DDL = ("CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL, "
              "updated_at TEXT NOT NULL)")
_RUNS_DDL = ("CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
             "started_at TEXT, finished_at TEXT, status TEXT NOT NULL, rows_read INTEGER NOT NULL DEFAULT 0, "
             "rows_written INTEGER NOT NULL DEFAULT 0, rows_rejected INTEGER NOT NULL DEFAULT 0, "
             "bytes_read INTEGER NOT NULL DEFAULT 0, summary TEXT)")
_RUNS_INDEX = "CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name, started_at)"
_UPSERT = ("INSERT INTO state (name, value, updated_at) VALUES ({p}, {p}, {p}) "
           "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")
_RUN_COLUMNS = ("run_id", "name", "started_at", "finished_at", "status", "rows_read", "rows_written",
                "rows_rejected", "bytes_read", "summary")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(name: str, value: Any) -> str:
    if not isinstance(value, dict):
        raise ConfigError(f"state {name!r}: value must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"state {name!r}: value is not JSON-serializable ({exc})") from None


class StateStore:
    """Named checkpoints and run records in a SQLite file.

    Parameters
    ----------
    path : str or Path
        The database file; parent directories are created. Default ``.nebula/state.db``.

    Raises
    ------
    ConfigError
        When the file cannot be created, opened or is not a SQLite database (the message names the path).
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_PATH) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the state directory: {exc.strerror or exc}",
                              path=str(self.path)) from None
        with self._connect() as conn:
            self._guard(lambda: self._init_schema(conn))

    # -- connections ----------------------------------------------------------------------------
    def _guard(self, fn):
        try:
            return fn()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"state store is not a readable SQLite database ({exc})",
                              path=str(self.path)) from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        def open_() -> sqlite3.Connection:
            c = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                check_same_thread=False)
            c.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            return c

        conn = self._guard(open_)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error)."""
        with self._connect() as conn:
            self._guard(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError):
                    raise ConfigError(f"state store write failed ({exc})", path=str(self.path)) from None
                raise

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs an exclusive lock, and SQLite does not always call the busy handler
        # for it (nor while another connection recovers the WAL index): when another process creates
        # or writes the same file at that moment, the statement fails at once with "database is
        # locked". Retry the whole initialisation for as long as the busy timeout.
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        delay = 0.005
        while True:
            try:
                self._init_schema_once(conn)
                return
            except sqlite3.OperationalError as exc:
                text = str(exc)
                if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    @staticmethod
    def _init_schema_once(conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for ddl in (_STATE_DDL, _RUNS_DDL, _RUNS_INDEX):
                conn.execute(ddl)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- state ----------------------------------------------------------------------------------
    def get(self, name: str) -> dict | None:
        """The saved value of ``name``, or ``None`` when there is none."""
        with self._connect() as conn:
            row = self._guard(lambda: conn.execute("SELECT value FROM state WHERE name = ?",
                                                   (name,)).fetchone())
        return None if row is None else json.loads(row[0])

    def set(self, name: str, value: dict) -> None:
        """Save ``value`` (a JSON-serializable dict) under ``name``, replacing any previous value."""
        text = _dumps(name, value)
        with self._write() as conn:
            conn.execute(_UPSERT.format(p="?"), (name, text, _now()))

    def delete(self, name: str) -> bool:
        """Forget ``name``; ``True`` when there was something to delete."""
        with self._write() as conn:
            return conn.execute("DELETE FROM state WHERE name = ?", (name,)).rowcount > 0

    def list(self) -> list[tuple[str, dict, str]]:
        """Every saved state as ``(name, value, updated_at)``, ordered by name."""
        with self._connect() as conn:
            rows = self._guard(lambda: conn.execute(
                "SELECT name, value, updated_at FROM state ORDER BY name").fetchall())
        return [(n, json.loads(v), u) for n, v, u in rows]

    # -- runs -----------------------------------------------------------------------------------
    def record_run(self, name: str, *, status: str, started_at: str | datetime | None = None,
                   finished_at: str | datetime | None = None, rows_read: int = 0, rows_written: int = 0,
                   rows_rejected: int = 0, bytes_read: int = 0, summary: dict | None = None,
                   run_id: str | None = None) -> str:
        """Insert (or, for an existing ``run_id``, replace) one run record; returns its ``run_id``."""
        run_id = run_id or uuid.uuid4().hex
        stamps = [t.isoformat() if isinstance(t, datetime) else t for t in (started_at, finished_at)]
        if stamps[1] is None and status not in ("running",):
            stamps[1] = _now()
        row = (run_id, name, stamps[0], stamps[1], status, int(rows_read), int(rows_written),
               int(rows_rejected), int(bytes_read), None if summary is None else _dumps(name, summary))
        with self._write() as conn:
            conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(_RUN_COLUMNS)}) "
                         f"VALUES ({', '.join('?' * len(_RUN_COLUMNS))})", row)
        return run_id

    def runs(self, name: str | None = None, limit: int = 20) -> list[dict]:
        """The latest runs (newest first), of one pipeline or of all; each a dict of the columns."""
        sql = f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs"
        args: tuple = ()
        if name is not None:
            sql += " WHERE name = ?"
            args = (name,)
        sql += " ORDER BY COALESCE(started_at, finished_at) DESC, rowid DESC LIMIT ?"
        with self._connect() as conn:
            rows = self._guard(lambda: conn.execute(sql, (*args, int(limit))).fetchall())
        out = []
        for r in rows:
            d = dict(zip(_RUN_COLUMNS, r, strict=True))
            d["summary"] = None if d["summary"] is None else json.loads(d["summary"])
            out.append(d)
        return out

    # -- inside someone else's transaction ------------------------------------------------------
    @staticmethod
    def set_in(conn: Any, name: str, value: dict) -> None:
        """Write a checkpoint with the caller's connection, inside the caller's open transaction.

        Nothing is committed here: the caller commits its data and this checkpoint together (or rolls
        both back), which gives exactly-once delivery into a destination living in that database. A
        ``state`` table (same schema as the store's) is created there when missing.

        Parameters
        ----------
        conn
            A ``sqlite3.Connection``, any DB-API 2 connection whose driver module declares
            ``paramstyle`` (``qmark``, ``format`` or ``pyformat``; e.g. psycopg), or a SQLAlchemy
            ``Connection``. The SQL used is ``INSERT … ON CONFLICT (name) DO UPDATE`` (SQLite >= 3.24,
            PostgreSQL); other dialects need their own upsert.
        """
        text = _dumps(name, value)
        run = _executor(conn)
        run(_STATE_DDL, None)
        run(_UPSERT, (name, text, _now()))

    @staticmethod
    def get_in(conn: Any, name: str) -> dict | None:
        """Read a checkpoint written by :meth:`set_in` through the caller's connection.

        Creates the ``state`` table when missing (in the caller's transaction), so that a first read
        does not fail, nor abort the transaction on PostgreSQL.
        """
        run = _executor(conn)
        run(_STATE_DDL, None)
        row = run("SELECT value FROM state WHERE name = {p}", (name,))
        return None if row is None else json.loads(row[0])


def _executor(conn: Any):
    """A ``run(sql, params) -> first row or None`` for sqlite3, DB-API 2 and SQLAlchemy connections."""
    if hasattr(conn, "exec_driver_sql"):  # SQLAlchemy Connection
        style = conn.dialect.paramstyle

        def run_sa(sql: str, params: tuple | None):
            res = conn.exec_driver_sql(sql.format(p=_marker(style)), params or ())
            return res.fetchone() if res.returns_rows else None
        return run_sa

    if isinstance(conn, sqlite3.Connection):
        style = "qmark"
    else:
        import sys

        module = sys.modules.get(type(conn).__module__.split(".")[0])
        style = getattr(module, "paramstyle", "qmark")

    def run_dbapi(sql: str, params: tuple | None):
        cur = conn.cursor()
        try:
            cur.execute(sql.format(p=_marker(style)), params or ())
            return cur.fetchone() if cur.description else None
        finally:
            cur.close()
    return run_dbapi


def _marker(style: str) -> str:
    if style in ("qmark",):
        return "?"
    if style in ("format", "pyformat"):
        return "%s"
    raise ConfigError(f"set_in: unsupported DB-API paramstyle {style!r} (need qmark, format or pyformat)")


__all__ = ["StateStore", "DEFAULT_PATH"]
