"""Changes/s of PostgreSQL CDC: pgbench writes a backlog (and then writes while streaming); time the load.

    .venv/bin/python -m tests.pg_cdc.bench_cdc [--seconds 10] [--clients 4] [--dest sqlite|postgres]

Prints pgbench's transactions, the changes captured, changes/s of the catch-up run (backlog read, decoded,
merged and committed) and of a live run (stream on during pgbench), and the slot's lag at the end.
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

import psycopg

from tests.pg._server import PgServer

TABLES = "pgbench_accounts,pgbench_branches,pgbench_tellers,pgbench_history"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--dest", default="sqlite", choices=["sqlite", "postgres"])
    a = ap.parse_args()
    srv = PgServer(wal_level="logical").start()
    tmp = tempfile.mkdtemp()
    try:
        with psycopg.connect(srv.dsn, autocommit=True) as c:
            c.execute("CREATE DATABASE bench")
            c.execute("CREATE DATABASE bench_dest")
        dsn = f"postgresql://postgres@127.0.0.1:{srv.port}/bench"
        bench = [f"{srv.bindir}/pgbench", "-h", "127.0.0.1", "-p", str(srv.port), "-U", "postgres"]
        subprocess.run([*bench, "-i", "-q", "-s", "1", "bench"], check=True, capture_output=True)
        dest = {"sqlite": f"sqlite:///{tmp}/{{table}}.db", "postgres": f"{dsn}_dest"}[a.dest]
        mode = "append"  # pgbench_history has no key: the change log for every table
        args = [sys.executable, "-m", "nebula.cli", "copy", dsn, dest, "--cdc", "--tables", TABLES, "--mode", mode,
                "--state", f"{tmp}/s.db", "--no-progress", "--json"]
        env = dict(os.environ, PYTHONPATH=os.getcwd())
        r = subprocess.run([*args, "--until-caught-up"], env=env, capture_output=True, text=True, check=True)
        print("snapshot:", json.loads(r.stdout)["rows_read"], "rows in", f"{json.loads(r.stdout)['seconds']:.2f} s")
        out = subprocess.run([*bench, "-T", str(a.seconds), "-c", str(a.clients), "-n", "bench"], capture_output=True,
                             text=True, check=True).stdout
        tx = next(x for x in out.splitlines() if "actually processed" in x).split(":")[1].strip()
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("SELECT pg_logical_emit_message(true, 'nebula', 'END')")
        t0 = time.perf_counter()
        r = subprocess.run([*args, "--until-caught-up"], env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        res = json.loads(r.stdout)
        print(f"backlog: pgbench {tx} transactions; catch-up run loaded {res['rows_read']} changes in "
              f"{res['seconds']:.2f} s ({res['rows_read'] / res['seconds']:,.0f} changes/s; {wall:.2f} s wall "
              "with process start)")
        p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        out = subprocess.run([*bench, "-T", str(a.seconds), "-c", str(a.clients), "-n", "bench"], capture_output=True,
                             text=True, check=True).stdout
        tx = next(x for x in out.splitlines() if "actually processed" in x).split(":")[1].strip()
        with psycopg.connect(dsn, autocommit=True) as c:
            lag_end = c.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn) "
                                "FROM pg_replication_slots").fetchone()[0]
            time.sleep(3)
            lag_3s = c.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn) "
                               "FROM pg_replication_slots").fetchone()[0]
        p.send_signal(signal.SIGTERM)
        o, err = p.communicate(timeout=60)
        res = json.loads(o)
        print(f"live: pgbench {tx} transactions in {a.seconds} s while streaming; {res['rows_read']} changes loaded; "
              f"slot lag when pgbench ended {int(lag_end):,} bytes, 3 s later {int(lag_3s):,} bytes")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
