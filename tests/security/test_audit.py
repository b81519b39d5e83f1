"""The audit log: one JSON line per run of the real ``nebula`` command, for successful, failed and interrupted
runs, next to the state store by default, and never torn or interleaved when processes append at once."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

from nebula import __version__
from tests import interruptible

from .conftest import NEBULA, run_nebula

FIELDS = {"started_at", "ended_at", "user", "host", "pid", "nebula_version", "config", "config_sha256", "pipeline",
          "source", "destination", "rows_read", "rows_written", "rows_rejected", "bytes_read", "bytes_written",
          "outcome", "error", "run_id", "dead_letter"}


def _lines(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_success_and_failure_lines(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("id,qty\n1,2\n2,3\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,qty\n1,2\n2,many\n")
    r = run_nebula("copy", good, tmp_path / "o.parquet", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run_id = json.loads(r.stdout)["run_id"]
    r = run_nebula("copy", bad, tmp_path / "o2.parquet", "--column", "qty:int32", cwd=tmp_path)
    assert r.returncode == 1 and "many" in r.stderr
    audit = tmp_path / ".nebula" / "audit.jsonl"  # next to the default state store
    ok, failed = _lines(audit)
    assert set(ok) == FIELDS and set(failed) == FIELDS
    assert ok["outcome"] == "success" and ok["error"] is None and ok["run_id"] == run_id
    assert (ok["rows_read"], ok["rows_written"], ok["rows_rejected"]) == (2, 2, 0) and ok["bytes_read"] == 15
    assert ok["user"] == getpass.getuser() and ok["host"] == socket.gethostname()
    assert ok["nebula_version"] == __version__ and isinstance(ok["pid"], int) and ok["pipeline"] == "good"
    assert ok["source"] == str(good) and ok["destination"].endswith("o.parquet") and ok["config"] is None
    assert len(ok["config_sha256"]) == 64 and ok["started_at"] <= ok["ended_at"]
    assert failed["outcome"] == "failed" and failed["error"]["class"] == "TypeCoercionError"
    assert "many" in failed["error"]["message"] and failed["rows_written"] is None and failed["pipeline"] == "bad"
    assert failed["config_sha256"] != ok["config_sha256"]  # other options, other hash
    # the same options hash the same; --audit-log elsewhere; --no-audit none
    r = run_nebula("copy", good, tmp_path / "o.parquet", "--audit-log", tmp_path / "elsewhere.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (again,) = _lines(tmp_path / "elsewhere.jsonl")
    assert again["config_sha256"] == ok["config_sha256"] and again["run_id"] != ok["run_id"]
    assert run_nebula("copy", good, tmp_path / "o.parquet", "--no-audit", cwd=tmp_path).returncode == 0
    assert len(_lines(audit)) == 2


def test_run_records_config_path_and_hash(tmp_path):
    (tmp_path / "a.csv").write_text("id\n1\n2\n3\n")
    cfg = tmp_path / "pipes.yml"
    cfg.write_bytes(textwrap.dedent(f"""\
        state: {tmp_path}/st/state.db
        pipelines:
          - name: first
            source: {tmp_path}/a.csv
            destination: {tmp_path}/a.parquet
          - name: second
            source: {tmp_path}/a.csv
            destination: {tmp_path}/a.jsonl
        """).replace("\n", "\r\n").encode())  # the hash is of the bytes as stored
    r = run_nebula("run", cfg, "--only", "second", "--only", "first", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = _lines(tmp_path / "st" / "audit.jsonl")
    assert [x["pipeline"] for x in lines] == ["second", "first"]
    assert {x["config"] for x in lines} == {str(cfg)}
    assert {x["config_sha256"] for x in lines} == {hashlib.sha256(cfg.read_bytes()).hexdigest()}
    assert [x["rows_written"] for x in lines] == [3, 3]
    off = tmp_path / "off.yml"
    off.write_text(cfg.read_text().replace("state:", "audit_log: false\nstate:"))
    assert run_nebula("run", off, cwd=tmp_path).returncode == 0
    assert len(_lines(tmp_path / "st" / "audit.jsonl")) == 2
    custom = tmp_path / "custom.yml"
    custom.write_text(cfg.read_text().replace("state:", f"audit_log: {tmp_path}/custom.jsonl\nstate:"))
    assert run_nebula("run", custom, "--only", "first", cwd=tmp_path).returncode == 0
    assert [x["pipeline"] for x in _lines(tmp_path / "custom.jsonl")] == ["first"]
    r = run_nebula("run", custom, "--no-audit", "--audit-log", "x.jsonl", cwd=tmp_path)
    assert r.returncode == 2 and "contradict" in r.stderr


def test_interrupted_run_is_recorded(tmp_path):
    """SIGINT while the source still waits for data (a FIFO kept open by the test): outcome interrupted."""
    fifo = tmp_path / "feed.csv"
    os.mkfifo(fifo)
    out = tmp_path / "o.parquet"
    p = subprocess.Popen([*NEBULA, "copy", str(fifo), str(out), "--threads", "1", "--batch-rows", "64",
                          "--no-progress"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=interruptible)
    with open(fifo, "w") as feed:
        feed.write("id,name\n" + "".join(f"{i},n{i}\n" for i in range(1000)))
        feed.flush()
        deadline = time.time() + 60
        while time.time() < deadline and not [f for f in os.listdir(tmp_path) if "nebula-tmp" in f]:
            assert p.poll() is None, p.communicate()
            time.sleep(0.02)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        time.sleep(1)  # then end the input: the blocked reader thread ends instead of being waited for
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    (line,) = _lines(tmp_path / ".nebula" / "audit.jsonl")
    assert line["outcome"] == "interrupted" and line["pipeline"] == "feed"
    assert line["error"]["class"] in ("Interrupted", "KeyboardInterrupt") and not out.exists()


def test_concurrent_processes_never_interleave(tmp_path):
    """Processes appending at once (lines far above PIPE_BUF): every line whole, none lost."""
    audit = tmp_path / "audit.jsonl"
    code = textwrap.dedent(f"""\
        import sys
        from nebula.audit import append_line
        for i in range(200):
            append_line({str(audit)!r}, {{"writer": int(sys.argv[1]), "i": i, "pad": sys.argv[1] * 20000}})
        """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(w)]) for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    lines = _lines(audit)
    assert len(lines) == 800
    for w in range(4):
        mine = [x for x in lines if x["writer"] == w]
        assert [x["i"] for x in mine] == list(range(200)) and all(x["pad"] == str(w) * 20000 for x in mine)
    # and real runs of the command at the same time
    src = tmp_path / "a.csv"
    src.write_text("id\n1\n")
    runs = [subprocess.Popen([*NEBULA, "copy", str(src), str(tmp_path / f"o{i}.parquet"), "--audit-log",
                              str(audit), "--no-progress"], cwd=tmp_path, stdout=subprocess.DEVNULL) for i in range(3)]
    assert [p.wait(timeout=120) for p in runs] == [0] * 3
    assert sorted(x["destination"][-10:] for x in _lines(audit)[800:]) == [f"o{i}.parquet" for i in range(3)]
