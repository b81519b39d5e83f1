"""What a running pipeline tells the outside: its metrics, its ``/healthz`` status and its alerts.

A :class:`PipelineMeter` binds the labelled series of one pipeline once, so the runner pays a few additions
per batch (never per record). It also keeps the status ``/healthz`` serves (stage, rows so far, last batch
time) and evaluates the pipeline's alert thresholds (:class:`Alerts`) as values change.

Alert thresholds (YAML ``alerts:`` of a pipeline, ``nebula.copy(alerts={...})``); each is crossed while
the value is greater than the threshold:

- ``cdc_lag_bytes``: change log not yet loaded (measured after each CDC round)
- ``rejected_rows``: rows rejected so far in the run; ``rejected_ratio``: rejected / read so far (0..1)
- ``batch_seconds``: the latest batch's longest stage (parse or write)
- ``retries``: retried calls (every endpoint) within the last minute
- ``free_disk_bytes`` is a lower bound used by ``nebula check`` for file destinations (not a run alert)

Crossing logs one warning on the ``nebula.alerts`` logger, sets ``nebula_alert_active{alert=...}`` to 1 and
counts ``nebula_alerts_total``; going back under logs an info line and sets the gauge to 0.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from .. import metrics

RUN_ALERTS = ("cdc_lag_bytes", "rejected_rows", "rejected_ratio", "batch_seconds", "retries")
CHECK_ONLY = ("free_disk_bytes",)
_RETRY_WINDOW = 60.0

log = logging.getLogger("nebula.alerts")


def check_alerts(thresholds) -> dict:
    """``thresholds`` (a mapping of the names above) validated; a :class:`~nebula.errors.ConfigError` names
    the first bad key."""
    from pydantic import ValidationError

    from ..config import AlertsConfig
    from ..errors import ConfigError

    if hasattr(thresholds, "model_dump"):
        return thresholds.model_dump(exclude_none=True)
    if not isinstance(thresholds, dict):
        raise ConfigError(f"alerts must be a mapping of thresholds ({', '.join(RUN_ALERTS + CHECK_ONLY)}), "
                          f"got {type(thresholds).__name__}")
    try:
        return AlertsConfig.model_validate(thresholds).model_dump(exclude_none=True)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        what = "unknown alert" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"alerts.{where}: {what} (alerts: {', '.join(RUN_ALERTS + CHECK_ONLY)})") from None


class Alerts:
    """The alert state of one pipeline: ``update(name, value)`` compares against its threshold."""

    def __init__(self, pipeline: str, thresholds: dict | None) -> None:
        self.pipeline = pipeline
        self.limits = {k: float(v) for k, v in (thresholds or {}).items() if v is not None and k in RUN_ALERTS}
        self.active: dict[str, float] = {}
        self._gauge = metrics.get("alert_active")
        self._count = metrics.get("alerts")
        for k in self.limits:
            self._gauge.labels(pipeline, k).set(0)
        self._retries: deque[tuple[float, float]] = deque()
        self._retries_checked = 0.0
        if "retries" in self.limits:
            self._retries.append((time.monotonic(), metrics.total("retries")))

    def update(self, name: str, value: float) -> None:
        limit = self.limits.get(name)
        if limit is None:
            return
        crossed = value > limit
        if crossed == (name in self.active):
            if crossed:
                self.active[name] = value
            return
        if crossed:
            self.active[name] = value
            self._gauge.labels(self.pipeline, name).set(1)
            self._count.labels(self.pipeline, name).inc()
            log.warning("alert %s: pipeline %s: %s is %s, over the threshold %s", name, self.pipeline, name,
                        _num(value), _num(limit))
        else:
            del self.active[name]
            self._gauge.labels(self.pipeline, name).set(0)
            log.info("alert %s cleared: pipeline %s: %s is %s, back under %s", name, self.pipeline, name,
                     _num(value), _num(limit))

    def check_retries(self, now: float) -> None:
        """``retries``: count the retries of the last minute (at most one look per half second)."""
        if "retries" not in self.limits or now - self._retries_checked < 0.5:
            return
        self._retries_checked = now
        tot = metrics.total("retries")
        self._retries.append((now, tot))
        while len(self._retries) > 1 and self._retries[1][0] <= now - _RETRY_WINDOW:
            self._retries.popleft()
        self.update("retries", tot - self._retries[0][1])

    def clear(self) -> None:
        """The run ended: no alert of it stays active."""
        for k in list(self.active):
            del self.active[k]
            self._gauge.labels(self.pipeline, k).set(0)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


class PipelineMeter:
    """The metrics, status and alerts of one pipeline run (one ``nebula copy``, or a whole CDC stream).

    Created by :func:`nebula.copy` (or by :func:`~nebula.pipeline.runner.run_pipeline` when called alone) and
    made the run ``/healthz`` describes. ``source``/``destination`` are connector objects or names.
    """

    def __init__(self, pipeline: str, *, source=None, destination=None, alerts: dict | None = None) -> None:
        self.pipeline = pipeline
        self.src_kind = metrics.connector_kind(source) if source is not None else "unknown"
        self.dst_kind = None
        g = metrics.get
        hist = g("batch_duration")
        self.read_time = hist.labels(pipeline, "read")
        self.parse_time = hist.labels(pipeline, "parse")
        self.write_time = hist.labels(pipeline, "write")
        self.commit_time = hist.labels(pipeline, "commit")
        self._rows_read = g("rows_read").labels(pipeline, self.src_kind)
        self._rejected = g("rows_rejected").labels(pipeline, self.src_kind)
        self._bytes_read = g("bytes_read").labels(pipeline, self.src_kind)
        self._pool_in_use = g("pool_in_use").labels(pipeline)
        self._pool_capacity = g("pool_capacity").labels(pipeline)
        self._q_chunks = g("queue_depth").labels(pipeline, "chunks")
        self._q_parsed = g("queue_depth").labels(pipeline, "parsed")
        self._lag = None
        if destination is not None:
            self.bind_destination(destination)
        self.alerts = Alerts(pipeline, alerts)
        self.rows_read = self.rows_written = self.rows_rejected = 0
        self.stage = "starting"
        self.started_at = time.time()
        self.last_batch_at: float | None = None
        self.error: str | None = None
        self.cdc_lag_bytes: int | None = None
        self._lag_probed = 0.0
        metrics.set_current(self)

    def bind_destination(self, destination) -> None:
        """Label written rows with this destination's kind (the first one bound, for CDC's per-table ones)."""
        if self.dst_kind is not None:
            return
        self.dst_kind = metrics.connector_kind(destination)
        self._rows_written = metrics.get("rows_written").labels(self.pipeline, self.dst_kind)
        self._bytes_written = metrics.get("bytes_written").labels(self.pipeline, self.dst_kind)

    # -- per batch (writer thread) -------------------------------------------------------------------------
    def batch(self, *, read: int, rejected: int, written: int, bytes_written: int, bytes_read: int,
              seconds: float) -> None:
        """One batch written: ``read`` rows parsed (``rejected`` of them rejected), ``written`` rows and
        ``bytes_written`` out, ``bytes_read`` more from the source; ``seconds`` its longest stage."""
        self._rows_read.inc(read)
        if rejected:
            self._rejected.inc(rejected)
        if bytes_read:
            self._bytes_read.inc(bytes_read)
        self._rows_written.inc(written)
        if bytes_written:
            self._bytes_written.inc(bytes_written)
        self.rows_read += read
        self.rows_rejected += rejected
        self.rows_written += written
        now = time.time()
        self.last_batch_at = now
        a = self.alerts
        if a.limits:
            a.update("batch_seconds", seconds)
            a.update("rejected_rows", self.rows_rejected)
            if self.rows_read:
                a.update("rejected_ratio", self.rows_rejected / self.rows_read)
            a.check_retries(time.monotonic())

    def bytes_read(self, n: int) -> None:
        if n > 0:
            self._bytes_read.inc(n)

    def bytes_written(self, n: int) -> None:
        """``n`` more bytes stored (the rest of a file found at commit: last row groups, footer)."""
        if n > 0:
            self._bytes_written.inc(n)

    def gauges(self, *, pool_in_use: int, pool_capacity: int, chunks: int, parsed: int) -> None:
        self._pool_in_use.set(pool_in_use)
        self._pool_capacity.set(pool_capacity)
        self._q_chunks.set(chunks)
        self._q_parsed.set(parsed)

    # -- CDC -----------------------------------------------------------------------------------------------
    def cdc_round(self, src, *, min_interval: float = 1.0) -> None:
        """After a round: publish the source's lag (``src.lag_bytes()``, at most once per ``min_interval``)."""
        probe = getattr(src, "lag_bytes", None)
        now = time.monotonic()
        if probe is None or now - self._lag_probed < min_interval:
            return
        self._lag_probed = now
        try:
            lag = probe()
        except Exception:  # noqa: BLE001 - a status probe never fails the stream
            lag = None
        if lag is None:
            return
        self.cdc_lag_bytes = int(lag)
        if self._lag is None:
            self._lag = metrics.get("cdc_lag").labels(self.pipeline)
        self._lag.set(self.cdc_lag_bytes)
        self.alerts.update("cdc_lag_bytes", self.cdc_lag_bytes)
        self.alerts.check_retries(now)

    # -- the run's end ----------------------------------------------------------------------------------
    def fail(self, error: BaseException) -> None:
        from ..redact import redact

        metrics.record_error(self.pipeline, error)
        self.error = redact(f"{type(error).__name__}: {error}")
        self.stage = "failed"

    def finish(self) -> None:
        if self.error is None:
            self.stage = "done"
        self.alerts.clear()

    def health(self) -> dict:
        """The ``/healthz`` document: ``status`` failing (the run failed, or a circuit breaker is open),
        degraded (an alert is active or a breaker half-open) or ok, with what the run is doing."""
        open_b, half = metrics.breakers("open"), metrics.breakers("half-open")
        if self.error is not None or open_b:
            status = "failing"
        elif self.alerts.active or half:
            status = "degraded"
        else:
            status = "ok"
        now = time.time()
        return {"status": status, "pipeline": self.pipeline, "stage": self.stage,
                "rows_read": self.rows_read, "rows_written": self.rows_written, "rows_rejected": self.rows_rejected,
                "started_at": _iso(self.started_at), "last_batch_at": _iso(self.last_batch_at),
                "seconds_since_last_batch": None if self.last_batch_at is None else round(now - self.last_batch_at, 3),
                "cdc_lag_bytes": self.cdc_lag_bytes, "open_breakers": open_b, "half_open_breakers": half,
                "alerts": [{"alert": k, "value": v, "threshold": self.alerts.limits[k]}
                           for k, v in sorted(self.alerts.active.items())],
                "error": self.error}


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
