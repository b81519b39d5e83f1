"""The one resilience layer every connector uses: retries, circuit breakers, rate limits and timeouts.

Retries (:func:`retry_call`, :func:`retrying`) run on tenacity and only for errors that are retryable
(:func:`is_retryable`): a :class:`~nebula.errors.NebulaError` whose ``retryable`` is true (never a
:class:`~nebula.errors.CircuitOpenError`), psycopg and PyMySQL ``OperationalError`` (not authentication,
unknown database or privilege errors), network ``OSError`` (refused, reset, timed out, unreachable) and
HTTP 408/425/429/5xx. The wait before retry ``n`` is ``min(backoff_max, backoff_initial *
backoff_multiplier ** (n - 1))`` times a random factor in ``[1 - jitter, 1]``; an error carrying
``retry_after`` (a ``Retry-After`` header: seconds or an HTTP date) waits that long instead, capped by
``backoff_max``; no retry starts once it would end past ``deadline`` seconds. Every retry counts in
``nebula_retries_total{endpoint,error}`` and logs one warning (logger ``nebula.resilience``) naming the
endpoint without credentials. When attempts run out, the last error is raised, typed, its message saying
how many attempts were made at which endpoint (and ``error.attempts`` holds the number).

Circuit breakers (:class:`CircuitBreaker`, one per endpoint from :func:`breaker_for`): ``breaker_failures``
retryable failures in a row open it; while open every call fails at once with a ``CircuitOpenError``
naming the endpoint and when it will try again; after ``breaker_cooldown`` seconds it lets
``breaker_trials`` trial calls through (half-open): their success closes it, a failure opens it again.
Every transition goes to ``nebula_circuit_state`` / ``nebula_circuit_transitions_total``. Retries stop
as soon as the breaker opens. An error that is not retryable (wrong password, HTTP 400) means the
endpoint answered: it counts as a success for the breaker.

Rate limiters (:class:`RateLimiter` from :func:`limiter_for`): a token bucket per endpoint, ``rate_limit``
calls per second with bursts of ``rate_burst``; :meth:`RateLimiter.acquire` blocks, waits add up in
``nebula_rate_limit_wait_seconds_total``.

Timeouts: ``connect_timeout`` is psycopg's ``connect_timeout`` (libpq waits at least 2 s) and PyMySQL's
``connect_timeout`` and pyarrow S3's ``connect_timeout``; ``timeout`` is the socket timeout of
:func:`http_request` (per blocking operation), pyarrow S3's ``request_timeout`` and psycopg's
``tcp_user_timeout`` (unacknowledged data for that long ends the connection: a dead peer mid-COPY fails the
call instead of hanging), with TCP keepalives on PostgreSQL connections.

The policy of a run: ``nebula.copy(resilience={...})`` or a pipeline's ``resilience:`` block in YAML
(:data:`KEYS`) is installed with :func:`use_policy` for the calling context; connectors read
:func:`current_policy` when they are created, so their own threads keep the run's policy.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import logging
import math
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ..errors import CircuitOpenError, ConfigError, ConnectionFailed, NebulaError

log = logging.getLogger("nebula.resilience")
T = TypeVar("T")

#: the keys of a ``resilience:`` block: (type, lowest allowed, highest allowed, meaning)
KEYS: dict[str, tuple[type, float, float | None, str]] = {
    "retries": (int, 0, None, "retries after the first attempt"),
    "backoff_initial": (float, 0, None, "seconds before the first retry"),
    "backoff_max": (float, 0, None, "longest wait between attempts (also caps Retry-After)"),
    "backoff_multiplier": (float, 1, None, "growth of the wait per retry"),
    "jitter": (float, 0, 1, "each wait is scaled by a random factor in [1 - jitter, 1]"),
    "deadline": (float, 0, None, "no retry starts past this many seconds after the first attempt"),
    "connect_timeout": (float, 0, None, "seconds to establish a connection"),
    "timeout": (float, 0, None, "seconds a network read/write may block"),
    "breaker_failures": (int, 1, None, "failures in a row that open an endpoint's circuit breaker"),
    "breaker_cooldown": (float, 0, None, "seconds an open breaker fails calls fast"),
    "breaker_trials": (int, 1, None, "trial calls a half-open breaker lets through"),
    "rate_limit": (float, 0, None, "calls per second per endpoint (none: unlimited)"),
    "rate_burst": (int, 1, None, "calls allowed at once before the rate limit applies"),
}


@dataclass(frozen=True)
class RetryPolicy:
    """How calls to one endpoint are retried, broken and paced. Defaults suit nightly jobs."""

    attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_multiplier: float = 2.0
    jitter: float = 0.5
    deadline: float | None = 600.0
    connect_timeout: float = 10.0
    timeout: float = 60.0
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    breaker_trials: int = 1
    rate_limit: float | None = None
    rate_burst: int | None = None

    @property
    def retries(self) -> int:
        return self.attempts - 1

    def backoff(self, retry: int, rnd: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), jitter included."""
        base = min(self.backoff_max, self.backoff_initial * self.backoff_multiplier ** max(0, retry - 1))
        return base * (1.0 - self.jitter * rnd())

    def replace(self, **changes: Any) -> RetryPolicy:
        return replace(self, **changes)

    @classmethod
    def from_config(cls, value: Any) -> RetryPolicy:
        """A policy from a ``resilience`` mapping (:data:`KEYS`; ``None`` values keep the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping of {', '.join(KEYS)}, got {type(value).__name__}", key="resilience")
        unknown = sorted(set(value) - set(KEYS))
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], KEYS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(KEYS)})"
            raise ConfigError(f"unknown key '{unknown[0]}'{hint}", key=f"resilience.{unknown[0]}")
        kw: dict[str, Any] = {}
        for k, v in value.items():
            if v is None:
                continue
            kind, lo, hi, _ = KEYS[k]
            key = f"resilience.{k}"
            if isinstance(v, bool) or not isinstance(v, int | float | str):
                raise ConfigError(f"expected a number, got {v!r}", key=key)
            try:
                num = float(v)
            except ValueError:
                raise ConfigError(f"expected a number, got {v!r}", key=key) from None
            if not math.isfinite(num) or (kind is int and num != int(num)):
                raise ConfigError(f"expected {'a whole number' if kind is int else 'a number'}, got {v!r}", key=key)
            if num < lo or (hi is not None and num > hi) or (k in ("rate_limit", "deadline") and num <= 0):
                bound = f"between {lo:g} and {hi:g}" if hi is not None else (
                    f"> {lo:g}" if k in ("rate_limit", "deadline") else f">= {lo:g}")
                raise ConfigError(f"must be {bound}, got {v!r}", key=key)
            kw[k] = int(num) if kind is int else num
        if "retries" in kw:
            kw["attempts"] = kw.pop("retries") + 1
        return cls(**kw)


_DEFAULT = RetryPolicy()
_policy: contextvars.ContextVar[RetryPolicy | None] = contextvars.ContextVar("nebula_retry_policy", default=None)


def current_policy() -> RetryPolicy:
    """The policy installed by :func:`use_policy` in this context, else the defaults."""
    return _policy.get() or _DEFAULT


@contextlib.contextmanager
def use_policy(policy: Any) -> Iterator[RetryPolicy]:
    """Make ``policy`` (a :class:`RetryPolicy` or a ``resilience`` mapping) current inside the block."""
    p = RetryPolicy.from_config(policy)
    token = _policy.set(p)
    try:
        yield p
    finally:
        _policy.reset(token)


# -- what is an endpoint, what is retryable ----------------------------------------------------------
def endpoint_of(url: Any) -> str:
    """The endpoint a URL talks to, without credentials, database or path: ``postgresql://host:port``,
    ``s3://endpoint-host/bucket`` (``s3://bucket`` on AWS), ``https://host``; a local path is ``file://DIR``."""
    import os
    from urllib.parse import parse_qs, urlsplit

    text = os.fspath(url) if not isinstance(url, str) else url
    m = re.match(r"^(s3|gs|gcs)://([^/?#]*)", text, re.IGNORECASE)
    if m:
        from ._fs import _endpoint

        scheme = "gs" if m.group(1).lower() != "s3" else "s3"
        host, _ = _endpoint(("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") if scheme == "s3" else ("STORAGE_EMULATOR_HOST",))
        return f"{scheme}://{host}/{m.group(2)}" if host else f"{scheme}://{m.group(2)}"
    if "://" not in text:
        return "file://" + os.path.dirname(os.path.abspath(text))
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError:
        return re.sub(r"//[^/@]*@", "//", text.split("?", 1)[0])
    if not host:
        host = (parse_qs(parts.query).get("host") or [""])[0]
    if host and ":" in host and not host.startswith("/"):
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


_NET_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
               errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.ENETRESET}
_PG_PERMANENT = ("28", "3D", "42")  # sqlstate classes: authentication, unknown database, privileges/syntax
_MYSQL_PERMANENT = {1044, 1045, 1049, 1142, 1227, 1698}


def retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth retrying: 408, 425, 429 and 5xx other than 501/505."""
    return status in (408, 425, 429) or (500 <= status <= 599 and status not in (501, 505))


def is_retryable(e: BaseException) -> bool:
    """Whether retrying the call that raised ``e`` could help (see the module docstring)."""
    if isinstance(e, CircuitOpenError):
        return False
    if isinstance(e, NebulaError):
        return bool(e.retryable)
    names = {c.__name__ for c in type(e).__mro__}
    mod = type(e).__module__
    if mod.startswith("psycopg"):
        state = getattr(e, "sqlstate", None) or ""
        return "OperationalError" in names and state[:2] not in _PG_PERMANENT
    if mod.startswith("pymysql"):
        code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
        return bool(names & {"OperationalError", "InterfaceError"}) and code not in _MYSQL_PERMANENT
    if "HTTPError" in names and isinstance(getattr(e, "code", None), int):
        return retryable_status(e.code)
    if isinstance(e, ConnectionError | TimeoutError | socket.timeout):
        return True
    if isinstance(e, OSError):
        if e.errno in _NET_ERRNOS:
            return True
        reason = getattr(e, "reason", None)  # urllib's URLError wraps the socket error
        if isinstance(reason, BaseException):
            return is_retryable(reason)
        return isinstance(reason, str) and "timed out" in reason
    return bool(names & {"IncompleteRead", "RemoteDisconnected"})  # http.client: the peer went away mid-answer


def parse_retry_after(value: Any, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay seconds or an HTTP date; None when invalid."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        secs = float(text)
    except ValueError:
        pass
    else:
        return secs if math.isfinite(secs) and secs >= 0 else None
    import email.utils
    from datetime import UTC

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after_of(e: BaseException | None) -> float | None:
    """The wait an error asks for: its ``retry_after`` attribute or its ``Retry-After`` header."""
    if e is None:
        return None
    ra = getattr(e, "retry_after", None)
    if isinstance(ra, int | float) and not isinstance(ra, bool):
        return float(ra) if ra >= 0 else None
    headers = getattr(e, "headers", None)
    if headers is not None and hasattr(headers, "get"):
        return parse_retry_after(headers.get("Retry-After"))
    return None


def _short(e: BaseException) -> str:
    from ..redact import redact

    text = " ".join(str(e).split()) or type(e).__name__
    return redact(text[:300])


# -- circuit breaker ------------------------------------------------------------------------------
class CircuitBreaker:
    """Closed / open / half-open breaker of one endpoint (see the module docstring); thread-safe."""

    def __init__(self, endpoint: str, *, failures: int = 5, cooldown: float = 30.0, trials: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from ..redact import redact_url

        self.endpoint = redact_url(endpoint)
        self.failures, self.cooldown, self.trials = int(failures), float(cooldown), int(trials)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = "closed"
        self._count = 0  # failures in a row (closed), successful trials (half-open)
        self._in_flight = 0
        self._opened_at = 0.0
        self._last = ""
        from .. import metrics

        metrics.get("circuit_state").labels(endpoint=self.endpoint).set(0)

    @property
    def state(self) -> str:
        with self._lock:
            self._tick()
            return self._state

    def _tick(self) -> None:
        if self._state == "open" and self._clock() - self._opened_at >= self.cooldown:
            self._to("half-open")

    def _to(self, state: str) -> None:
        from .. import metrics

        self._state, self._count, self._in_flight = state, 0, 0
        if state == "open":
            self._opened_at = self._clock()
            log.warning("%s: circuit breaker opened (%s); calls fail fast for %g s", self.endpoint,
                        self._last or "failures", self.cooldown)
        else:
            log.info("%s: circuit breaker %s", self.endpoint, state)
        metrics.set_circuit_state(self.endpoint, state)

    def retry_at(self) -> float:
        """Wall-clock time (epoch seconds) when an open breaker lets a trial call through."""
        return time.time() + max(0.0, self._opened_at + self.cooldown - self._clock())

    def open_error(self, cause: BaseException | None = None) -> CircuitOpenError:
        at = self.retry_at()
        last = _short(cause) if cause is not None else self._last
        when = time.strftime("%H:%M:%S", time.localtime(at))
        return CircuitOpenError(
            f"{self.endpoint}: circuit breaker open after {self.failures} failure(s) in a row"
            + (f" (last: {last})" if last else "")
            + f"; calls fail fast until {when} (in {max(0.0, at - time.time()):.1f} s), then one is tried again",
            endpoint=self.endpoint, retry_at=at)

    def before_call(self) -> None:
        """Let a call through, or raise :class:`CircuitOpenError` at once."""
        with self._lock:
            self._tick()
            if self._state == "closed":
                return
            if self._state == "half-open" and self._in_flight < self.trials:
                self._in_flight += 1
                return
        raise self.open_error()

    def record_success(self) -> None:
        with self._lock:
            if self._state == "half-open":
                self._in_flight = max(0, self._in_flight - 1)
                self._count += 1
                if self._count >= self.trials:
                    self._to("closed")
            elif self._state == "closed":
                self._count = 0

    def record_failure(self, error: BaseException | None = None) -> None:
        with self._lock:
            if error is not None:
                self._last = f"{type(error).__name__}: {_short(error)}"
            if self._state == "half-open":
                self._to("open")
            elif self._state == "closed":
                self._count += 1
                if self._count >= self.failures:
                    self._to("open")

    def cancel(self) -> None:
        """A call let through ended without an outcome (interrupted): free its trial slot."""
        with self._lock:
            if self._state == "half-open":
                self._in_flight = max(0, self._in_flight - 1)

    def configure(self, failures: int, cooldown: float, trials: int) -> None:
        with self._lock:
            self.failures, self.cooldown, self.trials = int(failures), float(cooldown), int(trials)


# -- rate limiter ---------------------------------------------------------------------------------
class RateLimiter:
    """Token bucket: ``rate`` tokens per second, at most ``burst`` saved up; thread-safe.

    A caller takes its tokens at once (the balance may go negative) and sleeps off the debt outside the
    lock, so concurrent callers queue fairly and the long-run rate never exceeds ``rate``.
    """

    def __init__(self, endpoint: str, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] = time.sleep) -> None:
        from ..redact import redact_url

        if rate <= 0:
            raise ConfigError(f"rate limit must be > 0, got {rate!r}", key="resilience.rate_limit")
        self.endpoint = redact_url(endpoint)
        self.rate = float(rate)
        self.burst = float(burst) if burst else max(1.0, self.rate)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock()

    def acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, blocking as long as the rate requires; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate) - tokens
            self._stamp = now
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            from .. import metrics

            self._sleep(wait)
            metrics.record_rate_limit_wait(self.endpoint, wait)
        return wait

    def configure(self, rate: float, burst: float | None) -> None:
        with self._lock:
            self.rate = float(rate)
            self.burst = float(burst) if burst else max(1.0, self.rate)


_registry_lock = threading.Lock()
_breakers: dict[str, CircuitBreaker] = {}
_limiters: dict[str, RateLimiter] = {}


def breaker_for(endpoint: str, config: Any = None) -> CircuitBreaker:
    """The process-wide breaker of ``endpoint``, (re)configured from ``config`` (default: the current policy)."""
    p = current_policy() if config is None else RetryPolicy.from_config(config)
    from ..redact import redact_url

    key = redact_url(endpoint)
    with _registry_lock:
        b = _breakers.get(key)
        if b is None:
            b = _breakers[key] = CircuitBreaker(key, failures=p.breaker_failures, cooldown=p.breaker_cooldown,
                                                trials=p.breaker_trials)
        else:
            b.configure(p.breaker_failures, p.breaker_cooldown, p.breaker_trials)
        return b


def limiter_for(endpoint: str, config: Any = None) -> RateLimiter | None:
    """The process-wide rate limiter of ``endpoint``, or None when the policy sets no ``rate_limit``."""
    p = current_policy() if config is None else RetryPolicy.from_config(config)
    if not p.rate_limit:
        return None
    from ..redact import redact_url

    key = redact_url(endpoint)
    with _registry_lock:
        lim = _limiters.get(key)
        if lim is None:
            lim = _limiters[key] = RateLimiter(key, p.rate_limit, p.rate_burst)
        else:
            lim.configure(p.rate_limit, p.rate_burst)
        return lim


def reset() -> None:
    """Forget every breaker and limiter (tests; a long-lived process starting over); a forgotten breaker
    that was open or half-open is published as closed, so ``/healthz`` and the metrics agree."""
    from .. import metrics

    with _registry_lock:
        gone = list(_breakers.values())
        _breakers.clear()
        _limiters.clear()
    not_closed = set(metrics.breakers("open")) | set(metrics.breakers("half-open"))
    for b in gone:
        if b.endpoint in not_closed:
            metrics.set_circuit_state(b.endpoint, "closed")


# -- retrying -------------------------------------------------------------------------------------
def note_retry(endpoint: str, error: BaseException, *, wait: float, attempt: int, attempts: int,
               what: str = "call") -> None:
    """Count and log one retry (for loops that cannot be a :func:`retry_call`, e.g. a stream reconnect)."""
    from .. import metrics
    from ..redact import redact_url

    label = redact_url(endpoint)
    metrics.record_retry(label, error)
    log.warning("%s: %s: attempt %d of %d failed (%s: %s); retrying in %.2f s", label, what, attempt, attempts,
                type(error).__name__, _short(error), wait)


def _gave_up(e: BaseException, attempts: int, label: str, seconds: float, deadline_hit: bool) -> BaseException:
    note = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''} in {seconds:.1f} s at {label}"
    if deadline_hit:
        note += " (the next retry would pass the deadline)"
    if attempts == 1 and isinstance(e, NebulaError):  # nothing was retried: the error speaks for itself
        out: BaseException = e
    elif isinstance(e, NebulaError):
        e.message = f"{e.message} ({note})"
        e.args = (e.message,)
        out = e
    else:
        out = ConnectionFailed(f"{label}: {type(e).__name__}: {_short(e)} ({note})", retryable=is_retryable(e))
        out.__cause__ = e
    out.attempts = attempts
    return out


def retry_call(fn: Callable[[], T], *, endpoint: str, policy: Any = None,
               classify: Callable[[BaseException], bool | None] | None = None,
               breaker: CircuitBreaker | bool | None = None, limiter: RateLimiter | bool | None = None,
               what: str = "call", sleep: Callable[[float], Any] | None = None) -> T:
    """Call ``fn()`` with retries, the endpoint's circuit breaker and rate limiter (module docstring).

    ``classify(error)`` decides retryability first (None falls back to :func:`is_retryable`).
    ``breaker``/``limiter``: None uses the endpoint's from the registry, False none, or pass one.
    ``sleep`` replaces :func:`time.sleep` between attempts (tests).
    """
    from ..redact import redact_url

    p = current_policy() if policy is None else RetryPolicy.from_config(policy)
    label = redact_url(endpoint)
    br = breaker_for(label, p) if breaker is None or breaker is True else (breaker or None)
    lim = limiter_for(label, p) if limiter is None or limiter is True else (limiter or None)

    def judge(e: BaseException) -> bool:
        if isinstance(e, CircuitOpenError):
            return False
        verdict = classify(e) if classify is not None else None
        return is_retryable(e) if verdict is None else bool(verdict)

    def attempt() -> T:
        if br is not None:
            br.before_call()
        if lim is not None:
            lim.acquire()
        try:
            out = fn()
        except Exception as e:
            if br is not None:
                br.record_failure(e) if judge(e) else br.record_success()
            raise
        except BaseException:
            if br is not None:
                br.cancel()
            raise
        if br is not None:
            br.record_success()
        return out

    def wait(rs) -> float:
        ra = retry_after_of(rs.outcome.exception())
        return min(ra, p.backoff_max) if ra is not None else p.backoff(rs.attempt_number)

    def before_sleep(rs) -> None:
        note_retry(label, rs.outcome.exception(), wait=rs.upcoming_sleep, attempt=rs.attempt_number,
                   attempts=p.attempts, what=what)

    start = time.monotonic()
    # The first attempt runs before tenacity is imported (~50 ms a process): most calls succeed at once,
    # and one that fails for good raises here just as tenacity would. A retryable failure is handed to
    # tenacity as its own first attempt, so counting, waits and the deadline stay as they were.
    try:
        return attempt()
    except Exception as e:
        if not judge(e) or (br is not None and br.state == "open"):
            if br is not None and not isinstance(e, CircuitOpenError) and judge(e) and br.state == "open":
                raise br.open_error(e) from e
            raise
        first_error: BaseException | None = e
    import tenacity

    def replay_then_attempt() -> T:
        nonlocal first_error
        if first_error is not None:
            e, first_error = first_error, None
            raise e
        return attempt()

    def give_up(rs):
        raise _gave_up(rs.outcome.exception(), rs.attempt_number, label, time.monotonic() - start,
                       rs.attempt_number < p.attempts)

    stop = tenacity.stop_after_attempt(p.attempts)
    if p.deadline:
        stop = stop | tenacity.stop_before_delay(max(0.0, p.deadline - (time.monotonic() - start)))
    retrier = tenacity.Retrying(
        stop=stop, wait=wait, before_sleep=before_sleep, retry_error_callback=give_up, reraise=True,
        retry=tenacity.retry_if_exception(lambda e: judge(e) and not (br is not None and br.state == "open")),
        sleep=sleep or time.sleep)
    try:
        return retrier(replay_then_attempt)
    except Exception as e:
        if br is not None and not isinstance(e, CircuitOpenError) and judge(e) and br.state == "open":
            raise br.open_error(e) from e
        raise


def retrying(endpoint: str, **options: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator form of :func:`retry_call`: ``@retrying("https://api.example.com", policy={"retries": 3})``."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> T:
            return retry_call(functools.partial(fn, *args, **kwargs), endpoint=endpoint, **options)

        return inner

    return wrap


# HTTP lives in its own module; it is part of this layer's interface
from ._http import HttpResponse, http_request  # noqa: E402,F401
