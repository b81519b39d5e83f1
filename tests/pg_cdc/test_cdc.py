"""PostgreSQL CDC against a throwaway server (wal_level=logical): snapshot + stream, resume, kills, DDL, TOAST."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

import nebula
from nebula.errors import NebulaError, SourceError
from nebula.state import StateStore

DDL = ("CREATE TABLE orders (id int PRIMARY KEY, qty int, amount numeric(10,2), note text, score float8, "
       "ok bool, day date, ts timestamptz, tags text[])")
COLS = "id, qty, amount, note, score, ok"


def seed(c, n, start=1):
    if start == 1:
        c.execute(DDL)
    c.execute("INSERT INTO orders SELECT g, g %% 7, g / 4.0, 'note ' || g, g * 0.5, g %% 2 = 0, "
              "date '2024-01-01' + g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', "
              "ARRAY['a', 'b'] FROM generate_series(%s::int, %s::int) g", (start, start + n - 1))


def norm(v):
    import decimal

    if v is None:
        return None
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float | decimal.Decimal) or (isinstance(v, str) and v.replace(".", "", 1).lstrip("-").isdigit()
                                                  and "." in v):
        return f"{float(v):.6f}"
    return str(v)


def source_rows(c, table="orders", cols=COLS):
    return [tuple(norm(v) for v in r) for r in c.execute(f"SELECT {cols} FROM {table} ORDER BY 1").fetchall()]


def dest_rows(db, table="orders", cols=COLS):
    with sqlite3.connect(db) as s:
        return [tuple(norm(v) for v in r) for r in s.execute(f"SELECT {cols} FROM {table} ORDER BY 1").fetchall()]


def end_marker(c):
    """A transaction the slot decodes (PG15 skips empty ones): everything before it is loaded once it is."""
    c.execute("SELECT pg_logical_emit_message(true, 'nebula', 'END')")


def copy(dsn, out, state, **kw):
    kw.setdefault("mode", "merge")
    return nebula.copy(dsn, out, cdc=True, until_caught_up=True, state=str(state), progress="none", **kw)


def slot_lsn(c, slot):
    row = c.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                    (slot,)).fetchone()
    return row and row[0]


def test_snapshot_then_stream_merge_into_sqlite(src_db, tmp_path):
    dsn, c = src_db
    seed(c, 2000)
    db = tmp_path / "out.db"
    r = copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="public.orders")
    assert r.rows_written == 2000
    assert dest_rows(db) == source_rows(c)
    c.execute("INSERT INTO orders (id, qty, note) SELECT g, 1, '' FROM generate_series(5001, 5100) g")
    c.execute("UPDATE orders SET qty = 99, note = NULL WHERE id <= 10")
    c.execute("DELETE FROM orders WHERE id BETWEEN 20 AND 39")
    c.execute("UPDATE orders SET id = id + 10000 WHERE id = 50")  # a key change: delete + insert
    with c.transaction():
        c.execute("UPDATE orders SET qty = 1 WHERE id = 60")
        c.execute("UPDATE orders SET qty = 2 WHERE id = 60")
        c.execute("DELETE FROM orders WHERE id = 61")
        c.execute("INSERT INTO orders (id, qty) VALUES (61, 7)")
    r = copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders")
    assert dest_rows(db) == source_rows(c)
    with sqlite3.connect(db) as s:
        assert s.execute("SELECT note FROM orders WHERE id = 5001").fetchone() == ("",)  # empty text is not null
        # id 2 from the snapshot (binary COPY), id 60 from the stream (text): same values
        assert s.execute("SELECT tags, day, ts FROM orders WHERE id IN (2, 60) ORDER BY id").fetchall() == [
            ("{a,b}", "2024-01-03", "2024-01-01T00:02:00.000000Z"),
            ("{a,b}", "2024-03-01", "2024-01-01T01:00:00.000000Z")]
    st = StateStore(str(tmp_path / "s.db")).get("orders")
    assert st["slot"] == "nebula_orders" and st["lsn_text"] == slot_lsn(c, "nebula_orders")
    # nothing new: a rerun loads nothing and keeps the position
    r = copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders")
    assert r.rows_written == 0 and dest_rows(db) == source_rows(c)


def test_change_log_and_ack_after_commit(src_db, tmp_path):
    """The change log has _op/_lsn/_commit_ts; the slot's confirmed_flush_lsn is only what was committed."""
    dsn, c = src_db
    seed(c, 10)
    db = tmp_path / "log.db"
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders", mode="append")
    first = slot_lsn(c, "nebula_orders")
    c.execute("UPDATE orders SET qty = 5 WHERE id = 1")
    c.execute("DELETE FROM orders WHERE id = 2")
    assert slot_lsn(c, "nebula_orders") == first  # not acknowledged before a run commits it
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders", mode="append")
    with sqlite3.connect(db) as s:
        log = s.execute("SELECT id, qty, _op, _lsn FROM orders ORDER BY rowid").fetchall()
    assert [x[2] for x in log] == ["r"] * 10 + ["u", "d"]
    assert log[-2][:3] == (1, 5, "u") and log[-1][:3] == (2, None, "d") and log[-1][3] > log[-2][3] > log[0][3]
    st = StateStore(str(tmp_path / "s.db")).get("orders")
    assert st["lsn"] == log[-1][3] and slot_lsn(c, "nebula_orders") == st["lsn_text"]


def _run_cli(args, **kw):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.Popen([sys.executable, "-m", "nebula.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


class Writer(threading.Thread):
    """Inserts, updates and deletes in small transactions until stopped."""

    def __init__(self, dsn, start=100_000):
        super().__init__(daemon=True)
        import psycopg

        self.c = psycopg.connect(dsn, autocommit=True)
        self.stop = threading.Event()
        self.next = start

    def run(self):
        while not self.stop.is_set():
            i = self.next
            self.next += 3
            with self.c.transaction():
                self.c.execute("INSERT INTO orders (id, qty, note) VALUES (%s, 1, 'w'), (%s, 2, 'w'), (%s, 3, 'w')",
                               (i, i + 1, i + 2))
                self.c.execute("UPDATE orders SET qty = qty + 10 WHERE id = %s", (i % 500 + 1,))
                self.c.execute("DELETE FROM orders WHERE id = %s", (i + 1,))
            time.sleep(0.002)


def test_sigkill_mid_stream_then_resume_is_exact(src_db, tmp_path):
    dsn, c = src_db
    seed(c, 500)
    w = Writer(dsn)
    w.start()
    out = f"sqlite:///{tmp_path}/log.db"
    args = ["copy", dsn, out, "--cdc", "--tables", "orders", "--state", str(tmp_path / "s.db"), "--no-progress"]
    try:
        for delay in (1.5, 2.0, 2.5):
            p = _run_cli(args)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
    finally:
        w.stop.set()
        w.join()
    end_marker(c)
    p = _run_cli([*args, "--until-caught-up", "--json"])
    outp, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    with sqlite3.connect(tmp_path / "log.db") as s:
        log = s.execute("SELECT id, qty, _op, _lsn FROM orders ORDER BY rowid").fetchall()
    keys = [(i, op, lsn) for i, _, op, lsn in log]
    assert len(keys) == len(set(keys)), "duplicate changes in the change log"
    state = {}
    for i, q, op, _ in log:
        if op == "d":
            state.pop(i, None)
        else:
            state[i] = q
    src = c.execute("SELECT id, qty FROM orders ORDER BY id").fetchall()
    assert sorted(state.items()) == src
    assert w.next > 100_100  # the writer really ran during the kills


def test_ddl_mid_stream_evolves_the_destination(src_db, tmp_path):
    dsn, c = src_db
    seed(c, 20)
    db = tmp_path / "out.db"
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders")
    c.execute("INSERT INTO orders (id, qty) VALUES (100, 1)")
    c.execute("ALTER TABLE orders ADD COLUMN extra int8")
    c.execute("INSERT INTO orders (id, qty, extra) VALUES (101, 2, 42)")
    c.execute("UPDATE orders SET extra = 7 WHERE id = 1")
    c.execute("ALTER TABLE orders DROP COLUMN note")
    c.execute("INSERT INTO orders (id, qty, extra) VALUES (102, 3, 43)")
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders")
    assert dest_rows(db, cols="id, qty, extra") == source_rows(c, cols="id, qty, extra")
    with sqlite3.connect(db) as s:
        assert s.execute("SELECT note FROM orders WHERE id = 3").fetchone() == ("note 3",)
        assert s.execute("SELECT note FROM orders WHERE id = 102").fetchone() == (None,)  # dropped: null from then


def test_unchanged_toast_values_are_kept(src_db, tmp_path):
    """A large value an update does not touch is not sent; merge must not overwrite it with NULL."""
    dsn, c = src_db
    c.execute("CREATE TABLE docs (id int PRIMARY KEY, n int, body text)")
    c.execute("ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL")  # out of line, uncompressed
    big = "".join(chr(65 + (i * 7) % 26) for i in range(20000))
    c.execute("INSERT INTO docs VALUES (1, 0, %s), (2, 0, %s)", (big, big[::-1]))
    db = tmp_path / "out.db"
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="docs")
    with c.transaction():  # same round, the new image before: the value comes from the round
        c.execute("INSERT INTO docs VALUES (3, 0, %s)", (big + "x",))
        c.execute("UPDATE docs SET n = 1 WHERE id = 3")
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="docs")
    c.execute("UPDATE docs SET n = 1 WHERE id = 1")  # no image in the round, default replica identity
    with pytest.raises(SourceError, match="REPLICA IDENTITY FULL"):
        copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="docs")
    c.execute("ALTER TABLE docs REPLICA IDENTITY FULL")
    c.execute("UPDATE docs SET n = 2 WHERE id = 2")  # the old image carries the value
    StateStore(str(tmp_path / "s.db")).delete("docs")
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="docs")  # resync: new slot and snapshot
    c.execute("UPDATE docs SET n = 3 WHERE id = 1")
    c.execute("UPDATE docs SET n = 3 WHERE id = 2")
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="docs")
    assert dest_rows(db, "docs", "id, n, body") == source_rows(c, "docs", "id, n, body")


def test_truncate_in_the_change_log_and_an_error_in_merge(src_db, tmp_path):
    dsn, c = src_db
    seed(c, 5)
    log = tmp_path / "log.db"
    copy(dsn, f"sqlite:///{log}", tmp_path / "a.db", tables="orders", mode="append")
    copy(dsn, f"sqlite:///{tmp_path}/m.db", tmp_path / "m.db", tables="orders", slot="merge_slot")
    c.execute("TRUNCATE orders")
    c.execute("INSERT INTO orders (id, qty) VALUES (1, 1)")
    copy(dsn, f"sqlite:///{log}", tmp_path / "a.db", tables="orders", mode="append")
    with sqlite3.connect(log) as s:
        assert s.execute("SELECT id, _op FROM orders ORDER BY rowid").fetchall()[-2:] == [(None, "t"), (1, "c")]
    with pytest.raises(SourceError, match="truncated"):
        copy(dsn, f"sqlite:///{tmp_path}/m.db", tmp_path / "m.db", tables="orders", slot="merge_slot")


def test_dropped_slot_is_a_clear_error_with_the_resync(src_db, tmp_path):
    dsn, c = src_db
    seed(c, 5)
    db = tmp_path / "out.db"
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders")
    c.execute("SELECT pg_drop_replication_slot('nebula_orders')")
    with pytest.raises(SourceError, match=r"does not exist.*nebula state reset"):
        copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders")
    StateStore(str(tmp_path / "s.db")).delete("orders")
    c.execute("INSERT INTO orders (id) VALUES (77)")
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders")
    assert dest_rows(db) == source_rows(c)


def test_wal_level_not_logical(pg_dsn, tmp_path):
    with pytest.raises(NebulaError, match="wal_level"):
        nebula.copy(pg_dsn, f"sqlite:///{tmp_path}/x.db", tables="nope", cdc=True, until_caught_up=True,
                    progress="none", state=str(tmp_path / "s.db"))


