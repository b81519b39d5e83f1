"""JSON lines → one Parquet file (zstd), one tool per run: ``python -m benchmarks.tasks.jsonl_parquet --tool T``.

``nebula`` reports "unsupported" while the JSON source does not exist yet (the CLI says so), instead of
failing the whole benchmark run.
"""

from __future__ import annotations

import os

from ._common import BIN, Unsupported, main, run_cli
from .csv_parquet import TS_FORMAT, _dlt_finish, _dlt_pipeline


def nebula(args) -> dict:
    argv = [str(BIN / "nebula"), "copy", args.input, args.output, "--no-progress"]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    try:
        seconds, _ = run_cli(argv)
    except RuntimeError as e:
        msg = str(e)
        if "in this version yet" in msg or "no source" in msg:
            raise Unsupported(msg.split(": ", 1)[-1]) from None
        raise
    return {"process_seconds": round(seconds, 4)}


def pyarrow(args) -> None:
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    table = pajson.read_json(args.input, read_options=pajson.ReadOptions(block_size=1 << 24))
    pq.write_table(table, args.output, compression="zstd")


def polars(args) -> None:
    import polars as pl

    pl.scan_ndjson(args.input).sink_parquet(args.output, compression="zstd")


def polars_typed(args) -> None:
    import polars as pl

    (pl.scan_ndjson(args.input)
     .with_columns(pl.col("ts").str.to_datetime(TS_FORMAT, time_unit="us"))
     .sink_parquet(args.output, compression="zstd"))


def duckdb(args) -> None:
    import duckdb as ddb

    con = ddb.connect()
    src, dst = args.input.replace("'", "''"), args.output.replace("'", "''")
    con.execute(f"COPY (SELECT * FROM read_json('{src}', format='newline_delimited')) TO '{dst}' "
                "(FORMAT parquet, COMPRESSION zstd)")
    con.close()


def dlt(args) -> None:
    """A dlt resource yielding pyarrow record batches (pyarrow's streaming JSON reader): dlt's Arrow path."""
    dlt_mod, pipeline, work = _dlt_pipeline(args, "bench_jsonl")
    import pyarrow.json as pajson

    path = args.input

    @dlt_mod.resource(name="orders")
    def orders():
        yield from pajson.open_json(path, read_options=pajson.ReadOptions(block_size=1 << 24))

    pipeline.run(orders(), loader_file_format="parquet")
    _dlt_finish(args, work, "orders")


def dlt_rows(args) -> None:
    """dlt's default filesystem JSON lines reader (dicts, normalized row by row)."""
    dlt_mod, pipeline, work = _dlt_pipeline(args, "bench_jsonl_rows")
    from dlt.sources.filesystem import filesystem, read_jsonl

    folder, name = os.path.split(os.path.abspath(args.input))
    files = filesystem(bucket_url=folder, file_glob=name)
    pipeline.run((files | read_jsonl(chunksize=10_000)).with_name("orders"), loader_file_format="parquet")
    _dlt_finish(args, work, "orders")


TOOLS = {"nebula": nebula, "pyarrow": pyarrow, "polars": polars, "polars-typed": polars_typed,
         "duckdb": duckdb, "dlt": dlt, "dlt-rows": dlt_rows}

if __name__ == "__main__":
    raise SystemExit(main("jsonl_parquet", TOOLS))
