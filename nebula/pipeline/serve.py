"""``--metrics-port``: ``/metrics`` and ``/healthz`` served over HTTP while a pipeline runs.

A :class:`MetricsServer` listens on ``127.0.0.1`` by default (``--metrics-host`` to expose it) in one
daemon thread, from before the run opens its connectors until it ends; leaving the ``with`` block shuts it
down and frees the port. ``/metrics`` is the Prometheus text format of :mod:`nebula.metrics`; ``/healthz``
is the JSON of the current run's :meth:`~nebula.pipeline.observe.PipelineMeter.health`, HTTP 200 when
``ok`` or ``degraded`` and 503 when ``failing``.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
from contextlib import nullcontext

from ..errors import UsageError

log = logging.getLogger("nebula.metrics")


def serving(port: int | None, host: str | None = None):
    """A context serving the metrics on ``port`` (nothing when ``port`` is None)."""
    return nullcontext() if port is None else MetricsServer(port, host or "127.0.0.1")


class MetricsServer:
    """The HTTP endpoint of a run: ``with MetricsServer(9464): run()``."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise UsageError(f"--metrics-port must be a port number (1-65535; 0: any free one), got {port!r}")
        self.host, self.port = host, port
        self._httpd = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MetricsServer:
        from http.server import ThreadingHTTPServer

        try:
            httpd = ThreadingHTTPServer((self.host, self.port), _handler_class())
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UsageError(f"--metrics-port {self.port}: {self.host}:{self.port} is already in use "
                                 "(another nebula run or service listens there); choose another port") from None
            raise UsageError(f"--metrics-port {self.port}: cannot listen on {self.host}:{self.port}: "
                             f"{e.strerror or e}") from None
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]  # the one the system chose for port 0
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="nebula-metrics", daemon=True)
        self._thread.start()
        log.info("serving /metrics and /healthz on %s", self.url)
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def health() -> tuple[int, dict]:
    """The ``/healthz`` status code and document of the current run."""
    from .. import metrics

    meter = metrics.current()
    if meter is None:
        doc = {"status": "ok", "pipeline": None, "stage": "starting", "rows_read": 0, "rows_written": 0,
               "rows_rejected": 0, "last_batch_at": None, "open_breakers": metrics.breakers("open"), "alerts": []}
        if doc["open_breakers"]:
            doc["status"] = "failing"
    else:
        doc = meter.health()
    return (503 if doc["status"] == "failing" else 200), doc


def _handler_class():
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        server_version = "nebula"

        def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    from prometheus_client import CONTENT_TYPE_LATEST

                    from .. import metrics

                    self._send(200, metrics.render(), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/health"):
                    code, doc = health()
                    self._send(code, json.dumps(doc).encode(), "application/json")
                else:
                    self._send(404, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")
            except Exception as e:  # noqa: BLE001 - a scrape must never take the run down
                log.warning("metrics endpoint %s failed: %s: %s", path, type(e).__name__, e)
                self._send(500, f"{type(e).__name__}\n".encode(), "text/plain; charset=utf-8")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            log.debug("%s %s", self.address_string(), fmt % args)

    return Handler
