"""Dead letters to a file, a SQLite table and a PostgreSQL table, from the real ``nebula`` command: every rejected
row kept exactly (position, reason, raw text and bytes, run id), ``--max-rejected`` failing the run with the
count, the summary saying how many and where, and no row lost when the table cannot be written."""

from __future__ import annotations

import base64
import json
import os
import sqlite3

import pytest

import nebula
from nebula.errors import ConfigError
from nebula.pipeline.deadletter import parse_target

from .conftest import SECRET_USER, run_nebula

# line 3: a value that is not an int32 (coercion); line 4: too few fields (parsing; column "name" is missing); line 5: invalid UTF-8 and a NUL
CSV = b"id,qty,name\n1,2,a\n2,many,b\n3,4\n4,5,\xff\x00z\n5,6,e\n"
EXPECTED = [(3, "qty", "2,many,b"), (4, "name", "3,4"), (5, "name", "4,5,\ufffd\x00z")]


def _csv(tmp_path):
    p = tmp_path / "orders.csv"
    p.write_bytes(CSV)
    return p


def _copy(tmp_path, target, *extra):
    r = run_nebula("copy", _csv(tmp_path), tmp_path / "out.parquet", "--column", "qty:int32", "--column",
                   "name:string", "--on-error", "dead-letter", "--dead-letter", target, "--json", "--no-audit",
                   *extra, cwd=tmp_path)
    return r


def _check_rows(rows, run_id, nul="\x00"):
    """rows: (run_id, source, line, column, offset, reason, raw, raw_bytes, rejected_at) ordered by line.
    PostgreSQL text cannot hold NUL: there the raw text shows U+FFFD, ``raw_bytes`` stays exact."""
    rows = sorted(rows, key=lambda r: r[2])
    assert [r[0] for r in rows] == [run_id] * 3
    assert [(r[2], r[3], r[6]) for r in rows] == [(a, b, c.replace("\x00", nul)) for a, b, c in EXPECTED]
    assert [bytes(r[7]) for r in rows] == [b"2,many,b", b"3,4", b"4,5,\xff\x00z"]
    assert rows[0][4] == CSV.index(b"many") and rows[1][4] == CSV.index(b"3,4") and "many" in rows[0][5] and "int32" in rows[0][5]
    assert "expected 3 fields, found 2" in rows[1][5] and "UTF-8" in rows[2][5]
    assert all(r[1].endswith("orders.csv") and r[8] for r in rows)


def test_target_parsing():
    assert parse_target("rej.jsonl") == ("file", "rej.jsonl", None)
    assert parse_target("file:///tmp/r.jsonl") == ("file", "/tmp/r.jsonl", None)
    assert parse_target("sqlite:///r.db") == ("sqlite", "r.db", "nebula_rejected")
    assert parse_target("sqlite:////abs/r.db#bad_rows") == ("sqlite", "/abs/r.db", "bad_rows")
    assert parse_target("postgresql://u:p@h:5/db?sslmode=require&table=etl.rej") == \
        ("postgresql", "postgresql://u:p@h:5/db?sslmode=require", "etl.rej")
    for bad in ("s3://b/k.jsonl", "sqlite:///r.db#x;drop", "sqlite:///r.db#s.t", "postgresql://h/db#1x"):
        with pytest.raises(ConfigError):
            parse_target(bad)


def test_file_dead_letters_keep_exact_bytes(tmp_path):
    bad_utf8 = b"id,qty\n1,\xff\xfe\n2,3\n"
    p = tmp_path / "u.csv"
    p.write_bytes(bad_utf8)
    dl = tmp_path / "dl" / "rej.jsonl"
    r = nebula.copy(p, tmp_path / "u.parquet", columns={"qty": "int32"}, on_error="dead-letter", dead_letter=str(dl))
    assert r.rows_rejected == 1 and r.dead_letter == str(dl)
    (rec,) = [json.loads(x) for x in dl.read_text().splitlines()]
    assert base64.b64decode(rec["raw_base64"]) == b"1,\xff\xfe" and rec["line"] == 2 and rec["rejected_at"]
    assert not [f for f in os.listdir(dl.parent) if "nebula-tmp" in f]


def test_sqlite_table(tmp_path):
    r = _copy(tmp_path, "sqlite:///rej.db")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["rows_written"], s["rows_rejected"]) == (2, 3)
    assert s["dead_letter"] == "sqlite:///rej.db#nebula_rejected"
    r2 = _copy(tmp_path, "sqlite:///rej.db?table=others")
    r3 = _copy(tmp_path, "sqlite:///rej.db", "--no-progress")  # a second run appends
    with sqlite3.connect(tmp_path / "rej.db") as db:
        rows = db.execute("SELECT * FROM nebula_rejected ORDER BY rowid").fetchall()
        others = db.execute("SELECT * FROM others ORDER BY line").fetchall()
        cols = [c[1] for c in db.execute("PRAGMA table_info(nebula_rejected)")]
    assert cols == ["run_id", "source", "line", "column", "offset", "reason", "raw", "raw_bytes", "rejected_at"]
    _check_rows(rows[:3], s["run_id"])
    _check_rows(rows[3:], json.loads(r3.stdout)["run_id"])
    _check_rows(others, json.loads(r2.stdout)["run_id"])
    # the text summary says how many and where
    r = run_nebula("copy", _csv(tmp_path), tmp_path / "o.parquet", "--column", "qty:int32", "--on-error", "dead-letter",
                   "--dead-letter", "sqlite:///rej.db#t2", "--no-audit", "--no-progress", cwd=tmp_path)
    assert "3 rows rejected, see sqlite:///rej.db#t2" in r.stdout
    # not into the destination's own file: it stays locked until the commit (this would wait, then fail)
    r = run_nebula("copy", _csv(tmp_path), f"sqlite:///{tmp_path}/rej.db", "--table", "t", "--on-error", "dead-letter",
                   "--dead-letter", "sqlite:///rej.db#t3", "--no-audit", cwd=tmp_path)
    assert r.returncode == 2 and "destination's own database file" in r.stderr


def test_postgres_table_and_max_rejected(tmp_path, pg_server, secret_url, pg):
    target = secret_url + "?table=public.rejected_rows"
    r = _copy(tmp_path, target)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["rows_rejected"] == 3 and s["dead_letter"].endswith("#public.rejected_rows")
    assert ":***@" in s["dead_letter"]
    rows = pg.execute("SELECT run_id, source, line, \"column\", \"offset\", reason, raw, raw_bytes, rejected_at "
                      "FROM rejected_rows ORDER BY line").fetchall()
    _check_rows(rows, s["run_id"], nul="\ufffd")
    types = dict(pg.execute("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = 'rejected_rows'").fetchall())
    assert types["raw_bytes"] == "bytea" and types["rejected_at"].startswith("timestamp")
    # past --max-rejected the run fails, naming the count, and the rows rejected so far are still stored
    r = _copy(tmp_path, target + "#maxed", "--max-rejected", "1")
    assert r.returncode == 1 and "rows rejected, more than --max-rejected 1" in r.stderr
    assert "the rejected rows are in postgresql://nebula_secret_user:***@" in r.stderr and "#maxed" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    n = int(r.stderr.split("error: ")[1].split()[0])
    assert n >= 2 and pg.execute("SELECT count(*) FROM maxed").fetchone()[0] == n


def test_unwritable_table_keeps_rows_in_the_spool(tmp_path, secret_url):
    down = secret_url.replace(SECRET_USER, "no_such_role") + "#rej"  # the server refuses this role
    r = _copy(tmp_path, down)
    assert r.returncode == 1 and "could not be inserted" in r.stderr
    spool = r.stderr.split("kept in ")[1].strip()
    assert os.path.exists(spool)
    try:
        recs = [json.loads(x) for x in open(spool)]
        assert sorted((x["line"], x["column"], x["raw"]) for x in recs) == EXPECTED
    finally:
        os.unlink(spool)


def test_json_source_routes_parse_coercion_and_contract_rejects(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_bytes(b'{"id":1,"qty":2}\n{"id":2,"qty":"x"}\n{bad json\n{"id":4,"qty":5,"extra":1}\n{"id":5,"qty":6}\n')
    db = tmp_path / "j.db"
    r = nebula.copy(p, tmp_path / "e.parquet", columns={"qty": "int32"}, contract="discard-row",
                    on_error="dead-letter", dead_letter=f"sqlite:///{db}", batch_rows=2)
    assert r.rows_written == 2 and r.rows_rejected == 3
    with sqlite3.connect(db) as c:
        got = c.execute("SELECT line, reason, raw_bytes FROM nebula_rejected ORDER BY line").fetchall()
    assert [g[0] for g in got] == [2, 3, 4]
    assert "x" in got[0][1] and "contract discard-row" in got[2][1]
    assert [bytes(g[2]) for g in got] == [b'{"id":2,"qty":"x"}', b"{bad json", b'{"id":4,"qty":5,"extra":1}']
