"""``python -m benchmarks.run``: Nebula against its peers, whole processes side by side (see BENCHMARKS.md).

Each (task, tool) runs ``--repeat`` times as a separate process (``python -m benchmarks.tasks.<task>``),
round-robin over the tools so that noise on a shared machine spreads evenly. For every run the runner
takes the whole-process wall time and its peak RSS (``/usr/bin/time -f "%e %M"``: the largest
``ru_maxrss`` of the process and the descendants it waited for — a maximum, never a sum). The tables give
medians; ``benchmarks/RESULTS.md`` and ``benchmarks/results.png`` are rewritten (see ``--out``).

Example (the quick smoke run, well under a minute)::

    python -m benchmarks.run --rows 20000 --repeat 1 --tasks csv_parquet --tools nebula,pyarrow --out /tmp/x.md
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
BIN = Path(sys.executable).parent
PEER_MODULES = {"polars": "polars", "duckdb": "duckdb", "pandas": "pandas", "dlt": "dlt",
                "matplotlib": "matplotlib", "psutil": "psutil"}
TASKS = ("csv_parquet", "jsonl_parquet", "memory", "cold_start", "scaling", "csv_postgres", "pg_cdc")
DEFAULT_TOOLS = {
    "csv_parquet": ["nebula", "pyarrow", "pyarrow-stream", "polars", "polars-typed", "duckdb", "pandas", "dlt"],
    "jsonl_parquet": ["nebula", "pyarrow", "polars", "polars-typed", "duckdb", "dlt"],
    "memory": ["nebula", "pyarrow", "pyarrow-dict", "polars"],
}
OPTIONAL_TOOLS = {"csv_parquet": ["dlt-rows"], "jsonl_parquet": ["dlt-rows"]}


def ensure_peers() -> None:
    """Install the ``bench`` extra when a peer is missing (``make bench`` installs only ``.[all,dev]``)."""
    missing = [name for name, mod in PEER_MODULES.items() if importlib.util.find_spec(mod) is None]
    if not missing:
        return
    cmd = [sys.executable, "-m", "pip", "install", "-q", "-e", ".[bench]"]
    print(f"benchmarks: missing {', '.join(missing)}; running: {shlex.join(cmd)}", flush=True)
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        print("benchmarks: installing the bench extra failed; the missing tools will show as failed",
              flush=True)
    importlib.invalidate_caches()


@dataclass
class Run:
    """One whole process: wall seconds, peak RSS (MiB), exit code and its JSON report (if any)."""

    wall: float
    rss_mib: float
    code: int
    report: dict = field(default_factory=dict)
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0 and bool(self.report.get("ok"))

    @property
    def seconds(self) -> float:
        """Whole-process seconds of the work: the tool's own process for the nebula CLI (the script
        only wraps it), else this process minus the output check (reading Parquet footers)."""
        if "process_seconds" in self.report:
            return float(self.report["process_seconds"])
        return self.wall - float(self.report.get("validate_seconds") or 0.0)

    @property
    def error(self) -> str:
        if self.report.get("error"):
            return str(self.report["error"])
        lines = [ln for ln in self.stderr.strip().splitlines() if ln.strip()]
        return f"exit {self.code}: {lines[-1] if lines else 'no output'}"


TIME = Path("/usr/bin/time")
# Used when /usr/bin/time is missing: a small process that forks, execs the command and reports its
# ru_maxrss. A launcher is needed either way: Linux folds the RSS high-water mark of the address space
# that exec replaces into the new process's ru_maxrss, so a command spawned straight from this (large)
# runner would report at least the runner's own RSS.
_LAUNCHER = (
    "import os, sys\n"
    "out, argv = sys.argv[1], sys.argv[2:]\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    try:\n"
    "        os.execvp(argv[0], argv)\n"
    "    finally:\n"
    "        os._exit(127)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(out, 'w').write(f'0 {usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status) % 256)\n"
)


def measure(argv: list[str], env: dict | None = None, timeout: float = 3600.0) -> Run:
    """Run ``argv`` from the repo root: wall time around the process, and its peak RSS.

    The peak RSS is the process's own ``ru_maxrss`` (the largest of it and the descendants it waited
    for: a maximum, never a sum), taken by ``/usr/bin/time -f "%e %M"`` (or an equivalent launcher).
    """
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        if TIME.exists():
            wrapped = [str(TIME), "-f", "%e %M", "-o", rss_file.name, *argv]
        else:
            wrapped = [sys.executable, "-S", "-c", _LAUNCHER, rss_file.name, *argv]
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, cwd=ROOT, env=full_env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        rss_kib = 0.0
        for line in rss_file.read().splitlines():  # GNU time prefixes "Command exited with non-zero status"
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                rss_kib = float(parts[1])
    report = {}
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
                break
            except ValueError:
                pass
    if code != 0 and not report.get("error") and wall >= timeout:
        report["error"] = f"killed after the {timeout:.0f} s timeout"
    return Run(wall, rss_kib / 1024.0, code, report, stderr)


@dataclass
class Result:
    """The runs of one (task, tool, variant)."""

    task: str
    tool: str
    rows: int
    runs: list[Run] = field(default_factory=list)

    @property
    def good(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    @property
    def ok(self) -> bool:
        return bool(self.runs) and len(self.good) == len(self.runs)

    @property
    def unsupported(self) -> bool:
        return any(r.report.get("unsupported") for r in self.runs)

    @property
    def seconds(self) -> float | None:
        return statistics.median(r.seconds for r in self.good) if self.good else None

    @property
    def inner(self) -> float | None:
        vals = [r.report["seconds"] for r in self.good if r.report.get("seconds") is not None]
        return statistics.median(vals) if vals else None

    @property
    def rss(self) -> float | None:
        return statistics.median(r.rss_mib for r in self.good) if self.good else None

    @property
    def rows_per_s(self) -> float | None:
        s = self.seconds
        return self.rows / s if s else None

    @property
    def error(self) -> str:
        bad = [r for r in self.runs if not r.ok]
        return bad[0].error if bad else ""


def task_cmd(task: str, tool: str, inp: Path, out: Path | None, rows: int, threads: int | None = None) -> list[str]:
    argv = [sys.executable, "-m", f"benchmarks.tasks.{task}", "--tool", tool, "--input", str(inp),
            "--output", str(out) if out else "-", "--rows", str(rows)]
    if threads:
        argv += ["--threads", str(threads)]
    return argv


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _describe(res: Result, run: Run) -> str:
    if run.ok:
        return f"{run.seconds:.2f} s, {run.rss_mib:.0f} MiB"
    return run.error


def run_round_robin(jobs: list[tuple[Result, list[str], dict | None]], repeat: int) -> None:
    """Every job once per round, ``repeat`` rounds; an unsupported tool is not retried.

    Each round starts one job later (round 2 begins with the second tool, ...), so no tool always runs
    right after the same heavy neighbour; and the previous run's written output is flushed to disk
    (``sync``, untimed) before each run, so its writeback does not land in the next tool's time."""
    for i in range(repeat):
        k = i % len(jobs) if jobs else 0
        for res, argv, env in jobs[k:] + jobs[:k]:
            if res.unsupported:
                continue
            os.sync()
            run = measure(argv, env)
            res.runs.append(run)
            log(f"  [{i + 1}/{repeat}] {res.task:<14} {res.tool:<16} {_describe(res, run)}")


def data_file(rows: int, fmt: str) -> Path:
    from nebula.sample import generate

    path = DATA / f"orders_{rows}.{fmt}"
    t = time.perf_counter()
    existed = path.exists()
    generate(path, rows, fmt)
    if not existed or time.perf_counter() - t > 1:
        log(f"data: {path.relative_to(ROOT)} ({path.stat().st_size / 1e6:,.0f} MB, "
            f"{time.perf_counter() - t:.1f} s)")
    return path


def tools_for(task: str, wanted: list[str] | None) -> list[str]:
    known = DEFAULT_TOOLS[task] + OPTIONAL_TOOLS.get(task, [])
    if not wanted:
        return list(DEFAULT_TOOLS[task])
    return [t for t in wanted if t in known]


def bench_copy(task: str, fmt: str, rows: int, tools: list[str], repeat: int, tmp: Path) -> list[Result]:
    inp = data_file(rows, fmt)
    results, jobs = [], []
    for tool in tools:
        res = Result(task, tool, rows)
        results.append(res)
        jobs.append((res, task_cmd(task, tool, inp, tmp / f"{task}-{tool}.parquet", rows), None))
    log(f"{task}: {rows:,} rows, tools {', '.join(tools)}, {repeat} run(s) each")
    run_round_robin(jobs, repeat)
    return results


def bench_memory(rows: int, tools: list[str], sizes: list[int], repeat: int, tmp: Path) -> dict:
    inp = data_file(rows, "csv")
    held = []
    log(f"memory: bytes per record held ({rows:,} rows), tools {', '.join(tools)}")
    jobs = []
    for tool in tools:
        res = Result("memory", tool, rows)
        held.append(res)
        jobs.append((res, task_cmd("memory", tool, inp, None, rows), None))
    run_round_robin(jobs, 1)
    flat = []
    for n in sizes:
        path = data_file(n, "csv")
        res = Result("memory-rss", "nebula", n)
        flat.append(res)
        log(f"memory: peak RSS of nebula csv→parquet, {n:,} rows")
        run_round_robin([(res, task_cmd("csv_parquet", "nebula", path, tmp / f"rss-{n}.parquet", n), None)],
                        repeat if n <= 10_000_000 else 1)
        (tmp / f"rss-{n}.parquet").unlink(missing_ok=True)
    return {"held": held, "flat": flat}


def bench_cold_start(repeat: int, tmp: Path) -> dict:
    from nebula.sample import generate

    tiny = generate(tmp / "tiny.csv", 1000, "csv")
    nebula = str(BIN / "nebula")
    log("cold_start: nebula --help ×5; tiny copy with an empty, then warm NUMBA_CACHE_DIR")
    helps = [measure([nebula, "--help"]) for _ in range(5)]
    cold, warm, default = [], [], []
    copy = [nebula, "copy", str(tiny), str(tmp / "tiny.parquet"), "--no-progress"]
    for i in range(max(1, min(repeat, 3))):
        cache = tempfile.mkdtemp(prefix="nebula-numba-cache-", dir=tmp)
        cold.append(measure(copy, {"NUMBA_CACHE_DIR": cache}))
        warm.append(measure(copy, {"NUMBA_CACHE_DIR": cache}))
        default.append(measure(copy))
        log(f"  [{i + 1}] empty cache {cold[-1].wall:.2f} s, warm {warm[-1].wall:.2f} s, "
            f"installed cache {default[-1].wall:.2f} s")
    return {"help": helps, "cold": cold, "warm": warm, "default": default}


def bench_scaling(rows: int, repeat: int, tmp: Path) -> list[Result]:
    inp = data_file(rows, "csv")
    results, jobs = [], []
    for task in ("csv_parquet", "csv_null"):
        for threads in (1, 2):
            res = Result(task, f"nebula --threads {threads}", rows)
            results.append(res)
            out = tmp / f"scaling-{threads}.parquet" if task == "csv_parquet" else None
            jobs.append((res, task_cmd(task, "nebula", inp, out, rows, threads), None))
    log(f"scaling: nebula with 1 and 2 threads, {rows:,} rows")
    run_round_robin(jobs, repeat)
    return results


def bench_csv_postgres(rows: int, repeat: int) -> dict:
    """csv -> PostgreSQL: nebula, psql \\copy, psycopg COPY and dlt on one throwaway server
    (``benchmarks/tasks/csv_postgres.py --compare``: round-robin, medians)."""
    inp = data_file(rows, "csv")
    # dlt loads postgres row by row (~50k rows/s here): past 1M rows it would take minutes a run
    tools = "nebula,psql,psycopg" + (",dlt" if rows <= 1_000_000 else "")
    log(f"csv_postgres: {tools} into one throwaway server, {rows:,} rows")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.tasks.csv_postgres", "--compare", "--input", str(inp),
                           "--repeat", str(repeat), "--tools", tools], capture_output=True, text=True, cwd=ROOT)
    out = {"rows": rows, "tools": []}
    for line in proc.stdout.splitlines():
        try:
            out["tools"].append(json.loads(line))
        except ValueError:
            continue
    if proc.returncode != 0:
        out["error"] = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return out


def bench_pg_cdc(seconds: int = 10) -> dict:
    """PostgreSQL CDC during pgbench (``benchmarks/tasks/pg_cdc.py``): snapshot, catch-up and live runs."""
    log(f"pg_cdc: pgbench {seconds} s backlog, then {seconds} s live, into SQLite")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.tasks.pg_cdc", "--seconds", str(seconds)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_kernel_scaling(rows: int) -> dict:
    """The parse kernels alone on 1 and 2 threads (``benchmarks/kernel_scaling.py``), in its own process."""
    log(f"kernel scaling: parse kernels on 1 and 2 threads, {rows:,} rows")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.kernel_scaling", "--rows", str(rows)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _raw(obj):
    """Every run as plain data (benchmarks/data/last_run.json), for a second look at the noise."""
    if isinstance(obj, dict):
        return {k: _raw(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_raw(v) for v in obj]
    if isinstance(obj, Result):
        return {"task": obj.task, "tool": obj.tool, "rows": obj.rows, "runs": _raw(obj.runs)}
    if isinstance(obj, Run):
        return {"wall": round(obj.wall, 4), "seconds": round(obj.seconds, 4), "rss_mib": round(obj.rss_mib, 1),
                "code": obj.code, "report": obj.report, "stderr_tail": obj.stderr[-500:]}
    return obj


def _stop(signum, frame):
    raise SystemExit(128 + signum)  # unwinds, so the temporary outputs are removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tasks", default="csv_parquet,jsonl_parquet,memory,cold_start",
                        help=f"comma-separated, of: {', '.join(TASKS)}")
    parser.add_argument("--tools", default=None,
                        help="comma-separated subset (default: every peer of each task; dlt-rows only when named)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default=None,
                        help="memory task: row counts for nebula's peak RSS, e.g. 5000000,50000000 (default: --rows)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    if args.repeat < 1 or args.rows < 1:
        parser.error("--rows and --repeat must be >= 1")
    wanted = [t.strip() for t in args.tools.split(",")] if args.tools else None
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [args.rows]

    signal.signal(signal.SIGTERM, _stop)
    DATA.mkdir(parents=True, exist_ok=True)
    ensure_peers()
    from benchmarks import report

    command = "python -m benchmarks.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = time.time()
    load_before = os.getloadavg()
    out_md = Path(args.out)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="nebula-bench-", dir=DATA) as d:
        tmp = Path(d)
        if "csv_parquet" in tasks:
            results["csv_parquet"] = bench_copy("csv_parquet", "csv", args.rows,
                                                tools_for("csv_parquet", wanted), args.repeat, tmp)
        if "jsonl_parquet" in tasks:
            results["jsonl_parquet"] = bench_copy("jsonl_parquet", "jsonl", args.rows,
                                                  tools_for("jsonl_parquet", wanted), args.repeat, tmp)
        if "memory" in tasks:
            results["memory"] = bench_memory(args.rows, tools_for("memory", wanted), sizes, args.repeat, tmp)
        if "cold_start" in tasks:
            results["cold_start"] = bench_cold_start(args.repeat, tmp)
        if "scaling" in tasks:
            results["scaling"] = bench_scaling(args.rows, args.repeat, tmp)
            results["kernel_scaling"] = bench_kernel_scaling(min(args.rows, 2_000_000))
        if "csv_postgres" in tasks:
            results["csv_postgres"] = bench_csv_postgres(args.rows, args.repeat)
        if "pg_cdc" in tasks:
            results["pg_cdc"] = bench_pg_cdc()
    info = {"command": command, "started": started, "seconds": time.time() - started,
            "load_before": load_before, "load_after": os.getloadavg()}
    text = report.write(results, info, out_md)
    raw = DATA / "last_run.json"
    raw.write_text(json.dumps({"info": info, "runs": _raw(results)}, indent=1, default=str) + "\n")
    log(f"raw runs: {raw.relative_to(ROOT)}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
