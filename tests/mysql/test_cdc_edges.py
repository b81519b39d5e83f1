"""MySQL/MariaDB CDC edges against a throwaway MariaDB: every type at its limits (snapshot and stream alike),
invalid and zero dates in the stream, TRUNCATE, statement-logged changes, resync, file/position resume across
rotations, ALTER TABLE MODIFY into PostgreSQL, and the CLI's one-line errors."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys

import pytest

import nebula
from nebula.connectors.destinations.sqlite import SqliteDestination
from nebula.errors import SourceError
from nebula.state import StateStore

from .._servers import started

# (column, type, value inserted, value expected in JSON lines)
TYPES = [
    ("ti", "TINYINT", -128, -128), ("ti2", "TINYINT", 127, 127), ("tu", "TINYINT UNSIGNED", 255, 255),
    ("si", "SMALLINT", -32768, -32768), ("su", "SMALLINT UNSIGNED", 65535, 65535),
    ("mi", "MEDIUMINT", -8388608, -8388608), ("mu", "MEDIUMINT UNSIGNED", 16777215, 16777215),
    ("i", "INT", -2147483648, -2147483648), ("iu", "INT UNSIGNED", 4294967295, 4294967295),
    ("bi", "BIGINT", -9223372036854775808, -9223372036854775808),
    ("bi2", "BIGINT", 9223372036854775807, 9223372036854775807),
    ("bu", "BIGINT UNSIGNED", 18446744073709551615, "18446744073709551615"),
    ("d", "DECIMAL(10,2)", "-12345678.90", "-12345678.90"),
    ("d38", "DECIMAL(38,10)", "-1234567890123456789012345678.0123456789", "-1234567890123456789012345678.0123456789"),
    ("d65", "DECIMAL(65,30)", "-12345678901234567890123456789012345.123456789012345678901234567891",
     "-12345678901234567890123456789012345.123456789012345678901234567891"),
    ("f", "FLOAT", 1.5, 1.5), ("g", "DOUBLE", 1.7976931348623157e308, 1.7976931348623157e308),
    ("c", "CHAR(4)", "ab", "ab"), ("vc", "VARCHAR(20)", "x\U0001f600é", "x\U0001f600é"),
    ("tx", "TEXT", "long text", "long text"), ("l1", "VARCHAR(10) CHARACTER SET latin1", "café", "café"),
    ("bn", "BINARY(4)", b"\x01\x02", b"\x01\x02\x00\x00"), ("vb", "VARBINARY(8)", b"\x00\xff\x10", b"\x00\xff\x10"),
    ("bl", "BLOB", b"\x00\xff\x00", b"\x00\xff\x00"),
    ("dt", "DATE", "1000-01-01", "1000-01-01"), ("dtm", "DATETIME", "9999-12-31 23:59:59", "9999-12-31T23:59:59"),
    ("dt3", "DATETIME(3)", "2024-01-02 03:04:05.678", "2024-01-02T03:04:05.678000"),
    ("dt6", "DATETIME(6)", "2024-02-29 23:59:59.999999", "2024-02-29T23:59:59.999999"),
    ("ts6", "TIMESTAMP(6) NULL", "1970-01-01 00:00:01.000001", "1970-01-01T00:00:01.000001Z"),
    ("ts0", "TIMESTAMP NULL", "2038-01-19 03:14:07", "2038-01-19T03:14:07Z"),
    ("tm", "TIME", "-838:59:59", -3020399000000), ("tm6", "TIME(6)", "12:00:00.000001", 43200000001),
    ("y", "YEAR", 1901, 1901), ("e", "ENUM('a','b c')", "b c", "b c"), ("st", "SET('x','y','z')", "x,z", "x,z"),
    ("b1", "BIT(1)", b"\x01", 1), ("b5", "BIT(5)", b"\x15", 21),
    ("b64", "BIT(64)", b"\xff" * 8, "18446744073709551615"),
    ("j", "JSON", '{"a": "é", "n": null, "big": 12345678901234567890}',
     '{"a": "é", "n": null, "big": 12345678901234567890}'),
]


def _cli(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.run([sys.executable, "-m", "nebula.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _changes(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        for k, *_ in TYPES:
            if k in ("bn", "vb", "bl") and r.get(k) is not None:
                r[k] = base64.b64decode(r[k])
        out.append(r)
    return out


def test_every_type_at_its_limits_snapshot_and_stream_alike(db, tmp_path):
    dsn, c = db
    names = [n for n, *_ in TYPES]
    with c.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, " + ", ".join(f"{n} {t}" for n, t, *_ in TYPES) +
                    ") DEFAULT CHARSET=utf8mb4")
        cur.execute(f"INSERT INTO t (id, {', '.join(names)}) VALUES (1, {', '.join(['%s'] * len(TYPES))})",
                    [v for _, _, v, _ in TYPES])
        cur.execute("INSERT INTO t (id) VALUES (2)")
    out, state = tmp_path / "t.jsonl", str(tmp_path / "s.db")
    nebula.copy(dsn, str(out), cdc=True, until_caught_up=True, state=state)
    with c.cursor() as cur:
        cur.execute(f"INSERT INTO t SELECT 3, {', '.join(names)} FROM t WHERE id = 1")
        cur.execute("INSERT INTO t (id) VALUES (4)")
    nebula.copy(dsn, str(out), cdc=True, until_caught_up=True, state=state, mode="append")
    rows = {r["id"]: r for r in _changes(out)}
    assert [rows[i]["_op"] for i in (1, 2, 3, 4)] == ["r", "r", "c", "c"]
    for i in (1, 3):  # the snapshot's row and the binlog's row: every value exactly as expected
        got = {n: rows[i][n] for n in names}
        assert got == {n: want for n, _, _, want in TYPES}, (i, {n: got[n] for n in names if got[n] != dict(
            (k, w) for k, _, _, w in TYPES)[n]})
    for i in (2, 4):
        assert all(rows[i][n] is None for n in names)


def test_invalid_and_zero_dates_become_null_in_the_stream_too(db, tmp_path):
    """The documented rule: zero dates and invalid dates/datetimes load as NULL (rejected values are reported
    with --on-error dead-letter); the stream's decoder failed on 2024-02-30 and read a zero TIMESTAMP as 1970."""
    dsn, c = db
    with c.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
        cur.execute("CREATE TABLE z (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL)")
        cur.execute("INSERT INTO z VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'), "
                    "(2, '2024-02-30', '2024-02-30 10:00:00', NULL), (3, '2024-01-01', '2024-01-01 00:00:00', "
                    "'2024-01-01 00:00:01')")
    out, state, dl = tmp_path / "z.jsonl", str(tmp_path / "s.db"), tmp_path / "dl.jsonl"
    assert nebula.copy(dsn, str(out), cdc=True, until_caught_up=True, state=state).rows_written == 3
    with c.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
        cur.execute("INSERT INTO z SELECT id + 10, d, dt, ts FROM z")
    r = nebula.copy(dsn, str(out), cdc=True, until_caught_up=True, state=state, mode="append",
                    dead_letter=str(dl))
    rows = {x["id"]: (x["d"], x["dt"], x["ts"]) for x in map(json.loads, open(out))}
    for i in (1, 11):
        assert rows[i] == (None, None, None)
    for i in (2, 12):
        assert rows[i] == (None, None, None)
    for i in (3, 13):
        assert rows[i] == ("2024-01-01", "2024-01-01T00:00:00", "2024-01-01T00:00:01Z")
    rejected = [json.loads(x) for x in open(dl)]
    assert sorted((x["line"], x["column"]) for x in rejected) == [(1, "d"), (1, "dt"), (1, "ts"), (2, "d"), (2, "dt")]
    assert r.rows_rejected == 5 and r.rows_written == 3


def test_truncate_statement_changes_and_resync(db, maria, tmp_path):
    dsn, c = db
    with c.cursor() as cur:
        cur.execute("CREATE TABLE tr (id INT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO tr VALUES (1, 1), (2, 2)")
    state = str(tmp_path / "s.db")
    merged, log = f"sqlite:///{tmp_path}/m.db", str(tmp_path / "log.jsonl")
    nebula.copy(dsn, merged, cdc=True, until_caught_up=True, state=state, name="m", mode="merge")
    nebula.copy(dsn, log, cdc=True, until_caught_up=True, state=state, name="log")
    with c.cursor() as cur:
        cur.execute("INSERT INTO tr VALUES (5, 5)")
        cur.execute("TRUNCATE TABLE tr")
        cur.execute("INSERT INTO tr VALUES (3, 3)")
    nebula.copy(dsn, merged, cdc=True, until_caught_up=True, state=state, name="m", mode="merge")
    nebula.copy(dsn, log, cdc=True, until_caught_up=True, state=state, name="log", mode="append")
    assert sqlite3.connect(tmp_path / "m.db").execute("SELECT id, v FROM tr").fetchall() == [(3, 3)]
    assert [(x["id"], x["_op"]) for x in map(json.loads, open(log))] == [
        (1, "r"), (2, "r"), (5, "c"), (None, "t"), (3, "c")]
    # the checkpoint is committed with the destination's rows and agrees with the state store
    assert SqliteDestination(merged).committed_state("m") == StateStore(state).get("m")
    with c.cursor() as cur:  # DROP TABLE and a new table of the same name: the old rows go too
        cur.execute("DROP TABLE tr")
        cur.execute("CREATE TABLE tr (id INT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO tr VALUES (6, 6)")
    nebula.copy(dsn, merged, cdc=True, until_caught_up=True, state=state, name="m", mode="merge")
    assert sqlite3.connect(tmp_path / "m.db").execute("SELECT id, v FROM tr").fetchall() == [(6, 6)]

    # a session logging statements: its change cannot be captured; a one-line error naming the exact resync
    with c.cursor() as cur:
        cur.execute("INSERT INTO tr VALUES (7, 7)")
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute("INSERT INTO tr VALUES (4, 4)")
        cur.execute("SET SESSION binlog_format = 'ROW'")
    p = _cli("copy", dsn, merged, "--cdc", "--until-caught-up", "--mode", "merge", "--state", state, "--name", "m",
             "--no-progress")
    assert p.returncode == 1, p.stderr
    err = p.stderr.strip()
    assert "\n" not in err and "logged as a statement" in err and "binlog_format=ROW" in err, err
    assert err.endswith(f"resync: nebula state reset m --state {state}") and "cdc-pass-7" not in err
    # the transactions before it were loaded
    assert sqlite3.connect(tmp_path / "m.db").execute("SELECT id FROM tr ORDER BY id").fetchall() == [(6,), (7,)]
    with pytest.raises(SourceError, match="logged as a statement"):
        nebula.copy(dsn, merged, cdc=True, until_caught_up=True, state=state, name="m", mode="merge")

    # resync: a new snapshot replaces the merged rows (a row the source lost meanwhile does not stay)
    with c.cursor() as cur:
        cur.execute("DELETE FROM tr WHERE id = 6")
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute("DELETE FROM tr WHERE id = 7")
        cur.execute("SET SESSION binlog_format = 'ROW'")
    assert _cli("state", "reset", "m", "--state", state).returncode == 0
    nebula.copy(dsn, merged, cdc=True, until_caught_up=True, state=state, name="m", mode="merge")
    assert sqlite3.connect(tmp_path / "m.db").execute("SELECT id, v FROM tr ORDER BY id").fetchall() == [(4, 4)]


def test_file_position_resume_follows_rotations(db, maria, tmp_path):
    """Without a GTID in the checkpoint the stream resumes by binlog file and position, across rotations."""
    dsn, c = db
    with c.cursor() as cur:
        cur.execute("CREATE TABLE r (id INT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO r VALUES (1, 1)")
    state, out = str(tmp_path / "s.db"), str(tmp_path / "r.jsonl")
    nebula.copy(dsn, out, cdc=True, until_caught_up=True, state=state, name="r")
    store = StateStore(state)
    pos = store.get("r")
    assert pos["gtid"]
    store.set("r", {**pos, "gtid": ""})
    with c.cursor() as cur:
        cur.execute("INSERT INTO r VALUES (2, 2)")
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("UPDATE r SET v = 20 WHERE id = 2")
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("DELETE FROM r WHERE id = 1")
    nebula.copy(dsn, out, cdc=True, until_caught_up=True, state=state, name="r", mode="append")
    got = [(x["id"], x["v"], x["_op"]) for x in map(json.loads, open(out))]
    assert got == [(1, 1, "r"), (2, 2, "c"), (2, 20, "u"), (1, 1, "d")]
    after = store.get("r")
    assert after["file"] != pos["file"] and after["gtid"]  # followed the rotations, GTID known again


def test_alter_modify_mid_stream_widens_a_postgresql_destination(db, tmp_path):
    import psycopg

    from ..pg._server import PgServer

    dsn, c = db
    pg = started(lambda: PgServer(), "PostgreSQL")
    try:
        with c.cursor() as cur:
            cur.execute("CREATE TABLE w (id INT PRIMARY KEY, q SMALLINT, s VARCHAR(5))")
            cur.execute("INSERT INTO w VALUES (1, 3, 'a')")
        state = str(tmp_path / "s.db")
        nebula.copy(dsn, pg.dsn, cdc=True, until_caught_up=True, state=state, mode="merge")
        with c.cursor() as cur:
            cur.execute("ALTER TABLE w MODIFY q BIGINT, ADD COLUMN n INT")
            cur.execute("INSERT INTO w VALUES (2, 9000000000, 'b', 1)")
        nebula.copy(dsn, pg.dsn, cdc=True, until_caught_up=True, state=state, mode="merge")
        with c.cursor() as cur:
            cur.execute("ALTER TABLE w MODIFY q VARCHAR(20)")
            cur.execute("INSERT INTO w VALUES (3, 'text', 'c', 2)")
        nebula.copy(dsn, pg.dsn, cdc=True, until_caught_up=True, state=state, mode="merge")
        with psycopg.connect(pg.dsn) as p:
            rows = p.execute("SELECT id, q, s, n FROM w ORDER BY id").fetchall()
            kind = p.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 'w' AND "
                             "column_name = 'q'").fetchone()[0]
        assert rows == [(1, "3", "a", None), (2, "9000000000", "b", 1), (3, "text", "c", 2)] and kind == "text"
    finally:
        pg.stop()


@pytest.mark.parametrize("setting", ["binlog_format=STATEMENT", "binlog_row_image=MINIMAL",
                                     "binlog_row_metadata=MINIMAL", "grants"])
def test_server_settings_and_privileges_are_one_line_cli_errors(db, maria, tmp_path, setting):
    dsn, c = db
    with c.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    url, want = dsn, setting.replace("=", " is ") + ", CDC needs"
    with maria.root().cursor() as cur:
        if setting == "grants":
            cur.execute("CREATE USER IF NOT EXISTS 'slaveonly'@'%' IDENTIFIED BY 'pw9'")
            cur.execute("GRANT SELECT, REPLICATION SLAVE ON *.* TO 'slaveonly'@'%'")
            url, want = dsn.replace("nebula_cdc:cdc-pass-7", "slaveonly:pw9"), "lacks BINLOG MONITOR"
        else:
            cur.execute(f"SET GLOBAL {setting}")
    try:
        p = _cli("copy", url, f"sqlite:///{tmp_path}/x.db", "--cdc", "--until-caught-up", "--no-progress",
                 "--state", str(tmp_path / "s.db"))
    finally:
        with maria.root().cursor() as cur:
            cur.execute("SET GLOBAL binlog_format = 'ROW'")
            cur.execute("SET GLOBAL binlog_row_image = 'FULL'")
            cur.execute("SET GLOBAL binlog_row_metadata = 'FULL'")
    err = p.stderr.strip()
    assert p.returncode == 2 and "\n" not in err and want in err and "Traceback" not in err, err
    assert "cdc-pass-7" not in err and "pw9" not in err


def test_server_restart_mid_stream_is_retried_and_resumed(tmp_path):
    """The binlog connection drops and the first reconnections are refused while the server restarts: each is
    retried with backoff (they failed the run at once), then the stream resumes from the last transaction."""
    import threading
    import time

    from nebula.connectors.destinations.sqlite import SqliteDestination as Sqlite
    from nebula.connectors.sources.mysql import MysqlSource
    from nebula.pipeline.cdc import CdcOptions, run_cdc
    from nebula.pipeline.deadletter import Rejects

    from ._server import MariaDbServer

    srv = started(lambda: MariaDbServer(), "MariaDB")
    try:
        with srv.root().cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
            cur.execute("INSERT INTO t VALUES (1, 1)")
        src = MysqlSource(srv.dsn, options={"cdc": True, "retries": 8})
        stop, rounds, box = threading.Event(), [], {}

        def go():
            try:
                run_cdc(src, lambda t: Sqlite(f"sqlite:///{tmp_path}/d.db"), name="x", mode="merge", key=None,
                        store=None, rejects=Rejects("fail"), stop=stop, opts=CdcOptions(max_seconds=0.3),
                        on_round=rounds.append)
            except BaseException as e:  # noqa: BLE001
                box["e"] = e

        t = threading.Thread(target=go)
        t.start()
        deadline = time.time() + 60
        while len(rounds) < 2 and "e" not in box and time.time() < deadline:  # snapshot, then streaming
            time.sleep(0.05)
        with srv.root().cursor() as cur:
            cur.execute("INSERT INTO t VALUES (2, 2)")
        srv.proc.kill()
        srv.proc.wait()
        time.sleep(1.5)  # reconnections are refused meanwhile
        srv.proc = subprocess.Popen([srv.mariadbd, f"--defaults-file={srv.cnf}"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        srv._wait()
        with srv.root().cursor() as cur:
            cur.execute("UPDATE t SET v = 10 WHERE id = 1")
            cur.execute("INSERT INTO t VALUES (3, 3)")
        want = [(1, 10), (2, 2), (3, 3)]
        deadline = time.time() + 60
        got = []
        while time.time() < deadline and "e" not in box:
            if os.path.exists(tmp_path / "d.db"):
                got = sqlite3.connect(tmp_path / "d.db").execute("SELECT id, v FROM t ORDER BY id").fetchall()
                if got == want:
                    break
            time.sleep(0.2)
        stop.set()
        t.join(30)
        assert "e" not in box, box.get("e")
        assert got == want
        assert any("Connection refused" in w or "Can't connect" in w for w in src.warnings), src.warnings
    finally:
        srv.stop()
