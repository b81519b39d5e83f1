"""SIGKILL of ``nebula copy`` mid-upload: nothing partial becomes visible, and a rerun completes exactly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pyarrow.dataset as ds
import pytest

from ._data import orders_csv

NEBULA = [os.path.join(os.path.dirname(sys.executable), "nebula")]
if not os.path.exists(NEBULA[0]):
    NEBULA = [sys.executable, "-m", "nebula.cli"]
N = 200_000


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    p = tmp_path_factory.mktemp("big") / "orders.csv"
    p.write_bytes(orders_csv(N, days=3))
    return p


def _start(args, tmp_path):
    return subprocess.Popen([*NEBULA, "copy", *args, "--no-progress", "--state", str(tmp_path / "s.db")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))


def _run(args, tmp_path):
    r = subprocess.run([*NEBULA, "copy", *args, "--no-progress", "--state", str(tmp_path / "s.db")],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    return r


def test_kill_mid_upload_of_a_partitioned_prefix(s3, big_csv, tmp_path):
    args = [str(big_csv), s3.url("k/"), "--partition-by", "country,date(ts)", "--max-rows-per-file", "2000",
            "--run-id", "k1"]
    p = _start(args, tmp_path)
    deadline = time.monotonic() + 60
    staged = []
    while time.monotonic() < deadline and p.poll() is None:
        staged = [k for k in s3.keys("k") if k.startswith("k/_staging/k1/")]
        if len(staged) >= 3:
            break
        time.sleep(0.02)
    assert p.poll() is None, f"the copy ended before it could be killed: {p.stderr.read().decode()[-500:]}"
    assert staged, "no object was staged within 60 s"
    p.send_signal(signal.SIGKILL)
    p.wait()
    keys = s3.keys("k")
    assert "k/_manifest.json" not in keys
    assert all(k.startswith("k/_staging/") for k in keys), [k for k in keys if not k.startswith("k/_staging/")]
    assert ds.dataset(f"{s3.bucket}/k", filesystem=s3.fs, partitioning="hive").count_rows() == 0  # _ is hidden
    _run(args, tmp_path)
    keys = s3.keys("k")
    assert not any(k.startswith("k/_staging/") for k in keys)
    m = json.loads(s3.get("k/_manifest.json"))
    assert m["rows"] == N and m["run_id"] == "k1"
    assert {f"k/{f['path']}" for f in m["files"]} == set(keys) - {"k/_manifest.json"}
    t = ds.dataset(f"{s3.bucket}/k", filesystem=s3.fs, partitioning="hive").to_table(columns=["id"])
    assert sorted(t.column("id").to_pylist()) == list(range(N))


def test_kill_mid_upload_of_one_object(s3, big_csv, tmp_path):
    whole = big_csv.read_bytes()
    dest = s3.url("one/orders.csv")
    rnd = random.Random(3)
    for _ in range(2):
        p = _start([str(big_csv), dest], tmp_path)
        time.sleep(rnd.uniform(0.8, 2.0))
        p.send_signal(signal.SIGKILL)
        p.wait()
        keys = [k for k in s3.keys("one") if not k.rsplit("/", 1)[-1].startswith(".")]  # dot-temps are hidden
        assert keys in ([], ["one/orders.csv"]), keys  # never a partial object at the final key
        if keys:
            assert s3.get("one/orders.csv").count(b"\n") == N + 1
    _run([str(big_csv), dest], tmp_path)
    assert [k for k in s3.keys("one") if not k.rsplit("/", 1)[-1].startswith(".")] == ["one/orders.csv"]
    assert s3.get("one/orders.csv").count(b"\n") == whole.count(b"\n")


def test_cli_errors_are_one_line_without_secrets(s3, tmp_path, monkeypatch):
    src = tmp_path / "a.csv"
    src.write_bytes(orders_csv(50))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    r = subprocess.run([*NEBULA, "copy", str(src), "s3://nb-no-such-bucket/a.parquet", "--no-progress",
                        "--state", str(tmp_path / "s.db")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0] and "s3cr3t" not in r.stderr
    r = subprocess.run([*NEBULA, "copy", str(src), s3.url("x/"), "--partition-by", "nope", "--no-progress",
                        "--state", str(tmp_path / "s.db")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no column 'nope'" in r.stderr
