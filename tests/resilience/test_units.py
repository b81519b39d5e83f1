"""Unit tests of the resilience layer: backoff and jitter bounds, Retry-After, what is retried, the
circuit breaker's transitions and the token bucket (fake clocks: nothing here depends on machine speed,
except one lower bound on real time)."""

from __future__ import annotations

import errno
import logging
import threading
import time
from datetime import UTC, datetime

import pytest

from nebula import metrics
from nebula.connectors import resilience as rs
from nebula.errors import CircuitOpenError, ConfigError, ConnectionFailed, HttpError, NebulaError


class Clock:
    """A fake monotonic clock; ``sleep`` advances it and records the wait."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def raiser(e: BaseException):
    def fn():
        raise e

    return fn


def retries(endpoint: str, error: str) -> float:
    return metrics.sample("nebula_retries_total", {"endpoint": endpoint, "error": error}) or 0.0


def transitions(endpoint: str, state: str) -> float:
    return metrics.sample("nebula_circuit_transitions_total", {"endpoint": endpoint, "state": state}) or 0.0


# -- policy ---------------------------------------------------------------------------------------
def test_backoff_grows_is_capped_and_jitter_stays_in_bounds():
    p = rs.RetryPolicy(backoff_initial=0.5, backoff_multiplier=2, backoff_max=5, jitter=0.4)
    for n, base in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (9, 5.0)):
        assert p.backoff(n, rnd=lambda: 0.0) == pytest.approx(base)
        assert p.backoff(n, rnd=lambda: 1.0) == pytest.approx(base * 0.6)
        waits = [p.backoff(n) for _ in range(400)]
        assert all(base * 0.6 - 1e-9 <= w <= base + 1e-9 for w in waits)
        assert min(waits) < base * 0.7 and max(waits) > base * 0.9  # it really is spread out
    assert rs.RetryPolicy(jitter=0, backoff_initial=1).backoff(3) == 4.0


def test_policy_from_config_checks_every_key():
    p = rs.RetryPolicy.from_config({"retries": 2, "backoff_initial": "0.1", "rate_limit": 5, "deadline": None})
    assert (p.attempts, p.retries, p.backoff_initial, p.rate_limit) == (3, 2, 0.1, 5.0)
    assert p.deadline == rs.RetryPolicy().deadline
    with pytest.raises(ConfigError, match="unknown key 'retires'; did you mean 'retries'") as e:
        rs.RetryPolicy.from_config({"retires": 3})
    assert e.value.key == "resilience.retires"
    for bad, match in (({"retries": -1}, ">= 0"), ({"jitter": 1.5}, "between 0 and 1"), ({"retries": 1.5}, "whole"),
                       ({"timeout": True}, "number"), ({"rate_limit": 0}, "> 0"), ({"backoff_max": "x"}, "number"),
                       ({"backoff_multiplier": 0.5}, ">= 1")):
        with pytest.raises(ConfigError, match=match) as e:
            rs.RetryPolicy.from_config(bad)
        assert e.value.key == f"resilience.{next(iter(bad))}"
    with pytest.raises(ConfigError, match="mapping"):
        rs.RetryPolicy.from_config([1, 2])


def test_use_policy_is_scoped():
    assert rs.current_policy() == rs.RetryPolicy()
    with rs.use_policy({"retries": 9}) as p:
        assert rs.current_policy() is p and p.attempts == 10
        seen = {}
        t = threading.Thread(target=lambda: seen.update(p=rs.current_policy()))
        t.start()
        t.join()
        assert seen["p"] == rs.RetryPolicy()  # a new thread starts from the defaults: connectors capture it
    assert rs.current_policy() == rs.RetryPolicy()


def test_endpoint_of_names_the_server_without_credentials(monkeypatch):
    assert rs.endpoint_of("postgresql://u:sekrit@127.0.0.1:5432/db?sslmode=require") == "postgresql://127.0.0.1:5432"
    assert rs.endpoint_of("postgresql://u@/db?host=/run/pg&port=5433") == "postgresql:///run/pg"
    assert rs.endpoint_of("mysql://root:pw@db.example:3306/shop") == "mysql://db.example:3306"
    assert rs.endpoint_of("https://api.example.com/v1/x?access_token=abc") == "https://api.example.com"
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert rs.endpoint_of("s3://bucket/a/b.csv") == "s3://bucket"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert rs.endpoint_of("s3://bucket/a/b.csv") == "s3://127.0.0.1:9000/bucket"
    assert rs.endpoint_of("/data/in/orders.csv") == "file:///data/in"


# -- Retry-After ----------------------------------------------------------------------------------
def test_retry_after_seconds_and_http_dates():
    import email.utils

    assert rs.parse_retry_after("3") == 3.0
    assert rs.parse_retry_after(" 0 ") == 0.0
    assert rs.parse_retry_after("1.5") == 1.5
    for bad in ("-1", "soon", "", None, "nan", "inf"):
        assert rs.parse_retry_after(bad) is None, bad
    now = 1_700_000_000.0
    later = email.utils.format_datetime(datetime.fromtimestamp(now + 42, UTC), usegmt=True)
    assert rs.parse_retry_after(later, now=now) == pytest.approx(42)
    earlier = email.utils.format_datetime(datetime.fromtimestamp(now - 42, UTC), usegmt=True)
    assert rs.parse_retry_after(earlier, now=now) == 0.0
    assert rs.retry_after_of(HttpError("x", status=429, retry_after=2.0)) == 2.0
    assert rs.retry_after_of(HttpError("x", status=503)) is None
    assert rs.retry_after_of(ValueError()) is None


# -- what is retried ------------------------------------------------------------------------------
def test_is_retryable_classifies_driver_and_network_errors():
    import urllib.error

    import psycopg
    import pymysql

    yes = [ConnectionFailed("x"), NebulaError("x", retryable=True), ConnectionResetError(), TimeoutError(),
           OSError(errno.ECONNREFUSED, "refused"), psycopg.OperationalError("server closed"),
           pymysql.err.OperationalError(2013, "Lost connection"), HttpError("x", status=503, retryable=True),
           urllib.error.URLError(ConnectionRefusedError(errno.ECONNREFUSED, "refused")),
           urllib.error.HTTPError("http://h", 429, "Too Many", {}, None)]
    no = [NebulaError("x"), ConfigError("x"), FileNotFoundError(), PermissionError(), ValueError("x"),
          CircuitOpenError("x", endpoint="e", retry_at=0), psycopg.errors.InvalidPassword("x"),
          psycopg.ProgrammingError("x"), pymysql.err.OperationalError(1045, "Access denied"),
          urllib.error.HTTPError("http://h", 404, "Not Found", {}, None)]
    assert [e for e in yes if not rs.is_retryable(e)] == []
    assert [e for e in no if rs.is_retryable(e)] == []
    assert CircuitOpenError("x", endpoint="e", retry_at=0).retryable  # later, after the cool-down


def test_retryable_errors_are_retried_counted_and_logged(caplog):
    ep = "postgresql://u:sekrit@127.0.0.1:1/db"
    label = "postgresql://u:***@127.0.0.1:1/db"
    clock = Clock()
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionFailed("connection refused")
        return "ok"

    before = retries(label, "ConnectionFailed")
    with caplog.at_level(logging.WARNING, logger="nebula.resilience"):
        out = rs.retry_call(flaky, endpoint=ep, policy={"retries": 4, "backoff_initial": 1, "jitter": 0},
                            sleep=clock.sleep)
    assert out == "ok" and len(calls) == 3
    assert clock.slept == [1.0, 2.0]
    assert retries(label, "ConnectionFailed") == before + 2
    lines = [r.getMessage() for r in caplog.records if r.name == "nebula.resilience"]
    assert len(lines) == 2 and all(label in m and "sekrit" not in m for m in lines)
    assert "call: attempt 1 of 5 failed (ConnectionFailed: connection refused); retrying in 1.00 s" in lines[0]


def test_non_retryable_errors_are_not_retried():
    clock = Clock()
    calls = []

    def denied():
        calls.append(1)
        raise ConnectionFailed("password authentication failed", retryable=False)

    with pytest.raises(ConnectionFailed) as e:
        rs.retry_call(denied, endpoint="postgresql://h:1", policy={"retries": 5}, sleep=clock.sleep)
    assert len(calls) == 1 and clock.slept == []
    assert str(e.value) == "password authentication failed"  # untouched
    with pytest.raises(ValueError):
        rs.retry_call(lambda: int("x"), endpoint="e", sleep=clock.sleep)
    assert clock.slept == []


def test_exhausted_attempts_raise_the_last_error_naming_attempts_and_endpoint():
    clock = Clock()
    with pytest.raises(ConnectionFailed) as e:
        rs.retry_call(raiser(ConnectionFailed("unreachable")), endpoint="mysql://db:3306",
                      policy={"retries": 2, "backoff_initial": 0.1}, sleep=clock.sleep)
    assert "unreachable (gave up after 3 attempts in" in str(e.value) and "at mysql://db:3306" in str(e.value)
    assert e.value.attempts == 3 and len(clock.slept) == 2

    def refused():
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    with pytest.raises(ConnectionFailed, match=r"https://api\.x: ConnectionRefusedError: .*gave up after 2 attempts"):
        rs.retry_call(refused, endpoint="https://api.x", policy={"retries": 1}, sleep=clock.sleep)


def test_retry_after_is_honoured_and_capped():
    clock = Clock()
    errs = [HttpError("429", status=429, retry_after=2.5, retryable=True),
            HttpError("503", status=503, retry_after=100, retryable=True)]

    def fn():
        if errs:
            raise errs.pop(0)
        return 1

    assert rs.retry_call(fn, endpoint="https://api.x", policy={"backoff_max": 7, "backoff_initial": 0.01},
                         sleep=clock.sleep) == 1
    assert clock.slept == [2.5, 7.0]


def test_deadline_stops_before_a_wait_that_would_pass_it():
    clock = Clock()
    calls = []

    def fn():
        calls.append(1)
        raise ConnectionFailed("down")

    with pytest.raises(ConnectionFailed, match="next retry would pass the deadline"):
        rs.retry_call(fn, endpoint="e", sleep=clock.sleep,
                      policy={"retries": 10, "backoff_initial": 0.6, "jitter": 0, "deadline": 1})
    assert clock.slept == [0.6] and len(calls) == 2


def test_classifier_hook_and_decorator():
    clock = Clock()
    seen = []

    @rs.retrying("https://api.x", policy={"retries": 3}, classify=lambda e: isinstance(e, KeyError) or None,
                 sleep=clock.sleep)
    def fetch(n):
        seen.append(n)
        if len(seen) < 2:
            raise KeyError("flaky")
        return n * 2

    assert fetch(21) == 42 and seen == [21, 21]


# -- circuit breaker ------------------------------------------------------------------------------
def test_breaker_closed_open_half_open_closed_and_reopen():
    clock = Clock()
    ep = "postgresql://breaker-unit:1"
    b = rs.CircuitBreaker(ep, failures=3, cooldown=10, trials=1, clock=clock)
    base = {s: transitions(ep, s) for s in ("open", "half-open", "closed")}
    b.record_failure(ConnectionFailed("x"))
    b.record_failure(ConnectionFailed("x"))
    b.record_success()  # a success resets the count
    b.record_failure(ConnectionFailed("x"))
    b.record_failure(ConnectionFailed("x"))
    assert b.state == "closed"
    b.record_failure(ConnectionFailed("refused"))
    assert b.state == "open"
    assert metrics.sample("nebula_circuit_state", {"endpoint": ep}) == 1
    with pytest.raises(CircuitOpenError) as e:
        b.before_call()
    assert ep in str(e.value) and "in 10.0 s" in str(e.value) and "refused" in str(e.value)
    assert e.value.endpoint == ep and e.value.retry_at > time.time() + 9
    clock.t += 9.9
    assert b.state == "open"
    clock.t += 0.1
    assert b.state == "half-open"
    assert metrics.sample("nebula_circuit_state", {"endpoint": ep}) == 2
    b.before_call()  # the one trial call
    with pytest.raises(CircuitOpenError):
        b.before_call()  # a second call while the trial is in flight
    b.record_failure(ConnectionFailed("still down"))
    assert b.state == "open"
    clock.t += 10
    b.before_call()
    b.record_success()
    assert b.state == "closed"
    assert metrics.sample("nebula_circuit_state", {"endpoint": ep}) == 0
    got = {s: transitions(ep, s) - base[s] for s in base}
    assert got == {"open": 2, "half-open": 2, "closed": 1}


def test_retries_stop_when_the_breaker_opens_and_later_calls_fail_fast():
    clock = Clock()
    ep = "mysql://breaker-compose:3306"
    calls = []

    def down():
        calls.append(1)
        raise ConnectionFailed("Lost connection")

    pol = {"retries": 10, "breaker_failures": 3, "breaker_cooldown": 60, "backoff_initial": 0.01}
    with pytest.raises(CircuitOpenError) as e:
        rs.retry_call(down, endpoint=ep, policy=pol, sleep=clock.sleep)
    assert len(calls) == 3 and ep in str(e.value) and "Lost connection" in str(e.value)
    t = time.monotonic()
    with pytest.raises(CircuitOpenError):
        rs.retry_call(down, endpoint=ep, policy=pol, sleep=clock.sleep)
    assert len(calls) == 3 and time.monotonic() - t < 1  # fast: the endpoint was not called


def test_an_answer_that_is_not_retryable_counts_as_success_for_the_breaker():
    b = rs.breaker_for("https://breaker-answer", {"breaker_failures": 2})
    b.record_failure(ConnectionFailed("x"))
    with pytest.raises(HttpError):
        rs.retry_call(raiser(HttpError("400", status=400, retryable=False)),
                      endpoint="https://breaker-answer", policy={"breaker_failures": 2})
    b.record_failure(ConnectionFailed("x"))
    assert b.state == "closed"


# -- rate limiter ---------------------------------------------------------------------------------
def test_token_bucket_admits_burst_then_rate():
    clock = Clock()
    lim = rs.RateLimiter("https://rate-unit", rate=10, burst=5, clock=clock, sleep=clock.sleep)
    start = clock.t
    waits = [lim.acquire() for _ in range(100)]
    assert waits[:5] == [0.0] * 5 and all(w > 0 for w in waits[5:])
    assert clock.t - start == pytest.approx(9.5)  # 95 tokens beyond the burst at 10/s
    # counts per window: never more than burst + rate * window
    clock2 = Clock()
    lim2 = rs.RateLimiter("https://rate-unit2", rate=20, burst=4, clock=clock2, sleep=clock2.sleep)
    stamps = []
    for _ in range(200):
        lim2.acquire()
        stamps.append(clock2.t)
    for i, t0 in enumerate(stamps):
        inside = sum(1 for t in stamps[i:] if t < t0 + 1.0)
        assert inside <= 4 + 20


def test_token_bucket_is_thread_safe_and_reports_waits():
    lim = rs.limiter_for("https://rate-threads", {"rate_limit": 200, "rate_burst": 10})
    before = metrics.sample("nebula_rate_limit_wait_seconds_total", {"endpoint": "https://rate-threads"}) or 0
    got = []
    lock = threading.Lock()

    def worker():
        for _ in range(30):
            lim.acquire()
            with lock:
                got.append(1)

    t0 = time.monotonic()
    ths = [threading.Thread(target=worker) for _ in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    elapsed = time.monotonic() - t0
    assert len(got) == 120
    assert elapsed >= (120 - 10) / 200 - 0.02  # a lower bound only: a loaded machine is slower, never faster
    waited = metrics.sample("nebula_rate_limit_wait_seconds_total", {"endpoint": "https://rate-threads"}) - before
    assert waited > 0.4
    assert rs.limiter_for("https://rate-threads", {}) is None  # no rate_limit in the policy: no limiter
