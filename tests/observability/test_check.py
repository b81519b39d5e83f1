"""``nebula check``: every source and destination, healthy/degraded/failing with the reason and the time taken."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

import nebula
from nebula.config import load_config
from nebula.health import check_pipeline

from ..objectstore.conftest import free_port, moto_endpoint, s3  # noqa: F401 - the S3 emulator fixtures

NEBULA = [sys.executable, "-m", "nebula.cli"]


def check(text: str, **kw) -> dict[tuple[str, str], dict]:
    """``{(pipeline, role): report}`` of every pipeline of a YAML text."""
    out = {}
    for pc in load_config(text).pipelines:
        for r in check_pipeline(pc, **kw):
            out[(r["pipeline"], r["role"])] = r
    return out


@pytest.fixture
def small_csv(tmp_path):
    p = tmp_path / "orders.csv"
    p.write_text("id,qty,note\n1,2,a\n2,3,b\n")
    return p


def test_local_files_healthy_and_low_disk_degraded(small_csv, tmp_path):
    r = check(f"""
pipelines:
  - {{name: ok, source: "{small_csv}", destination: "{tmp_path}/out/new/o.parquet"}}
  - {{name: disk, source: "{small_csv}", destination: "{tmp_path}/o.parquet", alerts: {{free_disk_bytes: {2**62}}}}}
  - {{name: nosrc, source: "{tmp_path}/missing.csv", destination: "{tmp_path}/o.parquet"}}
""")
    assert set(r) == {(p, role) for p in ("ok", "disk", "nosrc") for role in ("source", "destination")}
    assert r["ok", "source"]["status"] == "healthy" and r["ok", "source"]["reason"] == "3 columns"
    assert r["ok", "destination"]["status"] == "healthy" and "free" in r["ok", "destination"]["reason"]
    d = r["disk", "destination"]
    assert d["status"] == "degraded" and "free on" in d["reason"] and "free_disk_bytes" in d["reason"]
    assert r["nosrc", "source"]["status"] == "failing" and "missing.csv" in r["nosrc", "source"]["reason"]
    assert all(isinstance(x["seconds"], float) and 0 <= x["seconds"] < 10 for x in r.values())


def test_postgres_destination_table_missing_then_present(pg_dsn, small_csv, tmp_path):
    table = f"chk_{int(time.time() * 1000) % 10**9}"
    text = f"""
pipelines:
  - name: pg
    source: "{small_csv}"
    destination: {{url: "{pg_dsn}", table: {table}}}
  - name: pgsrc
    source: {{url: "{pg_dsn}", options: {{table: {table}}}}}
    destination: "{tmp_path}/o.parquet"
"""
    r = check(text)
    d = r["pg", "destination"]
    assert d["status"] == "degraded" and f"table(s) {table} do not exist yet" in d["reason"]
    assert r["pgsrc", "source"]["status"] == "failing" and table in r["pgsrc", "source"]["reason"]
    nebula.copy(str(small_csv), pg_dsn, table=table, audit_log=False)
    r = check(text)
    assert r["pg", "destination"]["status"] == "healthy" and table in r["pg", "destination"]["reason"]
    assert r["pgsrc", "source"]["status"] == "healthy" and r["pgsrc", "source"]["reason"] == "3 columns"


def test_sqlite_destination(small_csv, tmp_path):
    text = f'pipelines:\n  - {{name: s, source: "{small_csv}", destination: "sqlite:///{tmp_path}/o.db"}}\n'
    assert check(text)["s", "destination"]["status"] == "degraded"  # no database yet
    nebula.copy(str(small_csv), f"sqlite:///{tmp_path}/o.db", audit_log=False)
    d = check(text)["s", "destination"]
    assert d["status"] == "healthy" and "table(s) orders present" in d["reason"]


def test_postgres_cdc_slot_missing_inactive_and_lagging(src_db, tmp_path):
    dsn, c = src_db
    c.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
    c.execute("INSERT INTO orders VALUES (1, 'a')")
    text = f"""
pipelines:
  - name: cdc
    source: "{dsn}"
    destination: "sqlite:///{tmp_path}/o.db"
    cdc: true
    tables: [public.orders]
    slot: chk_slot
    mode: merge
    key: [id]
    alerts: {{cdc_lag_bytes: 100000}}
"""
    r = check(text)
    assert r["cdc", "source"]["status"] == "healthy"
    assert "replication slot 'chk_slot' does not exist yet" in r["cdc", "source"]["reason"]
    slots = c.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'chk_slot'").fetchone()[0]
    assert slots == 0  # the check made none
    nebula.copy(dsn, f"sqlite:///{tmp_path}/o.db", cdc=True, until_caught_up=True, tables="public.orders",
                slot="chk_slot", mode="merge", name="cdc", state=str(tmp_path / "s.db"), audit_log=False)
    r = check(text)
    s = r["cdc", "source"]
    assert s["status"] == "degraded" and "'chk_slot' is inactive" in s["reason"] and "lags" not in s["reason"]
    assert r["cdc", "destination"]["status"] == "healthy"
    c.execute("INSERT INTO orders SELECT g, repeat('x', 200) FROM generate_series(2, 3000) g")
    s = check(text)["cdc", "source"]
    assert s["status"] == "degraded" and "lags" in s["reason"] and "over the threshold 97.7 KiB" in s["reason"]


def test_unreachable_endpoints_fail_quickly(small_csv, tmp_path, monkeypatch):
    closed = free_port()  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("NEBULA_FS_RETRIES", "2")  # pyarrow's own attempts per request (5 take ~7 s here)
    t0 = time.monotonic()
    r = check(f"""
pipelines:
  - {{name: pg, source: "{small_csv}", destination: {{url: "postgresql://u@127.0.0.1:{closed}/db", table: t}}}}
  - {{name: s3, source: "{small_csv}", destination: "s3://nb-chk/x.parquet"}}
""", timeout=8)
    took = time.monotonic() - t0
    pg, s3d = r["pg", "destination"], r["s3", "destination"]
    assert pg["status"] == "failing" and f"127.0.0.1:{closed}" in pg["reason"]
    assert "refused" in pg["reason"].lower() or "connect" in pg["reason"].lower()
    assert s3d["status"] == "failing" and s3d["reason"]
    assert "unreachable" in s3d["reason"] and "127.0.0.1" in s3d["reason"]
    assert took < 16 and pg["seconds"] < 8 and s3d["seconds"] < 8


def test_a_silent_endpoint_is_abandoned_after_the_timeout(small_csv):
    with socket.socket() as silent:  # accepts connections (backlog) but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        t0 = time.monotonic()
        r = check(f'pipelines:\n  - {{name: q, source: "{small_csv}", destination: '
                  f'{{url: "postgresql://u@127.0.0.1:{port}/db", table: t}}}}\n', timeout=1.0)
        took = time.monotonic() - t0
    d = r["q", "destination"]
    # bounded by the 1 s timeout, not by the server (which never answers); slack for a loaded 2-core machine
    assert d["status"] == "failing" and d["reason"] == "no answer within 1 s" and 1.0 <= d["seconds"] < 4
    assert took < 8


def test_cli_check_json_and_exit_codes(s3, small_csv, tmp_path):  # noqa: F811 - the s3 fixture
    good = tmp_path / "good.yml"
    good.write_text(f"""
pipelines:
  - {{name: tos3, source: "{small_csv}", destination: "{s3.url('a/x.parquet')}"}}
  - {{name: table, source: "{small_csv}", destination: "sqlite:///{tmp_path}/new.db"}}
""")
    r = subprocess.run([*NEBULA, "check", str(good), "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr  # degraded is not failing
    reports = json.loads(r.stdout)
    assert [(x["pipeline"], x["role"], x["status"]) for x in reports] == [
        ("tos3", "source", "healthy"), ("tos3", "destination", "healthy"),
        ("table", "source", "healthy"), ("table", "destination", "degraded")]
    assert all(set(x) == {"pipeline", "role", "target", "status", "reason", "seconds"} for x in reports)
    assert s3.keys() == []  # the probe object is gone
    bad = tmp_path / "bad.yml"
    bad.write_text(good.read_text() + f'  - {{name: gone, source: "{small_csv}", destination: "s3://nb-no-such-b/x.csv"}}\n')
    r = subprocess.run([*NEBULA, "check", str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert len(lines) == 6 and lines[-1].startswith("✗ gone destination s3://nb-no-such-b/x.csv: failing (")
    assert all(line.rstrip().endswith("s]") for line in lines)
    assert any(line.startswith("~ table destination") and "does not exist yet" in line for line in lines)


def test_mysql_cdc_source_is_described_not_snapshotted(db, tmp_path):
    dsn, c = db
    with c.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    text = (f'pipelines:\n  - {{name: my, source: "{dsn}", destination: "{tmp_path}/t.jsonl", cdc: true, '
            f'tables: [t]}}\n  - {{name: nope, source: "{dsn}", destination: "{tmp_path}/u.jsonl", tables: [nope]}}\n')
    r = check(text)
    s = r["my", "source"]
    assert s["status"] == "healthy" and s["reason"] == "1 table(s): t; binlog ready for CDC"
    assert r["my", "destination"]["status"] == "healthy"
    assert r["nope", "source"]["status"] == "failing" and "nope" in r["nope", "source"]["reason"]
