"""Health checks behind ``nebula check``: can each source be read and each destination written?

Every source and every destination of every pipeline gets one report: ``healthy``, ``degraded`` (works, but
look: a replication slot lagging past the ``cdc_lag_bytes`` alert or inactive, a destination table that does
not exist yet, free disk under ``free_disk_bytes`` for a local destination, source warnings) or ``failing``
(unreachable, refused, missing, not writable), with the reason and the seconds the check took.

Checks have no side effects a run would notice: a CDC source is described, never opened (opening takes a
snapshot and creates the slot), and object stores get a probe object that is deleted again. Each check runs
in a thread of its own without retries and is abandoned after ``timeout`` seconds, so an endpoint
that never answers is reported failing in bounded time.
"""

from __future__ import annotations

import os
import threading
import time

DEFAULT_TIMEOUT = 10.0
DEFAULT_FREE_DISK = 100 * 2**20  # a local destination with less free space is degraded


def _report(pipeline: str, role: str, target: str, status: str, reason: str = "", seconds: float = 0.0) -> dict:
    from .redact import redact, redact_url

    return {"pipeline": pipeline, "role": role, "target": redact_url(str(target)), "status": status,
            "reason": redact(reason), "seconds": round(seconds, 3)}


def check_config(cfg, *, timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
    """The reports of every pipeline of a loaded :class:`~nebula.config.Config`."""
    return [r for pc in cfg.pipelines for r in check_pipeline(pc, timeout=timeout)]


def check_pipeline(pc, *, timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
    """A source report and a destination report for one pipeline config (or one failing config report)."""
    from .api import CopyOptions, config_to_copy_args
    from .errors import NebulaError

    t0 = time.perf_counter()
    try:
        _, src_url, dst_url, opts = config_to_copy_args(pc)
        opts.pop("metrics_port", None)
        o = CopyOptions.build(**opts)
    except NebulaError as e:
        return [_report(pc.name, "config", "", "failing", str(e), time.perf_counter() - t0)]
    alerts = dict(o.alerts or {})
    src_label = ", ".join(map(str, src_url)) if isinstance(src_url, list | tuple) else str(src_url)
    found: dict = {}
    out = [_timed(pc.name, "source", src_label, lambda: _check_source(src_url, o, alerts, found), timeout)]
    tables = [o.table] if o.table else found.get("tables")
    out.append(_timed(pc.name, "destination", str(dst_url), lambda: _check_destination(str(dst_url), o, alerts,
                                                                                          tables), timeout))
    return out


def _timed(pipeline: str, role: str, target: str, fn, timeout: float) -> dict:
    """Run ``fn`` (returning ``(status, reason)``) in a thread under a no-retry policy (a probe reports what it
    finds; runs retry); failing if it raises, or does not return within ``timeout`` seconds (the thread is
    left behind, a daemon)."""
    box: dict = {}

    def run() -> None:
        from .connectors.resilience import use_policy

        wait = max(1.0, min(float(timeout), 5.0))
        policy = {"retries": 0, "connect_timeout": wait, "timeout": float(timeout), "deadline": float(timeout)}
        try:
            with use_policy(policy):
                box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported, not raised
            box["error"] = e

    t0 = time.perf_counter()
    th = threading.Thread(target=run, name=f"nebula-check-{role}", daemon=True)
    th.start()
    th.join(timeout)
    seconds = time.perf_counter() - t0
    if th.is_alive():
        return _report(pipeline, role, target, "failing", f"no answer within {timeout:g} s", seconds)
    if "error" in box:
        e = box["error"]
        reason = str(e) if _is_nebula(e) else f"{type(e).__name__}: {e}"
        return _report(pipeline, role, target, "failing", reason, seconds)
    status, reason = box["result"]
    return _report(pipeline, role, target, status, reason, seconds)


def _is_nebula(e: BaseException) -> bool:
    from .errors import NebulaError

    return isinstance(e, NebulaError)


# -- sources -------------------------------------------------------------------------------------------------

def _check_source(url, o, alerts: dict, found: dict) -> tuple[str, str]:
    from .api import make_source

    src = make_source(url, o)
    try:
        if hasattr(src, "next_round"):  # database tables / CDC: describe only (open would snapshot / create a slot)
            src.describe()
            found["tables"] = list(src.tables)
            status, reason = _check_changes(src, alerts)
        else:
            src.open()
            found["tables"] = [src.name]
            status, reason = "healthy", f"{len(src.schema)} columns"
        warn = "; ".join(getattr(src, "warnings", []) or [])
        if warn and status == "healthy":
            return "degraded", warn
        return status, f"{reason}; {warn}" if warn else reason
    finally:
        src.close()


def _check_changes(src, alerts: dict) -> tuple[str, str]:
    what = f"{len(src.tables)} table(s): {', '.join(src.tables)}"
    if not getattr(src, "cdc", False):
        return "healthy", what
    if hasattr(src, "_check_server"):  # MySQL/MariaDB: binlog settings and replication grants
        with src._conn.cursor() as cur:
            src._check_server(cur)
        return "healthy", f"{what}; binlog ready for CDC"
    return _slot_health(src, alerts, what)


def _slot_health(src, alerts: dict, what: str) -> tuple[str, str]:
    """A PostgreSQL CDC source's replication slot: missing (made by the first run), lagging, inactive, lost."""
    row = src._conn.execute("SELECT active, wal_status, pg_wal_lsn_diff(pg_current_wal_insert_lsn(), "
                            "confirmed_flush_lsn)::int8 FROM pg_replication_slots WHERE slot_name = %s",
                            (src.slot,)).fetchone()
    if row is None:
        return "healthy", f"{what}; replication slot {src.slot!r} does not exist yet (the first run creates it)"
    active, wal_status, lag = bool(row[0]), row[1], int(row[2] or 0)
    if wal_status == "lost":
        return "failing", (f"replication slot {src.slot!r} was invalidated (the WAL it needed is gone): "
                           "nebula state reset NAME and run again for a new snapshot")
    limit = alerts.get("cdc_lag_bytes", getattr(src, "lag_warn", None))
    problems = []
    if limit is not None and lag > limit:
        problems.append(f"replication slot {src.slot!r} lags {_size(lag)} of WAL (over the threshold {_size(limit)})")
    if not active:
        problems.append(f"replication slot {src.slot!r} is inactive (no run streams it; the server keeps its WAL, "
                        f"{_size(lag)} now, until one does)")
    if problems:
        return "degraded", "; ".join(problems)
    return "healthy", f"{what}; slot {src.slot!r} active, lag {_size(lag)}"


# -- destinations ----------------------------------------------------------------------------------------------

def _check_destination(url: str, o, alerts: dict, tables: list[str] | None) -> tuple[str, str]:
    from .api import make_destination
    from .metrics import connector_kind

    dst = make_destination(url, o)
    kind = connector_kind(dst)
    if kind == "postgresql":
        return _postgres_tables(dst, tables)
    if kind == "sqlite":
        return _sqlite_tables(dst, tables, alerts)
    check = getattr(dst, "check", None)
    if check is not None:
        check()
    loc = dst.location() or url
    if "://" in loc or kind in ("memory", "null"):
        return "healthy", "writable" if check is not None else ""
    return _local_dir(loc if loc.endswith(("/", os.sep)) else os.path.dirname(os.path.abspath(loc)), alerts)


def _local_dir(path: str, alerts: dict) -> tuple[str, str]:
    """The nearest existing directory of ``path``: writable, and with free space above the threshold."""
    import shutil

    d = os.path.abspath(path)
    while not os.path.exists(d):
        d = os.path.dirname(d)
    if not os.path.isdir(d) or not os.access(d, os.W_OK):
        return "failing", f"{d} is not a writable directory"
    free = shutil.disk_usage(d).free
    limit = alerts.get("free_disk_bytes", DEFAULT_FREE_DISK)
    if free < limit:
        return "degraded", f"only {_size(free)} free on {d} (threshold {_size(limit)}: alerts.free_disk_bytes)"
    return "healthy", f"writable, {_size(free)} free"


def _postgres_tables(dst, tables: list[str] | None) -> tuple[str, str]:
    from .connectors.destinations.postgres import connect, qualified

    schema = dst.options.get("db_schema")
    tables = [t for t in (tables or [dst.options.get("table")]) if t]
    conn = connect(dst.url, autocommit=True)
    try:
        if not tables:
            return "healthy", "connected (no table named to check)"
        missing, notes = [], []
        for t in tables:
            q = qualified(t, schema)
            if conn.execute("SELECT to_regclass(%s)", (q,)).fetchone()[0] is None:
                missing.append(t)
            elif not conn.execute("SELECT has_table_privilege(%s, 'INSERT')", (q,)).fetchone()[0]:
                return "failing", f"no INSERT privilege on table {t}"
        if missing:
            where = schema or conn.execute("SELECT current_schema()").fetchone()[0]
            if not conn.execute("SELECT has_schema_privilege(%s, 'CREATE')", (where,)).fetchone()[0]:
                return "failing", f"table(s) {', '.join(missing)} missing and no CREATE privilege on schema {where}"
            notes.append(f"table(s) {', '.join(missing)} do not exist yet (the first run creates them)")
            return "degraded", "; ".join(notes)
        return "healthy", f"table(s) {', '.join(tables)} writable"
    finally:
        conn.close()


def _sqlite_tables(dst, tables: list[str] | None, alerts: dict) -> tuple[str, str]:
    import sqlite3

    path = dst.path
    status, reason = _local_dir(os.path.dirname(os.path.abspath(path)), alerts)
    if status == "failing":
        return status, reason
    tables = [t for t in (tables or [dst.options.get("table")]) if t]
    if not os.path.exists(path):
        return "degraded", f"database {path} does not exist yet (the first run creates it)"
    if not os.access(path, os.W_OK):
        return "failing", f"database {path} is not writable"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        return "failing", f"database {path}: {e}"
    finally:
        conn.close()
    missing = [t for t in tables if t not in have]
    if missing:
        return "degraded", f"table(s) {', '.join(missing)} do not exist yet (the first run creates them)"
    return status, reason if not tables else f"table(s) {', '.join(tables)} present; {reason}"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
