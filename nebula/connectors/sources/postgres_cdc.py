"""PostgreSQL change data capture: a snapshot exactly consistent with a ``pgoutput`` logical slot, then its changes.

``nebula copy postgresql://…/db DEST --cdc [--tables public.a,b] [--slot NAME] [--until-caught-up]``. Options:
``tables`` (``schema.table`` or ``table`` = ``public.table``; default every table of ``public``), ``slot``
(default ``nebula_<name>``), ``publication`` (default the slot's name), ``lag_warn_bytes`` (default 1 GiB),
``connect_timeout``, ``retries`` (reconnections of a lost replication connection in a row without progress, default
the run policy's; each goes through the resilience layer: backoff, the server's circuit breaker), and the libpq
options ``password``, ``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey`` (or in the URL's query).
Destination tables are named after the source tables (without their schema).

Start. A publication for the tables is created (or extended with missing tables). Without a checkpoint the slot
is (re)created on a replication connection with ``CREATE_REPLICATION_SLOT … LOGICAL pgoutput EXPORT_SNAPSHOT``;
a second connection imports that snapshot (``SET TRANSACTION SNAPSHOT``) and copies every table with binary
COPY through the :mod:`nebula.kernels.pgcopy` decode kernels (``_op = 'r'``). The stream then starts at the
slot's consistent point: nothing is missed or read twice. With a checkpoint the slot is reused from the
checkpoint's LSN; a missing or invalidated slot is a clear error naming the resync command.

Stream. A reader thread owns the replication connection (psycopg 3, ``replication=database``, COPY_BOTH through
the low-level ``pgconn``): it gathers each transaction's change messages (I/U/D payloads) into one byte buffer,
keeps Relation (R) and Truncate (T) messages in order, and hands the transaction over at its Commit. A round
concatenates whole transactions; :func:`nebula.kernels.pgoutput.index_changes` walks all their messages once and
writes per-column text spans in the layout of the CSV parse kernels, and the :mod:`nebula.kernels.parse` column
kernels decode them (pgoutput sends text) - no Python object per change or value.

Changes: the table's columns plus ``_op`` ('r' snapshot, 'c' insert, 'u' update (after image), 'd' delete (key
columns; other columns null), 't' truncate (a row of nulls: the change log records it, ``--mode
merge`` destinations delete every row there), ``_lsn`` (int64: the
transaction's commit end LSN) and ``_commit_ts``. An update that changes the key gives a 'd' of the old key then
the 'u'. Merge applies them by primary key (tables without one need ``--key``, and for updates and deletes
``REPLICA IDENTITY FULL`` or an index at the source, else PostgreSQL refuses them).

Schema changes: Relation messages carry the columns after ALTER TABLE; the table's schema evolves (added
columns are added, a dropped column stays, null from then on; a changed type widens or becomes string).

Unchanged TOAST values (kind 'u': a large value the update did not touch) are taken from the same key's
previous image in the round (the old image when the table has ``REPLICA IDENTITY FULL``, which makes this
always exact). Left without one, the value is null in the change log; a merge would overwrite the stored value
with that null, so such a round is an error telling to set ``REPLICA IDENTITY FULL`` on the table.

Checkpoints ``{"lsn", "lsn_text", "slot", "publication", "url"}`` (URL without password): the commit end LSN
of the last transaction handed to the destinations; it is acknowledged to the server (standby status update,
flush LSN) only after the state store saved it, so ``confirmed_flush_lsn`` never passes what is committed.

Types as the plain PostgreSQL source (:func:`nebula.connectors.sources.postgres._logical`); types it reads as
text (uuid, arrays, intervals, …) are strings here too. bytea (sent as ``\\x`` hex text) is decoded to binary.
"""

from __future__ import annotations

import queue
import re
import select
import struct
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ...errors import ConfigError, ConnectionFailed, DataError, SourceError
from ...pipeline.cdc import TablePart
from ...schema import Field, Schema
from ...types import LogicalType
from ..base import Capabilities, ParseStats, Source
from ..destinations.postgres import LIBPQ_OPTIONS, libpq_url

_OWN = ("tables", "cdc", "slot", "publication", "until_caught_up", "max_changes", "max_seconds",
        "connect_timeout", "retries", "lag_warn_bytes", "table", "db_schema", *LIBPQ_OPTIONS)
_IGNORED = ("infer_schema", "columns", "schema", "on_error", "threads", "batch_rows", "dictionary",
            "dictionary_max", "sample_bytes", "block_size", "cursor")
_CHANGE = [Field("_op", LogicalType("string")), Field("_lsn", LogicalType("int64")),
           Field("_commit_ts", LogicalType("timestamp", tz="UTC"))]
_OPS = {1: "c", 2: "u", 3: "d"}
_PG_EPOCH_US = 946684800000000
_OIDS = {16: "bool", 17: "bytea", 20: "int8", 21: "int2", 23: "int4", 25: "text", 114: "json", 700: "float4",
         701: "float8", 1042: "bpchar", 1043: "varchar", 1082: "date", 1114: "timestamp", 1184: "timestamptz",
         1700: "numeric", 3802: "jsonb"}


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_int(text: str) -> int:
    hi, _, lo = text.partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def url_without_password(url: str) -> str:
    u = urlsplit(url)
    if u.password is None:
        return url
    host = u.hostname or ""
    netloc = (f"{u.username}@" if u.username else "") + host + (f":{u.port}" if u.port else "")
    return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def _slot_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", text.lower())[:63]


@dataclass
class _Rel:
    oid: int
    schema: str
    name: str
    columns: list  # (name, typname, typmod)
    keys: list


@dataclass
class _Txn:
    end_lsn: int = 0
    ts: int = 0
    buf: bytearray = field(default_factory=bytearray)
    starts: list = field(default_factory=list)
    events: list = field(default_factory=list)  # (message index, "R"/"T", payload)


def _cstr(b: bytes, p: int) -> tuple[str, int]:
    e = b.index(0, p)
    return b[p:e].decode(), e + 1


def _parse_relation(b: bytes) -> _Rel:
    oid = struct.unpack_from(">I", b, 1)[0]
    ns, p = _cstr(b, 5)
    name, p = _cstr(b, p)
    p += 1  # replica identity
    (nc,) = struct.unpack_from(">h", b, p)
    p += 2
    cols, keys = [], []
    for _ in range(nc):
        flags = b[p]
        cname, p = _cstr(b, p + 1)
        toid, typmod = struct.unpack_from(">Ii", b, p)
        p += 8
        cols.append((cname, _OIDS.get(toid, "other"), typmod))
        if flags & 1:
            keys.append(cname)
    return _Rel(oid, ns or "public", name, cols, keys)


class PostgresCdcSource(Source):
    """Tables of a PostgreSQL database, then their logical replication changes (see the module doc)."""

    capabilities = Capabilities(schemes=("postgresql", "postgres"), cdc=True, exactly_once=True,
                                schema_evolution=True,
                                notes="exported-snapshot copy + pgoutput logical slot; LSN checkpoints")

    def __init__(self, url: str, *, options: dict | None = None) -> None:
        from ...redact import redact_url

        self.url = libpq_url(url, options or {})  # password / ssl* options (see LIBPQ_OPTIONS)
        self.label = redact_url(url)
        self.resync_command = ""  # set by run_cdc: ``nebula state reset NAME [--state PATH]``
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(_OWN) - set(_IGNORED))
        if unknown:
            raise ConfigError(f"{self.label}: unknown option(s) {', '.join(unknown)}; known: {', '.join(_OWN)}")
        self.cdc = bool(opts.get("cdc"))
        self.opts = opts
        self.batch_rows = int(opts.get("batch_rows") or 65536)
        from ..resilience import current_policy, endpoint_of

        self._policy = current_policy()  # captured here: the reader thread reconnects with the run's policy
        self._endpoint = endpoint_of(url)
        self.timeout = float(opts.get("connect_timeout") or self._policy.connect_timeout)
        self.retries = int(opts.get("retries") if opts.get("retries") is not None else self._policy.retries)
        self._handed = 0  # end LSN of the last transaction the reader handed over
        self.lag_warn = int(opts.get("lag_warn_bytes") or (1 << 30))
        want = opts.get("tables") or opts.get("table") or ""
        if isinstance(want, str):
            want = [t.strip() for t in want.split(",") if t.strip()]
        self._want = [(t.split(".", 1) if "." in t else [opts.get("db_schema") or "public", t]) for t in want]
        self.tables: list[str] = [t for _, t in self._want]
        if len(set(self.tables)) != len(self.tables):
            raise ConfigError(f"{self.label}: two tables of one name in different schemas")
        self.name = self.tables[0] if len(self.tables) == 1 else (urlsplit(url).path.strip("/") or "postgres")
        self.slot = opts.get("slot")
        self.publication = opts.get("publication")
        self.bytes_read = 0
        self.warnings: list[str] = []
        self._qnames: dict[str, str] = {}
        self._oids: dict[int, str] = {}
        self._schemas: dict[str, Schema] = {}
        self._keys: dict[str, list[str]] = {}
        self._rels: dict[int, _Rel] = {}
        self._conn = None  # normal connection (catalog, then the snapshot transaction)
        self._repl = None  # replication connection
        self._state: dict | None = None
        self._table_states: dict[str, int] = {}
        self._lsn = 0  # end LSN of the last transaction handed out
        self._target = 0
        self._snapshot_pending = False
        self._snapshot_ts = 0
        self._reader: threading.Thread | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=256)
        self._stop = threading.Event()
        self._scanned = 0  # the server's position seen between transactions
        self._ack = 0  # the flush LSN to report
        self._acked_sent = -1

    # -- ChangeSource protocol ----------------------------------------------------------------------------
    def describe(self) -> None:
        if self._conn is not None:
            return
        from ..destinations.postgres import connect, qualified, table_columns
        from .postgres import _logical

        self._conn = connect(self.url, timeout=self.timeout, autocommit=True, policy=self._policy)
        cur = self._conn.cursor()
        if self.cdc:
            cur.execute("SHOW wal_level")
            if cur.fetchone()[0] != "logical":
                raise ConfigError(f"{self.label}: wal_level is not logical; CDC needs "
                                  "wal_level=logical in postgresql.conf (and a server restart)")
        if not self._want:
            cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1")
            self._want = [["public", r[0]] for r in cur.fetchall()]
            self.tables = [t for _, t in self._want]
            if not self.tables:
                raise SourceError(f"{self.label}: the database has no tables in schema public")
            self.name = self.tables[0] if len(self.tables) == 1 else self.name
        for ns, t in self._want:
            q = qualified(t, ns)
            cols = table_columns(cur, q)
            if cols is None:
                raise SourceError(f"{self.label}: table {ns}.{t} does not exist")
            self._qnames[t] = q
            self._schemas[t] = Schema(Field(c, _logical(typ, mod)[0]) for c, (typ, mod, _) in cols.items())
            cur.execute("SELECT %s::regclass::oid", (q,))
            self._oids[int(cur.fetchone()[0])] = t
            cur.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                        "ORDER BY array_position(i.indkey, a.attnum)", (q,))
            self._keys[t] = [r[0] for r in cur.fetchall()]
        if not self.slot:
            self.slot = _slot_name(f"nebula_{self.name}")
        self.publication = self.publication or self.slot

    def resume(self, state: dict | None, table_states: dict | None = None) -> None:
        self._state = state if state and state.get("lsn") is not None else None
        self._table_states = {t: int(s["lsn"]) for t, s in (table_states or {}).items() if s and s.get("lsn")}
        if self._state is None and self._table_states and set(self._table_states) >= set(self.tables):
            self._state = {"lsn": min(self._table_states.values())}

    def open(self) -> None:
        import psycopg

        try:
            self._open()
        except psycopg.Error as e:
            from ..destinations.postgres import safe_message

            msg = safe_message(self.url, str(e))
            if isinstance(e, psycopg.errors.InsufficientPrivilege):
                raise ConfigError(f"{self.label}: {msg} (CDC needs a user that owns the tables or can create the "
                                  "publication, with the REPLICATION attribute)") from None
            raise SourceError(f"{self.label}: {msg}", retryable=isinstance(e, psycopg.OperationalError)) from None

    def _open(self) -> None:
        self.describe()
        cur = self._conn.cursor()
        if self._state is None:
            self._ensure_publication(cur)
            self._create_slot_and_snapshot(cur)
        else:
            self._lsn = int(self._state["lsn"])
            had = self._state.get("tables")
            new = [f"{ns}.{t}" for ns, t in self._want if had is not None and f"{ns}.{t}" not in had]
            if new:
                raise ConfigError(f"{self.label}: {', '.join(new)} not in this pipeline's snapshot (it had "
                                  f"{', '.join(had)}); a table joins with a new snapshot: {self.resync()} "
                                  "and run again, or give it its own pipeline (--name, --slot)")
            self._check_slot(cur)
            self._ensure_publication(cur)
        self._ack = self._lsn
        cur.execute("SELECT pg_current_wal_insert_lsn()::text")
        self._target = lsn_int(cur.fetchone()[0])

    def key_of(self, table: str) -> list[str]:
        return list(self._keys.get(table, []))

    def state(self) -> dict | None:
        if not self._lsn:
            return None
        return {"lsn": self._lsn, "lsn_text": lsn_text(self._lsn), "slot": self.slot,
                "publication": self.publication, "url": url_without_password(self.url),
                "tables": [f"{ns}.{t}" for ns, t in self._want]}

    def acknowledge(self, checkpoint: dict) -> None:
        self._ack = max(self._ack, int(checkpoint["lsn"]))

    @property
    def schema(self) -> Schema:
        return Schema([*self._schemas[self.tables[0]], *_CHANGE])

    # A change source is driven in rounds by nebula.pipeline.cdc.run_cdc (``next_round`` hands out one
    # ordinary source per table); it never runs under run_pipeline itself.
    def read(self):
        raise TypeError("PostgresCdcSource is driven by nebula.pipeline.cdc.run_cdc (rounds), not run_pipeline")

    def parse(self, chunk, batch, rejects) -> ParseStats:
        raise TypeError("PostgresCdcSource is driven by nebula.pipeline.cdc.run_cdc (rounds), not run_pipeline")

    def close(self) -> None:
        self._stop.set()
        r, self._reader = self._reader, None
        if r is not None:
            r.join(timeout=10)
        if self._repl is not None:
            try:
                if r is not None:
                    self._send_status(False)
            except Exception:  # noqa: BLE001
                pass
            try:
                self._repl.close()
            except Exception:  # noqa: BLE001
                pass
            self._repl = None
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    # -- server objects -------------------------------------------------------------------------------------
    def _ensure_publication(self, cur) -> None:
        from ..destinations.postgres import quote_ident

        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,))
        tabs = ", ".join(self._qnames[t] for t in self.tables)
        if cur.fetchone() is None:
            cur.execute(f"CREATE PUBLICATION {quote_ident(self.publication)} FOR TABLE {tabs}")
            return
        cur.execute("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (self.publication,))
        have = {(s, t) for s, t in cur.fetchall()}
        missing = [self._qnames[t] for (ns, t) in self._want if (ns, t) not in have]
        if missing:
            cur.execute(f"ALTER PUBLICATION {quote_ident(self.publication)} ADD TABLE {', '.join(missing)}")

    def _replication_connection(self, retries: int | None = None):
        from ..destinations.postgres import connect

        try:
            # pgoutput's text values follow the walsender's settings: fix the ones the parse kernels read
            return connect(self.url, timeout=self.timeout, retries=retries, autocommit=True, policy=self._policy,
                           replication="database", options="-c datestyle=ISO,YMD -c timezone=UTC "
                           "-c extra_float_digits=1 -c intervalstyle=postgres -c bytea_output=hex")
        except ConnectionFailed as e:
            msg = str(e)
            low = msg.lower()
            if "replication" in low and ("permission" in low or "pg_hba" in low or "replication role" in low):
                raise ConfigError(f"{msg} (no replication connection: the user needs the REPLICATION attribute and "
                                  "pg_hba.conf must allow it)") from None
            raise

    def _create_slot_and_snapshot(self, cur) -> None:
        import psycopg

        from ..destinations.postgres import connect, quote_ident

        if self._wait_slot_free(cur):  # ours from an earlier run without a checkpoint: a new snapshot, a new slot
            cur.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))
        self._repl = self._replication_connection()
        try:
            r = self._repl.execute(f"CREATE_REPLICATION_SLOT {quote_ident(self.slot)} LOGICAL pgoutput "
                                   "EXPORT_SNAPSHOT").fetchone()
        except psycopg.Error as e:
            msg = str(e).strip().splitlines()[0]
            if "all replication slots are in use" in msg:
                raise ConfigError(f"{self.label}: {msg}: raise max_replication_slots or drop unused slots "
                                  "(nebula cdc drop --slot NAME --url …)") from None
            raise SourceError(f"{self.label}: cannot create replication slot {self.slot!r}: {msg}") from None
        self._lsn = lsn_int(r[1])
        snap = connect(self.url, timeout=self.timeout, autocommit=True, policy=self._policy)
        snap.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snap.execute(f"SET TRANSACTION SNAPSHOT '{r[2]}'")
        self._snap = snap
        self._snapshot_pending = True
        self._snapshot_ts = int(time.time() * 1_000_000)

    def _wait_slot_free(self, cur, timeout: float = 15) -> bool:
        """Whether the slot exists; waits while a process still holds it (a killed run's walsender takes a moment
        to go), then a clear error."""
        deadline = time.monotonic() + timeout
        while True:
            cur.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (self.slot,))
            row = cur.fetchone()
            if row is None or row[0] is None:
                return row is not None
            if time.monotonic() > deadline:
                raise SourceError(f"{self.label}: replication slot {self.slot!r} is in use by process {row[0]} "
                                  "(another pipeline on the same slot?)")
            time.sleep(0.2)

    def resync(self) -> str:
        """The command that makes the next run start over with a new snapshot."""
        return self.resync_command or f"nebula state reset NAME (the pipeline's name, default {self.name!r})"

    def _check_slot(self, cur) -> None:
        cur.execute("SELECT plugin, wal_status, confirmed_flush_lsn::text FROM pg_replication_slots "
                    "WHERE slot_name = %s", (self.slot,))
        row = cur.fetchone()
        resync = f"resync: {self.resync()} and run again - it creates the slot and copies a new snapshot"
        if row is None:
            raise SourceError(f"{self.label}: replication slot {self.slot!r} does not exist (dropped?); the changes "
                              f"since the checkpoint {lsn_text(self._lsn)} are lost to CDC; {resync}")
        if row[1] == "lost":
            raise SourceError(f"{self.label}: replication slot {self.slot!r} was invalidated (wal_status lost: the "
                              f"WAL it needed was removed); {resync}")
        if row[0] != "pgoutput":
            raise ConfigError(f"{self.label}: slot {self.slot!r} uses plugin {row[0]}, not pgoutput")

    # -- rounds ---------------------------------------------------------------------------------------------
    def next_round(self, *, max_changes: int, max_seconds: float, stop: threading.Event):
        from ...pipeline.cdc import Round

        if self._snapshot_pending:
            self._snapshot_pending = False
            parts = {t: _SnapshotPart(self, t) for t in self.tables}
            return Round(parts=parts, checkpoint=self.state(), caught_up=not self.cdc or self._lsn >= self._target,
                         snapshot=True)
        snap = getattr(self, "_snap", None)
        if snap is not None:
            self._snap = None
            try:
                snap.execute("COMMIT")
                snap.close()
            except Exception:  # noqa: BLE001
                pass
        if not self.cdc:
            return None
        if self._reader is None:
            self._start_stream()
        txns: list[_Txn] = []
        changes = 0
        deadline = time.monotonic() + max_seconds
        caught = self._lsn >= self._target
        while not stop.is_set() and changes < max_changes:
            if not caught and self._queue.empty() and self._scanned >= self._target:
                caught = True
            if caught and self._queue.empty() and (txns or not getattr(self, "_told_caught_up", False)):
                break  # report what came, or the catch-up itself, at once; after that an idle stream waits
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                item = self._queue.get(timeout=min(0.1, left))
            except queue.Empty:
                if not self._reader.is_alive() and self._queue.empty():
                    raise SourceError(f"{self.label}: the replication reader stopped") from None
                continue
            if isinstance(item, BaseException):
                raise item
            if item.end_lsn <= self._lsn:
                continue  # committed before the checkpoint (the server resends from the slot's position)
            txns.append(item)
            changes += len(item.starts)
            caught = item.end_lsn >= self._target
        scanned = self._scanned  # read before the queue: every transaction ending by then was queued before
        parts = self._parts(txns)
        if txns:
            self._lsn = txns[-1].end_lsn
        if self._queue.empty() and scanned > self._lsn:
            self._lsn = scanned  # idle past our tables' last change: let the slot release that WAL
        self._check_lag()
        self._told_caught_up = caught or getattr(self, "_told_caught_up", False)
        return Round(parts=parts, checkpoint=self.state(), caught_up=caught, changes=changes)

    def _parts(self, txns: list[_Txn]) -> dict:
        from ...kernels import pgoutput as kp

        if not txns:
            return {}
        import itertools

        counts = np.array([len(tx.starts) for tx in txns], np.int64)
        sizes = np.array([len(tx.buf) for tx in txns], np.int64)
        bases = np.cumsum(sizes) - sizes
        nmsg = int(counts.sum())
        base = int(sizes.sum())
        ms = np.fromiter(itertools.chain.from_iterable(tx.starts for tx in txns), np.int64, nmsg)
        ms += np.repeat(bases, counts)
        me = np.append(ms[1:], base) if nmsg else ms  # the buffers are contiguous: a message ends where the next starts
        mt = np.repeat(np.arange(len(txns), dtype=np.int64), counts)
        firsts = np.cumsum(counts) - counts
        events = [(int(firsts[i]) + m, kind, payload, i) for i, tx in enumerate(txns) for m, kind, payload in tx.events]
        # one writable array (not a read-only view of bytes): the parse kernels then run the machine code
        # the CSV source compiled (numba compiles a read-only array as another type), warm from the install
        buf = np.concatenate([np.frombuffer(tx.buf, np.uint8) for tx in txns]) if base else np.zeros(1, np.uint8)
        self.bytes_read += base
        rows, nf, bad = kp.count_changes(buf, ms, me, nmsg)
        if bad >= 0:
            raise DataError(f"malformed pgoutput change message {bad} of a round", path=self.label)
        ix = _Index(buf, rows, nf)
        _, _, bad = kp.index_changes(buf, ms, me, nmsg, ix.row_msg, ix.row_op, ix.row_rel, ix.row_first,
                                     ix.row_ncols, ix.starts, ix.ends, ix.flags, ix.kinds)
        if bad >= 0:
            raise DataError(f"malformed pgoutput change message {bad} of a round", path=self.label)
        lsn = np.array([tx.end_lsn for tx in txns], np.int64)
        ts = np.array([tx.ts for tx in txns], np.int64)
        ix.row_txn = mt[ix.row_msg] if rows else np.zeros(0, np.int64)
        ix.lsn, ix.ts = lsn, ts
        # segments per table: runs of rows under one relation description, cut at truncates
        per: dict[str, list] = {}
        marks: dict[str, list] = {t: [] for t in self.tables}  # (message index, "R"/"T", rel/None)
        for m, kind, payload, _ in events:
            if kind == "R":
                t = self._oids.get(payload.oid)
                if t is not None:
                    marks[t].append((m, "R", payload))
            else:
                for oid in payload:
                    t = self._oids.get(oid)
                    if t is not None:
                        marks[t].append((m, "T", None))
        oid_of = {t: o for o, t in self._oids.items()}
        for t in self.tables:
            done = self._table_states.get(t, 0)
            sel = np.flatnonzero(ix.row_rel == oid_of[t])
            if done:
                sel = sel[lsn[ix.row_txn[sel]] > done]
            bounds = [m for m, _, _ in marks[t]]
            cut = np.searchsorted(ix.row_msg[sel], np.array(bounds, np.int64), side="left") if bounds else []
            segs = []
            prev = 0
            for (m, kind, rel), c in zip(marks[t], cut, strict=True):
                if c > prev:
                    segs.append(_Seg(self._rel_of(t), sel[prev:c]))
                    prev = c
                if kind == "R":
                    self._rels[oid_of[t]] = rel
                    self._evolve(t, rel)
                elif not done or lsn[txns_index(events, m)] > done:
                    segs.append(_Seg(self._rel_of(t), None, truncate_lsn=int(lsn[txns_index(events, m)]),
                                     truncate_ts=int(ts[txns_index(events, m)])))
            if len(sel) > prev:
                segs.append(_Seg(self._rel_of(t), sel[prev:]))
            if segs:
                per[t] = segs
        return {t: _ChangePart(self, t, ix, segs) for t, segs in per.items()}

    def _check_lag(self) -> None:
        """A warning (stderr and the run's warnings) when the slot holds more than ``lag_warn_bytes`` of WAL."""
        now = time.monotonic()
        if self._conn is None or now - getattr(self, "_lag_checked", -1e9) < 30:
            return
        self._lag_checked = now
        try:
            row = self._conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn)::int8 "
                                     "FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)).fetchone()
        except Exception:  # noqa: BLE001 - a status check only
            return
        lag = int(row[0] or 0) if row else 0
        if lag > self.lag_warn:
            import logging

            msg = (f"replication slot {self.slot!r} holds {lag} bytes of WAL (more than {self.lag_warn}); the "
                   "server keeps it until the pipeline catches up (nebula cdc drop --slot to give it up)")
            logging.getLogger("nebula").warning(msg)
            if msg not in self.warnings:
                self.warnings.append(msg)

    def lag_bytes(self) -> int | None:
        """WAL between the server's insert position and the last change handed out (``nebula_cdc_lag_bytes``,
        read after each round); None when the server cannot tell."""
        try:
            row = self._conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)::int8",
                                     (lsn_text(self._lsn),)).fetchone()
        except Exception:  # noqa: BLE001 - a status probe only
            return None
        return max(0, int(row[0] or 0)) if row else None

    def _rel_of(self, t: str) -> _Rel:
        oid = next(o for o, n in self._oids.items() if n == t)
        rel = self._rels.get(oid)
        if rel is None:  # no Relation message yet in this session: the catalog's columns (sent before any change)
            sch = self._schemas[t]
            rel = _Rel(oid, "", t, [(f.name, None, -1) for f in sch], self._keys[t])
        return rel

    def _evolve(self, t: str, rel: _Rel) -> None:
        from .postgres import _logical

        cur = self._schemas[t]
        incoming = Schema(Field(c, _logical(typ, mod)[0]) for c, typ, mod in rel.columns)
        if all(f.name in cur and cur[f.name].type == f.type for f in incoming):
            return
        self._schemas[t] = cur.evolve(incoming, allow_string=True)

    # -- the replication reader thread ----------------------------------------------------------------------
    def _start_stream(self) -> None:

        if self._repl is None:
            self._wait_slot_free(self._conn.cursor())
            self._repl = self._replication_connection()
        self._handed = self._lsn
        try:
            self._start_replication(self._lsn)
        except SourceError as e:  # the connection was lost while starting: a new one, as for a lost stream
            if not e.retryable:
                raise
            from ..resilience import note_retry, retry_call

            note_retry(self._endpoint, e, wait=0.0, attempt=1, attempts=self.retries + 1, what="replication start")
            retry_call(self._reopen, endpoint=self._endpoint, policy=self._policy, what="replication start")
        self._reader = threading.Thread(target=self._read_stream, name="nebula-pgoutput", daemon=True)
        self._reader.start()

    def _start_replication(self, lsn: int) -> None:
        from ..destinations.postgres import quote_ident

        pub = quote_ident(self.publication).replace("'", "''")
        sql = (f"START_REPLICATION SLOT {quote_ident(self.slot)} LOGICAL {lsn_text(lsn)} "
               f"(proto_version '1', publication_names '{pub}', messages 'true')")
        pg = self._repl.pgconn
        pg.send_query(sql.encode())
        res = self._result_within(pg, self._policy.timeout, "START_REPLICATION")
        from psycopg import pq

        if res is None or res.status != pq.ExecStatus.COPY_BOTH:
            msg = (res.error_message.decode(errors="replace") if res is not None else "") or \
                pg.error_message.decode(errors="replace")
            if "does not exist" in msg:
                self._check_slot(self._conn.cursor())
            # a killed connection's walsender may still hold the slot for a moment, and a connection lost
            # while starting (terminated by an administrator, the server restarting) is as good as any other
            # dropped connection: both are worth another try; an SQL error (no such publication) is not
            lost = pg.status != pq.ConnStatus.OK or "terminating connection" in msg or "closed the connection" in msg
            raise SourceError(f"{self.label}: START_REPLICATION failed: {msg.strip()}",
                              retryable=lost or "is active for PID" in msg)

    def _result_within(self, pg, seconds: float, what: str):
        """The next result of ``pg``, waited for with ``select`` (libpq's blocking wait would hold the GIL and
        has no time limit); a server that does not answer within ``seconds`` is a retryable error."""
        deadline = time.monotonic() + seconds
        while True:
            pg.consume_input()
            if not pg.is_busy():
                return pg.get_result()
            left = deadline - time.monotonic()
            if left <= 0:
                raise SourceError(f"{self.label}: no answer to {what} within {seconds:g} s", retryable=True)
            select.select([pg.socket], [], [], min(left, 1.0))

    def _send_status(self, reply: bool) -> None:
        lsn = self._ack
        now = int(time.time() * 1_000_000) - _PG_EPOCH_US
        self._repl.pgconn.put_copy_data(b"r" + struct.pack(">QQQqB", lsn, lsn, lsn, now, 1 if reply else 0))
        self._repl.pgconn.flush()
        self._acked_sent = lsn

    def _put(self, item, pg) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                self._status_tick(pg)
        return False

    def _status_tick(self, pg) -> None:
        now = time.monotonic()
        if self._ack != self._acked_sent or now - self._last_status > 5:
            self._last_status = now
            self._send_status(self._scanned < self._target)

    def _read_stream(self) -> None:
        """Stream until stopped; a lost connection is reopened from the end of the last transaction handed over
        (the partial one is read again, never twice) through the resilience layer: the policy's backoff, the
        server's circuit breaker, up to ``retries`` losses in a row without a transaction in between."""
        from ..resilience import breaker_for, note_retry, retry_call

        breaker = breaker_for(self._endpoint, self._policy)
        failures, handed_at_loss = 0, -1
        while not self._stop.is_set():
            try:
                self._stream()
                return
            except Exception as e:  # noqa: BLE001 - handed to next_round
                if self._stop.is_set():
                    return
                lost = isinstance(e, SourceError) and e.retryable or not isinstance(e, DataError | SourceError |
                                                                                      ConfigError)
                failures = failures + 1 if self._handed == handed_at_loss else 1
                handed_at_loss = self._handed
                if lost and failures <= self.retries:
                    breaker.record_failure(e)
                    wait = self._policy.backoff(failures)
                    note_retry(self._endpoint, e, wait=wait, attempt=failures, attempts=self.retries + 1,
                               what="replication stream")
                    self.warnings.append(f"replication connection lost ({str(e)[:120]}); resumed from "
                                         f"{lsn_text(self._handed)}")
                    if self._stop.wait(wait):
                        return
                    try:
                        retry_call(self._reopen, endpoint=self._endpoint, policy=self._policy,
                                   what="replication reconnect")
                        continue
                    except Exception as e2:  # noqa: BLE001
                        e = e2
                self._put(e if isinstance(e, DataError | SourceError | ConfigError) else
                          SourceError(f"{self.label}: reading the replication stream failed: {type(e).__name__}: "
                                      f"{e}", retryable=True), None)
                return

    def _reopen(self) -> None:
        """One attempt at a new replication connection streaming from the last transaction handed over."""
        try:
            self._repl.close()
        except Exception:  # noqa: BLE001 - it is already lost
            pass
        self._repl = self._replication_connection(retries=1)
        self._start_replication(self._handed)

    def _stream(self) -> None:
        pg = self._repl.pgconn
        self._last_status = 0.0
        tx: _Txn | None = None
        poll_reply = 0.0
        while not self._stop.is_set():
            n, data = pg.get_copy_data(1)
            if n == 0:
                now = time.monotonic()
                if self._ack != self._acked_sent or now - self._last_status > 5 or (
                        self._scanned < self._target and now - poll_reply > 0.3):
                    if self._scanned < self._target:
                        poll_reply = now
                    self._last_status = now
                    self._send_status(self._scanned < self._target)
                select.select([pg.socket], [], [], 0.1)
                pg.consume_input()
                continue
            if n < 0:
                msg = pg.error_message.decode(errors="replace").strip()
                raise SourceError(f"{self.label}: the replication stream ended: {msg or 'closed by the server'}",
                                  retryable=True)
            if n > 25 and data[0] == 119 and data[25] in (73, 85, 68):  # XLogData of I/U/D: the hot path
                if tx is not None:
                    tx.starts.append(len(tx.buf))
                    tx.buf += data[25:]
                continue
            b = bytes(data)
            if b[0] == 107:  # 'k' keepalive
                wal_end, _, reply = struct.unpack_from(">QqB", b, 1)
                if tx is None:
                    self._scanned = max(self._scanned, wal_end)
                if reply:
                    self._last_status = time.monotonic()
                    self._send_status(False)
                continue
            if b[0] != 119:  # 'w' XLogData
                continue
            m = b[25:]
            k = m[:1]
            if k in (b"I", b"U", b"D"):
                if tx is not None:
                    tx.starts.append(len(tx.buf))
                    tx.buf += m
            elif k == b"B":
                tx = _Txn()
            elif k == b"C":
                if tx is not None:
                    _, _, end, ts = struct.unpack_from(">BQQq", m, 1)
                    tx.end_lsn, tx.ts = end, ts + _PG_EPOCH_US
                    if end > self._handed:  # after a reconnection the server may resend the last one
                        if not self._put(tx, pg):
                            return
                        self._handed = end
                    self._scanned = max(self._scanned, end)
                tx = None
            elif k == b"R":
                if tx is not None:
                    tx.events.append((len(tx.starts), "R", _parse_relation(m)))
            elif k == b"T":
                if tx is not None:
                    (nrel,) = struct.unpack_from(">I", m, 1)
                    oids = list(struct.unpack_from(f">{nrel}I", m, 6))
                    tx.events.append((len(tx.starts), "T", oids))


def txns_index(events: list, m: int) -> int:
    """The transaction index of the event at message index ``m``."""
    for mm, _, _, i in events:
        if mm == m:
            return i
    return 0


class _Index:
    """The output of :func:`nebula.kernels.pgoutput.index_changes` for one round."""

    def __init__(self, buf, rows: int, fields: int) -> None:
        self.buf = buf
        self.rows = rows
        self.row_msg = np.zeros(rows, np.int64)
        self.row_op = np.zeros(rows, np.int8)
        self.row_rel = np.zeros(rows, np.int64)
        self.row_first = np.zeros(rows, np.int64)
        self.row_ncols = np.zeros(rows, np.int32)
        self.starts = np.zeros(max(1, fields), np.int64)
        self.ends = np.zeros(max(1, fields), np.int64)
        self.flags = np.zeros(max(1, fields), np.uint8)
        self.kinds = np.zeros(max(1, fields), np.uint8)
        self.row_txn = np.zeros(0, np.int64)
        self.lsn = np.zeros(0, np.int64)
        self.ts = np.zeros(0, np.int64)


@dataclass
class _Seg:
    rel: _Rel
    rows: np.ndarray | None  # output rows of the index (None: a truncate)
    truncate_lsn: int = 0
    truncate_ts: int = 0


# -- parts: one table's share of a round, as an ordinary Source for run_pipeline ---------------------------

def _fill_str_const(col, n: int, value: bytes) -> None:
    data = col.reserve_data(max(1, n * len(value)))
    if value:
        data[:n * len(value)] = np.tile(np.frombuffer(value, np.uint8), n)
    col.offsets[:n + 1] = np.arange(n + 1, dtype=np.int32) * len(value)
    col.validity[:(n + 7) // 8] = 0xFF
    col.null_count = 0


def _fill_codes(col, codes: np.ndarray, words: list[bytes]) -> None:
    """String column of ``words[codes[i]]`` (single-byte words)."""
    n = codes.shape[0]
    data = col.reserve_data(max(1, n))
    data[:n] = np.frombuffer(b"".join(words), np.uint8)[codes]
    col.offsets[:n + 1] = np.arange(n + 1, dtype=np.int32)
    col.validity[:(n + 7) // 8] = 0xFF
    col.null_count = 0


def _fill_fixed(col, values: np.ndarray) -> None:
    n = values.shape[0]
    col.values[:n] = values
    col.validity[:(n + 7) // 8] = 0xFF
    col.null_count = 0


class _Part(TablePart):
    """One table's share of a round (see :class:`~nebula.pipeline.cdc.TablePart`)."""

    change_columns = _CHANGE

    def _compact(self, batch) -> None:
        if not self.merge_key or batch.length <= 1:
            return
        from ...pipeline.cdc import compact_last_by_key, fill_batch

        rb = batch.to_arrow()
        out = compact_last_by_key(rb, self.merge_key)
        if out.num_rows != rb.num_rows:
            fill_batch(batch, out)


class _SnapshotPart(_Part):
    def __init__(self, owner: PostgresCdcSource, table: str) -> None:
        super().__init__(owner, table)
        from .postgres import PostgresSource

        ns = owner._want[owner.tables.index(table)][0]
        self.src = PostgresSource(owner.url, options={"table": table, "db_schema": ns,
                                                      "batch_rows": owner.batch_rows})
        self.src.open(conn=owner._snap)

    def read(self):
        for c in self.src.read():
            yield (self._schema, c)
        self.owner.bytes_read += self.src.bytes_read

    def parse(self, chunk, batch, rejects) -> ParseStats:
        st = self.src.parse(chunk[1], batch, rejects)
        n = batch.length
        d = len(self.src.schema)
        _fill_str_const(batch.columns[d], n, b"r")
        _fill_fixed(batch.columns[d + 1], np.full(n, self.owner._lsn, np.int64))
        _fill_fixed(batch.columns[d + 2], np.full(n, self.owner._snapshot_ts, np.int64))
        return st


_NO_NULLS = (np.zeros(1, np.uint8), np.array([0, 0], np.int64))  # one null marker: the empty unquoted span


class _ChangePart(_Part):
    def __init__(self, owner: PostgresCdcSource, table: str, ix: _Index, segs: list[_Seg]) -> None:
        super().__init__(owner, table)
        self.ix = ix
        self.segs = segs

    def read(self):
        o = self.owner
        for s in self.segs:
            data = o._schemas[self.table]
            full = Schema([*data, *_CHANGE])
            if s.rows is None:
                yield (full, s, None)
                continue
            rows = self._expand(s)
            for a in range(0, rows.shape[0], o.batch_rows):
                yield (full, s, rows[a:a + o.batch_rows])

    def _expand(self, s: _Seg) -> np.ndarray:
        """The segment's rows without old images, TOAST 'u' values filled from the key's previous image."""
        from ...kernels import pgoutput as kp

        ix = self.ix
        rows = s.rows
        olds = ix.row_op[rows] == kp.OP_OLD
        if self.owner._has_unchanged(ix, rows):
            _fill_toast(self, ix, s, rows)
        if not olds.any():
            return rows
        names = [c[0] for c in s.rel.columns]
        key = np.array([names.index(k) for k in (self.merge_key or self.owner.key_of(self.table)) if k in names],
                       np.int64)
        old_rows = rows[olds]
        moved = np.zeros(old_rows.shape[0], np.uint8)
        if key.shape[0]:
            kp.old_key_changed(ix.buf, ix.starts, ix.ends, ix.kinds, ix.row_first, old_rows, old_rows.shape[0], key,
                               moved)
        ix.row_op[old_rows[moved == 1]] = kp.OP_DELETE  # the old key of an update that changed it
        return rows[~olds | (ix.row_op[rows] == kp.OP_DELETE)]

    def parse(self, chunk, batch, rejects) -> ParseStats:
        from ...kernels import parse as kpar

        schema, seg, rows = chunk
        ix = self.ix
        data = [f for f in schema if f.name not in ("_op", "_lsn", "_commit_ts")]
        d = len(data)
        if rows is None:  # truncate: one row of nulls (merge destinations empty the table there)
            n = 1
            for c in batch.columns[:d]:
                c.null_count = 1
                if c.offsets is not None:
                    c.offsets[:2] = 0
            _fill_str_const(batch.columns[d], 1, b"t")
            _fill_fixed(batch.columns[d + 1], np.array([seg.truncate_lsn], np.int64))
            _fill_fixed(batch.columns[d + 2], np.array([seg.truncate_ts], np.int64))
            batch.length = 1
            return ParseStats(rows=1)
        n = rows.shape[0]
        rf = np.ascontiguousarray(ix.row_first[rows])
        names = [c[0] for c in seg.rel.columns]
        row_err = np.zeros(n, np.uint8)
        slow = np.zeros(n, np.int64)
        nd, no = _NO_NULLS
        buf = ix.buf
        st, en, fl = ix.starts, ix.ends, ix.flags
        for f, col in zip(data, batch.columns[:d], strict=True):
            t = f.type
            if f.name not in names:
                col.null_count = n
                if col.offsets is not None:
                    col.offsets[:n + 1] = 0
                continue
            j = names.index(f.name)
            if t.kind == "binary":  # bytea arrives as its text form, \x + hex (bytea_output=hex)
                from ...kernels.binary import parse_hex_column

                out = col.reserve_data(max(1, int(kpar.string_column_size(buf, st, en, fl, rf, j, n)) // 2))
                nulls, nerr, first = parse_hex_column(buf, st, en, fl, rf, j, n, nd, no, False, col.offsets, out,
                                                      col.validity, row_err, True)
            elif t.is_varlen:
                total = kpar.string_column_size(buf, st, en, fl, rf, j, n)
                out = col.reserve_data(max(1, int(total)))
                nulls, nerr, first, _ = kpar.gather_string_column(buf, st, en, fl, rf, j, n, nd, no, False, 34, -1,
                                                                  col.offsets, out, col.validity, row_err, True)
            elif t.is_integer:
                lo, hi = -(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1
                nulls, nerr, first = kpar.parse_int_column(buf, st, en, fl, rf, j, n, nd, no, False, lo, hi,
                                                           col.values, col.validity, row_err, True)
            elif t.is_float:
                nulls, nerr, first, nslow = kpar.parse_float_column(buf, st, en, fl, rf, j, n, nd, no, False,
                                                                    col.values, col.validity, slow, row_err, True)
                if nslow:
                    kpar.fill_slow_floats(buf, st, en, rf, j, slow, nslow, col.values)
            elif t.kind == "bool":
                nulls, nerr, first = kpar.parse_bool_column(buf, st, en, fl, rf, j, n, nd, no, False, col.values,
                                                            col.validity, row_err, True)
            elif t.kind == "date":
                nulls, nerr, first = kpar.parse_date_column(buf, st, en, fl, rf, j, n, nd, no, False, col.values,
                                                            col.validity, row_err, False)
                if nerr:
                    nulls, nerr, first = _pg_infinities(col, buf, st, en, rf, j, n, row_err, nulls, _DATE_INF)
            elif t.kind == "timestamp":
                nulls, nerr, first = kpar.parse_timestamp_column(buf, st, en, fl, rf, j, n, nd, no, False,
                                                                 t.tz is not None, col.values, col.validity,
                                                                 row_err, False)
                if nerr:
                    nulls, nerr, first = _pg_infinities(col, buf, st, en, rf, j, n, row_err, nulls, _TS_INF)
            elif t.kind == "decimal":
                nulls, nerr, first, nslow = kpar.parse_decimal_column(buf, st, en, fl, rf, j, n, nd, no, False,
                                                                      t.precision, t.scale, col.values,
                                                                      col.validity, slow, row_err, True)
                if nslow:
                    kpar.fill_slow_decimals(buf, st, en, rf, j, slow, nslow, t.scale, col.values)
            else:  # pragma: no cover
                raise AssertionError(t.kind)
            if nerr:
                i = rf[first] + j
                raw = bytes(buf[st[i]:en[i]])[:60]
                raise DataError(f"{self.owner.label} table {self.table}: value {raw!r} of column {f.name!r} does "
                                f"not fit {t}", path=self.owner.label, column=f.name)
            col.null_count = int(nulls)
        ops = ix.row_op[rows]
        _fill_codes(batch.columns[d], (ops - 1).astype(np.int64), [b"c", b"u", b"d"])
        txn = ix.row_txn[rows]
        _fill_fixed(batch.columns[d + 1], ix.lsn[txn])
        _fill_fixed(batch.columns[d + 2], ix.ts[txn])
        batch.length = n
        self._compact(batch)
        return ParseStats(rows=n)


# PostgreSQL's own binary values for +-infinity (what a binary COPY snapshot of the same row reads)
_TS_INF = (np.iinfo(np.int64).max, np.iinfo(np.int64).min)
_DATE_INF = (np.iinfo(np.int32).max, np.iinfo(np.int32).min)


def _pg_infinities(col, buf, st, en, rf, j, n, row_err, nulls, inf) -> tuple[int, int, int]:
    """Rows of a date/timestamp column that failed to parse because they hold ``infinity`` or ``-infinity``
    (text) get PostgreSQL's own binary value for it, as the snapshot's binary COPY does, so a stream and a
    snapshot of the same row agree (and a PostgreSQL destination writes infinity back). Only the failed rows
    are looked at. Returns ``(nulls, errors, first error row)`` after that."""
    bad = np.flatnonzero(row_err[:n])
    for r in bad:
        r = int(r)
        i = int(rf[r]) + j
        text = bytes(buf[st[i]:en[i]])
        if text in (b"infinity", b"-infinity"):
            col.values[r] = inf[0] if text == b"infinity" else inf[1]
            col.validity[r >> 3] |= np.uint8(1 << (r & 7))
            row_err[r] = 0
            nulls -= 1
    left = np.flatnonzero(row_err[:n])
    return nulls, int(left.shape[0]), int(left[0]) if left.shape[0] else -1


def _fill_toast(part: _ChangePart, ix: _Index, s: _Seg, rows: np.ndarray) -> None:
    """Unchanged TOAST values from the same key's previous image in the round (see the module doc)."""
    from ...kernels import pgoutput as kp

    names = [c[0] for c in s.rel.columns]
    key = part.merge_key or part.owner.key_of(part.table)
    kidx = [names.index(k) for k in key if k in names]
    if not kidx:
        return
    buf = ix.buf
    ids: dict = {}
    row_key = np.empty(rows.shape[0], np.int64)
    for j, r in enumerate(rows):  # key ids: rows that carry unchanged values are few (updates of large values)
        f0 = ix.row_first[r]
        k = tuple(bytes(buf[ix.starts[f0 + c]:ix.ends[f0 + c]]) for c in kidx)
        row_key[j] = ids.setdefault(k, len(ids))
    prev = np.empty(max(1, len(ids)), np.int64)
    left = 0
    for c in range(len(names)):
        left += kp.fill_unchanged(ix.row_first, rows, rows.shape[0], c, ix.kinds, ix.starts, ix.ends, ix.flags,
                                  row_key, prev)
    if left and part.merge_key:
        raise SourceError(f"{part.owner.label}: table {part.table}: an update left a large (TOASTed) value unchanged "
                          "and the stream does not carry it; merging would overwrite it with NULL. Run ALTER TABLE "
                          f"{part.table} REPLICA IDENTITY FULL at the source, then resync ({part.owner.resync()})")


def warm_kernels() -> None:
    """Compile the change-stream kernels into the cache without a server (``python -m nebula.warmup``):
    each called once on empty input built as a round builds it (the same array types, so the same
    machine code); the typed columns are parsed by the CSV source's kernels (a writable round buffer)."""
    from ...kernels import pgoutput as kp

    buf = np.zeros(1, np.uint8)
    ms = np.zeros(0, np.int64)
    me = np.append(ms[1:], 0)[:0]
    kp.count_changes(buf, ms, me, 0)
    ix = _Index(buf, 0, 0)
    kp.index_changes(buf, ms, me, 0, ix.row_msg, ix.row_op, ix.row_rel, ix.row_first, ix.row_ncols, ix.starts,
                     ix.ends, ix.flags, ix.kinds)
    rows = np.flatnonzero(ix.row_rel == 0)
    kp.old_key_changed(ix.buf, ix.starts, ix.ends, ix.kinds, ix.row_first, rows, 0, np.zeros(1, np.int64),
                       np.zeros(0, np.uint8))
    kp.fill_unchanged(ix.row_first, rows, 0, 0, ix.kinds, ix.starts, ix.ends, ix.flags, np.empty(0, np.int64),
                      np.empty(1, np.int64))
    from ...kernels import parse as kpar  # text columns as _ChangePart.parse gathers them

    rf = np.ascontiguousarray(ix.row_first[rows])
    nd, no = _NO_NULLS
    kpar.string_column_size(buf, ix.starts, ix.ends, ix.flags, rf, 0, 0)
    kpar.gather_string_column(buf, ix.starts, ix.ends, ix.flags, rf, 0, 0, nd, no, False, 34, -1,
                              np.zeros(1, np.int32), np.zeros(1, np.uint8), np.zeros(1, np.uint8),
                              np.zeros(0, np.uint8), True)


def _has_unchanged(ix: _Index, rows: np.ndarray) -> bool:
    if not rows.shape[0]:
        return False
    first = ix.row_first[rows[0]]
    last = ix.row_first[rows[-1]] + ix.row_ncols[rows[-1]]
    return bool((ix.kinds[first:last] == 117).any())


PostgresCdcSource._has_unchanged = staticmethod(_has_unchanged)


# -- operations: slot status (nebula state show), dropping slot and publication (nebula cdc drop) ----------

def slot_status(checkpoint: dict, *, timeout: float = 3) -> dict:
    """``{"slot", "lag_bytes", "confirmed_flush_lsn", "wal_status", "active"}`` of a CDC checkpoint's slot
    (``lag_bytes``: WAL the server keeps for it), or ``{"slot", "error"}`` when the server cannot tell (unreachable,
    slot gone). Never raises."""
    import psycopg

    from ..destinations.postgres import safe_message

    slot, url = checkpoint.get("slot"), checkpoint.get("url") or ""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True) as c:
            row = c.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn)::int8, "
                            "confirmed_flush_lsn::text, wal_status, active FROM pg_replication_slots "
                            "WHERE slot_name = %s", (slot,)).fetchone()
    except Exception as e:  # noqa: BLE001 - status only
        return {"slot": slot, "error": f"server unreachable: {safe_message(url, str(e))[:200]}"}
    if row is None:
        return {"slot": slot, "error": "the slot does not exist (dropped?)"}
    return {"slot": slot, "lag_bytes": int(row[0] or 0), "confirmed_flush_lsn": row[1], "wal_status": row[2],
            "active": bool(row[3])}


def drop_slot(url: str, slot: str, publication: str | None = None, *, timeout: float = 10) -> list[str]:
    """Drop the replication slot and the publication (default: named like the slot); returns what was dropped."""
    import psycopg

    from ..destinations.postgres import connect, quote_ident, safe_message

    publication = publication or slot
    done = []
    c = connect(url, timeout=timeout, autocommit=True)
    try:
        row = c.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
        if row is not None:
            if row[0] is not None:
                raise SourceError(f"replication slot {slot!r} is in use by process {row[0]} (stop that pipeline first)")
            c.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            done.append(f"slot {slot}")
        if c.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone():
            c.execute(f"DROP PUBLICATION {quote_ident(publication)}")
            done.append(f"publication {publication}")
    except psycopg.Error as e:
        raise SourceError(f"cannot drop {slot!r}: {safe_message(url, str(e))}") from None
    finally:
        c.close()
    return done
