"""pgbench writing while the stream runs: the destination equals the source tables afterwards, row by row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psycopg

TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers")


def _pgbench(srv, db, *args):
    cmd = [f"{srv.bindir}/pgbench", "-h", "127.0.0.1", "-p", str(srv.port), "-U", "postgres", *args, db]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


def _cli(args):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.Popen([sys.executable, "-m", "nebula.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_pgbench_stream_then_caught_up_equals_source(src_db, cdc_server, tmp_path):
    dsn, c = src_db
    db = dsn.rsplit("/", 1)[1]
    _pgbench(cdc_server, db, "-i", "-q", "-s", "1")
    c.execute("CREATE DATABASE " + db + "_dest")
    dest = f"{dsn}_dest"
    args = ["copy", dsn, dest, "--cdc", "--tables", ",".join(TABLES), "--mode", "merge",
            "--state", str(tmp_path / "s.db"), "--no-progress", "--json"]
    p = _cli(args)
    time.sleep(2.0)  # snapshot under way or done
    out = _pgbench(cdc_server, db, "-T", "5", "-c", "2", "-n")
    tx = int(next(x for x in out.splitlines() if "transactions actually processed" in x).split(":")[1].split("/")[0])
    p.send_signal(signal.SIGTERM)  # stops between rounds, after a commit
    o1, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    c.execute("SELECT pg_logical_emit_message(true, 'nebula', 'END')")
    t0 = time.perf_counter()
    p = _cli([*args, "--until-caught-up"])
    o2, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    tail = time.perf_counter() - t0
    with psycopg.connect(dest) as d:
        for t in TABLES:
            want = c.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            got = d.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            assert got == want, t
    first, second = json.loads(o1), json.loads(o2)
    changes = first["rows_read"] + second["rows_read"] - 100_000 - 10 - 1
    print(f"\npgbench {tx} transactions; streamed {changes} changes; first run {first['seconds']:.1f} s, "
          f"catch-up run {second['seconds']:.1f} s ({tail:.1f} s wall)")
    assert tx > 100 and changes >= 3 * tx
