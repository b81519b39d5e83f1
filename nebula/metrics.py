"""Prometheus metrics of every pipeline and connector, in one registry.

Names follow Prometheus conventions (``nebula_`` prefix, base units, ``_total`` for counters). The
registry is created on first use, so importing this module costs nothing until a metric is touched;
``prometheus_client`` is imported then. Everything here is safe to call from any thread.

Metric families (labels in brackets):

- ``nebula_rows_read_total`` / ``nebula_rows_written_total`` / ``nebula_rows_rejected_total``
  [pipeline, connector]; ``nebula_bytes_read_total`` / ``nebula_bytes_written_total`` [pipeline, connector]
- ``nebula_batch_duration_seconds`` histogram [pipeline, stage] (stage: read, parse, write, commit)
- ``nebula_errors_total`` [pipeline, type] (the error's class name)
- ``nebula_retries_total`` [endpoint, error]; ``nebula_circuit_state`` [endpoint] (0 closed, 1 open,
  2 half-open); ``nebula_circuit_transitions_total`` [endpoint, state];
  ``nebula_rate_limit_wait_seconds_total`` [endpoint]
- ``nebula_pool_in_use`` / ``nebula_pool_capacity`` [pipeline]; ``nebula_queue_depth`` [pipeline, queue]
- ``nebula_cdc_lag_bytes`` [pipeline]
- ``nebula_alerts_total`` [pipeline, alert]; ``nebula_alert_active`` [pipeline, alert]
"""

from __future__ import annotations

import threading
from typing import Any

CIRCUIT_STATES = {"closed": 0, "open": 1, "half-open": 2}

_lock = threading.Lock()
_metrics: dict[str, Any] | None = None
_registry = None

# Batch latencies run from sub-millisecond (a parse of 64k rows) to minutes (a commit under load).
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0)


def registry():
    """The :class:`prometheus_client.CollectorRegistry` holding every Nebula metric."""
    _all()
    return _registry


def _all() -> dict[str, Any]:
    global _metrics, _registry
    if _metrics is not None:
        return _metrics
    with _lock:
        if _metrics is not None:
            return _metrics
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        reg = CollectorRegistry(auto_describe=True)
        pc = ("pipeline", "connector")
        m = {
            "rows_read": Counter("nebula_rows_read", "Rows read from a source.", pc, registry=reg),
            "rows_written": Counter("nebula_rows_written", "Rows written to a destination.", pc, registry=reg),
            "rows_rejected": Counter("nebula_rows_rejected", "Rows rejected (skipped or dead-lettered).", pc,
                                     registry=reg),
            "bytes_read": Counter("nebula_bytes_read", "Bytes read from a source.", pc, registry=reg),
            "bytes_written": Counter("nebula_bytes_written", "Bytes written to a destination.", pc,
                                     registry=reg),
            "batch_duration": Histogram("nebula_batch_duration_seconds", "Time one batch spent in a stage.",
                                        ("pipeline", "stage"), buckets=_LATENCY_BUCKETS, registry=reg),
            "errors": Counter("nebula_errors", "Errors by type.", ("pipeline", "type"), registry=reg),
            "retries": Counter("nebula_retries", "Retried calls by endpoint and error type.",
                               ("endpoint", "error"), registry=reg),
            "circuit_state": Gauge("nebula_circuit_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
                                   ("endpoint",), registry=reg),
            "circuit_transitions": Counter("nebula_circuit_transitions", "Circuit breaker state changes.",
                                           ("endpoint", "state"), registry=reg),
            "rate_limit_wait": Counter("nebula_rate_limit_wait_seconds", "Time spent waiting for a rate limiter.",
                                       ("endpoint",), registry=reg),
            "pool_in_use": Gauge("nebula_pool_in_use", "Batches borrowed from the pool.", ("pipeline",),
                                 registry=reg),
            "pool_capacity": Gauge("nebula_pool_capacity", "Batches the pool holds.", ("pipeline",), registry=reg),
            "queue_depth": Gauge("nebula_queue_depth", "Items waiting in a pipeline queue.", ("pipeline", "queue"),
                                 registry=reg),
            "cdc_lag": Gauge("nebula_cdc_lag_bytes", "Bytes of change log not yet loaded.", ("pipeline",),
                             registry=reg),
            "alerts": Counter("nebula_alerts", "Alert thresholds crossed.", ("pipeline", "alert"), registry=reg),
            "alert_active": Gauge("nebula_alert_active", "1 while an alert threshold is crossed.",
                                  ("pipeline", "alert"), registry=reg),
        }
        _registry = reg
        _metrics = m
        return m


def get(name: str):
    """The metric object registered under ``name`` (a key of the table in the module docstring)."""
    return _all()[name]


def record_retry(endpoint: str, error: BaseException | str) -> None:
    """Count one retry of a call to ``endpoint`` after ``error``."""
    kind = error if isinstance(error, str) else type(error).__name__
    _all()["retries"].labels(endpoint=endpoint, error=kind).inc()


def set_circuit_state(endpoint: str, state: str) -> None:
    """Publish a breaker's new ``state`` (``closed``, ``open`` or ``half-open``) and count the change."""
    m = _all()
    m["circuit_state"].labels(endpoint=endpoint).set(CIRCUIT_STATES[state])
    m["circuit_transitions"].labels(endpoint=endpoint, state=state).inc()


def record_rate_limit_wait(endpoint: str, seconds: float) -> None:
    """Add ``seconds`` spent waiting for ``endpoint``'s rate limiter."""
    if seconds > 0:
        _all()["rate_limit_wait"].labels(endpoint=endpoint).inc(seconds)


def record_error(pipeline: str, error: BaseException | str) -> None:
    """Count one error of a pipeline by its type name."""
    kind = error if isinstance(error, str) else type(error).__name__
    _all()["errors"].labels(pipeline=pipeline, type=kind).inc()


def render() -> bytes:
    """The registry in the Prometheus text exposition format."""
    from prometheus_client import generate_latest

    return generate_latest(registry())


def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
    """The current value of one sample (e.g. ``nebula_retries_total``), or ``None``; for tests and ``check``."""
    return registry().get_sample_value(name, labels or {})
