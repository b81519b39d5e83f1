"""The ``nebula`` command (typer). Heavy modules are imported inside commands only.

Exit codes: 0 success; 1 the run failed (data or connection); 2 bad usage or config.
Errors are one line on stderr; a traceback only with ``--debug``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from . import __version__

app = typer.Typer(name="nebula", help="Nebula: move records from sources to destinations, fast.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})
state_app = typer.Typer(help="Show or reset checkpoints and run history.", no_args_is_help=True)
app.add_typer(state_app, name="state")
cdc_app = typer.Typer(help="Change data capture operations.", no_args_is_help=True)
app.add_typer(cdc_app, name="cdc")

_debug = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nebula {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                 help="Print the version and exit.")] = False) -> None:
    """Nebula: move records from sources to destinations, fast."""
    from .redact import install_log_redaction

    install_log_redaction()


def _warn(warnings) -> None:
    from .redact import redact

    for w in warnings:
        typer.echo(f"nebula: warning: {redact(w)}", err=True)


def _fail(e: BaseException) -> None:
    """Print one line for ``e`` and exit with its code (removing this process's uncommitted temp files)."""
    from .errors import NebulaError

    atomic = sys.modules.get("nebula.connectors.destinations._atomic")
    if atomic is not None:  # a file destination was used: no half-written temp file may stay behind
        try:
            atomic.sweep_temp_files()
        except Exception:  # noqa: BLE001 - the run's own error matters more
            pass

    if _debug:
        try:
            from .redact import format_exception

            sys.stderr.write(format_exception(e))
        except Exception:  # noqa: BLE001 - never print an unredacted traceback
            sys.stderr.write("(the traceback could not be redacted)\n")
    if isinstance(e, NebulaError):
        msg, code = str(e), e.exit_code
    elif isinstance(e, KeyboardInterrupt):
        msg, code = "interrupted", 130
    elif isinstance(e, MemoryError):
        msg, code = "out of memory", 1
    else:
        msg, code = f"internal error: {type(e).__name__}: {e} (run with --debug for details)", 1
    try:
        from .redact import redact

        msg = redact(msg)
    except Exception:  # noqa: BLE001
        pass
    typer.echo(f"nebula: error: {msg}", err=True)
    raise typer.Exit(code)


def _key_values(items: list[str] | None, flag: str) -> dict[str, str] | None:
    """``["a=1", "b=2"]`` as ``{"a": "1", "b": "2"}`` (values are checked by whoever takes them)."""
    from .errors import UsageError

    if not items:
        return None
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _summary(result, as_json: bool) -> None:
    from .redact import redact, redact_obj

    if as_json:
        typer.echo(json.dumps(redact_obj(result.to_dict())))
        return
    rate = f"{result.rows_per_second:,.0f} rows/s" if result.seconds else ""
    lines = [("bold green", "✓", f"{redact(result.name)}: {result.rows_written:,} rows written to "
                                 f"{redact(result.destination)} in {result.seconds:.2f}s ({rate})")]
    if result.rows_rejected:
        where = f", see {redact(result.dead_letter)}" if result.dead_letter else ""
        lines.append(("yellow", "!", f"{result.rows_rejected:,} rows rejected{where}"))
    lines += [("yellow", "!", redact(w)) for w in result.warnings]
    if not sys.stdout.isatty():  # a log or a pipe: whole lines, no colour (and no rich import, ~20 ms)
        for _style, mark, text in lines:
            typer.echo(f"{mark} {text}")
        return
    from rich.console import Console
    from rich.markup import escape

    c = Console(stderr=False, highlight=False)
    for style, mark, text in lines:
        c.print(f"[{style}]{mark}[/] {escape(text)}")


Opt = typer.Option


@app.command("copy")
def copy_cmd(
    paths: Annotated[list[str], typer.Argument(help="SOURCE [SOURCE...] DEST: paths, globs or URLs.",
                                               metavar="SOURCE DEST")],
    format: Annotated[str | None, Opt("--format", "-f", help="Source format (csv, tsv, jsonl, ...).")] = None,
    dest_format: Annotated[str | None, Opt(help="Destination format if the extension does not tell.")] = None,
    table: Annotated[str | None, Opt(help="Destination table (default: the source stream's name).")] = None,
    mode: Annotated[str | None, Opt(help="append | replace | merge (default: replace for files, append for tables).")] = None,
    key: Annotated[str | None, Opt(help="Key column(s) for merge: COL[,COL].")] = None,
    schema: Annotated[str | None, Opt(help="Schema file (YAML/JSON: list of name/type).")] = None,
    column: Annotated[list[str] | None, Opt("--column", "-c", help="Column type override name:type.")] = None,
    infer_schema: Annotated[bool, Opt("--infer-schema/--no-infer-schema",
                                      help="Infer column types (off: every column is a string).")] = True,
    on_error: Annotated[str, Opt(help="fail | skip | dead-letter for rows that do not parse.")] = "fail",
    dead_letter: Annotated[str | None, Opt(help="Where rejected rows go: a JSON lines file, sqlite:///db.db or "
                                                "postgresql://… (#table, default nebula_rejected); "
                                                "implies --on-error dead-letter.")] = None,
    max_rejected: Annotated[int | None, Opt(help="Fail when more rows than this are rejected.")] = None,
    threads: Annotated[int | None, Opt(help="Parse threads (default: all cores).")] = None,
    name: Annotated[str | None, Opt(help="Pipeline/state name.")] = None,
    state: Annotated[str, Opt(help="State store path.")] = ".nebula/state.db",
    audit_log: Annotated[str | None, Opt(help="Audit log (JSON lines; default: audit.jsonl next to the state "
                                              "store).")] = None,
    no_audit: Annotated[bool, Opt("--no-audit", help="Write no audit log line for this run.")] = False,
    delimiter: Annotated[str | None, Opt(help="CSV delimiter (\\t for tab).")] = None,
    quote: Annotated[str | None, Opt(help="CSV quote character.")] = None,
    escape: Annotated[str | None, Opt(help="CSV escape character (default: none, quotes are doubled).")] = None,
    header: Annotated[bool, Opt("--header/--no-header", help="The first row holds column names.")] = True,
    skip_rows: Annotated[int, Opt(help="Lines to skip before the header.")] = 0,
    comment: Annotated[str | None, Opt(help="Lines starting with this character are skipped.")] = None,
    null_value: Annotated[list[str] | None, Opt("--null-value", help="Null marker (repeatable).")] = None,
    batch_rows: Annotated[int | None, Opt(help="Rows per batch (default: 65,536; JSON sources 16,384).")] = None,
    records_path: Annotated[str | None, Opt(help="JSON: the records are the array at this path (data.items).")] = None,
    cursor: Annotated[str | None, Opt(help="Database source: read only rows past the saved value of this "
                                            "column (incremental).")] = None,
    contract: Annotated[str | None, Opt(help="Schema changes: evolve | freeze | discard-row | discard-value.")] = None,
    nested: Annotated[str | None, Opt(help="JSON objects/arrays: flatten (a__b columns) | keep (structs/lists).")] = None,
    cdc: Annotated[bool, Opt(help="Change data capture (database sources).")] = False,
    slot: Annotated[str | None, Opt(help="Replication slot name (CDC).")] = None,
    publication: Annotated[str | None, Opt(help="PostgreSQL CDC: publication name (default: the slot's).")] = None,
    tables: Annotated[str | None, Opt(help="Tables to capture (CDC).")] = None,
    until_caught_up: Annotated[bool, Opt(help="Stop once caught up (CDC).")] = False,
    metrics_port: Annotated[int | None, Opt(help="Serve /metrics and /healthz on this port while the run lasts.",
                                            min=1, max=65535)] = None,
    metrics_host: Annotated[str, Opt(help="Address --metrics-port listens on.")] = "127.0.0.1",
    resilience: Annotated[list[str] | None, Opt(
        help="Retries, circuit breaker, rate limit: KEY=VALUE (repeatable) with the keys of YAML's resilience: "
             "block, e.g. --resilience retries=8 --resilience breaker_cooldown=60.")] = None,
    partition_by: Annotated[str | None, Opt(help="Directory output: Hive partitions by these columns, "
                                                 "e.g. country,date(ts).")] = None,
    max_rows_per_file: Annotated[int | None, Opt(help="Directory output: start a new file after N rows.")] = None,
    max_file_size: Annotated[str | None, Opt(help="Directory output: start a new file after about this size "
                                                  "(128MB, 1GiB).")] = None,
    run_id: Annotated[str | None, Opt(help="Directory output: the run id in file names; rerunning it replaces "
                                           "its files.")] = None,
    compression: Annotated[str | None, Opt(help="Output codec: Parquet zstd (default) | lz4 | snappy | gzip | none; "
                                                "CSV/JSON lines gzip | zstd | lz4 | none (default: from .gz/.zst/.lz4).")] = None,
    compression_level: Annotated[int | None, Opt(help="Codec level (the codec's default if not given).")] = None,
    progress: Annotated[bool, Opt("--progress/--no-progress", help="Show progress.")] = True,
    as_json: Annotated[bool, Opt("--json", help="Print the run summary as one JSON object.")] = False,
    debug: Annotated[bool, Opt(help="Tracebacks on errors.")] = False,
) -> None:
    """Copy SOURCE to DEST: nebula copy orders.csv orders.parquet"""
    global _debug
    _debug = debug
    try:
        from .errors import UsageError

        if len(paths) < 2:
            raise UsageError("copy needs a SOURCE and a DEST")
        if no_audit and audit_log:
            raise UsageError("--audit-log and --no-audit contradict each other")
        *sources, dest = paths
        source = sources[0] if len(sources) == 1 else sources
        from .api import copy

        if delimiter == "\\t":
            delimiter = "\t"
        result = copy(source, dest, format=format, dest_format=dest_format, table=table, mode=mode, key=key,
                      schema=schema, columns=column or None, infer_schema=infer_schema, on_error=on_error,
                      dead_letter=dead_letter, max_rejected=max_rejected, threads=threads, name=name,
                      state=state, audit_log=False if no_audit else audit_log, delimiter=delimiter, quote=quote,
                      escape=escape,
                      header=None if header else False, skip_rows=skip_rows or None, comment=comment,
                      null_values=null_value or None, batch_rows=batch_rows, records_path=records_path,
                      contract=contract, nested=nested, cursor=cursor,
                      progress="auto" if progress and not as_json else "none",
                      cdc=cdc or None, slot=slot, publication=publication, tables=tables, until_caught_up=until_caught_up or None,
                      partition_by=partition_by, max_rows_per_file=max_rows_per_file, max_file_size=max_file_size,
                      run_id=run_id, compression=compression, compression_level=compression_level,
                      metrics_port=metrics_port, metrics_host=metrics_host,
                      resilience=_key_values(resilience, "--resilience"))
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        _fail(e)
    _summary(result, as_json)


@app.command("run")
def run_cmd(
    config: Annotated[str, typer.Argument(help="Pipeline YAML file.")],
    only: Annotated[list[str] | None, Opt("--only", help="Run only this pipeline (repeatable).")] = None,
    state: Annotated[str | None, Opt(help="State store path (default: from the file or .nebula/state.db).")] = None,
    audit_log: Annotated[str | None, Opt(help="Audit log (default: from the file or audit.jsonl next to the "
                                              "state store).")] = None,
    no_audit: Annotated[bool, Opt("--no-audit", help="Write no audit log lines.")] = False,
    metrics_port: Annotated[int | None, Opt(help="Serve /metrics and /healthz on this port while each pipeline "
                                                 "runs (default: the file's metrics_port).", min=1, max=65535)] = None,
    metrics_host: Annotated[str | None, Opt(help="Address --metrics-port listens on (default 127.0.0.1).")] = None,
    progress: Annotated[bool, Opt("--progress/--no-progress")] = True,
    as_json: Annotated[bool, Opt("--json", help="Print one JSON summary per pipeline.")] = False,
    debug: Annotated[bool, Opt()] = False,
) -> None:
    """Run the pipelines of a YAML file."""
    global _debug
    _debug = debug
    try:
        from .api import Pipeline
        from .config import load_config
        from .errors import UsageError

        if no_audit and audit_log:
            raise UsageError("--audit-log and --no-audit contradict each other")
        cfg = load_config(config)
        _warn(cfg.warnings)
        pipes = [cfg.get(n) for n in only] if only else list(cfg.pipelines)
        audit = False if no_audit else audit_log or cfg.audit_log
        results = []
        for pc in pipes:
            p = Pipeline.from_config(pc)
            serve = {k: v for k, v in (("metrics_port", metrics_port), ("metrics_host", metrics_host)) if v}
            r = p.run(state=state or cfg.state or ".nebula/state.db", audit_log=audit, config_path=cfg.path,
                      config_sha256=cfg.sha256, progress="auto" if progress and not as_json else "none", **serve)
            results.append(r)
            _summary(r, as_json)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        _fail(e)


@app.command("check")
def check_cmd(
    config: Annotated[str, typer.Argument(help="Pipeline YAML file.")],
    as_json: Annotated[bool, Opt("--json", help="Print the reports as one JSON list.")] = False,
    timeout: Annotated[float, Opt(help="Seconds each check may take before it counts as failing.", min=0.1)] = 10.0,
    debug: Annotated[bool, Opt()] = False,
) -> None:
    """Validate a config and check every source and destination: healthy, degraded or failing (exit 1)."""
    global _debug
    _debug = debug
    try:
        from .config import load_config
        from .health import check_config

        cfg = load_config(config)
        _warn(cfg.warnings)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        _fail(e)
    from .redact import redact_obj

    reports = redact_obj(check_config(cfg, timeout=timeout))
    bad = [r for r in reports if r["status"] == "failing"]
    if as_json:
        typer.echo(json.dumps(reports))
    else:
        for r in reports:
            mark = {"healthy": "✓", "degraded": "~", "failing": "✗"}[r["status"]]
            typer.echo(f"{mark} {r['pipeline']} {r['role']} {r['target']}: {r['status']}"
                       + (f" ({r['reason']})" if r.get("reason") else "") + f" [{r['seconds']:.2f}s]")
    raise typer.Exit(1 if bad else 0)


@app.command("discover")
def discover_cmd(
    source: Annotated[str, typer.Argument(help="A path, glob or URL.")],
    format: Annotated[str | None, Opt("--format", "-f")] = None,
    infer_schema: Annotated[bool, Opt("--infer-schema/--no-infer-schema")] = True,
    delimiter: Annotated[str | None, Opt(help="CSV delimiter (\\t for tab).")] = None,
    quote: Annotated[str | None, Opt(help="CSV quote character.")] = None,
    escape: Annotated[str | None, Opt(help="CSV escape character.")] = None,
    header: Annotated[bool, Opt("--header/--no-header")] = True,
    skip_rows: Annotated[int, Opt(help="Lines to skip before the header.")] = 0,
    comment: Annotated[str | None, Opt(help="Lines starting with this character are skipped.")] = None,
    null_value: Annotated[list[str] | None, Opt("--null-value", help="Null marker (repeatable).")] = None,
    schema_file: Annotated[str | None, Opt("--schema", help="Schema file (YAML/JSON: list of name/type).")] = None,
    column: Annotated[list[str] | None, Opt("--column", "-c", help="Column type override name:type.")] = None,
    nested: Annotated[str | None, Opt(help="JSON objects/arrays: flatten | keep (structs/lists).")] = None,
    as_json: Annotated[bool, Opt("--json")] = False,
    debug: Annotated[bool, Opt()] = False,
) -> None:
    """Show the streams, columns and inferred types of SOURCE (read with copy's source options)."""
    global _debug
    _debug = debug
    try:
        from .api import discover

        if delimiter == "\\t":
            delimiter = "\t"
        schema = discover(source, format=format, infer_schema=infer_schema, delimiter=delimiter, quote=quote,
                          escape=escape, header=None if header else False, skip_rows=skip_rows or None,
                          comment=comment, null_values=null_value or None, schema=schema_file,
                          columns=column or None, nested=nested)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        _fail(e)
    if as_json:
        typer.echo(json.dumps({"source": source, "columns": schema.to_dict()}))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=source)
    t.add_column("column")
    t.add_column("type")
    t.add_column("nullable")
    for f in schema:
        t.add_row(f.name, str(f.type), "yes" if f.nullable else "no")
    Console().print(t)


@app.command("connectors")
def connectors_cmd(as_json: Annotated[bool, Opt("--json")] = False) -> None:
    """List every source and destination with its capabilities."""
    from .connectors.base import connectors

    specs = connectors()

    def modes(s) -> list[str]:
        try:
            return list(s.load().capabilities.modes) if s.kind == "destination" else []
        except Exception:  # noqa: BLE001 - a connector whose client library is missing still gets listed
            return []

    if as_json:
        typer.echo(json.dumps([{"name": s.name, "kind": s.kind, "schemes": list(s.schemes),
                                "extensions": list(s.extensions), "modes": modes(s), "description": s.description}
                               for s in specs]))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Nebula connectors")
    for c in ("kind", "name", "schemes / extensions", "modes", "description"):
        t.add_column(c)
    for s in specs:
        t.add_row(s.kind, s.name, " ".join([*(f"{x}://" for x in s.schemes if x != "file"), *s.extensions]),
                  " ".join(modes(s)), s.description)
    Console().print(t)


@state_app.command("show")
def state_show(
    name: Annotated[str | None, typer.Argument(help="Pipeline name (default: all).")] = None,
    state: Annotated[str, Opt(help="State store path.")] = ".nebula/state.db",
    as_json: Annotated[bool, Opt("--json")] = False,
) -> None:
    """Show checkpoints and the latest runs."""
    try:
        from .state import StateStore

        if not os.path.exists(state):
            from .errors import ConfigError

            raise ConfigError(f"{state}: no state store here yet (it is created by the first run)")
        store = StateStore(state)
        items = [(n, v, u) for n, v, u in store.list() if name is None or n == name]
        runs = store.runs(name, limit=10)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        _fail(e)
    from .redact import redact, redact_obj

    slots = {n: redact_obj(_slot_status(v)) for n, v, _ in items}
    items = [(n, redact_obj(v), u) for n, v, u in items]
    runs = redact_obj(runs)
    if as_json:
        typer.echo(json.dumps({"state": [{"name": n, "value": v, "updated_at": u, **(
            {"slot": slots[n]} if slots[n] else {})} for n, v, u in items], "runs": runs}, default=str))
        return
    if not items and not runs:
        typer.echo("no state" + (f" for {redact(name)!r}" if name else ""))
    for n, v, u in items:
        typer.echo(f"{n}: {json.dumps(v)} (updated {u})")
        st = slots[n]
        if st:
            typer.echo(f"  slot {st['slot']}: last LSN {v.get('lsn_text') or v['lsn']}, " + (
                f"lag {st['lag_bytes']} bytes (wal_status {st['wal_status']}, "
                f"{'active' if st['active'] else 'idle'})" if "error" not in st else st["error"]))
    for r in runs:
        typer.echo(f"run {r['run_id']} {r['name']} {r['status']} read={r['rows_read']} "
                   f"written={r['rows_written']} rejected={r['rows_rejected']} at {r['finished_at']}")


def _slot_status(value) -> dict | None:
    """A PostgreSQL CDC checkpoint's slot status (lag), None for other checkpoints; never raises."""
    if not isinstance(value, dict) or value.get("lsn") is None or not value.get("url") or not value.get("slot"):
        return None
    from .connectors.sources.postgres_cdc import slot_status

    return slot_status(value)


@state_app.command("reset")
def state_reset(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    state: Annotated[str, Opt(help="State store path.")] = ".nebula/state.db",
) -> None:
    """Forget a pipeline's checkpoint (the next run starts from scratch); a PostgreSQL CDC checkpoint's
    replication slot and publication are dropped too (when the server is reachable)."""
    try:
        from .state import StateStore

        store = StateStore(state)
        value = store.get(name)
        removed = store.delete(name)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        _fail(e)
    typer.echo(f"reset {name}" if removed else f"no checkpoint named {name!r}")
    if _slot_status(value) is not None:
        from .connectors.sources.postgres_cdc import drop_slot

        try:
            done = drop_slot(value["url"], value["slot"], value.get("publication"), timeout=3)
            typer.echo(f"dropped {', '.join(done)}" if done else f"slot {value['slot']} was already gone")
        except Exception as e:  # noqa: BLE001 - the checkpoint is reset either way
            from .redact import redact

            typer.echo(f"could not drop slot {value['slot']} ({redact(str(e))}); drop it with: nebula cdc drop "
                       f"--slot {value['slot']} --url URL", err=True)


@cdc_app.command("drop")
def cdc_drop(
    slot: Annotated[str, Opt(help="Replication slot name.")],
    url: Annotated[str, Opt(help="postgresql:// URL of the source database.")],
    publication: Annotated[str | None, Opt(help="Publication (default: named like the slot).")] = None,
) -> None:
    """Drop a PostgreSQL CDC pipeline's replication slot and publication (the server stops keeping WAL for it)."""
    try:
        from .connectors.sources.postgres_cdc import drop_slot

        done = drop_slot(url, slot, publication)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        _fail(e)
    typer.echo(f"dropped {', '.join(done)}" if done else f"nothing to drop: no slot or publication {slot!r}")


@app.command("init")
def init_cmd(
    name: Annotated[str, typer.Argument(help="Pipeline name; writes NAME.yml and NAME.ipynb.")],
    force: Annotated[bool, Opt(help="Overwrite existing files.")] = False,
) -> None:
    """Scaffold a pipeline YAML and a notebook."""
    try:
        from .scaffold import scaffold

        written = scaffold(name, force=force)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        _fail(e)
    for p in written:
        typer.echo(f"wrote {p}")


@app.command("demo")
def demo_cmd(
    rows: Annotated[int, Opt(help="Rows of sample orders data.")] = 100_000,
    out: Annotated[str, Opt(help="Output directory.")] = "demo-output",
    as_json: Annotated[bool, Opt("--json")] = False,
    debug: Annotated[bool, Opt()] = False,
) -> None:
    """The embedded default: sample orders data -> Parquet + SQLite."""
    global _debug
    _debug = debug
    try:
        from .demo import run_demo

        results = run_demo(rows=rows, out=out, progress=not as_json)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        _fail(e)
    for r in results:
        _summary(r, as_json)
    if not as_json:
        typer.echo(f"output in {os.path.abspath(out)}/ (orders.parquet, orders.db table 'orders')")


def main() -> None:
    code = 0
    try:
        app()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    except KeyboardInterrupt:
        typer.echo("nebula: interrupted", err=True)
        code = 130
    except Exception as e:  # noqa: BLE001 - an error outside a command's own handler: still one redacted line
        from .redact import format_exception, redact

        if _debug:
            sys.stderr.write(format_exception(e))
        typer.echo(f"nebula: error: internal error: {type(e).__name__}: {redact(str(e))} (run with --debug for "
                   "details)", err=True)
        code = 1
    # Everything is committed and closed by now: skip the interpreter's teardown of numba/pyarrow
    # (~0.2 s). Coverage and other atexit users can ask for a normal exit.
    sys.stdout.flush()
    sys.stderr.flush()
    if os.environ.get("NEBULA_NORMAL_EXIT") or "coverage" in sys.modules:
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    main()
