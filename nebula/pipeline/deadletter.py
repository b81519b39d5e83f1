"""Rejected rows: the fail / skip / dead-letter policy, and where dead letters go (a file or a table).

``--dead-letter`` (``dead_letter=``) names the place:

- a file path: JSON lines, one object per rejected row::

    {"run_id": ..., "source": "data/orders.csv", "line": 17, "column": "qty", "offset": 1234,
     "reason": "cannot read 'abc' as int32", "raw": "17,42,abc,...", "raw_base64": null,
     "rejected_at": "2024-05-01T02:00:00.123456+00:00"}

  ``raw`` is the record's text (UTF-8, invalid bytes replaced); when the bytes were not valid UTF-8,
  ``raw_base64`` holds them exactly. The file is written to a temporary name and renamed (or appended to
  an existing file) when the run ends, successful or not, so a reader never sees half a line.
- ``sqlite:///path.db`` or ``postgresql://…``: a table, ``nebula_rejected`` unless named by ``#table`` or
  ``?table=`` (``schema.table`` for PostgreSQL), created when missing, with columns ``run_id, source, line,
  "column", "offset", reason, raw`` (text), ``raw_bytes`` (the exact bytes: BLOB / bytea) and
  ``rejected_at``. Rows are spooled to a local file while the run goes and inserted in one transaction
  at each flush (the end of the run, each CDC round); if that fails, the error names the spool file
  that still holds every row.

Which rows get here: every row a file source cannot parse (CSV/JSON syntax, wrong field count), whose
value does not fit its column's type, or which a schema contract discards (JSON ``contract=discard-row``/
``discard-value``). Database sources (PostgreSQL, MySQL/MariaDB) deliver rows already typed by their
server, so they have no parse or coercion rejects; a value the server itself could not represent (a
MySQL zero date) is loaded as NULL and sent here as well, so the loss is visible.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import re
import tempfile
import threading
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..errors import ConfigError, DataError, DestinationError, NebulaError

DEFAULT_TABLE = "nebula_rejected"
COLUMNS = ("run_id", "source", "line", "column", "offset", "reason", "raw", "raw_bytes", "rejected_at")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


def parse_target(spec: str) -> tuple[str, str, str | None]:
    """``(kind, where, table)`` of a dead-letter spec: ``("file", path, None)``, ``("sqlite", db path, table)``
    or ``("postgresql", libpq URL without the table parameter, table)``."""
    low = spec.lower()
    if low.startswith("file://"):
        return "file", unquote(urlsplit(spec).path), None
    if not re.match(r"^[a-z][a-z0-9+.\-]*://", low):
        return "file", spec, None
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    query = parse_qsl(parts.query, keep_blank_values=True)
    table = parts.fragment or dict(query).get("table") or DEFAULT_TABLE
    if not _TABLE_NAME.match(table):
        raise ConfigError(f"dead-letter table {table!r}: use letters, digits and _ (schema.table at most)")
    rest = [(k, v) for k, v in query if k != "table"]
    if scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError("dead letters in SQLite: write sqlite:///relative/path.db or sqlite:////abs/path.db")
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise ConfigError("dead letters in SQLite need a database file: sqlite:///rejected.db")
        if "." in table:
            raise ConfigError(f"dead-letter table {table!r}: SQLite tables have no schema")
        return "sqlite", path, table
    if scheme in ("postgresql", "postgres"):
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), ""))
        return "postgresql", url, table
    from ..redact import redact_url

    raise ConfigError(f"dead letters go to a file, sqlite:///path.db or postgresql://… (with #table), not "
                      f"{redact_url(spec)}")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat()


class Rejects:
    """Thread-safe sink for rejected rows under one policy (see the module docstring)."""

    def __init__(self, policy: str = "fail", path: str | None = None, *, run_id: str = "",
                 source: str = "") -> None:
        if policy not in ("fail", "skip", "dead-letter"):
            raise ValueError(policy)
        self.policy = policy
        self.path = path if policy == "dead-letter" else None
        self.kind, self._where, self.table = parse_target(self.path) if self.path else ("file", None, None)
        self.run_id = run_id
        self.source = source
        self.count = 0
        self._lock = threading.Lock()
        self._fh = None
        self._tmp = None

    def check_destination(self, dest) -> None:
        """Refuse a dead-letter table in the destination's own SQLite file: the destination holds that file's
        write lock until it commits, and the rejected rows are stored before that (so none is ever lost)."""
        if self.kind != "sqlite" or not isinstance(dest, str | os.PathLike) or \
                not os.fspath(dest).lower().startswith("sqlite:"):
            return
        try:
            kind, path, _ = parse_target(os.fspath(dest))
        except ConfigError:
            return
        if kind == "sqlite" and os.path.realpath(path) == os.path.realpath(self._where):
            raise ConfigError(f"--dead-letter sqlite:///{self._where} is the destination's own database file, which "
                              "stays locked until the run commits: put the rejected rows in another file")

    @property
    def location(self) -> str | None:
        """Where this run's rejected rows went (redacted), or ``None`` when there were none."""
        if not (self.path and self.count):
            return None
        if self.kind == "file":
            return self._where
        from ..redact import redact_url

        return f"{redact_url(self._where if self.kind == 'postgresql' else 'sqlite:///' + self._where)}#{self.table}"

    def reject(self, *, reason: str, line: int | None, column, offset: int | None, raw: bytes,
               path: str | None = None) -> None:
        if self.policy == "fail":
            raise DataError(reason, path=path or self.source, line=line, column=column, offset=offset, raw=raw)
        with self._lock:
            self.count += 1
            if self.path is None:
                return
            if self._fh is None:
                self._open()
            try:
                text = raw.decode("utf-8")
                b64 = None
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
                b64 = base64.b64encode(raw).decode()
            rec = {"run_id": self.run_id, "source": path or self.source, "line": line, "column": column,
                   "offset": offset, "reason": reason, "raw": text, "raw_base64": b64, "rejected_at": _now()}
            self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")

    def _open(self) -> None:
        if self.kind == "file":
            d = os.path.dirname(os.path.abspath(self._where))
            try:
                os.makedirs(d, exist_ok=True)
                self._tmp = os.path.join(d, f".{os.path.basename(self._where)}.nebula-tmp-{os.getpid()}")
                self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as e:
                raise DestinationError(f"{self._where}: cannot write the dead-letter file: {e.strerror or e}") from e
            return
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=f"nebula-rejected-{self.run_id or os.getpid()}-", suffix=".jsonl")
            self._fh = os.fdopen(fd, "w", encoding="utf-8")
        except OSError as e:
            raise DestinationError(f"cannot spool rejected rows to a temporary file: {e.strerror or e}") from e

    def flush(self) -> None:
        """Publish the rows rejected since the last flush: publish the file or insert into the table (idempotent)."""
        with self._lock:
            if self._fh is None:
                return
            self._fh.close()
            self._fh = None
            tmp, self._tmp = self._tmp, None
            if self.kind == "file":
                self._publish_file(tmp)
                return
            try:
                with open(tmp, encoding="utf-8") as f:
                    rows = [_row(json.loads(line)) for line in f]
                if self.kind == "sqlite":
                    _insert_sqlite(self._where, self.table, rows)
                else:
                    _insert_postgres(self._where, self.table, rows)
            except (OSError, ValueError, NebulaError) as e:
                from ..redact import redact

                raise DestinationError(redact(f"dead-letter table {self.location}: the rejected rows could not be "
                                              f"inserted ({e}); they are kept in {tmp}")) from None
            os.unlink(tmp)

    def _publish_file(self, tmp: str) -> None:
        try:
            if os.path.exists(self._where):
                with open(self._where, "a", encoding="utf-8") as out, open(tmp, encoding="utf-8") as src:
                    out.write(src.read())
                os.unlink(tmp)
            else:
                os.replace(tmp, self._where)
        except OSError as e:
            raise DestinationError(f"{self._where}: cannot write the dead-letter file: {e.strerror or e}") from e


def _row(rec: dict) -> tuple:
    raw = base64.b64decode(rec["raw_base64"]) if rec.get("raw_base64") else rec["raw"].encode("utf-8")
    col = rec.get("column")
    return (rec["run_id"], rec["source"], rec["line"], None if col is None else str(col), rec["offset"],
            rec["reason"], rec["raw"], raw, rec["rejected_at"])


def _insert_sqlite(path: str, table: str, rows: list[tuple]) -> None:
    import sqlite3

    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    q = '"' + table + '"'
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    except sqlite3.Error as e:
        raise DestinationError(f"cannot open {path}: {e}") from None
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f'CREATE TABLE IF NOT EXISTS {q} (run_id TEXT, source TEXT, line INTEGER, "column" TEXT, '
                     '"offset" INTEGER, reason TEXT, raw TEXT, raw_bytes BLOB, rejected_at TEXT)')
        conn.executemany(f'INSERT INTO {q} (run_id, source, line, "column", "offset", reason, raw, raw_bytes, '
                         'rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', rows)
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise DestinationError(str(e)) from None
    finally:
        conn.close()


def _insert_postgres(url: str, table: str, rows: list[tuple]) -> None:
    from ..connectors.destinations.postgres import connect, quote_ident, safe_message

    qname = ".".join(quote_ident(p) for p in table.split("."))
    nul = "\x00"
    clean = [tuple(v.replace(nul, "\ufffd") if isinstance(v, str) else v for v in r) for r in rows]
    import psycopg

    conn = connect(url, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE TABLE IF NOT EXISTS {qname} (run_id text, source text, line bigint, "column" text, '
                        '"offset" bigint, reason text, raw text, raw_bytes bytea, rejected_at timestamptz)')
            with cur.copy(f'COPY {qname} (run_id, source, line, "column", "offset", reason, raw, raw_bytes, '
                          'rejected_at) FROM STDIN') as cp:
                for r in clean:
                    cp.write_row(r)
        conn.commit()
    except psycopg.Error as e:
        try:
            conn.rollback()
        except psycopg.Error:
            pass
        raise DestinationError(safe_message(url, str(e))) from None
    finally:
        conn.close()
