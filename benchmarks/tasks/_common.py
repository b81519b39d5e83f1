"""What every task script shares: arguments, timing, output checks and the one-line JSON report."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent


def parquet_rows(path: str | os.PathLike[str]) -> int:
    """Rows in a Parquet file (or a directory of them), read from the footers only."""
    import pyarrow.parquet as pq

    p = Path(path)
    files = sorted(p.rglob("*.parquet")) if p.is_dir() else [p]
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def run_cli(argv: list[str], env: dict | None = None) -> tuple[float, str]:
    """Run a command as its own process; ``(wall seconds, stderr)``; raise with stderr's last line on failure."""
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1].removeprefix("nebula: error: ") if lines else "(no stderr)"
        raise RuntimeError(f"exit {proc.returncode}: {last}")
    return seconds, proc.stderr


class Unsupported(Exception):
    """The tool cannot do this task (yet); reported as ``"unsupported"``, not as a failure."""


def main(task: str, tools: dict[str, Callable[[argparse.Namespace], dict | None]],
         extra: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Parse arguments, run ``tools[args.tool]``, check the output, print the JSON report.

    A tool function does the work; it may return extra fields for the report, e.g. ``process_seconds``
    when the work is a whole process of its own (the nebula CLI), which the runner then uses as the
    whole-process time instead of this script's.
    """
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.tasks.{task}")
    parser.add_argument("--tool", required=True, choices=sorted(tools))
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", default="-", help="'-' for tasks that write nothing")
    parser.add_argument("--rows", type=int, default=None, help="expected rows (default: from <input>.meta)")
    parser.add_argument("--threads", type=int, default=None, help="nebula only: --threads N")
    if extra:
        extra(parser)
    args = parser.parse_args()
    rows = args.rows
    if rows is None:
        meta = Path(args.input + ".meta")
        rows = json.loads(meta.read_text())["rows"] if meta.exists() else None
    report: dict = {"tool": args.tool, "task": task, "rows": rows, "seconds": None, "ok": False,
                    "error": None}
    out = Path(args.output)
    try:
        if args.output != "-":
            if out.is_dir():
                import shutil

                shutil.rmtree(out)
            else:
                out.unlink(missing_ok=True)
        start = time.perf_counter()
        extra_fields = tools[args.tool](args)
        report["seconds"] = round(time.perf_counter() - start, 4)
        report.update(extra_fields or {})
        if "rows_written" not in report:  # the tool did not count its own output: read the footers
            t = time.perf_counter()
            report["rows_written"] = parquet_rows(out)
            report["validate_seconds"] = round(time.perf_counter() - t, 4)
        got = report["rows_written"]
        if rows is not None and got != rows:
            raise RuntimeError(f"wrote {got} rows, expected {rows}")
        report["ok"] = True
    except Unsupported as e:
        report["error"] = f"unsupported: {e}"
        report["unsupported"] = True
    except Exception as e:  # noqa: BLE001 - reported, the runner goes on
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        report["error"] = f"{type(e).__name__}: {first}"[:300]
        if os.environ.get("NEBULA_BENCH_DEBUG"):
            traceback.print_exc()
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] or report.get("unsupported") else 1
