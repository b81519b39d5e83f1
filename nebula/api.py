"""The library API: ``copy``, ``read_csv``, ``discover`` and :class:`Pipeline`.

Option names match the CLI's (``infer_schema=False``, ``on_error="dead-letter"``, ...).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .pipeline.runner import RunResult
from .schema import Schema
from .types import LogicalType, parse_type

#: destination options given flat like the CLI's (directory/prefix outputs ``out/orders/``, codecs)
_DEST_KEYS = ("partition_by", "max_rows_per_file", "max_file_size", "run_id", "compression", "compression_level")
_SOURCE_KEYS = ("delimiter", "quote", "escape", "header", "names", "skip_rows", "comment", "null_values",
                "quoted_null", "encoding", "block_size", "sample_bytes", "dictionary", "dictionary_max",
                # JSON
                "records_path", "contract", "nested", "separator", "max_depth",
                # PostgreSQL
                "cursor",
                # database sources and CDC (nebula.pipeline.cdc)
                "tables", "cdc", "slot", "publication", "until_caught_up", "max_changes", "max_seconds")
_CDC_KEYS = ("cdc", "slot", "publication", "until_caught_up", "max_changes", "max_seconds")


def _default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def parse_columns(columns) -> dict[str, LogicalType]:
    """``{"qty": "int32"}``, ``["qty:int32"]`` or ``"qty:int32,amount:decimal(12,2)"`` to types."""
    if not columns:
        return {}
    if isinstance(columns, Mapping):
        return {k: v if isinstance(v, LogicalType) else parse_type(str(v)) for k, v in columns.items()}
    if isinstance(columns, str):
        columns = _split_columns(columns)
    out = {}
    for item in columns:
        cut = _type_colon(item)
        name, t = (item[:cut], item[cut + 1:]) if cut > 0 else ("", "")
        if not name.strip() or not t.strip():
            raise ConfigError(f"--column expects name:type, got {item!r}")
        out[name.strip()] = parse_type(t)
    return out


def _type_colon(item: str) -> int:
    """Where ``name:type`` splits: the last ``:`` outside brackets (a name may hold colons; a
    ``struct<a: int64>`` type holds some too); -1 when there is none."""
    depth, at = 0, -1
    for i, ch in enumerate(item):
        if ch in "(<":
            depth += 1
        elif ch in ")>":
            depth -= 1
        elif ch == ":" and depth == 0:
            at = i
    return at


def _split_columns(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "(<":
            depth += 1
        elif ch in ")>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def load_schema_file(path: str) -> Schema:
    """A schema from YAML/JSON: a list of ``{name, type, nullable}`` or a ``{name: type}`` mapping."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the schema file: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    if isinstance(data, dict) and "columns" in data:
        data = data["columns"]
    if not isinstance(data, list | dict) or not data:
        raise ConfigError(f"{path}: a schema is a list of {{name, type}} or a mapping name: type")
    try:
        return Schema.from_dict(data)
    except (KeyError, TypeError) as e:
        raise ConfigError(f"{path}: every column needs a name and a type ({e})") from e


@dataclass
class CopyOptions:
    """Every option of a copy, as the CLI and YAML name them."""

    format: str | None = None
    dest_format: str | None = None
    table: str | None = None
    mode: str | None = None
    key: list[str] | None = None
    schema: Schema | str | None = None
    columns: dict[str, LogicalType] = field(default_factory=dict)
    infer_schema: bool = True
    on_error: str = "fail"
    dead_letter: str | None = None
    max_rejected: int | None = None
    threads: int | None = None
    batch_rows: int | None = None  # None: the source's default_batch_rows
    name: str | None = None
    state: str | None = None
    progress: str = "none"
    audit_log: str | bool | None = None
    config_path: str | None = None
    config_sha256: str | None = None
    resilience: Any = None  # a RetryPolicy (built from a ``resilience`` mapping)
    metrics_port: int | None = None  # serve /metrics and /healthz during the run (nebula.pipeline.serve)
    metrics_host: str = "127.0.0.1"
    alerts: dict[str, float] | None = None  # thresholds (nebula.pipeline.observe)
    source_options: dict[str, Any] = field(default_factory=dict)
    dest_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, **opts) -> CopyOptions:
        src_opts = dict(opts.pop("source_options", None) or opts.pop("options", None) or {})
        dest_opts = dict(opts.pop("dest_options", None) or {})
        for k in _DEST_KEYS:
            v = opts.pop(k, None)
            if v is not None:
                dest_opts[k] = v
        if dest_opts:
            opts["dest_options"] = dest_opts
        for k in _SOURCE_KEYS:
            if k in opts:
                v = opts.pop(k)
                if v is not None:
                    src_opts[k] = v
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(opts) - known)
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
        o = cls(**{k: v for k, v in opts.items() if v is not None}, source_options=src_opts)
        if isinstance(o.key, str):
            o.key = [k.strip() for k in o.key.split(",") if k.strip()]
        o.columns = parse_columns(o.columns)
        if isinstance(o.schema, str | os.PathLike):
            o.schema = load_schema_file(os.fspath(o.schema))
        if o.on_error not in ("fail", "skip", "dead-letter"):
            raise ConfigError(f"--on-error must be fail, skip or dead-letter, got {o.on_error!r}")
        if o.dead_letter and o.on_error != "dead-letter":
            if o.on_error == "skip":
                raise ConfigError("--dead-letter keeps rejected rows, --on-error skip drops them: choose one")
            o.on_error = "dead-letter"  # a place for rejected rows was given: send them there (was ignored)
        if o.mode is not None and o.mode not in ("append", "replace", "merge"):
            raise ConfigError(f"--mode must be append, replace or merge, got {o.mode!r}")
        if o.mode == "merge" and not o.key and not (src_opts.get("cdc") or src_opts.get("tables")):  # tables: the PK
            raise ConfigError("--mode merge needs --key COLUMN[,COLUMN]")
        if o.max_rejected is not None and o.max_rejected < 0:
            raise ConfigError("--max-rejected must be >= 0")
        if o.threads is not None and o.threads < 1:
            raise ConfigError("--threads must be >= 1")
        if o.batch_rows is not None and o.batch_rows < 1:
            raise ConfigError("batch_rows must be >= 1")
        if o.alerts:
            from .pipeline.observe import check_alerts

            o.alerts = check_alerts(o.alerts)
        from .connectors.resilience import RetryPolicy

        o.resilience = RetryPolicy.from_config(o.resilience)
        return o


def make_source(url, o: CopyOptions):
    from .connectors.registry import resolve

    first = url[0] if isinstance(url, list | tuple) else url
    spec = resolve("source", os.fspath(first), o.format)
    cls = spec.load()
    opts = dict(o.source_options)
    if spec.name == "postgresql" and opts.get("cdc"):
        from .connectors.sources.postgres_cdc import PostgresCdcSource as cls  # noqa: N813
    if (o.format or "").lower() == "tsv" or os.fspath(first).lower().split(".gz")[0].endswith(".tsv"):
        opts.setdefault("delimiter", "\t")
    if o.batch_rows is None:  # the source's own default, and the batches of the run are that size too
        o.batch_rows = getattr(cls, "default_batch_rows", 65536)
    opts.update(infer_schema=o.infer_schema, columns=o.columns, schema=o.schema, on_error=o.on_error,
                threads=o.threads or _default_threads(), batch_rows=o.batch_rows)
    return cls(url, options=opts)


def make_destination(url: str, o: CopyOptions):
    from .connectors.registry import resolve

    if url.endswith(("/", os.sep)) or o.dest_options.get("partition_by"):
        from .connectors.destinations.partitioned import PartitionedDestination

        opts = dict(o.dest_options)
        if o.dest_format:
            opts.setdefault("format", o.dest_format)
        return PartitionedDestination(url, options=opts)
    spec = resolve("destination", url, o.dest_format)
    cls = spec.load()
    dest = cls(url, options=dict(o.dest_options))
    if o.dest_options.get("compression_level") is not None and hasattr(dest, "level"):  # a file destination
        from .connectors.destinations._atomic import check_level
        from .connectors.destinations.files import ParquetDestination

        check_level(url, getattr(dest, "compression", None), dest.level, parquet=isinstance(dest, ParquetDestination))
    return dest


def _label(url) -> str:
    from .redact import redact_url

    if isinstance(url, list | tuple):
        return ", ".join(_label(u) for u in url)
    if not isinstance(url, str | bytes | os.PathLike):  # a Destination object that names no location
        return type(url).__name__
    return redact_url(os.fspath(url))


def copy(source, dest, **opts) -> RunResult:
    """Copy everything from ``source`` to ``dest``; returns the run summary.

    ``source``/``dest`` are paths, globs or URLs (``sqlite:///out.db``); ``dest`` may also be a
    Destination object. Options as on the CLI: ``table``, ``mode``, ``key``, ``schema``,
    ``columns``, ``infer_schema``, ``on_error``, ``dead_letter``, ``max_rejected``, ``threads``,
    ``name``, ``state``, ``progress`` ("auto", "none", ...), and CSV options (``delimiter``, ...).
    A ``dest`` ending in ``/`` (or with ``partition_by="country,date(ts)"``) is a directory or object
    prefix of files: ``max_rows_per_file``, ``max_file_size``, ``run_id`` (rerunning one replaces its
    files), ``dest_format`` (parquet by default).
    Every run appends one line to the audit log (:mod:`nebula.audit`): ``audit_log`` is its path, ``False``
    for none; by default ``audit.jsonl`` next to the ``state`` store.

    ``resilience`` (a mapping of :data:`nebula.connectors.resilience.KEYS`, like the YAML ``resilience:``
    block) sets the retries, breakers, rate limits and timeouts of every connection the run makes. A run
    that fails with a retryable error (a connection dropped mid-COPY, an upload or a read cut off) runs
    again from the last committed checkpoint, after the policy's backoff and up to its ``retries``, where
    that can neither duplicate nor lose rows:

    - the destination shows a run only at its commit (PostgreSQL and SQLite: one transaction together with
      the checkpoint, in every mode; files and object stores: written aside and renamed or copied into
      place; partitioned prefixes: staged and published by the manifest, the rerun keeping the run id, so
      it replaces its own files; the in-memory destination), and
    - the failure left nothing committed. When the connection is lost during PostgreSQL's ``COMMIT``
      itself, or the copy of an object onto its final key, the outcome is unknown (``commit_unknown``):
      the run repeats only if repeating is idempotent - mode ``replace`` or ``merge``, or a checkpoint
      saved with the data (a cursor source resumes past what was committed). An ``append`` without a
      checkpoint fails instead, saying to check the destination.

    Not run again: errors already retried to exhaustion where they happened (a connection that could not
    be opened), an open circuit breaker, errors that are not retryable, a run that sent rows to a
    dead-letter file before failing (they would be written twice), anything after the commit, and change
    data capture (its streams reconnect on their own from their last position).
    """
    from .audit import AuditRun, audit_path, options_sha256

    o = CopyOptions.build(**opts)
    _register_secrets(source, dest, o)
    audit = AuditRun(audit_path(o.audit_log, o.state), source=_label(source),
                     destination=_label(dest) if isinstance(dest, str | os.PathLike) else type(dest).__name__,
                     config=o.config_path,
                     config_sha256=o.config_sha256 or options_sha256(source, dest, opts))
    audit.name = o.name
    from .connectors.resilience import use_policy
    from .pipeline.serve import serving

    try:
        with use_policy(o.resilience), serving(o.metrics_port, o.metrics_host):
            result = _copy(source, dest, o, audit)
    except BaseException as e:
        err = _say_where_rejected(e, audit.rejects)
        problem = audit.finish(error=err)
        if problem:
            import logging

            logging.getLogger("nebula.audit").warning(problem)
        if err is not e:
            raise err.with_traceback(e.__traceback__) from None
        raise
    problem = audit.finish(result)
    if problem:
        result.warnings.append(problem)
    return result


@dataclass
class _Attempt:
    """The connectors of the current attempt of a run (a rerun replaces them)."""

    src: Any
    dst: Any
    rejects: Any
    committed: bool = False
    meter: Any = None  # the run's PipelineMeter (metrics, /healthz, alerts), shared by every attempt


def _copy(source, dest, o: CopyOptions, audit) -> RunResult:
    from .connectors.base import Destination
    from .pipeline.deadletter import Rejects

    src = make_source(source, o)
    changes = hasattr(src, "next_round")  # database tables / CDC: rounds, one destination per table
    if not changes and any(o.source_options.get(k) for k in _CDC_KEYS):
        raise ConfigError(f"--cdc, --slot and --until-caught-up need a database source with change data "
                          f"capture (mysql://…, postgresql://…), not {_label(source)}")
    dst = None if changes else dest if isinstance(dest, Destination) else make_destination(os.fspath(dest), o)
    run_id = uuid.uuid4().hex[:12]
    name = o.name or src.name
    if o.on_error == "dead-letter" and not o.dead_letter:
        o.dead_letter = os.path.join(".nebula", "rejected", f"{name}.jsonl")
    rejects = Rejects(o.on_error, o.dead_letter, run_id=run_id, source=_label(source))
    rejects.check_destination(dest)
    audit.name, audit.run_id, audit.rejects = name, run_id, rejects
    store = None
    if o.state:
        from .state import StateStore

        store = StateStore(o.state)
    from .pipeline.observe import PipelineMeter

    run = _Attempt(src, dst, rejects, meter=PipelineMeter(name, source=src, destination=dst, alerts=o.alerts))
    try:
        if changes:
            from .pipeline.cdc import copy_changes

            result = copy_changes(src, _label(source), dest, o, store=store, rejects=rejects, name=name,
                                  meter=run.meter)
            run.meter.finish()
            result.run_id = run_id
            if store is not None:
                _record(store, result)
            return result
        result = _run_with_reruns(source, dest, o, name, store, run, run_id, audit)
        run.meter.finish()
    except BaseException as e:
        run.meter.fail(e)
        if store is not None:
            from .redact import redact

            failed = RunResult(name=name, source=_label(source), destination=_label(dest) if isinstance(
                dest, str | os.PathLike) else type(dest).__name__, status="failed", run_id=run_id,
                rows_rejected=run.rejects.count, warnings=[redact(f"{type(e).__name__}: {e}")])
            try:
                _record(store, failed)
            except Exception:  # noqa: BLE001 - the run's own error matters more
                pass
        raise
    finally:
        try:
            run.rejects.flush()
        finally:
            run.src.close()
    if store is not None:
        _record(store, result)
    return result


def _run_with_reruns(source, dest, o: CopyOptions, name: str, store, run: _Attempt, run_id: str, audit) -> RunResult:
    """One run from the last committed checkpoint; a failure :func:`_rerunnable` runs again (see :func:`copy`)."""
    from .connectors.base import Destination
    from .connectors.resilience import current_policy, endpoint_of, retry_call
    from .pipeline.deadletter import Rejects

    attempts = 0

    def attempt() -> RunResult:
        nonlocal attempts
        attempts += 1
        if attempts > 1:  # fresh connectors: the failed attempt's were aborted and closed
            run.src.close()
            run.src = make_source(source, o)
            if not isinstance(dest, Destination):
                if getattr(run.dst, "run_id", None) and not o.dest_options.get("run_id"):
                    o.dest_options["run_id"] = run.dst.run_id  # a partitioned rerun replaces its own files
                run.dst = make_destination(os.fspath(dest), o)
            run.rejects = audit.rejects = Rejects(o.on_error, o.dead_letter, run_id=run_id, source=_label(source))
        return _run_once(source, dest, o, name, store, run, run_id)

    where = endpoint_of(dest) if isinstance(dest, str | os.PathLike) else type(dest).__name__
    policy = current_policy().replace(deadline=None)  # a long run may fail late: attempts bound the reruns
    return retry_call(attempt, endpoint=where, policy=policy, classify=lambda e: _rerunnable(e, run, o),
                      breaker=False, limiter=False, what="run")


def _run_once(source, dest, o: CopyOptions, name: str, store, run: _Attempt, run_id: str) -> RunResult:
    from .pipeline.progress import make_progress
    from .pipeline.runner import run_pipeline

    src, dst = run.src, run.dst
    # resume from the last checkpoint: the destination's own (saved in its transaction) first
    previous = dst.committed_state(name)
    if previous is None and store is not None:
        previous = store.get(name)
    src.resume(previous)
    src.open()
    progress = make_progress(name, src.total_bytes, o.progress) if o.progress != "none" else None
    mode = o.mode or dst.capabilities.modes[0]  # the destination's default (files: replace)
    result = run_pipeline(src, dst, name=name, threads=o.threads or _default_threads(),
                          batch_rows=o.batch_rows, mode=mode, table=o.table or src.name, key=o.key,
                          rejects=run.rejects, max_rejected=o.max_rejected, progress=progress,
                          source_label=_label(source), dest_label=_label(dst.location() or dest), meter=run.meter)
    run.committed = True
    result.run_id = getattr(dst, "run_id", None) or run_id
    result.destination = _label(dst.location() or dest)
    checkpoint = src.state()
    if checkpoint is not None and store is not None:
        store.set(name, checkpoint)
    return result


def _rerunnable(e: BaseException, run: _Attempt, o: CopyOptions) -> bool:
    """Whether a failed attempt may run again without duplicating or losing rows (the rules in :func:`copy`)."""
    from .connectors.base import Destination
    from .connectors.resilience import is_retryable

    dst = run.dst
    if run.committed or not is_retryable(e) or getattr(e, "attempts", 1) > 1:
        return False
    if not (dst.capabilities.exactly_once or type(dst).__module__.startswith("nebula.connectors.destinations.")):
        return False  # a third-party destination may have shown part of the run
    if getattr(e, "commit_unknown", False) and (o.mode or dst.capabilities.modes[0]) == "append":
        staged = type(dst).committed_state is not Destination.committed_state and run.src.state() is not None
        if not staged:
            return False
    return not (o.on_error == "dead-letter" and run.rejects.count)


def _say_where_rejected(e: BaseException, rejects) -> BaseException:
    """A ``--max-rejected`` failure that also says where the rejected rows were kept."""
    from .errors import TooManyRejected

    where = getattr(rejects, "location", None)
    if isinstance(e, TooManyRejected) and where and where not in e.reason:
        return TooManyRejected(f"{e.reason}; the rejected rows are in {where}")
    return e


def _register_secrets(source, dest, o: CopyOptions) -> None:
    """URL passwords and secret options of this copy join the process-wide secrets (nothing prints them)."""
    from .redact import register_option_secrets, register_url_secrets

    for url in [*(source if isinstance(source, list | tuple) else [source]), dest, o.dead_letter]:
        if isinstance(url, str | os.PathLike):
            register_url_secrets(os.fspath(url))
    register_option_secrets(o.source_options)
    register_option_secrets(o.dest_options)


def _record(store, result: RunResult) -> None:
    from .redact import redact_obj

    store.record_run(result.name, run_id=result.run_id, status=result.status, rows_read=result.rows_read,
                     rows_written=result.rows_written, rows_rejected=result.rows_rejected,
                     bytes_read=result.bytes_read, summary=redact_obj(result.to_dict()))


def read_csv(path, **opts):
    """Read CSV file(s) into a ``pyarrow.Table`` with Nebula's kernels (options as :func:`copy`)."""
    from .connectors.destinations.memory import MemoryDestination

    mem = MemoryDestination()
    opts.setdefault("progress", "none")
    copy(path, mem, **opts)
    return mem.table()


def read_json(path, **opts):
    """Read JSON lines / JSON array file(s) into a ``pyarrow.Table`` with Nebula's kernels.

    Options as :func:`copy`, plus ``records_path`` ("data.items": the records are the array at that
    path of one top-level object), ``contract`` (evolve, freeze, discard-row, discard-value),
    ``max_depth`` and ``separator`` (flattened names, default ``parent__child``). When the schema
    evolves, rows read before the change are cast to the final schema (new columns null for them).
    """
    from .connectors.destinations.memory import MemoryDestination

    mem = MemoryDestination()
    opts.setdefault("progress", "none")
    first = path[0] if isinstance(path, list | tuple) else path
    if not opts.get("format"):
        from .connectors.registry import format_of

        if format_of(os.fspath(first)) not in ("json", "jsonl"):
            opts["format"] = "json"
    copy(path, mem, **opts)
    return mem.table()


def discover(source, **opts) -> Schema:
    """The schema Nebula infers (or is told) for ``source``."""
    o = CopyOptions.build(**opts)
    src = make_source(source, o)
    try:
        src.open()
        return src.schema
    finally:
        src.close()


def config_to_copy_args(cfg) -> tuple[str, str, str, dict]:
    """``(name, source, destination, options)`` of a pipeline config, options named as :func:`copy`'s."""
    o = cfg.to_options()
    src, dst = o.pop("source"), o.pop("destination")
    name = o.pop("name")
    o["source_options"] = o.pop("source_options", None) or {}
    o["dest_options"] = o.pop("destination_options", None) or {}
    o.pop("source_table", None)
    if o.get("schema") is not None:
        o["schema"] = cfg.load_schema()
    if isinstance(o.get("tables"), list):
        o["tables"] = ",".join(o["tables"])
    for k in ("cdc", "until_caught_up"):
        if not o.get(k):
            o.pop(k, None)
    o["name"] = name
    return name, src, dst, {k: v for k, v in o.items() if v is not None}


class Pipeline:
    """A named source → destination job with options; ``run()`` returns a :class:`RunResult`.

    >>> Pipeline("orders", "data/orders.csv", "out/orders.parquet", on_error="skip").run()  # doctest: +SKIP
    """

    def __init__(self, name: str, source, destination, **opts) -> None:
        self.name, self.source, self.destination = name, source, destination
        self.opts = opts
        CopyOptions.build(**opts)  # validate early

    @classmethod
    def from_config(cls, cfg) -> Pipeline:
        """A pipeline from a :class:`~nebula.config.PipelineConfig` (one entry of a YAML file)."""
        name, src, dst, o = config_to_copy_args(cfg)
        o.pop("name", None)
        return cls(name, src, dst, **o)

    def run(self, **overrides) -> RunResult:
        opts = {**self.opts, **overrides}
        opts.setdefault("name", self.name)
        return copy(self.source, self.destination, **opts)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, {self.source!r} -> {self.destination!r})"
