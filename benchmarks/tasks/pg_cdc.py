"""PostgreSQL CDC: changes/s captured and loaded while pgbench writes, and the slot's lag at the end.

    python -m benchmarks.tasks.pg_cdc [--seconds 10] [--clients 4] [--dest sqlite|postgres]

On one throwaway server (``wal_level=logical``, started from the installed binaries) with a pgbench
database (scale 1):

1. snapshot: ``nebula copy postgresql://… DEST --cdc --until-caught-up`` creates the slot and copies the
   four pgbench tables;
2. catch-up: pgbench runs ``--seconds`` with the stream off, then one ``--until-caught-up`` run reads
   the backlog, decodes it, and loads and commits it (changes/s = changes ÷ that process's run seconds);
3. live: the stream runs while pgbench writes for ``--seconds``; the slot's lag (bytes of WAL not yet
   confirmed) is read when pgbench ends and 3 s later, then the stream is stopped with SIGTERM.

The destination receives the change log (``--mode append``: pgbench_history has no key). Prints one
JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLES = "pgbench_accounts,pgbench_branches,pgbench_tellers,pgbench_history"


def _lag(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn) "
                        "FROM pg_replication_slots").fetchone()
    return int(row[0]) if row and row[0] is not None else -1


def _pgbench(bench: list[str], seconds: int, clients: int) -> int:
    out = subprocess.run([*bench, "-T", str(seconds), "-c", str(clients), "-n", "bench"], capture_output=True,
                         text=True, check=True).stdout
    return int(next(x for x in out.splitlines() if "actually processed" in x).split(":")[1].split("/")[0])


def run(seconds: int, clients: int, dest_kind: str) -> dict:
    import psycopg

    sys.path.insert(0, str(ROOT))
    from tests.pg._server import PgServer

    srv = PgServer(wal_level="logical").start()
    tmp = tempfile.mkdtemp(prefix="nebula-bench-cdc-")
    try:
        with psycopg.connect(srv.dsn, autocommit=True) as c:
            c.execute("CREATE DATABASE bench")
            c.execute("CREATE DATABASE bench_dest")
        dsn = f"postgresql://postgres@127.0.0.1:{srv.port}/bench"
        bench = [f"{srv.bindir}/pgbench", "-h", "127.0.0.1", "-p", str(srv.port), "-U", "postgres"]
        subprocess.run([*bench, "-i", "-q", "-s", "1", "bench"], check=True, capture_output=True)
        dest = {"sqlite": f"sqlite:///{tmp}/{{table}}.db", "postgres": f"{dsn}_dest"}[dest_kind]
        args = [str(Path(sys.executable).parent / "nebula"), "copy", dsn, dest, "--cdc", "--tables", TABLES,
                "--mode", "append", "--state", f"{tmp}/s.db", "--no-progress", "--json", "--no-audit"]
        env = dict(os.environ)
        r = subprocess.run([*args, "--until-caught-up"], env=env, capture_output=True, text=True, check=True)
        snap = json.loads(r.stdout)
        tx_backlog = _pgbench(bench, seconds, clients)
        t0 = time.perf_counter()
        r = subprocess.run([*args, "--until-caught-up"], env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        catch = json.loads(r.stdout)
        p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        tx_live = _pgbench(bench, seconds, clients)
        lag_end = _lag(dsn)
        time.sleep(3)
        lag_3s = _lag(dsn)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
        if p.returncode not in (0, 130, 143):
            raise RuntimeError(f"live stream exited {p.returncode}: {err.strip().splitlines()[-1:]}")
        live = json.loads(out)
        return {"dest": dest_kind, "seconds": seconds, "clients": clients,
                "snapshot_rows": snap["rows_read"], "snapshot_seconds": snap["seconds"],
                "backlog_transactions": tx_backlog, "catchup_changes": catch["rows_read"],
                "catchup_seconds": catch["seconds"], "catchup_wall": round(wall, 3),
                "catchup_changes_per_second": round(catch["rows_read"] / catch["seconds"]) if catch["seconds"] else None,
                "live_transactions": tx_live, "live_changes": live["rows_read"],
                "lag_bytes_at_end": lag_end, "lag_bytes_3s_later": lag_3s}
    finally:
        srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.tasks.pg_cdc", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--dest", default="sqlite", choices=["sqlite", "postgres"])
    a = ap.parse_args()
    res = run(a.seconds, a.clients, a.dest)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
