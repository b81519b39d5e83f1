"""Bytes per record of ``orders`` held in memory as columns: ``python -m benchmarks.tasks.memory --tool T``.

- ``nebula``: ``RunResult.bytes_per_record`` of a copy to a ``NullDestination`` (its own batches).
- ``pyarrow``: ``Table.nbytes / num_rows`` after ``read_csv``; ``pyarrow-dict`` the same with
  ``country`` and ``status`` dictionary-encoded.
- ``polars``: ``DataFrame.estimated_size() / height`` after ``read_csv``.
"""

from __future__ import annotations

from ._common import main


def nebula(args) -> dict:
    import nebula as nb
    from nebula.connectors.destinations.memory import NullDestination

    r = nb.copy(args.input, NullDestination(), threads=args.threads, progress="none")
    return {"rows_written": r.rows_written, "bytes_per_record": r.bytes_per_record}


def _pa_table(args, dictionary: bool):
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(column_types=None)
    if dictionary:
        import pyarrow as pa

        convert = pacsv.ConvertOptions(column_types={"country": pa.dictionary(pa.int32(), pa.string()),
                                                     "status": pa.dictionary(pa.int32(), pa.string())})
    return pacsv.read_csv(args.input, parse_options=pacsv.ParseOptions(newlines_in_values=True),
                          convert_options=convert)


def pyarrow(args) -> dict:
    t = _pa_table(args, False)
    return {"rows_written": t.num_rows, "bytes_per_record": round(t.nbytes / t.num_rows, 2)}


def pyarrow_dict(args) -> dict:
    t = _pa_table(args, True)
    return {"rows_written": t.num_rows, "bytes_per_record": round(t.nbytes / t.num_rows, 2)}


def polars(args) -> dict:
    import polars as pl

    df = pl.read_csv(args.input)
    return {"rows_written": df.height, "bytes_per_record": round(df.estimated_size() / df.height, 2)}


TOOLS = {"nebula": nebula, "pyarrow": pyarrow, "pyarrow-dict": pyarrow_dict, "polars": polars}

if __name__ == "__main__":
    raise SystemExit(main("memory", TOOLS))
