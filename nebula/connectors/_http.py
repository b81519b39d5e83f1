"""HTTP calls through the resilience layer (:func:`http_request`), for the HTTP API connectors.

Stdlib ``urllib`` only: the API connectors need JSON over HTTPS with retries, a breaker, a rate limit and
timeouts, not another client library. Import it from :mod:`nebula.connectors.resilience`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConnectionFailed, HttpError
from .resilience import (
    CircuitBreaker,
    RateLimiter,
    RetryPolicy,
    _short,
    current_policy,
    endpoint_of,
    is_retryable,
    parse_retry_after,
    retry_call,
    retryable_status,
)


@dataclass
class HttpResponse:
    """A successful (2xx/3xx) answer of :func:`http_request`."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def _shown(url: str) -> str:
    """A URL fit for messages: no credentials, no query string (API tokens often travel there)."""
    from urllib.parse import urlsplit

    try:
        p = urlsplit(url)
        host = p.hostname or ""
        return f"{p.scheme}://{host}{f':{p.port}' if p.port else ''}{p.path}" + ("?…" if p.query else "")
    except ValueError:
        return endpoint_of(url)


def _api_message(raw: bytes, fallback: str) -> str:
    import json

    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        err = doc.get("error")
        for cand in ((err.get("message") if isinstance(err, dict) else err), doc.get("message"),
                     doc.get("error_description"), doc.get("detail")):
            if isinstance(cand, str) and cand.strip():
                return _short(Exception(cand))
    text = raw.decode("utf-8", errors="replace").strip()
    return _short(Exception(text)) if text else fallback


def http_request(method: str, url: str, *, endpoint: str | None = None, headers: Mapping[str, str] | None = None,
                 body: bytes | str | Mapping | list | None = None, timeout: float | None = None, policy: Any = None,
                 breaker: CircuitBreaker | bool | None = None, limiter: RateLimiter | bool | None = None,
                 sleep: Callable[[float], Any] | None = None) -> HttpResponse:
    """One HTTP call (stdlib urllib) through :func:`retry_call`, for the HTTP API connectors.

    ``body``: bytes, text, or a mapping/list sent as JSON. ``timeout`` (default the policy's ``timeout``)
    bounds each blocking socket operation. Raises :class:`~nebula.errors.HttpError`: 408/425/429/5xx are
    retried (honouring ``Retry-After``), any other 4xx is not and carries the API's message; network
    failures are :class:`~nebula.errors.ConnectionFailed`.
    """
    import http.client
    import json
    import urllib.error
    import urllib.request

    p = current_policy() if policy is None else RetryPolicy.from_config(policy)
    ep = endpoint or endpoint_of(url)
    shown = _shown(url)
    hdrs = {"User-Agent": "nebula", **(headers or {})}
    data: bytes | None
    if isinstance(body, Mapping | list):
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    else:
        data = body.encode() if isinstance(body, str) else body
    verb = method.upper()

    def once() -> HttpResponse:
        req = urllib.request.Request(url, data=data, method=verb, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout or p.timeout) as r:  # noqa: S310 - http(s) API URLs
                return HttpResponse(r.status, dict(r.headers.items()), r.read(), url)
        except urllib.error.HTTPError as e:
            try:
                raw = e.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            status = e.code
            raise HttpError(f"{verb} {shown}: HTTP {status}: {_api_message(raw, str(e.reason))}", status=status,
                            url=shown, retry_after=parse_retry_after(e.headers.get("Retry-After") if e.headers else None),
                            retryable=retryable_status(status)) from None
        except (OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            why = f"{type(reason).__name__}: {_short(reason)}" if isinstance(reason, BaseException) else str(reason)
            raise ConnectionFailed(f"{verb} {shown}: {why}",
                                   retryable=is_retryable(e) or isinstance(e, http.client.HTTPException)) from None

    return retry_call(once, endpoint=ep, policy=p, breaker=breaker, limiter=limiter, what=f"{verb} request",
                      sleep=sleep)
