"""The audit log: one JSON line per run, whatever its outcome.

Each line records who ran what and how it ended::

    {"started_at": "2024-05-01T02:00:00.123456+00:00", "ended_at": "...", "user": "etl", "host": "box1",
     "pid": 4242, "nebula_version": "0.1.0", "config": "pipes.yml", "config_sha256": "9f2c...",
     "pipeline": "orders", "source": "postgresql://app:***@db/shop", "destination": "out/orders.parquet",
     "rows_read": 100, "rows_written": 98, "rows_rejected": 2, "bytes_read": 4096, "bytes_written": 2048,
     "outcome": "success", "error": null, "run_id": "5c0ffee1d00d", "dead_letter": "rejected.jsonl"}

``outcome`` is ``success``, ``failed`` or ``interrupted``; ``error`` is ``{"class", "message"}`` for the last
two. ``config_sha256`` is the hash of the config file's bytes for ``nebula run``, of the normalized options
for ``nebula copy`` (redacted first, so the hash cannot be used to guess a password). Rows read and bytes
of a run that did not finish are ``null`` (unknown); every text is redacted.

Where: ``audit.jsonl`` next to the state store (``.nebula/audit.jsonl`` by default); ``audit_log=PATH`` (CLI
``--audit-log``, YAML ``audit_log:``) elsewhere; ``audit_log=False`` (``--no-audit``) for none. A library
call without a state store writes no audit log unless given a path.

Each line is appended with a single ``write`` on a file opened with ``O_APPEND``: lines of concurrent
processes never interleave. A line that cannot be written is a warning of the run, not its failure (the
data is committed by then).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from typing import Any

DEFAULT_NAME = "audit.jsonl"


def audit_path(audit_log: str | os.PathLike[str] | bool | None, state: str | os.PathLike[str] | None) -> str | None:
    """Where the audit lines of a run go, or ``None`` for nowhere (see the module docstring)."""
    if audit_log is False:
        return None
    if isinstance(audit_log, str | os.PathLike) and os.fspath(audit_log):
        return os.fspath(audit_log)
    if state:
        return os.path.join(os.path.dirname(os.fspath(state)), DEFAULT_NAME)
    return os.path.join(".nebula", DEFAULT_NAME) if audit_log is True else None


def append_line(path: str, record: dict) -> None:
    """Append ``record`` (redacted) as one JSON line, in one ``write`` (atomic among appenders)."""
    from .redact import redact_obj

    data = (json.dumps(redact_obj(record), ensure_ascii=False, default=str) + "\n").encode("utf-8")
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        written = os.write(fd, data)
        if written != len(data):  # a full disk: say so rather than leave half a line unexplained
            raise OSError(f"short write ({written} of {len(data)} bytes)")
    finally:
        os.close(fd)


def options_sha256(source: Any, dest: Any, opts: dict) -> str:
    """The hash of a copy's normalized options (labels and values redacted, keys sorted, unset ones left out)."""
    from .redact import redact_obj

    def norm(v: Any) -> Any:
        if isinstance(v, str | int | float | bool) or v is None:
            return v
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
        if isinstance(v, list | tuple):
            return [norm(x) for x in v]
        return str(v)

    skip = ("progress", "audit_log", "config_path", "config_sha256")
    doc = {"source": norm(source), "destination": norm(dest) if isinstance(dest, str | os.PathLike) else type(dest).__name__,
           "options": {k: norm(v) for k, v in sorted(opts.items()) if v is not None and k not in skip}}
    return hashlib.sha256(json.dumps(redact_obj(doc), sort_keys=True).encode()).hexdigest()


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (containers): the uid still says who
        return os.environ.get("USER") or str(os.getuid())


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat()


class AuditRun:
    """One run's audit line in the making: created before the run starts, written by :meth:`finish`.

    The copy fills in ``name``, ``run_id`` and ``rejects`` as it learns them, so a run that fails early is
    still recorded with what is known.
    """

    def __init__(self, path: str | None, *, source: str, destination: str, config: str | None,
                 config_sha256: str | None) -> None:
        self.path = path
        self.started_at = _now()
        self.source, self.destination = source, destination
        self.config, self.config_sha256 = config, config_sha256
        self.name: str | None = None
        self.run_id: str | None = None
        self.rejects = None

    def record(self, result=None, error: BaseException | None = None) -> dict:
        """The audit line of this run as a dict (not yet redacted)."""
        from . import __version__
        from .errors import Interrupted

        if error is None:
            outcome = "success" if result is None or result.status in ("ok", "success") else str(result.status)
        elif isinstance(error, KeyboardInterrupt | Interrupted):
            outcome = "interrupted"
        else:
            outcome = "failed"
        rejected = result.rows_rejected if result is not None else getattr(self.rejects, "count", 0)
        dead_letter = result.dead_letter if result is not None else getattr(self.rejects, "location", None)
        return {
            "started_at": self.started_at, "ended_at": _now(), "user": _user(), "host": _hostname(),
            "pid": os.getpid(), "nebula_version": __version__, "config": self.config,
            "config_sha256": self.config_sha256, "pipeline": result.name if result is not None else self.name,
            "source": self.source, "destination": result.destination if result is not None else self.destination,
            "rows_read": result.rows_read if result is not None else None,
            "rows_written": result.rows_written if result is not None else None,
            "rows_rejected": rejected,
            "bytes_read": result.bytes_read if result is not None else None,
            "bytes_written": result.bytes_written if result is not None else None,
            "outcome": outcome,
            "error": None if error is None else {"class": type(error).__name__, "message": str(error) or outcome},
            "run_id": (result.run_id if result is not None else None) or self.run_id,
            "dead_letter": dead_letter,
        }

    def finish(self, result=None, error: BaseException | None = None) -> str | None:
        """Append this run's line; returns a warning (redacted) when it could not be written."""
        if self.path is None:
            return None
        try:
            append_line(self.path, self.record(result, error))
        except (OSError, ValueError, TypeError) as e:
            from .redact import redact

            return redact(f"audit log {self.path}: the run's line could not be written: "
                          f"{getattr(e, 'strerror', None) or e}")
        return None


def _hostname() -> str:
    import socket

    try:
        return socket.gethostname()
    except OSError:
        return ""
