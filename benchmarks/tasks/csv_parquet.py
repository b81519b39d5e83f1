"""CSV → one Parquet file (zstd), one tool per run: ``python -m benchmarks.tasks.csv_parquet --tool T``.

Every tool reads the whole file with its own parser and writes zstd Parquet. ``ts`` becomes a timestamp
for nebula, pyarrow, duckdb, polars-typed and pandas; plain ``polars`` keeps it a string (as it does
without a format), which is cheaper: compare nebula with ``polars-typed``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ._common import BIN, Unsupported, main, run_cli  # noqa: F401

TS_FORMAT = "%Y-%m-%dT%H:%M:%S"


def nebula(args) -> dict:
    argv = [str(BIN / "nebula"), "copy", args.input, args.output, "--no-progress"]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    seconds, _ = run_cli(argv)
    return {"process_seconds": round(seconds, 4)}


def _pa_read_options():
    import pyarrow.csv as pacsv

    return pacsv.ReadOptions(block_size=1 << 24), pacsv.ParseOptions(newlines_in_values=True)


def pyarrow(args) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    ro, po = _pa_read_options()
    table = pacsv.read_csv(args.input, read_options=ro, parse_options=po)
    pq.write_table(table, args.output, compression="zstd")


def pyarrow_stream(args) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    ro, po = _pa_read_options()
    reader = pacsv.open_csv(args.input, read_options=ro, parse_options=po)
    with pq.ParquetWriter(args.output, reader.schema, compression="zstd") as writer:
        for batch in reader:
            writer.write_batch(batch)


def polars(args) -> None:
    import polars as pl

    pl.scan_csv(args.input).sink_parquet(args.output, compression="zstd")


def polars_typed(args) -> None:
    import polars as pl

    (pl.scan_csv(args.input)
     .with_columns(pl.col("ts").str.to_datetime(TS_FORMAT, time_unit="us"))
     .sink_parquet(args.output, compression="zstd"))


def duckdb(args) -> None:
    import duckdb as ddb

    con = ddb.connect()
    src, dst = args.input.replace("'", "''"), args.output.replace("'", "''")
    con.execute(f"COPY (SELECT * FROM read_csv('{src}')) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()


def pandas(args) -> None:
    import pandas as pd

    # keep_default_na=False: the country code "NA" (Namibia) must stay a string; "" is null.
    df = pd.read_csv(args.input, keep_default_na=False, na_values=[""], parse_dates=["ts"],
                     date_format=TS_FORMAT)
    df.to_parquet(args.output, engine="pyarrow", compression="zstd", index=False)


def _dlt_pipeline(args, name: str):
    """A dlt pipeline to a local filesystem destination (parquet), in a throwaway pipelines dir."""
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt

    work = tempfile.mkdtemp(prefix="nebula-bench-dlt-")
    args._dlt_work = work
    pipeline = dlt.pipeline(pipeline_name=name, pipelines_dir=os.path.join(work, "pipelines"),
                            destination=dlt.destinations.filesystem(os.path.join(work, "out")),
                            dataset_name="bench")
    return dlt, pipeline, work


def _dlt_finish(args, work: str, table: str) -> None:
    """Collect the table's parquet file(s) as the output (a directory when dlt wrote several)."""
    from pathlib import Path

    files = sorted(Path(work, "out").rglob(f"{table}/*.parquet"))
    if not files:
        raise RuntimeError(f"dlt wrote no parquet files for table {table!r}")
    if len(files) == 1:
        shutil.move(str(files[0]), args.output)
    else:
        os.makedirs(args.output)
        for f in files:
            shutil.move(str(f), os.path.join(args.output, f.name))
    shutil.rmtree(work, ignore_errors=True)


def dlt(args) -> None:
    """dlt's filesystem source with its DuckDB CSV reader yielding Arrow tables (its fastest CSV path)."""
    dlt_mod, pipeline, work = _dlt_pipeline(args, "bench_csv")
    from dlt.sources.filesystem import filesystem, read_csv_duckdb

    folder, name = os.path.split(os.path.abspath(args.input))
    files = filesystem(bucket_url=folder, file_glob=name)
    orders = (files | read_csv_duckdb(chunk_size=1_000_000, use_pyarrow=True)).with_name("orders")
    pipeline.run(orders, loader_file_format="parquet")
    _dlt_finish(args, work, "orders")


def dlt_rows(args) -> None:
    """dlt's default filesystem CSV reader (pandas chunks turned into dicts, normalized row by row)."""
    dlt_mod, pipeline, work = _dlt_pipeline(args, "bench_csv_rows")
    from dlt.sources.filesystem import filesystem, read_csv

    folder, name = os.path.split(os.path.abspath(args.input))
    files = filesystem(bucket_url=folder, file_glob=name)
    orders = (files | read_csv(keep_default_na=False, na_values=[""])).with_name("orders")
    pipeline.run(orders, loader_file_format="parquet")
    _dlt_finish(args, work, "orders")


TOOLS = {"nebula": nebula, "pyarrow": pyarrow, "pyarrow-stream": pyarrow_stream, "polars": polars,
         "polars-typed": polars_typed, "duckdb": duckdb, "pandas": pandas, "dlt": dlt, "dlt-rows": dlt_rows}

if __name__ == "__main__":
    raise SystemExit(main("csv_parquet", TOOLS))
