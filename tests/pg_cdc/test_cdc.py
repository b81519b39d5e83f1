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
    assert st["lsn"] >= log[-1][3] and slot_lsn(c, "nebula_orders") == st["lsn_text"]


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


def test_truncate_in_the_change_log_and_in_merge(src_db, tmp_path):
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
    # merge: the truncate empties the table, the insert after it stays
    copy(dsn, f"sqlite:///{tmp_path}/m.db", tmp_path / "m.db", tables="orders", slot="merge_slot")
    with sqlite3.connect(tmp_path / "m.db") as s:
        assert s.execute("SELECT id, qty FROM orders").fetchall() == [(1, 1)]


def test_dropped_slot_is_a_clear_error_with_the_resync(src_db, tmp_path):
    dsn, c = src_db
    seed(c, 5)
    db = tmp_path / "out.db"
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders")
    c.execute("SELECT pg_drop_replication_slot('nebula_orders')")
    with pytest.raises(SourceError, match=r"does not exist.*nebula state reset") as e:
        copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders")
    assert f"nebula state reset orders --state {tmp_path / 's.db'}" in str(e.value)  # the exact command
    StateStore(str(tmp_path / "s.db")).delete("orders")
    c.execute("INSERT INTO orders (id) VALUES (77)")
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders")
    assert dest_rows(db) == source_rows(c)


def test_wal_level_not_logical(pg_dsn, tmp_path):
    with pytest.raises(NebulaError, match="wal_level"):
        nebula.copy(pg_dsn, f"sqlite:///{tmp_path}/x.db", tables="nope", cdc=True, until_caught_up=True,
                    progress="none", state=str(tmp_path / "s.db"))




def test_replication_connection_killed_mid_stream_is_resumed(src_db, tmp_path):
    """The walsender terminated (twice) while a backlog streams: reconnected, nothing lost or doubled."""
    import psycopg

    dsn, c = src_db
    seed(c, 10)
    db = tmp_path / "log.db"
    copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders", mode="append")
    with psycopg.connect(dsn) as w:  # a backlog of 3000 one-row transactions
        for i in range(3000):
            w.execute("INSERT INTO orders (id, qty) VALUES (%s, 1)", (1000 + i,))
            w.commit()
    end_marker(c)
    killed = []

    def killer():
        import psycopg as pg

        with pg.connect(dsn, autocommit=True) as k:
            deadline = time.monotonic() + 20
            while len(killed) < 2 and time.monotonic() < deadline:
                row = k.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                                "WHERE slot_name = 'nebula_orders' AND active_pid IS NOT NULL").fetchone()
                if row:
                    killed.append(1)
                    time.sleep(0.3)
                time.sleep(0.002)

    t = threading.Thread(target=killer)
    t.start()
    r = copy(dsn, f"sqlite:///{db}", tmp_path / "s.db", tables="orders", mode="append", max_changes=100)
    t.join()
    assert killed and any("connection lost" in x for x in r.warnings)
    with sqlite3.connect(db) as s:
        ids = [x[0] for x in s.execute("SELECT id FROM orders WHERE _op = 'c'").fetchall()]
    assert sorted(ids) == list(range(1000, 4000))


def test_missing_replication_privilege_is_a_clear_error(src_db, tmp_path):
    dsn, c = src_db
    c.execute("CREATE TABLE plain (id int PRIMARY KEY)")
    c.execute("DROP ROLE IF EXISTS norepl")
    c.execute("CREATE ROLE norepl LOGIN")
    c.execute("ALTER TABLE plain OWNER TO norepl")
    c.execute(f"GRANT CREATE ON DATABASE {dsn.rsplit('/', 1)[1]} TO norepl")
    url = dsn.replace("postgres@", "norepl@")
    with pytest.raises(NebulaError, match="REPLICATION attribute"):
        copy(url, f"sqlite:///{tmp_path}/o.db", tmp_path / "s.db", tables="plain")
    c.execute("DROP PUBLICATION IF EXISTS nebula_plain")
    c.execute("DROP TABLE plain")
    c.execute(f"REVOKE CREATE ON DATABASE {dsn.rsplit('/', 1)[1]} FROM norepl")
    c.execute("DROP ROLE norepl")


def test_table_without_primary_key(src_db, tmp_path):
    """The rule: the change log needs no key; merge needs --key (and the source table a replica identity for
    its updates and deletes, which PostgreSQL itself enforces)."""
    dsn, c = src_db
    c.execute("CREATE TABLE nokey (a int, b text)")
    c.execute("INSERT INTO nokey VALUES (1, 'x')")
    copy(dsn, f"sqlite:///{tmp_path}/log.db", tmp_path / "s.db", tables="nokey", mode="append")
    c.execute("INSERT INTO nokey VALUES (2, 'y')")
    r = copy(dsn, f"sqlite:///{tmp_path}/log.db", tmp_path / "s.db", tables="nokey", mode="append")
    assert r.rows_written == 1
    with pytest.raises(NebulaError, match="no primary key"):
        copy(dsn, f"sqlite:///{tmp_path}/m.db", tmp_path / "m.db", tables="nokey", slot="nokey_merge")
    c.execute("ALTER TABLE nokey REPLICA IDENTITY FULL")
    c.execute("UPDATE nokey SET b = 'z' WHERE a = 1")
    copy(dsn, f"sqlite:///{tmp_path}/k.db", tmp_path / "k.db", tables="nokey", slot="nokey_k", key="a")
    c.execute("UPDATE nokey SET b = 'w' WHERE a = 2")
    c.execute("UPDATE nokey SET a = 3 WHERE a = 1")  # the key changes: the old image says which row goes
    copy(dsn, f"sqlite:///{tmp_path}/k.db", tmp_path / "k.db", tables="nokey", slot="nokey_k", key="a")
    assert dest_rows(tmp_path / "k.db", "nokey", "a, b") == source_rows(c, "nokey", "a, b")


def test_server_settings_do_not_change_the_text_values(src_db, tmp_path):
    """DateStyle/TimeZone of the database do not reach the parse kernels (the walsender's are fixed)."""
    dsn, c = src_db
    db = dsn.rsplit("/", 1)[1]
    c.execute(f"ALTER DATABASE {db} SET datestyle = 'SQL, DMY'")
    c.execute(f"ALTER DATABASE {db} SET timezone = 'America/New_York'")
    c.execute("CREATE TABLE ev (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz, f real)")
    out = f"sqlite:///{tmp_path}/o.db"
    copy(dsn, out, tmp_path / "s.db", tables="ev")
    c.execute("INSERT INTO ev VALUES (1, '2024-02-29', '2024-02-29 13:14:15.5', '2024-02-29 13:14:15+02', 0.1)")
    copy(dsn, out, tmp_path / "s.db", tables="ev")
    with sqlite3.connect(tmp_path / "o.db") as s:
        assert s.execute("SELECT d, ts, tz, f FROM ev").fetchone() == (
            "2024-02-29", "2024-02-29T13:14:15.500000", "2024-02-29T11:14:15.000000Z", pytest.approx(0.1))


def test_slot_limit_reached_is_a_clear_error(src_db, tmp_path):
    dsn, c = src_db
    c.execute("CREATE TABLE s (id int PRIMARY KEY)")
    used = c.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0]
    limit = int(c.execute("SHOW max_replication_slots").fetchone()[0])
    for i in range(limit - used):
        c.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (f"filler_{i}",))
    with pytest.raises(NebulaError, match="max_replication_slots"):
        copy(dsn, f"sqlite:///{tmp_path}/o.db", tmp_path / "s.db", tables="s")


def test_idle_slot_follows_other_writes(src_db, cdc_server, tmp_path):
    """Writes to tables outside the publication do not pile up WAL behind the slot once the stream is idle."""
    dsn, c = src_db
    seed(c, 5)
    c.execute("CREATE TABLE other (id int)")
    out = f"sqlite:///{tmp_path}/o.db"
    copy(dsn, out, tmp_path / "s.db", tables="orders")
    c.execute("INSERT INTO other SELECT generate_series(1, 20000)")  # no end marker: caught up by keepalives
    before = c.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    copy(dsn, out, tmp_path / "s.db", tables="orders")
    lag = c.execute("SELECT pg_wal_lsn_diff(%s, confirmed_flush_lsn) FROM pg_replication_slots", (before,)).fetchone()
    assert lag[0] <= 0


def test_a_table_added_to_a_running_pipeline_needs_a_new_snapshot(src_db, tmp_path):
    dsn, c = src_db
    seed(c, 3)
    c.execute("CREATE TABLE more (id int PRIMARY KEY)")
    copy(dsn, f"sqlite:///{tmp_path}/o.db", tmp_path / "s.db", tables="orders", name="p")
    with pytest.raises(NebulaError, match=r"public.more not in this pipeline.s snapshot.*nebula state reset p --state "):
        copy(dsn, f"sqlite:///{tmp_path}/{{table}}.db", tmp_path / "s.db", tables="orders,more", name="p",
             slot="nebula_orders")
