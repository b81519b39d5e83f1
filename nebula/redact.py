"""Keeping secrets out of output: URL passwords and known secret values become ``***``.

One process-wide set of secret values (:func:`register_secret`) is consulted by every output path:
CLI error lines and ``--debug`` tracebacks, log records (:class:`RedactingFilter`, installed by
:func:`install_log_redaction`), run summaries, the audit log, ``check`` and ``state show``. A value is
registered together with its URL-encoded forms, because a password usually travels inside a URL.
Besides registered values, ``scheme://user:password@`` and ``password=...`` (libpq conninfo, query
strings) are always hidden.

Values shorter than :data:`MIN_SECRET_LENGTH` characters are not registered: hiding every ``42`` of the
output would garble row counts and positions without protecting anything (such a secret is guessable).

Kept apart from :mod:`nebula.config` so that error paths and run summaries can redact without
importing pydantic.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote

MIN_SECRET_LENGTH = 4
MASK = "***"
#: option keys whose values are secrets (``password``, ``api_key``, ``token``, ...)
SECRET_OPTION = re.compile(r"password|passwd|secret|token|credential|api_?key|private_?key|access_?key",
                           re.IGNORECASE)

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s/]*)(?=@)")
_KV_PASSWORD = re.compile(r"(?P<head>\b(?:password|passwd|pwd|sslpassword)\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s&;'\"]+)",
                          re.IGNORECASE)

_lock = threading.Lock()
_secrets: set[str] = set()
_by_length: tuple[str, ...] = ()


def register_secret(value: Any) -> None:
    """Hide ``value`` (and its URL-encoded forms) from every output of this process from now on."""
    global _by_length
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    forms = {value, quote(value, safe=""), quote_plus(value, safe=""), quote(value)}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        _by_length = tuple(sorted(_secrets, key=len, reverse=True))


def url_passwords(text: Any) -> list[str]:
    """The passwords written in ``text`` as written (``user:password@`` of URLs, ``password=...``)."""
    if not isinstance(text, str):
        return []
    found = (m.group("pw").strip("'") for m in (*_URL_PASSWORD.finditer(text), *_KV_PASSWORD.finditer(text)))
    return [pw for pw in found if pw]


def register_url_secrets(text: Any) -> list[str]:
    """Register the passwords written in ``text`` (and their URL-decoded forms); returns them."""
    out = []
    for pw in url_passwords(text):
        for form in dict.fromkeys((pw, unquote(pw))):
            register_secret(form)
            out.append(form)
    return out


def register_option_secrets(options: Any) -> None:
    """Register the values of secret-looking keys of an options mapping (nested mappings included)."""
    if not isinstance(options, dict):
        return
    for k, v in options.items():
        if isinstance(v, dict):
            register_option_secrets(v)
        elif isinstance(k, str) and SECRET_OPTION.search(k) and isinstance(v, str | int | float) \
                and not isinstance(v, bool):
            register_secret(str(v))
        elif isinstance(v, str):
            register_url_secrets(v)


def secrets() -> frozenset[str]:
    """The registered secret values (and their encoded forms)."""
    with _lock:
        return frozenset(_secrets)


def redact_url(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` and ``password=...`` with ``***``."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _KV_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def redact(text: str, secrets: frozenset[str] | set[str] | tuple[str, ...] | Iterable[str] = ()) -> str:
    """``text`` with every registered secret, every value of ``secrets`` and every URL password as ``***``."""
    if not isinstance(text, str):
        text = str(text)
    extra = [s for s in secrets if s and s not in _secrets]
    ordered = sorted([*extra, *_by_length], key=len, reverse=True) if extra else _by_length
    for s in ordered:
        if s in text:
            text = text.replace(s, MASK)
    return redact_url(text)


def redact_obj(obj: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings, numbers) with every string redacted."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj


def format_exception(exc: BaseException) -> str:
    """The full traceback of ``exc`` (chained causes included), redacted: what ``--debug`` prints."""
    import traceback

    return redact("".join(traceback.format_exception(exc)))


class RedactingFilter(logging.Filter):
    """Rewrites each log record in place: message, arguments, exception text and stack, all redacted.

    Attached to handlers (a logger's own filters do not see records propagated from child loggers) and,
    through :func:`install_log_redaction`, applied to every record the moment it is created.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_nebula_redacted", False):
            return True
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: keep what we can show
            msg = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(msg), None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info))).rstrip("\n")
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._nebula_redacted = True
        return True


_installed: RedactingFilter | None = None


def install_log_redaction() -> RedactingFilter:
    """Redact every log record of this process (idempotent).

    The filter goes on the root and ``nebula`` loggers and their handlers, and the record factory is
    wrapped so that records of any logger are redacted when created, whichever handler emits them later.
    """
    global _installed
    if _installed is not None:
        return _installed
    flt = RedactingFilter()
    for logger in (logging.getLogger(), logging.getLogger("nebula")):
        logger.addFilter(flt)
        for h in logger.handlers:
            h.addFilter(flt)
    base = logging.getLogRecordFactory()

    def make_record(*args, **kwargs):
        record = base(*args, **kwargs)
        flt.filter(record)
        return record

    logging.setLogRecordFactory(make_record)
    _installed = flt
    return flt
