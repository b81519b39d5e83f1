"""http_request against a real HTTP server on 127.0.0.1 (http.server in a thread) that answers 429 and 503
with Retry-After before 200, 400 with an API message, or 503 forever."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nebula import metrics
from nebula.connectors.resilience import endpoint_of, http_request
from nebula.errors import CircuitOpenError, ConnectionFailed, HttpError


class Api:
    """Scripted answers per path: a list of (status, headers, body) consumed in order; the last repeats."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, dict, bytes]]] = {}
        self.hits: dict[str, list[float]] = {}
        self.bodies: list[bytes] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                api.bodies.append(self.rfile.read(n) if n else b"")
                path = self.path.split("?")[0]
                api.hits.setdefault(path, []).append(time.monotonic())
                steps = api.script.get(path) or [(404, {}, b'{"error": {"message": "no such path"}}')]
                status, headers, body = steps.pop(0) if len(steps) > 1 else steps[0]
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api():
    a = Api()
    yield a
    a.close()


FAST = {"retries": 4, "backoff_initial": 0.01, "backoff_max": 5, "breaker_failures": 10}


def retries(ep: str, error: str) -> float:
    return metrics.sample("nebula_retries_total", {"endpoint": ep, "error": error}) or 0.0


def test_429_then_200_waits_the_advertised_seconds(api):
    api.script["/rl"] = [(429, {"Retry-After": "1"}, b'{"error": "slow down"}'), (200, {}, b'{"ok": true}')]
    ep = endpoint_of(api.url)
    before = retries(ep, "HttpError")
    r = http_request("GET", api.url + "/rl?access_token=sekrit", policy=FAST)
    assert r.status == 200 and r.json() == {"ok": True}
    hits = api.hits["/rl"]
    assert len(hits) == 2 and hits[1] - hits[0] >= 0.95  # the server asked for 1 s (FAST backoff is 0.01 s)
    assert retries(ep, "HttpError") == before + 1


def test_503_with_an_http_date_then_200(api):
    # whole seconds: 2 to 3 s from now, so at least ~1 s is left when the client reads it even on a busy machine
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    api.script["/busy"] = [(503, {"Retry-After": when}, b"maintenance"), (503, {"Retry-After": "0"}, b""),
                           (200, {}, b"done")]
    ep = endpoint_of(api.url)
    before = retries(ep, "HttpError")
    t = time.monotonic()
    r = http_request("POST", api.url + "/busy", body={"q": 1}, policy=FAST)
    assert r.text == "done" and time.monotonic() - t >= 0.9
    assert len(api.hits["/busy"]) == 3 and retries(ep, "HttpError") == before + 2
    assert json.loads(api.bodies[-1]) == {"q": 1}


def test_400_is_not_retried_and_carries_the_api_message(api):
    api.script["/bad"] = [(400, {"Content-Type": "application/json"},
                           b'{"error": {"message": "Invalid field: impressionz", "code": 100}}')]
    with pytest.raises(HttpError) as e:
        http_request("GET", api.url + "/bad?access_token=sekrit", policy=FAST)
    assert len(api.hits["/bad"]) == 1
    assert e.value.status == 400 and not e.value.retryable
    msg = str(e.value)
    assert "HTTP 400: Invalid field: impressionz" in msg and "sekrit" not in msg and "/bad" in msg


def test_always_503_opens_the_breaker_and_then_fails_fast(api):
    api.script["/down"] = [(503, {}, b"down")]
    ep = endpoint_of(api.url)
    pol = {"retries": 10, "backoff_initial": 0.01, "breaker_failures": 3, "breaker_cooldown": 30}
    opened = metrics.sample("nebula_circuit_transitions_total", {"endpoint": ep, "state": "open"}) or 0
    t = time.monotonic()
    with pytest.raises(CircuitOpenError) as e:
        http_request("GET", api.url + "/down", policy=pol)
    assert len(api.hits["/down"]) == 3
    assert ep in str(e.value) and "HTTP 503" in str(e.value) and "fail fast until" in str(e.value)
    with pytest.raises(CircuitOpenError):
        http_request("GET", api.url + "/down", policy=pol)
    assert len(api.hits["/down"]) == 3 and time.monotonic() - t < 10
    assert metrics.sample("nebula_circuit_transitions_total", {"endpoint": ep, "state": "open"}) == opened + 1
    assert metrics.sample("nebula_circuit_state", {"endpoint": ep}) == 1


def test_timeouts_and_refused_connections_are_connection_failures():
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)  # accepts (kernel backlog) but never answers
    port = srv.getsockname()[1]
    try:
        t = time.monotonic()
        with pytest.raises(ConnectionFailed, match="gave up after 2 attempts") as e:
            http_request("GET", f"http://127.0.0.1:{port}/x", timeout=0.3, policy={"retries": 1, "backoff_initial": 0})
        assert e.value.retryable and time.monotonic() - t < 5
    finally:
        srv.close()
    with pytest.raises(ConnectionFailed, match="Connection refused|ConnectionRefused"):
        http_request("GET", f"http://127.0.0.1:{port}/x", policy={"retries": 0})
