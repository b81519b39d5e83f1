"""Compile every kernel once into Numba's on-disk cache (run at install time).

``python -m nebula.warmup`` calls each kernel on tiny inputs of every dtype the engine uses, so a
user's first real run loads machine code from the cache instead of compiling it.
"""

from __future__ import annotations

import os
import tempfile
import time


def warm() -> float:
    t0 = time.perf_counter()
    from .api import read_csv

    text = ("i,f,b,d,ts,tz,s,dec\n1,1.5,true,2024-01-01,2024-01-01T00:00:00,2024-01-01T00:00:00Z,x,1.25\n"
            ",,,,,,,\n")
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "w.csv")
        with open(p, "w") as f:
            f.write(text)
        cols = {"dec": "decimal(10,2)"}
        read_csv(p, columns=cols)
        for t in ("int8", "int16", "int32", "float32"):
            read_csv(p, columns={"i": t, "f": t if t == "float32" else "float64", **cols})
        from . import api

        for ext in ("csv", "jsonl", "parquet"):
            api.copy(p, os.path.join(d, f"out.{ext}"), columns=cols)
        api.copy(p, f"sqlite:///{os.path.join(d, 'out.db')}", columns=cols)
        for t in ("int16", "int32", "int64", "float32"):  # PostgreSQL binary COPY both ways, every width
            api.copy(p, _copy_encoder(), columns={"i": t, "f": t if t == "float32" else "float64", **cols})
        # the JSON kernels: flat, nested, arrays, escapes, every scalar type
        j = os.path.join(d, "w.jsonl")
        with open(j, "w") as f:
            f.write('{"i":1,"f":1.5,"b":true,"s":"x\\u00e9","n":null,"o":{"k":2},"a":[1,2],"ts":"2024-01-01T00:00:00"}\n'
                    '{"i":2,"f":2,"b":false,"s":"y","n":null,"o":{"k":3},"a":[],"ts":"2024-01-02T00:00:00Z"}\n')
        api.read_json(j)
        api.read_json(j, nested="keep")  # the struct/list event kernels
        api.copy(j, os.path.join(d, "j.parquet"))
        arr = os.path.join(d, "w.json")
        with open(arr, "w") as f:
            f.write('[{"i":1},{"i":2}]')
        api.read_json(arr)
        # the paths of `make demo` and the benchmarks on real-looking data: dictionary-encoded text
        # columns (CSV and JSON), timestamp and date columns from JSON, every destination format
        from .sample import generate

        for fmt in ("csv", "jsonl"):
            src = generate(os.path.join(d, f"orders.{fmt}"), 3000, fmt)
            for ext in ("parquet", "csv", "jsonl"):
                api.copy(str(src), os.path.join(d, f"orders-{fmt}.{ext}"))
            api.copy(str(src), f"sqlite:///{os.path.join(d, 'orders.db')}", table=f"orders_{fmt}")
        api.copy(str(src), os.path.join(d, "parts") + "/", partition_by="country,date(ts)")
        api.copy(str(src), _copy_encoder())  # PostgreSQL's binary COPY, without a server
        dates = os.path.join(d, "dates.jsonl")
        with open(dates, "w") as f:
            f.writelines(f'{{"d":"2024-01-{1 + i % 28:02d}","t":"2024-01-01T00:00:{i % 60:02d}Z"}}\n'
                         for i in range(100))
        api.read_json(dates)
    _warm_change_streams()
    return time.perf_counter() - t0


def _warm_change_streams() -> None:
    """The PostgreSQL change-stream decoders, and the merge compaction's hashing over every column kind."""
    import datetime
    import decimal

    import pyarrow as pa

    from .connectors.sources.postgres_cdc import warm_kernels
    from .pipeline.cdc import compact_last_by_key

    warm_kernels()
    rb = pa.RecordBatch.from_pydict({
        "i": pa.array([1, 1, None, 2], pa.int32()), "s": pa.array(["a", "a", None, "b"]),
        "d": pa.array([decimal.Decimal("1.5")] * 2 + [None, decimal.Decimal("2")], pa.decimal128(10, 2)),
        "f": pa.array([1.5, 1.5, None, 2.0]), "b": pa.array([True, True, None, False]),
        "t": pa.array([datetime.datetime(2024, 1, 1)] * 2 + [None, datetime.datetime(2024, 1, 2)]),
        "day": pa.array([datetime.date(2024, 1, 1)] * 2 + [None, datetime.date(2024, 1, 2)]),
        "k": pa.array(["x", "x", None, "y"]).dictionary_encode(),
    })
    for key in rb.schema.names:
        assert compact_last_by_key(rb, [key]).num_rows == 3


def _copy_encoder():
    """A destination that runs the PostgreSQL destination's binary COPY encoder over every batch, then
    the PostgreSQL source's decoder over what it encoded (as the table the destination would create
    reads back), and sends nothing: both sides' kernels get compiled without a server."""
    from .batch import Batch
    from .connectors.base import Destination
    from .connectors.destinations.postgres import BinaryCopyEncoder, PostgresDestination, _plan_for
    from .connectors.sources.postgres import PostgresSource, _Chunk, _logical
    from .kernels.pgcopy import HEADER, TRAILER
    from .schema import Field, Schema

    class CopyEncoder(Destination):
        def open(self, schema, *, mode="append", table=None, key=None) -> None:
            names = [PostgresDestination._pg_name(f.type) for f in schema]
            self.encoder = BinaryCopyEncoder(schema, [_plan_for(f.type, *n) for f, n in zip(schema, names, strict=True)])
            self.source = PostgresSource("postgresql://127.0.0.1/warmup", options={"table": "warmup"})
            self.source._schema = Schema(Field(f.name, _logical(n[0], n[1])[0]) for f, n in zip(schema, names,
                                                                                               strict=True))
            self.source._skips = [0] * len(schema)

        def write(self, batch) -> int:
            size = rows = 0
            for part in self.encoder.encode(batch):  # one part per CHUNK_ROWS rows
                size += int(part.shape[0])
                back = Batch(self.source.schema, max(1, batch.length))
                self.source.parse(_Chunk(HEADER + part.tobytes() + TRAILER, True, 0), back, None)
                rows += back.length
            if rows != batch.length:
                raise AssertionError(f"warm-up: {batch.length} rows encoded, {rows} decoded")
            return size

        def commit(self) -> None:
            pass

        def abort(self) -> None:
            pass

    return CopyEncoder()


if __name__ == "__main__":
    print(f"nebula: kernels compiled and cached in {warm():.1f}s")
