"""Do the parse kernels scale with threads? ``python -m benchmarks.kernel_scaling [--rows N]``.

The CSV file is read and tokenized into chunks first (not timed); then every chunk is parsed into a
batch by the same code the pipeline's workers run (``parse_tokens``: all column kernels, GIL released),
once on 1 thread and once on 2, each the best of ``--repeat``. Prints one JSON line with both times
and the ratio (target: >= 1.7 on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernel_scaling")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from nebula.batch import Batch
    from nebula.connectors.base import ParseStats
    from nebula.connectors.sources._csv_parse import parse_tokens
    from nebula.connectors.sources.csv import CsvSource
    from nebula.sample import generate

    path = generate(f"benchmarks/data/orders_{args.rows}.csv", args.rows)
    src = CsvSource(str(path), options={"threads": 2, "batch_rows": 65536})
    src.open()
    # keep every chunk (and its block) alive: a private pool big enough for the whole file
    from nebula.connectors.sources import csv as csvmod
    from nebula.pool import Pool

    nchunks = args.rows // 40_000 + 8
    ncol = len(src.schema)
    src._tokens = Pool(lambda: csvmod._Tokens(65536, 65536 * ncol + 16), nchunks)
    src._blocks = Pool(lambda: csvmod._Block(src.opts.block_size, None), nchunks)
    for b in src._blocks._free:
        b.pool = src._blocks
    chunks = list(src.read())
    batches = [Batch(src.schema, 65536, dict_columns=src.dict_columns) for _ in chunks]

    class _Sink:
        def reject(self, **kw):
            raise AssertionError(kw)

    def work(i: int) -> ParseStats:
        batches[i].reset()
        return parse_tokens(src, chunks[i], batches[i], _Sink())

    times = {}
    for threads in (1, 2):
        best = float("inf")
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(work, range(len(chunks))))  # warm (kernels loaded, buffers touched)
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                rows = sum(s.rows for s in ex.map(work, range(len(chunks))))
                best = min(best, time.perf_counter() - t0)
        assert rows == args.rows
        times[threads] = best
    print(json.dumps({"task": "kernel_scaling", "rows": args.rows, "chunks": len(chunks),
                      "seconds_1_thread": round(times[1], 4), "seconds_2_threads": round(times[2], 4),
                      "ratio": round(times[1] / times[2], 3),
                      "rows_per_second_2_threads": round(args.rows / times[2])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
