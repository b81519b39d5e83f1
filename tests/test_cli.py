"""The real ``nebula`` command in a subprocess: exit codes, one-line errors, summaries."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from tests import interruptible

NEBULA = [sys.executable, "-m", "nebula.cli"]


def run(*args, cwd=None, env=None, timeout=300):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([*NEBULA, *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=timeout)


@pytest.fixture
def csv_file(tmp_path):
    p = tmp_path / "orders.csv"
    p.write_text('id,name,amount\n1,"a, b",1.5\n2,c,\n3,"q""x",7\n')
    return p


def test_help_and_version_are_fast_and_light():
    t0 = time.perf_counter()
    r = run("--help")
    assert r.returncode == 0 and "copy" in r.stdout and "demo" in r.stdout
    assert time.perf_counter() - t0 < 5
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("nebula ")
    code = ("import sys, nebula.cli; bad=[m for m in ('numba','pyarrow','numpy','pandas') if m in sys.modules];"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
    assert out == "[]"


def test_copy_to_parquet_json_summary(tmp_path, csv_file):
    out = tmp_path / "o.parquet"
    r = run("copy", str(csv_file), str(out), "--json", "--state", str(tmp_path / "s.db"))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert {"rows_read", "rows_written", "rows_rejected", "bytes_read", "seconds"} <= set(s)
    assert s["rows_written"] == 3 and s["rows_read"] == 3
    t = pq.read_table(out)
    assert t.column("name").to_pylist() == ["a, b", "c", 'q"x']
    assert t.column("amount").to_pylist() == [1.5, None, 7.0]


def test_copy_to_sqlite_and_state(tmp_path, csv_file):
    db = tmp_path / "o.db"
    st = str(tmp_path / "s.db")
    r = run("copy", str(csv_file), f"sqlite:///{db}", "--table", "orders", "--state", st, "--name", "o1")
    assert r.returncode == 0, r.stderr
    assert "3 rows" in r.stdout
    assert sqlite3.connect(db).execute("select count(*) from orders").fetchone()[0] == 3
    r = run("state", "show", "o1", "--state", st, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["runs"][0]["rows_written"] == 3


def test_errors_are_one_line_with_exit_codes(tmp_path, csv_file):
    r = run("copy", str(tmp_path / "missing.csv"), str(tmp_path / "o.parquet"))
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    r = run("copy", str(bad), str(tmp_path / "o.parquet"))
    assert r.returncode == 1 and "line 3" in r.stderr and "byte 8" in r.stderr
    assert not (tmp_path / "o.parquet").exists()
    r = run("copy", str(csv_file), str(tmp_path / "o.parquet"), "--mode", "sideways")
    assert r.returncode == 2 and "--mode" in r.stderr
    r = run("copy", str(csv_file), str(tmp_path / "o.parquet"), "--column", "id:notatype")
    assert r.returncode == 2 and "notatype" in r.stderr
    r = run("copy", str(csv_file))
    assert r.returncode == 2
    r = run("copy", str(bad), str(tmp_path / "o.parquet"), "--debug")
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_failed_run_is_recorded(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    st = str(tmp_path / "s.db")
    r = run("copy", str(bad), str(tmp_path / "o.parquet"), "--state", st, "--name", "f1")
    assert r.returncode == 1
    runs = json.loads(run("state", "show", "f1", "--state", st, "--json").stdout)["runs"]
    assert runs[0]["status"] == "failed" and "expected 2 fields" in runs[0]["summary"]["warnings"][0]


def test_dead_letter_from_cli(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n4,x\n5,6\n")
    dl = tmp_path / "rej.jsonl"
    r = run("copy", str(bad), str(tmp_path / "o.csv"), "--on-error", "dead-letter", "--dead-letter", str(dl),
            "--column", "b:int64")
    assert r.returncode == 0, r.stderr
    assert "2 rows rejected" in r.stdout and str(dl) in r.stdout
    recs = [json.loads(x) for x in dl.read_text().splitlines()]
    assert [x["line"] for x in recs] == [3, 4]
    assert recs[1]["column"] == "b"
    assert (tmp_path / "o.csv").read_text().splitlines() == ["a,b", "1,2", "5,6"]


def test_discover_and_connectors(csv_file):
    r = run("discover", str(csv_file), "--json")
    assert r.returncode == 0
    cols = json.loads(r.stdout)["columns"]
    assert [(c["name"], c["type"]) for c in cols] == [("id", "int64"), ("name", "string"), ("amount", "float64")]
    r = run("connectors", "--json")
    names = {(c["kind"], c["name"]) for c in json.loads(r.stdout)}
    assert {("source", "csv"), ("destination", "parquet"), ("destination", "sqlite")} <= names


def test_init_then_run_and_check(tmp_path, csv_file):
    r = run("init", "orders", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "orders.yml").exists() and (tmp_path / "orders.ipynb").exists()
    os.makedirs(tmp_path / "data")
    os.replace(csv_file, tmp_path / "data" / "orders.csv")
    r = run("check", "orders.yml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "healthy" in r.stdout
    r = run("run", "orders.yml", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["rows_written"] == 3
    assert pq.read_table(tmp_path / "out" / "orders.parquet").num_rows == 3
    r = run("check", "orders.yml", cwd=tmp_path, env={"NEBULA_SOURCE": "nope.csv"})
    assert r.returncode == 1 and "failing" in r.stdout


def test_demo(tmp_path):
    r = run("demo", "--rows", "5000", "--out", str(tmp_path / "d"), "--json")
    assert r.returncode == 0, r.stderr
    assert pq.read_table(tmp_path / "d" / "orders.parquet").num_rows == 5000
    db = sqlite3.connect(tmp_path / "d" / "orders.db")
    assert db.execute("select count(*) from orders").fetchone()[0] == 5000


def test_interrupt_leaves_no_output(tmp_path):
    """SIGINT mid-run: exit 130, no final output file, no temp files left."""
    import signal

    from nebula.sample import generate

    src = generate(str(tmp_path / "big.csv"), 2_000_000)
    out = tmp_path / "o.csv"
    p = subprocess.Popen([*NEBULA, "copy", str(src), str(out), "--threads", "1", "--batch-rows", "4096"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=interruptible)
    deadline = time.time() + 60
    while time.time() < deadline and not [f for f in os.listdir(tmp_path) if "nebula-tmp" in f]:
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()
    assert [f for f in os.listdir(tmp_path) if "nebula-tmp" in f] == []


def test_resilience_flag_sets_the_retry_policy(tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("id\n1\n")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run([*NEBULA, "copy", str(src), f"postgresql://u@127.0.0.1:{port}/db", "--table", "t",
                        "--no-progress", "--no-audit", "--resilience", "retries=1", "--resilience",
                        "backoff_initial=0.01"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "gave up after 2 attempts" in r.stderr
    for bad, says in (("bogus=1", "unknown key 'bogus'"), ("retries", "expects KEY=VALUE"),
                      ("retries=x", "expected a number")):
        r = subprocess.run([*NEBULA, "copy", str(src), str(tmp_path / "o.parquet"), "--resilience", bad],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and says in r.stderr, (bad, r.stderr)


def test_discover_takes_the_csv_options_of_copy(tmp_path):
    src = tmp_path / "odd.csv"
    src.write_text("exported by X\n# a comment\nname|qty\n~a|b~|1\nz\\|w|-\n")
    opts = ["--delimiter", "|", "--quote", "~", "--escape", "\\", "--comment", "#", "--skip-rows", "1",
            "--null-value", "-"]
    r = run("discover", str(src), *opts, "--json")
    assert r.returncode == 0, r.stderr
    assert [(c["name"], c["type"]) for c in json.loads(r.stdout)["columns"]] == [("name", "string"), ("qty", "int64")]
    r = run("discover", str(src), *opts, "--column", "qty:int16", "--json")
    assert [c["type"] for c in json.loads(r.stdout)["columns"]] == ["string", "int16"]
    r = run("discover", str(src), *opts, "--column", "nope:int16")
    assert r.returncode == 2 and "nope" in r.stderr


@pytest.mark.parametrize("dest", ["parquet", "sqlite"])
def test_interrupt_mid_write_leaves_parquet_absent_and_sqlite_as_it_was(tmp_path, dest):
    """SIGINT while rows are being written: exit 130, no Parquet file (nor temp file); a SQLite table being
    appended to keeps exactly its old rows (one transaction, rolled back)."""
    import signal

    from nebula.sample import generate

    src = generate(str(tmp_path / "big.csv"), 1_000_000)
    if dest == "parquet":
        out = tmp_path / "o.parquet"
        target = str(out)
        def writing():
            return [f for f in os.listdir(tmp_path) if "nebula-tmp" in f]
    else:
        out = tmp_path / "o.db"
        target = f"sqlite:///{out}"
        with sqlite3.connect(out) as db:
            db.execute("CREATE TABLE big (id INTEGER)")
            db.execute("INSERT INTO big VALUES (42)")
        def writing():
            wal = tmp_path / "o.db-wal"
            return wal.exists() and wal.stat().st_size > 1 << 20
    p = subprocess.Popen([*NEBULA, "copy", str(src), target, "--threads", "1", "--batch-rows", "4096",
                          "--state", str(tmp_path / "s.db")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=interruptible)
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None and not writing():
        time.sleep(0.01)
    assert p.poll() is None, "the run ended before it could be interrupted"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    # (quiet progress lines may come first on a slow machine)
    assert "interrupted" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert [f for f in os.listdir(tmp_path) if "nebula-tmp" in f] == []
    if dest == "parquet":
        assert not out.exists()
    else:
        assert sqlite3.connect(out).execute("SELECT * FROM big").fetchall() == [(42,)]
