"""MySQL/MariaDB CDC against a throwaway MariaDB: snapshot + stream, kill and resume, rotation, DDL, errors."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

import nebula
from nebula.errors import ConfigError, NebulaError, SourceError
from nebula.state import StateStore

from ._server import MariaDbServer

DDL = ("CREATE TABLE orders (id INT PRIMARY KEY, qty INT UNSIGNED, amount DECIMAL(10,2), note VARCHAR(40), "
       "ts DATETIME(6), big BIGINT UNSIGNED, b VARBINARY(8)) ENGINE=InnoDB")


def source_rows(c, table="orders", cols="id, qty, amount, note"):
    with c.cursor() as cur:
        cur.execute(f"SELECT {cols} FROM {table} ORDER BY id")
        return [tuple(None if v is None else str(v) for v in r) for r in cur.fetchall()]


def dest_rows(db, table="orders", cols="id, qty, amount, note"):
    with sqlite3.connect(db) as c:
        return [tuple(None if v is None else str(v) for v in r)
                for r in c.execute(f"SELECT {cols} FROM {table} ORDER BY id").fetchall()]


def replay(log_rows):
    """The state a change log describes: last change per id, deletes removed."""
    state = {}
    for r in log_rows:
        if r["_op"] == "d":
            state.pop(r["id"], None)
        else:
            state[r["id"]] = r
    return state


class Writer(threading.Thread):
    """Inserts, updates and deletes in small transactions until stopped."""

    def __init__(self, maria, dbname, start=1000):
        super().__init__(daemon=True)
        self.c = maria.root(dbname)
        self.stop = threading.Event()
        self.next = start
        self.count = 0

    def run(self):
        with self.c.cursor() as cur:
            while not self.stop.is_set():
                i = self.next
                self.next += 3
                cur.execute("BEGIN")
                cur.execute("INSERT INTO orders (id, qty, amount, note) VALUES (%s, 1, 1.5, 'w'), (%s, 2, 2.5, 'w'), "
                            "(%s, 3, 3.5, 'w')", (i, i + 1, i + 2))
                cur.execute("UPDATE orders SET qty = qty + 10, note = 'u' WHERE id = %s", (i,))
                cur.execute("DELETE FROM orders WHERE id = %s", (i + 1,))
                cur.execute("COMMIT")
                self.count += 1
                time.sleep(0.002)


def seed(c, n=500):
    with c.cursor() as cur:
        cur.execute(DDL)
        cur.executemany("INSERT INTO orders (id, qty, amount, note) VALUES (%s, %s, %s, %s)",
                        [(i, i % 7, f"{i}.25", f"n{i}") for i in range(1, n + 1)])


def test_snapshot_and_stream_with_concurrent_writer(db, maria, tmp_path):
    dsn, c = db
    seed(c)
    w = Writer(maria, dsn.rsplit("/", 1)[1])
    w.start()
    out = f"sqlite:///{tmp_path}/o.db"
    state = str(tmp_path / "state.db")
    try:
        r1 = nebula.copy(dsn, out, cdc=True, until_caught_up=True, mode="merge", state=state, name="m")
        log1 = nebula.copy(dsn, f"{tmp_path}/log.jsonl", cdc=True, until_caught_up=True, state=state, name="log")
        time.sleep(0.5)
        nebula.copy(dsn, out, cdc=True, until_caught_up=True, mode="merge", state=state, name="m")
        nebula.copy(dsn, f"{tmp_path}/log.jsonl", cdc=True, until_caught_up=True, state=state, name="log",
                    mode="append")
    finally:
        w.stop.set()
        w.join()
    r2 = nebula.copy(dsn, out, cdc=True, until_caught_up=True, mode="merge", state=state, name="m")
    nebula.copy(dsn, f"{tmp_path}/log.jsonl", cdc=True, until_caught_up=True, state=state, name="log", mode="append")
    assert r1.rows_written >= 500 and log1.rows_written >= 500 and w.count > 10
    assert dest_rows(f"{tmp_path}/o.db") == source_rows(c)
    assert [x[1] for x in sqlite3.connect(f"{tmp_path}/o.db").execute("PRAGMA table_info(orders)")][-1] == "b"
    log = [json.loads(x) for x in open(tmp_path / "log.jsonl")]
    state_from_log = replay(log)
    assert sorted(state_from_log) == [int(r[0]) for r in source_rows(c)]
    assert all(state_from_log[int(r[0])]["qty"] == int(r[1]) for r in source_rows(c))
    assert {x["_op"] for x in log} == {"r", "c", "u", "d"}
    assert r2.rows_written >= 0


def test_types_and_zero_dates(db, tmp_path):
    dsn, c = db
    with c.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, big BIGINT UNSIGNED, "
                    "d DECIMAL(20,4), f FLOAT, g DOUBLE, s VARCHAR(10), bin VARBINARY(4), dt DATE, ts DATETIME(3), "
                    "tz TIMESTAMP(6) NULL, e ENUM('a','b'), st SET('x','y'), bt BIT(5), y YEAR, tm TIME(2), "
                    "j JSON)")
        cur.execute("INSERT INTO t VALUES (1, -128, 255, 18446744073709551615, -12345678.1234, 1.5, 2.25, 'é', "
                    "x'00ff10', '2024-02-29', '2024-01-02 03:04:05.678', '2024-01-02 03:04:05.123456', 'b', 'x,y', "
                    "b'10101', 2024, '01:02:03.25', '{\"k\": [1]}')")
        cur.execute("INSERT INTO t (id, dt, ts) VALUES (2, '0000-00-00', '0000-00-00 00:00:00')")
    dl = tmp_path / "dead.jsonl"
    nebula.copy(dsn, f"sqlite:///{tmp_path}/t.db", cdc=True, until_caught_up=True, state=str(tmp_path / "s.db"),
                on_error="dead-letter", dead_letter=str(dl))
    with c.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("INSERT INTO t SELECT 3, ti, tu, big, d, f, g, s, bin, dt, ts, tz, e, st, bt, y, tm, j FROM t "
                    "WHERE id = 1")
        cur.execute("INSERT INTO t (id, dt, ts) VALUES (4, '0000-00-00', '2024-00-10 00:00:00')")
    r = nebula.copy(dsn, f"sqlite:///{tmp_path}/t.db", cdc=True, until_caught_up=True, state=str(tmp_path / "s.db"),
                    on_error="dead-letter", dead_letter=str(dl))
    rows = sqlite3.connect(tmp_path / "t.db").execute(
        "SELECT id, ti, tu, big, d, f, g, s, bin, dt, ts, tz, e, st, bt, y, tm, j FROM t ORDER BY id, _pos").fetchall()
    snap, stream = rows[0], rows[2]
    want = (-128, 255, "18446744073709551615", "-12345678.1234", 1.5, 2.25, "é", b"\x00\xff\x10", "2024-02-29",
            "2024-01-02T03:04:05.678000", "2024-01-02T03:04:05.123456Z", "b", "x,y", 21, 2024, 3723250000,
            '{"k": [1]}')
    assert snap[1:] == want
    assert stream[1:-1] == want[:-1] and json.loads(stream[-1]) == {"k": [1]}
    assert rows[1][9:11] == (None, None) and rows[3][9:11] == (None, None)
    rejected = [json.loads(x) for x in open(dl)]
    assert len(rejected) == 4 and {x["column"] for x in rejected} == {"dt", "ts"} and r.rows_rejected == 2


def _run_cli(args, **kw):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.Popen([sys.executable, "-m", "nebula.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_mid_stream_then_resume_is_exact(db, maria, tmp_path):
    dsn, c = db
    seed(c, 300)
    w = Writer(maria, dsn.rsplit("/", 1)[1])
    w.start()
    out = f"sqlite:///{tmp_path}/log.db"
    args = ["copy", dsn, out, "--cdc", "--table", "log", "--state", str(tmp_path / "s.db"), "--no-progress"]
    try:
        for delay in (1.5, 2.0, 2.5):
            p = _run_cli(args)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
    finally:
        w.stop.set()
        w.join()
    p = _run_cli([*args, "--until-caught-up", "--json"])
    outp, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    with sqlite3.connect(tmp_path / "log.db") as s:
        log = s.execute("SELECT id, qty, _op, _pos FROM log ORDER BY rowid").fetchall()
    keys = [(i, op, pos) for i, _, op, pos in log]
    assert len(keys) == len(set(keys)), "duplicate changes in the change log"
    state = replay([{"id": i, "qty": q, "_op": op} for i, q, op, _ in log])
    src = source_rows(c, cols="id, qty")
    assert sorted(state) == [int(r[0]) for r in src]
    assert all(state[int(i)]["qty"] == int(q) for i, q in src)


def test_rotation_ddl_and_dropped_connection(db, maria, tmp_path):
    from nebula.connectors.destinations.sqlite import SqliteDestination
    from nebula.connectors.sources.mysql import MysqlSource
    from nebula.pipeline.cdc import CdcOptions, run_cdc
    from nebula.pipeline.deadletter import Rejects

    dsn, c = db
    seed(c, 50)
    src = MysqlSource(dsn, options={"cdc": True, "retries": 5})
    stop = threading.Event()
    rounds = []
    box = {}

    def go():
        try:
            box["r"] = run_cdc(src, lambda t: SqliteDestination(f"sqlite:///{tmp_path}/d.db"), name="x", mode="merge",
                               key=None, store=None, rejects=Rejects("fail"), stop=stop,
                               opts=CdcOptions(max_seconds=0.3), on_round=rounds.append)
        except BaseException as e:  # noqa: BLE001
            box["e"] = e

    t = threading.Thread(target=go)
    t.start()
    deadline = time.time() + 60  # the DDL below must come after the snapshot (a slow start saw the dropped
    while not rounds and "e" not in box and time.time() < deadline:  # column never, so it was not created)
        time.sleep(0.05)
    assert rounds, box.get("e", "no snapshot round within 60 s")
    root = maria.root()
    with c.cursor() as cur:
        cur.execute("INSERT INTO orders (id, qty) VALUES (100, 1)")
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("INSERT INTO orders (id, qty) VALUES (101, 2)")
        cur.execute("ALTER TABLE orders ADD COLUMN extra VARCHAR(20)")
        cur.execute("INSERT INTO orders (id, qty, extra) VALUES (102, 3, 'new')")
        cur.execute("ALTER TABLE orders DROP COLUMN note, MODIFY qty BIGINT")
        cur.execute("INSERT INTO orders (id, qty, extra) VALUES (103, 5000000000, 'wide')")
        time.sleep(1.0)
        with root.cursor() as rc:  # kill the binlog connection: retried from the last transaction
            rc.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
            for (pid,) in rc.fetchall():
                rc.execute(f"KILL {pid}")
        cur.execute("UPDATE orders SET extra = 'after-kill' WHERE id = 1")
        cur.execute("DELETE FROM orders WHERE id = 2")
    deadline = time.time() + 20
    while time.time() < deadline:
        got = dest_rows(tmp_path / "d.db", cols="id, qty, extra") if os.path.exists(tmp_path / "d.db") else []
        if got == source_rows(c, cols="id, qty, extra"):
            break
        time.sleep(0.2)
    stop.set()
    t.join(30)
    assert "e" not in box, box.get("e")
    assert dest_rows(tmp_path / "d.db", cols="id, qty, extra") == source_rows(c, cols="id, qty, extra")
    cols = [x[1] for x in sqlite3.connect(tmp_path / "d.db").execute("PRAGMA table_info(orders)")]
    assert "note" in cols and "extra" in cols  # a dropped column stays
    assert sqlite3.connect(tmp_path / "d.db").execute("SELECT note FROM orders WHERE id = 103").fetchone() == (None,)
    assert any("binlog connection lost" in w for w in src.warnings)


def test_purged_binlog_names_the_resync_command(db, maria, tmp_path):
    dsn, c = db
    seed(c, 5)
    state = str(tmp_path / "s.db")
    nebula.copy(dsn, f"sqlite:///{tmp_path}/p.db", cdc=True, until_caught_up=True, state=state, name="p")
    with maria.root().cursor() as cur:
        for _ in range(50):  # a binlog being read by a dump thread is not purged
            cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
            if cur.fetchone()[0] == 0:
                break
            time.sleep(0.1)
        cur.execute("INSERT INTO " + dsn.rsplit("/", 1)[1] + ".orders (id) VALUES (77)")
        needed = StateStore(state).get("p")["file"]
        for _ in range(50):  # MariaDB keeps a binlog until its binlog checkpoint is written
            cur.execute("FLUSH BINARY LOGS")
            time.sleep(0.2)
            cur.execute("SHOW MASTER STATUS")
            cur.execute(f"PURGE BINARY LOGS TO '{cur.fetchone()[0]}'")
            cur.execute("SHOW BINARY LOGS")
            if needed not in [r[0] for r in cur.fetchall()]:
                break
    with pytest.raises(SourceError, match=re.escape(f"Resync: nebula state reset p --state {state}, then run again")):
        nebula.copy(dsn, f"sqlite:///{tmp_path}/p.db", cdc=True, until_caught_up=True, state=state, name="p")
    p = _run_cli(["state", "reset", "p", "--state", state])
    p.communicate(timeout=30)
    r = nebula.copy(dsn, f"sqlite:///{tmp_path}/p.db", cdc=True, until_caught_up=True, state=state, name="p")
    assert r.rows_written == 6


def test_missing_privileges_and_binlog_settings(db, maria, tmp_path):
    dsn, c = db
    seed(c, 1)
    with maria.root().cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'plain'@'%' IDENTIFIED BY 'pw'")
        cur.execute("GRANT SELECT ON *.* TO 'plain'@'%'")
    url = dsn.replace("nebula_cdc:cdc-pass-7", "plain:pw")
    with pytest.raises(ConfigError, match="REPLICATION SLAVE"):
        nebula.copy(url, f"sqlite:///{tmp_path}/x.db", cdc=True, until_caught_up=True)
    # a plain (non-CDC) snapshot needs only SELECT
    assert nebula.copy(url, f"sqlite:///{tmp_path}/x.db").rows_written == 1
    with maria.root().cursor() as cur:
        cur.execute("SET GLOBAL binlog_format = 'STATEMENT'")
    try:
        with pytest.raises(ConfigError, match="binlog_format is STATEMENT"):
            nebula.copy(dsn, f"sqlite:///{tmp_path}/y.db", cdc=True, until_caught_up=True)
    finally:
        with maria.root().cursor() as cur:
            cur.execute("SET GLOBAL binlog_format = 'ROW'")


def test_binlog_off_is_a_clear_error(tmp_path):
    srv = MariaDbServer(log_bin=False).start()
    try:
        with srv.root().cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        p = _run_cli(["copy", srv.dsn, f"sqlite:///{tmp_path}/z.db", "--cdc", "--until-caught-up"])
        _, err = p.communicate(timeout=60)
        assert p.returncode == 2 and "binary log is off" in err and "cdc-pass-7" not in err
    finally:
        srv.stop()


def test_multiple_tables_each_into_its_own_destination(db, tmp_path):
    dsn, c = db
    seed(c, 10)
    with c.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, sku VARCHAR(10))")
        cur.execute("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    state = str(tmp_path / "s.db")
    nebula.copy(dsn, f"{tmp_path}/{{table}}.jsonl", cdc=True, until_caught_up=True, state=state, tables="orders,items")
    with c.cursor() as cur:
        cur.execute("DELETE FROM items WHERE id = 1")
    nebula.copy(dsn, f"{tmp_path}/{{table}}.jsonl", cdc=True, until_caught_up=True, state=state,
                tables="orders,items", mode="append")
    items = [json.loads(x) for x in open(tmp_path / "items.jsonl")]
    assert [(x["id"], x["_op"]) for x in items] == [(1, "r"), (2, "r"), (1, "d")]
    assert len(open(tmp_path / "orders.jsonl").readlines()) == 10
    with pytest.raises(NebulaError, match="placeholder|{table}"):
        nebula.copy(dsn, f"{tmp_path}/one.jsonl", cdc=True, until_caught_up=True, tables="orders,items")
