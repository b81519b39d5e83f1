"""Operations: state show (slot lag, last LSN), cdc drop, state reset drops the slot, the lag warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import nebula
from nebula.connectors.sources.postgres_cdc import PostgresCdcSource, slot_status
from nebula.state import StateStore


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.run([sys.executable, "-m", "nebula.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def _setup(src_db, tmp_path):
    dsn, c = src_db
    c.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    c.execute("INSERT INTO items SELECT g, 'x' FROM generate_series(1, 100) g")
    nebula.copy(dsn, f"sqlite:///{tmp_path}/o.db", tables="items", cdc=True, until_caught_up=True, mode="merge",
                state=str(tmp_path / "s.db"), progress="none")
    return dsn, c


def test_state_show_prints_lag_and_lsn_then_cdc_drop(src_db, tmp_path):
    dsn, c = _setup(src_db, tmp_path)
    c.execute("INSERT INTO items SELECT g, repeat('y', 100) FROM generate_series(101, 1100) g")
    r = _cli("state", "show", "items", "--state", str(tmp_path / "s.db"))
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.strip().startswith("slot nebula_items"))
    lag = int(line.split("lag ")[1].split(" bytes")[0])
    assert lag > 100_000 and "last LSN" in line
    r = _cli("state", "show", "--json", "--state", str(tmp_path / "s.db"))
    st = json.loads(r.stdout)["state"][0]
    assert st["slot"]["lag_bytes"] >= lag and st["value"]["lsn_text"] == st["slot"]["confirmed_flush_lsn"]
    r = _cli("cdc", "drop", "--slot", "nebula_items", "--url", dsn)
    assert r.returncode == 0 and "slot nebula_items" in r.stdout and "publication nebula_items" in r.stdout
    assert c.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)
    assert c.execute("SELECT count(*) FROM pg_publication").fetchone() == (0,)
    r = _cli("state", "show", "items", "--state", str(tmp_path / "s.db"))
    assert "does not exist" in r.stdout


def test_state_show_with_the_server_unreachable(tmp_path):
    store = StateStore(str(tmp_path / "s.db"))
    store.set("x", {"lsn": 5, "lsn_text": "0/5", "slot": "s", "url": "postgresql://postgres@127.0.0.1:1/db"})
    r = _cli("state", "show", "--state", str(tmp_path / "s.db"))
    assert r.returncode == 0 and "server unreachable" in r.stdout
    assert "error" in slot_status({"slot": "s", "url": "postgresql://u:secret@127.0.0.1:1/db"})
    assert "secret" not in json.dumps(slot_status({"slot": "s", "url": "postgresql://u:secret@127.0.0.1:1/db"}))


def test_state_reset_drops_slot_and_publication(src_db, tmp_path):
    dsn, c = _setup(src_db, tmp_path)
    r = _cli("state", "reset", "items", "--state", str(tmp_path / "s.db"))
    assert r.returncode == 0 and "dropped slot nebula_items, publication nebula_items" in r.stdout
    assert c.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)


def test_lag_warning(src_db, tmp_path):
    dsn, c = _setup(src_db, tmp_path)
    c.execute("INSERT INTO items SELECT g, 'z' FROM generate_series(101, 2000) g")
    st = StateStore(str(tmp_path / "s.db")).get("items")
    src = PostgresCdcSource(dsn, options={"tables": "items", "cdc": True, "lag_warn_bytes": 1000})
    src.describe()
    src.resume(st)
    src.open()
    try:
        src.next_round(max_changes=10, max_seconds=2, stop=threading.Event())
    finally:
        src.close()
    assert any("holds" in w and "bytes of WAL" in w for w in src.warnings)


def test_yaml_pipeline(src_db, tmp_path):
    dsn, c = src_db
    c.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    c.execute("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    (tmp_path / "p.yml").write_text(
        "pipelines:\n  - name: items_cdc\n"
        f"    source: {dsn}\n    destination: sqlite:///{tmp_path}/o.db\n"
        "    cdc: true\n    slot: yaml_slot\n    tables: [public.items]\n    until_caught_up: true\n    mode: merge\n    key: [id]\n")
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    run = [sys.executable, "-m", "nebula.cli", "run", str(tmp_path / "p.yml"), "--state", str(tmp_path / "s.db")]
    r = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    c.execute("UPDATE items SET v = 'c' WHERE id = 2")
    r = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "o.db") as s:
        assert s.execute("SELECT id, v FROM items ORDER BY id").fetchall() == [(1, "a"), (2, "c")]
    assert c.execute("SELECT slot_name FROM pg_replication_slots").fetchall() == [("yaml_slot",)]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_stream_waits_instead_of_spinning(src_db, tmp_path):
    """Caught up and nothing new: the stream blocks for changes (was a busy loop writing a checkpoint per spin)."""
    import signal
    import sqlite3
    import time

    dsn, c = src_db
    c.execute("CREATE TABLE idle (id int PRIMARY KEY, v text)")
    c.execute("INSERT INTO idle SELECT g, 'x' FROM generate_series(1, 10) g")
    db = tmp_path / "out.db"
    p = subprocess.Popen([sys.executable, "-m", "nebula.cli", "copy", dsn, f"sqlite:///{db}", "--cdc", "--tables",
                          "public.idle", "--mode", "merge", "--state", str(tmp_path / "s.db"), "--no-progress"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        n = 0
        while time.time() < deadline and n < 10:
            time.sleep(0.2)
            try:
                n = sqlite3.connect(db).execute("SELECT count(*) FROM idle").fetchone()[0]
            except sqlite3.Error:
                n = 0
        assert n == 10, "the snapshot never arrived"
        time.sleep(1.0)
        before = _cpu_seconds(p.pid)
        time.sleep(3.0)
        used = _cpu_seconds(p.pid) - before
        assert used < 0.6, f"an idle stream used {used:.2f} s of CPU in 3 s"
        c.execute("INSERT INTO idle VALUES (11, 'late')")  # and it still streams
        deadline = time.time() + 30
        while time.time() < deadline and n < 11:
            time.sleep(0.2)
            n = sqlite3.connect(db).execute("SELECT count(*) FROM idle").fetchone()[0]
        assert n == 11
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)


def test_publication_name_from_the_cli(src_db, tmp_path):
    dsn, c = src_db
    c.execute("CREATE TABLE pubt (id int PRIMARY KEY, v text)")
    c.execute("INSERT INTO pubt VALUES (1, 'a')")
    r = subprocess.run([sys.executable, "-m", "nebula.cli", "copy", dsn, f"sqlite:///{tmp_path}/o.db", "--cdc",
                        "--tables", "public.pubt", "--slot", "s_pub", "--publication", "my_pub", "--until-caught-up",
                        "--state", str(tmp_path / "s.db"), "--no-progress", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows_written"] == 1
    pubs = [x[0] for x in c.execute("SELECT pubname FROM pg_publication").fetchall()]
    assert "my_pub" in pubs and "s_pub" not in pubs
    r = _cli("cdc", "drop", "--url", dsn, "--slot", "s_pub", "--publication", "my_pub")
    assert r.returncode == 0, r.stderr
    assert "my_pub" not in [x[0] for x in c.execute("SELECT pubname FROM pg_publication").fetchall()]


def test_infinite_dates_and_timestamps_stream_like_the_snapshot(src_db, tmp_path, cdc_server):
    """'infinity' / '-infinity' arrive as text in the stream and as PostgreSQL's binary sentinels in the
    snapshot: both load as the same values, and a PostgreSQL destination gets infinity back."""
    import psycopg

    dsn, c = src_db
    c.execute("CREATE TABLE inf (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz)")
    c.execute("INSERT INTO inf VALUES (1, 'infinity', 'infinity', '-infinity'), (2, '2024-01-02', "
              "'2024-01-02 03:04:05', '2024-01-02 03:04:05+00')")
    dest_db = dsn.rsplit("/", 1)[1] + "_dest"
    with psycopg.connect(cdc_server.dsn, autocommit=True) as a:
        a.execute(f"CREATE DATABASE {dest_db}")
    dest = dsn.rsplit("/", 1)[0] + "/" + dest_db
    kw = dict(cdc=True, until_caught_up=True, tables="public.inf", mode="merge", state=str(tmp_path / "s.db"),
              progress="none")
    assert nebula.copy(dsn, dest, **kw).rows_written == 2
    c.execute("INSERT INTO inf VALUES (3, '-infinity', '-infinity', 'infinity')")
    c.execute("UPDATE inf SET d = '-infinity' WHERE id = 2")
    c.execute("SELECT pg_logical_emit_message(true, 'nebula', 'END')")
    nebula.copy(dsn, dest, **kw)
    want = c.execute("SELECT id, d::text, ts::text, tz::text FROM inf ORDER BY id").fetchall()
    with psycopg.connect(dest) as d:
        d.execute("SET TIME ZONE 'UTC'")
        got = d.execute("SELECT id, d::text, ts::text, tz::text FROM inf ORDER BY id").fetchall()
    c.execute("SET TIME ZONE 'UTC'")
    want = c.execute("SELECT id, d::text, ts::text, tz::text FROM inf ORDER BY id").fetchall()
    assert got == want
    assert got[0][1:] == ("infinity", "infinity", "-infinity") and got[2][1:] == ("-infinity", "-infinity",
                                                                                   "infinity")
