"""CSV → a PostgreSQL table, one tool per run: ``python -m benchmarks.tasks.csv_postgres --tool T --input F``.

Every tool is a whole process of its own, timed from outside (``process_seconds``), loading the same file
into a fresh table of the same server: ``nebula copy`` (binary COPY from kernels), ``psql \\copy`` (CSV
COPY), psycopg ``COPY … FROM STDIN (FORMAT CSV)`` fed from the file, and dlt's postgres destination.
The tables of the peers are created beforehand (not timed); nebula creates its own (in its transaction).

The server: ``--dsn`` (or ``NEBULA_BENCH_PG_DSN``) when given, else a throwaway one started for this
process on a free port (as the tests do), stopped at the end. To compare all tools on one server with
medians (the numbers in the report)::

    python -m benchmarks.tasks.csv_postgres --compare --input benchmarks/data/orders_1000000.csv --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from ._common import BIN, Unsupported, main  # noqa: F401

COLUMNS = ("id bigint, user_id bigint, amount double precision, qty bigint, country text, status text, "
           "ts timestamp, note text")
TOOLS_ORDER = ("nebula", "psql", "psycopg", "dlt")


def _timed(argv: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(f"exit {p.returncode}: {lines[-1] if lines else '(no stderr)'}")
    return seconds


def _sql(dsn: str, *statements: str):
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as c:
        out = None
        for s in statements:
            cur = c.execute(s)
            out = cur.fetchone() if cur.description else None
        return out


def _fresh(dsn: str, table: str, create: bool) -> None:
    stmts = [f"DROP TABLE IF EXISTS {table}", f"DROP SCHEMA IF EXISTS {table}_dlt CASCADE"]
    if create:
        stmts.append(f"CREATE TABLE {table} ({COLUMNS})")
    stmts.append("CHECKPOINT")
    _sql(dsn, *stmts)


def load(tool: str, dsn: str, path: str, table: str, threads: int | None = None) -> float:
    """Load ``path`` into ``table`` with ``tool`` as its own process; returns its wall seconds."""
    path = os.path.abspath(path)
    if tool == "nebula":
        _fresh(dsn, table, create=False)
        argv = [str(BIN / "nebula"), "copy", path, dsn, "--table", table, "--no-progress",
                "--state", os.path.join(tempfile.gettempdir(), "nebula-bench-pg-state.db")]
        if threads:
            argv += ["--threads", str(threads)]
        return _timed(argv)
    if tool == "psql":
        _fresh(dsn, table, create=True)
        return _timed(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn, "-c",
                       f"\\copy {table} FROM '{path}' (FORMAT csv, HEADER true)"])
    if tool == "psycopg":
        _fresh(dsn, table, create=True)
        code = ("import sys, psycopg\n"
                "with psycopg.connect(sys.argv[1]) as c, open(sys.argv[2], 'rb') as f:\n"
                "    with c.cursor().copy(f'COPY {sys.argv[3]} FROM STDIN (FORMAT csv, HEADER true)') as cp:\n"
                "        while (b := f.read(1 << 20)):\n"
                "            cp.write(b)\n")
        return _timed([sys.executable, "-c", code, dsn, path, table])
    if tool == "dlt":
        _fresh(dsn, table, create=False)
        code = ("import os, sys\n"
                "os.environ['RUNTIME__DLTHUB_TELEMETRY'] = 'false'\n"
                "import dlt, tempfile\n"
                "from dlt.sources.filesystem import filesystem, read_csv_duckdb\n"
                "dsn, path, table = sys.argv[1:4]\n"
                "folder, name = os.path.split(path)\n"
                "rows = (filesystem(bucket_url=folder, file_glob=name) | read_csv_duckdb(chunk_size=1_000_000, "
                "use_pyarrow=True)).with_name(table)\n"
                "p = dlt.pipeline(pipeline_name='bench_pg', pipelines_dir=tempfile.mkdtemp(), "
                "destination=dlt.destinations.postgres(credentials=dsn), dataset_name=table + '_dlt')\n"
                "p.run(rows, loader_file_format='csv')\n")
        return _timed([sys.executable, "-c", code, _with_password(dsn), path, table])
    raise Unsupported(tool)


def _with_password(dsn: str) -> str:
    """dlt insists on a password in its credentials; the throwaway server trusts loopback, any will do."""
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(dsn)
    if u.password is None and u.username:
        u = u._replace(netloc=f"{u.username}:unused@{u.netloc.split('@', 1)[1]}")
    return urlunsplit(u)


def _count(dsn: str, table: str, tool: str) -> int:
    qualified = f"{table}_dlt.{table}" if tool == "dlt" else table
    return _sql(dsn, f"SELECT count(*) FROM {qualified}")[0]


class _Server:
    def __init__(self, dsn: str | None) -> None:
        self.dsn = dsn or os.environ.get("NEBULA_BENCH_PG_DSN")
        self.srv = None

    def __enter__(self) -> str:
        if not self.dsn:
            from tests.pg._server import PgServer

            self.srv = PgServer().start()
            self.dsn = self.srv.socket_dsn if os.environ.get("NEBULA_BENCH_PG_SOCKET") else self.srv.dsn
        return self.dsn

    def __exit__(self, *exc) -> None:
        if self.srv is not None:
            self.srv.stop()


def _tool(name: str):
    def run(args) -> dict:
        with _Server(args.dsn) as dsn:
            table = f"bench_{name}"
            seconds = load(name, dsn, args.input, table, args.threads)
            return {"process_seconds": round(seconds, 4), "rows_written": _count(dsn, table, name)}
    return run


TOOLS = {name: _tool(name) for name in TOOLS_ORDER}


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", default=None, help="an existing server (default: a throwaway one)")


def compare(argv: list[str]) -> int:
    """All tools on one server, round-robin, ``--repeat`` times; prints medians and rows/s as JSON lines."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.tasks.csv_postgres --compare")
    ap.add_argument("--input", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tools", default=",".join(TOOLS_ORDER))
    ap.add_argument("--dsn", default=None)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    meta = a.input + ".meta"
    rows = json.load(open(meta))["rows"] if os.path.exists(meta) else None
    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    times: dict[str, list[float]] = {t: [] for t in tools}
    with _Server(a.dsn) as dsn:
        load("nebula", dsn, a.input, "bench_warm", a.threads)  # the kernel cache is warm for every timed run
        for _ in range(a.repeat):
            for t in tools:
                try:
                    s = load(t, dsn, a.input, f"bench_{t}", a.threads)
                except Exception as e:  # noqa: BLE001 - reported, the others go on
                    print(json.dumps({"tool": t, "error": str(e)[:300]}), flush=True)
                    continue
                n = _count(dsn, f"bench_{t}", t)
                if rows is not None and n != rows:
                    print(json.dumps({"tool": t, "error": f"loaded {n} rows, expected {rows}"}), flush=True)
                    continue
                times[t].append(s)
    for t in tools:
        if times[t]:
            med = statistics.median(times[t])
            print(json.dumps({"tool": t, "median_seconds": round(med, 3), "runs": [round(x, 3) for x in times[t]],
                              "rows_per_second": round(rows / med) if rows else None}), flush=True)
    return 0


if __name__ == "__main__":
    if "--compare" in sys.argv:
        raise SystemExit(compare([x for x in sys.argv[1:] if x != "--compare"]))
    raise SystemExit(main("csv_postgres", TOOLS, extra=_extra))
