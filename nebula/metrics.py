"""Prometheus metrics of every pipeline and connector, in one registry.

Names follow Prometheus conventions (``nebula_`` prefix, base units, ``_total`` for counters).
Recording a value is a few additions under a lock on plain Python objects; ``prometheus_client`` is
imported only when the metrics are read (:func:`render`, :func:`sample`, :func:`registry`), where a
collector turns the values into metric families. So a run that nobody scrapes never pays the import
(~40 ms, a noticeable share of a small copy's cold start). Everything here is safe to call from any thread.

Metric families (labels in brackets; the key for :func:`get` first):

- ``rows_read``, ``rows_written``, ``rows_rejected``: ``nebula_rows_read_total`` /
  ``nebula_rows_written_total`` / ``nebula_rows_rejected_total`` [pipeline, connector];
  ``bytes_read``, ``bytes_written``: ``nebula_bytes_read_total`` / ``nebula_bytes_written_total``
  [pipeline, connector]. ``connector`` is the connector's registry name (``csv``, ``parquet``,
  ``postgresql``...): the source's for read and rejected rows, the destination's for written ones.
- ``batch_duration``: ``nebula_batch_duration_seconds`` histogram [pipeline, stage] (stage: read, parse,
  write, commit; read is the wait for the source's next chunk, commit once per run or CDC round and table)
- ``errors``: ``nebula_errors_total`` [pipeline, type] (the class name of the error that ended a run)
- ``retries``: ``nebula_retries_total`` [endpoint, error]; ``circuit_state``: ``nebula_circuit_state``
  [endpoint] (0 closed, 1 open, 2 half-open); ``circuit_transitions``: ``nebula_circuit_transitions_total``
  [endpoint, state]; ``rate_limit_wait``: ``nebula_rate_limit_wait_seconds_total`` [endpoint]
- ``pool_in_use`` / ``pool_capacity``: ``nebula_pool_in_use`` / ``nebula_pool_capacity`` [pipeline] (batches);
  ``queue_depth``: ``nebula_queue_depth`` [pipeline, queue] (``chunks``: read, waiting to be parsed;
  ``parsed``: waiting to be written); sampled once per written batch
- ``cdc_lag``: ``nebula_cdc_lag_bytes`` [pipeline] (change log not yet loaded, measured after each round)
- ``alerts``: ``nebula_alerts_total`` [pipeline, alert]; ``alert_active``: ``nebula_alert_active``
  [pipeline, alert] (see :mod:`nebula.pipeline.observe`)
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

CIRCUIT_STATES = {"closed": 0, "open": 1, "half-open": 2}

# Batch latencies run from sub-millisecond (a parse of 64k rows) to minutes (a commit under load).
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0)

_lock = threading.Lock()


class _Child:
    """One labelled series: ``value`` (counter, gauge) or bucket ``counts`` and ``sum`` (histogram)."""

    __slots__ = ("value", "counts", "sum", "_bounds")

    def __init__(self, bounds: tuple[float, ...] | None) -> None:
        self.value = 0.0
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1) if bounds is not None else None
        self.sum = 0.0

    def inc(self, amount: float = 1) -> None:
        with _lock:
            self.value += amount

    def set(self, value: float) -> None:
        self.value = value

    def observe(self, seconds: float) -> None:
        i = bisect.bisect_left(self._bounds, seconds)
        with _lock:
            self.counts[i] += 1
            self.sum += seconds


class Family:
    """A metric family: ``labels(...)`` gives the series to ``inc``/``set``/``observe`` (bind it once)."""

    def __init__(self, name: str, kind: str, doc: str, labelnames: tuple[str, ...],
                 buckets: tuple[float, ...] | None = None) -> None:
        self.name, self.kind, self.doc, self.labelnames, self.buckets = name, kind, doc, labelnames, buckets
        self.children: dict[tuple[str, ...], _Child] = {}

    def labels(self, *values: str, **kw: str) -> _Child:
        key = tuple(str(v) for v in values) if values else tuple(str(kw[n]) for n in self.labelnames)
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {key}")
        child = self.children.get(key)
        if child is None:
            with _lock:
                child = self.children.setdefault(key, _Child(self.buckets))
        return child

    def items(self) -> list[tuple[tuple[str, ...], _Child]]:
        with _lock:
            return list(self.children.items())


def _families() -> dict[str, Family]:
    pc = ("pipeline", "connector")
    f = [
        ("rows_read", "nebula_rows_read", "counter", "Rows read from a source.", pc),
        ("rows_written", "nebula_rows_written", "counter", "Rows written to a destination.", pc),
        ("rows_rejected", "nebula_rows_rejected", "counter", "Rows rejected (skipped or dead-lettered).", pc),
        ("bytes_read", "nebula_bytes_read", "counter", "Bytes read from a source.", pc),
        ("bytes_written", "nebula_bytes_written", "counter", "Bytes written to a destination.", pc),
        ("batch_duration", "nebula_batch_duration_seconds", "histogram", "Time one batch spent in a stage.",
         ("pipeline", "stage")),
        ("errors", "nebula_errors", "counter", "Errors that ended a run, by type.", ("pipeline", "type")),
        ("retries", "nebula_retries", "counter", "Retried calls by endpoint and error type.", ("endpoint", "error")),
        ("circuit_state", "nebula_circuit_state", "gauge", "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
         ("endpoint",)),
        ("circuit_transitions", "nebula_circuit_transitions", "counter", "Circuit breaker state changes.",
         ("endpoint", "state")),
        ("rate_limit_wait", "nebula_rate_limit_wait_seconds", "counter", "Time spent waiting for a rate limiter.",
         ("endpoint",)),
        ("pool_in_use", "nebula_pool_in_use", "gauge", "Batches borrowed from the pool.", ("pipeline",)),
        ("pool_capacity", "nebula_pool_capacity", "gauge", "Batches the pool holds.", ("pipeline",)),
        ("queue_depth", "nebula_queue_depth", "gauge", "Items waiting in a pipeline queue.", ("pipeline", "queue")),
        ("cdc_lag", "nebula_cdc_lag_bytes", "gauge", "Bytes of change log not yet loaded.", ("pipeline",)),
        ("alerts", "nebula_alerts", "counter", "Alert thresholds crossed.", ("pipeline", "alert")),
        ("alert_active", "nebula_alert_active", "gauge", "1 while an alert threshold is crossed.",
         ("pipeline", "alert")),
    ]
    return {key: Family(name, kind, doc, labels, _LATENCY_BUCKETS if kind == "histogram" else None)
            for key, name, kind, doc, labels in f}


_metrics: dict[str, Family] = _families()
_registry = None
_registry_lock = threading.Lock()  # not _lock: registering collects once, and collecting takes _lock


class _Collector:
    """Turns the families into ``prometheus_client`` metric families at scrape time."""

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        for fam in _metrics.values():
            items = fam.items()
            labels = list(fam.labelnames)
            if fam.kind == "counter":
                out = CounterMetricFamily(fam.name, fam.doc, labels=labels)
                for key, c in items:
                    out.add_metric(list(key), c.value)
            elif fam.kind == "gauge":
                out = GaugeMetricFamily(fam.name, fam.doc, labels=labels)
                for key, c in items:
                    out.add_metric(list(key), c.value)
            else:
                out = HistogramMetricFamily(fam.name, fam.doc, labels=labels)
                for key, c in items:
                    with _lock:
                        counts, total = list(c.counts), c.sum
                    cum, buckets = 0, []
                    for bound, n in zip((*fam.buckets, float("inf")), counts, strict=True):
                        cum += n
                        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cum))
                    out.add_metric(list(key), buckets, total)
            yield out


def registry():
    """The :class:`prometheus_client.CollectorRegistry` holding every Nebula metric (imports the library)."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                from prometheus_client import CollectorRegistry

                reg = CollectorRegistry(auto_describe=True)
                reg.register(_Collector())
                _registry = reg
    return _registry


def get(name: str) -> Family:
    """The metric family registered under ``name`` (a key of the table in the module docstring)."""
    return _metrics[name]


def record_retry(endpoint: str, error: BaseException | str) -> None:
    """Count one retry of a call to ``endpoint`` after ``error``."""
    kind = error if isinstance(error, str) else type(error).__name__
    _metrics["retries"].labels(endpoint, kind).inc()


def set_circuit_state(endpoint: str, state: str) -> None:
    """Publish a breaker's new ``state`` (``closed``, ``open`` or ``half-open``) and count the change."""
    _metrics["circuit_state"].labels(endpoint).set(CIRCUIT_STATES[state])
    _metrics["circuit_transitions"].labels(endpoint, state).inc()


def record_rate_limit_wait(endpoint: str, seconds: float) -> None:
    """Add ``seconds`` spent waiting for ``endpoint``'s rate limiter."""
    if seconds > 0:
        _metrics["rate_limit_wait"].labels(endpoint).inc(seconds)


def record_error(pipeline: str, error: BaseException | str) -> None:
    """Count one error of a pipeline by its type name."""
    kind = error if isinstance(error, str) else type(error).__name__
    _metrics["errors"].labels(pipeline, kind).inc()


def total(name: str) -> float:
    """The sum of a counter family over all its labels (e.g. every retry of every endpoint)."""
    return float(sum(c.value for _, c in _metrics[name].items()))


def breakers(state: str = "open") -> list[str]:
    """The endpoints whose circuit breaker is in ``state`` now."""
    want = CIRCUIT_STATES[state]
    return sorted(k[0] for k, c in _metrics["circuit_state"].items() if c.value == want)


def render() -> bytes:
    """The registry in the Prometheus text exposition format."""
    from prometheus_client import generate_latest

    return generate_latest(registry())


def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
    """The current value of one sample (e.g. ``nebula_retries_total``), or ``None``; for tests and ``check``."""
    return registry().get_sample_value(name, labels or {})


# -- connector names and the run /healthz describes ----------------------------------------------------

_kinds: dict[type, str] = {}
_shared: set[type] = set()  # classes registered under several names


def connector_kind(obj: Any) -> str:
    """The registry name of a source or destination object (``csv``, ``parquet``, ``postgresql``...).

    Looked up once per class: the registered class (or a base of it) gives the name; a connector outside
    the registry (a CDC source, a plugin) its first non-file URL scheme, else its lowercased class name.
    """
    if isinstance(obj, str):
        return obj
    cls = type(obj)
    kind = _kinds.get(cls)
    if kind is None:
        kind = _kind_of_class(cls)
        _kinds[cls] = kind
    names = _names_of(cls) if cls in _shared else ()
    if names:  # one class serves several names (json / jsonl): the format of its path tells
        from .connectors.registry import format_of

        where = getattr(obj, "format", None) or getattr(obj, "spec", None) or getattr(obj, "path", None)
        fmt = where if where in names else format_of(str(where[0] if isinstance(where, list | tuple) else where))
        if fmt in names:
            return fmt
    return kind


def _names_of(cls: type) -> list[str]:
    from .connectors.base import connectors

    targets = {f"{c.__module__}:{c.__qualname__}" for c in cls.__mro__}
    builtin = cls.__module__.startswith("nebula.")  # no need to scan installed plugins for it
    return [s.name for s in connectors(plugins=not builtin) if s.target in targets]


def _kind_of_class(cls: type) -> str:
    try:
        names = _names_of(cls)
    except Exception:  # noqa: BLE001 - a label must never fail a run
        names = []
    if len(names) > 1:
        _shared.add(cls)
    if names:
        return names[0]
    schemes = [s for s in getattr(getattr(cls, "capabilities", None), "schemes", ()) if s != "file"]
    if schemes:
        return schemes[0]
    return cls.__name__.lower().removesuffix("source").removesuffix("destination") or cls.__name__.lower()


_current: Any = None


def set_current(meter: Any) -> None:
    """Make ``meter`` (a :class:`~nebula.pipeline.observe.PipelineMeter`) the run ``/healthz`` describes."""
    global _current
    _current = meter


def current() -> Any:
    """The meter of the latest run started in this process, or ``None``."""
    return _current
