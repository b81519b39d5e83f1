"""Typed errors.

Every error Nebula raises on purpose derives from :class:`NebulaError`. Each says whether retrying
could help (``retryable``) and which CLI exit code it maps to (1: the run failed, 2: bad usage/config).
Data errors carry where: ``path``, ``line`` (1-based physical line), ``column`` (name or 1-based
index), ``offset`` (byte offset in the decompressed input) and the raw text when known.
"""

from __future__ import annotations


class NebulaError(Exception):
    """Base of all Nebula errors."""

    retryable: bool = False
    exit_code: int = 1

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class ConfigError(NebulaError):
    """Invalid configuration or usage; ``key`` and ``line`` point into the config when known."""

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None,
                 path: str | None = None) -> None:
        where = []
        if path:
            where.append(str(path) + (f":{line}" if line else ""))
        elif line:
            where.append(f"line {line}")
        if key:
            where.append(f"key '{key}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.key, self.line, self.path = key, line, path


class UsageError(ConfigError):
    """Bad command-line usage."""


class SourceError(NebulaError):
    """A source cannot be opened or read (missing file, directory, permission, unreachable)."""


class DestinationError(NebulaError):
    """A destination cannot be written or committed."""


class ConnectionFailed(NebulaError):
    """A network endpoint could not be reached; retrying may help."""

    retryable = True


class CircuitOpenError(ConnectionFailed):
    """A circuit breaker is open: calls to ``endpoint`` fail fast until ``retry_at`` (epoch seconds).

    ``retryable`` stays true (a later run, after the cool-down, may succeed), but the resilience layer
    never retries it in place: the breaker opened because retrying was not helping.
    """

    def __init__(self, message: str, *, endpoint: str, retry_at: float) -> None:
        super().__init__(message)
        self.endpoint, self.retry_at = endpoint, retry_at


class HttpError(NebulaError):
    """An HTTP API answered with an error ``status``; ``retry_after`` is its ``Retry-After`` in seconds (or None).

    Retryable for 408, 425, 429 and 5xx (not 501/505); any other 4xx is not, and the message carries the
    API's own explanation.
    """

    def __init__(self, message: str, *, status: int, url: str = "", retry_after: float | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(message, retryable=retryable)
        self.status, self.url, self.retry_after = status, url, retry_after


class Interrupted(NebulaError):
    """The run was stopped (Ctrl-C / SIGTERM); nothing half-written was left visible."""

    exit_code = 130


class DataError(NebulaError):
    """Bad input data, located precisely."""

    def __init__(self, reason: str, *, path: str | None = None, line: int | None = None,
                 column: str | int | None = None, offset: int | None = None,
                 raw: bytes | None = None) -> None:
        self.reason, self.path, self.line = reason, path, line
        self.column, self.offset, self.raw = column, offset, raw
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(str(self.path))
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column!r}" if isinstance(self.column, str) else f"column {self.column}")
        if self.offset is not None:
            parts.append(f"byte {self.offset}")
        where = ", ".join(parts)
        return f"{where}: {self.reason}" if where else self.reason


class ParseError(DataError):
    """The bytes are not valid in the input format (CSV/JSON syntax, encoding)."""


class TypeCoercionError(DataError):
    """A value does not fit the column's declared or inferred type."""


class SchemaError(NebulaError):
    """A schema is invalid or cannot evolve as asked."""

    exit_code = 1


class SchemaEvolutionError(SchemaError):
    """An incoming schema change is not allowed by the evolution rules."""


class TooManyRejected(DataError):
    """More rows were rejected than ``--max-rejected`` allows."""


__all__ = [
    "NebulaError", "ConfigError", "UsageError", "SourceError", "DestinationError", "ConnectionFailed",
    "CircuitOpenError", "HttpError", "Interrupted", "DataError", "ParseError", "TypeCoercionError", "SchemaError",
    "SchemaEvolutionError", "TooManyRejected",
]
