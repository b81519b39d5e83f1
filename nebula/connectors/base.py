"""Source and Destination interfaces, capabilities, and the connector registry.

A pipeline drives connectors like this (threads in brackets)::

    src.open(); schema = src.schema                     [main]
    for chunk in src.read(): ...                        [reader]  raw chunks, in input order
        src.parse(chunk, batch, sink)                   [workers] fills a pooled Batch (GIL released)
        src.release(chunk)
    dst.open(schema, mode); dst.write(batch) ...        [writer]  in seq order
    dst.stage_state(name, src.state()); dst.commit()   [writer]  commit makes output (and state) visible
    or dst.abort()
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ConfigError

CHANGE_OP = "_op"
#: Columns a CDC source adds to every change: ``_op`` ('r' snapshot row, 'c' insert, 'u' update after
#: image, 'd' delete before image), the position (``_pos`` MySQL binlog, ``_lsn`` PostgreSQL) and
#: ``_commit_ts``. In ``merge`` mode a destination applies ``_op == 'd'`` as a delete by key, upserts the
#: other rows, and does not store these columns; in ``append`` mode they are ordinary columns (a change log).
CHANGE_COLUMNS = (CHANGE_OP, "_pos", "_lsn", "_commit_ts")


def data_columns(schema) -> list[str]:
    """The column names of ``schema`` a merge stores (without :data:`CHANGE_COLUMNS` when ``_op`` is there)."""
    if CHANGE_OP not in schema:
        return list(schema.names)
    return [n for n in schema.names if n not in CHANGE_COLUMNS]


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do; shown by ``nebula connectors``. The first of ``modes`` is the default."""

    modes: tuple[str, ...] = ("append",)
    formats: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    cdc: bool = False
    exactly_once: bool = False
    schema_evolution: bool = False
    notes: str = ""


class RejectSink(Protocol):
    """Where a source sends rows it could not parse (dead-letter / skip / fail policy)."""

    def reject(self, *, reason: str, line: int | None, column: str | int | None, offset: int | None,
               raw: bytes) -> None: ...


@dataclass
class ParseStats:
    rows: int = 0
    rejected: int = 0
    bytes: int = 0


class Source(ABC):
    """A stream of raw chunks plus the kernels that parse a chunk into a Batch."""

    capabilities = Capabilities()
    name: str = "source"  # the stream name (default table name)
    default_batch_rows: int = 65536  # rows per batch when the run does not set batch_rows

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect / open files; may read a sample to infer the schema."""

    @property
    @abstractmethod
    def schema(self):
        """The :class:`~nebula.schema.Schema` of the batches this source produces."""

    @abstractmethod
    def read(self) -> Iterator[Any]:
        """Yield raw chunks in input order (called from the reader thread)."""

    @abstractmethod
    def parse(self, chunk: Any, batch, rejects: RejectSink) -> ParseStats:
        """Fill ``batch`` from ``chunk`` (called from worker threads; must be thread-safe)."""

    def release(self, chunk: Any) -> None:  # noqa: B027 - optional hook
        """Give a chunk's buffers back once parsed."""

    def chunk_schema(self, chunk: Any):
        """The schema ``chunk`` is parsed with; None means :attr:`schema` as it was at open."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; called once, also after errors."""

    @property
    def total_bytes(self) -> int | None:
        """Input size if known (for progress/ETA)."""
        return None

    def state(self) -> dict | None:
        """Checkpoint to save after the destination committed (cursor, LSN, offsets)."""
        return None

    def resume(self, state: dict | None) -> None:  # noqa: B027 - optional hook
        """Called before :meth:`open` with the last committed checkpoint of this pipeline (or None)."""


class Destination(ABC):
    """Receives batches in order and makes them visible atomically on :meth:`commit`."""

    capabilities = Capabilities()

    @abstractmethod
    def open(self, schema, *, mode: str = "append", table: str | None = None, key: list[str] | None = None) -> None:
        """Prepare to write rows of ``schema`` (create tables/temp files)."""

    @abstractmethod
    def write(self, batch) -> int:
        """Write one :class:`~nebula.batch.Batch` (its Arrow view is valid only during this call).
        Returns the bytes written (0 if unknown)."""

    @abstractmethod
    def commit(self) -> None:
        """Make everything written visible (rename temp files, COMMIT)."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything written since open; must be safe to call at any point."""

    def holds_batches(self, batch_rows: int) -> int:
        """How many pooled batches this destination may keep after :meth:`write` returns instead of
        copying them (default 0: a batch is the destination's only during ``write``).

        When more than 0, the runner adds that many batches to its pool and calls
        :meth:`bind_release` before the first write; every batch given to ``write`` then belongs to
        the destination, which gives it back exactly once with that function — right away if it
        keeps nothing, after encoding it, or on :meth:`abort`/:meth:`close` — and never keeps more
        than it said at a time (or the parse workers would wait for batches forever).
        """
        return 0

    def bind_release(self, release) -> None:  # noqa: B027 - optional hook
        """Receive the function that returns a kept batch to its pool (see :meth:`holds_batches`)."""

    def stage_state(self, name: str, value: dict) -> None:  # noqa: B027 - optional hook
        """Called right before :meth:`commit` with the pipeline's checkpoint (``source.state()``).

        A destination that can, saves it inside the transaction :meth:`commit` commits (e.g. with
        :meth:`~nebula.state.StateStore.set_in`), so data and checkpoint become visible together.
        """

    def committed_state(self, name: str) -> dict | None:
        """The checkpoint last saved by :meth:`stage_state` and committed, if this destination keeps one."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    def evolve(self, schema) -> None:
        """Switch to ``schema`` (an evolution of the current one: columns added, types widened) for
        the batches that follow; batches already written keep their meaning. Destinations that
        cannot change their schema mid-run keep this default."""
        from ..errors import SchemaEvolutionError

        raise SchemaEvolutionError(f"destination {type(self).__name__} ({self.location() or '?'}) cannot change "
                                   f"its schema during a run; the source's schema changed to: {schema}")

    def location(self) -> str:
        """Where the output is, for the run summary."""
        return ""


@dataclass
class ConnectorSpec:
    name: str
    kind: str  # "source" | "destination"
    target: str  # "module:Class"
    schemes: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    extra: str | None = None  # pip extra providing its client library
    description: str = ""
    options: dict[str, str] = field(default_factory=dict)

    def load(self) -> type:
        mod, _, cls = self.target.partition(":")
        try:
            return getattr(importlib.import_module(mod), cls)
        except ImportError as e:
            hint = f" (install it with: pip install 'nebula[{self.extra}]')" if self.extra else ""
            raise ConfigError(f"connector {self.name!r} needs a missing package: {e.name}{hint}") from e


_REGISTRY: dict[tuple[str, str], ConnectorSpec] = {}


def register(spec: ConnectorSpec) -> None:
    _REGISTRY[(spec.kind, spec.name)] = spec


def connectors(kind: str | None = None, *, plugins: bool = True) -> list[ConnectorSpec]:
    """Every registered connector (of ``kind``), installed plugins included unless ``plugins=False``."""
    _load_builtin()
    if plugins:
        _load_plugins()
    return [s for (k, _), s in sorted(_REGISTRY.items()) if kind is None or k == kind]


def get(kind: str, name: str) -> ConnectorSpec:
    _load_builtin()
    spec = _REGISTRY.get((kind, name))
    if spec is None:  # not built in: installed plugins are looked up only now
        _load_plugins()
        spec = _REGISTRY.get((kind, name))
    if spec is None:
        names = ", ".join(s.name for s in connectors(kind))
        raise ConfigError(f"unknown {kind} {name!r}; known: {names}")
    return spec


_loaded = False
_plugins_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import registry  # noqa: F401  (registers the built-in connectors)


def _load_plugins() -> None:
    """Connectors of installed packages (entry point group ``nebula.connectors``). Scanning every
    installed distribution costs ~40 ms, so a run that names only built-in connectors never does;
    a plugin cannot replace a built-in connector of the same name."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="nebula.connectors"):
            kind, _, name = ep.name.partition(".")
            spec = ConnectorSpec(name=name or kind, kind=kind if name else "source", target=ep.value)
            _REGISTRY.setdefault((spec.kind, spec.name), spec)
    except Exception:  # a broken plugin must not break the CLI
        pass
