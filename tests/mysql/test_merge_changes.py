"""Change batches (``_op``) into the SQLite destination, and the checkpoint inside its transaction (no server)."""

from __future__ import annotations

import sqlite3

from nebula.connectors.destinations.sqlite import SqliteDestination
from nebula.schema import Schema
from tests.destinations import batch_from_pylist

SCHEMA = Schema.from_dict({"id": "int64", "v": "string", "_op": "string", "_pos": "string",
                           "_commit_ts": "timestamptz"})


def _rows(db, sql):
    with sqlite3.connect(db) as c:
        return c.execute(sql).fetchall()


def test_merge_applies_deletes_in_order_and_stores_no_change_columns(tmp_path):
    db = tmp_path / "m.db"
    d = SqliteDestination(f"sqlite:///{db}")
    d.open(SCHEMA, mode="merge", table="t", key=["id"])
    d.write(batch_from_pylist(SCHEMA, [(1, "a", "r", "p1", None), (2, "b", "r", "p1", None), (3, "c", "r", "p1", None)]))
    # not compacted on purpose: delete then re-insert of 2 in one batch must end with 2 present
    d.write(batch_from_pylist(SCHEMA, [(1, None, "d", "p2", None), (2, None, "d", "p3", None),
                                       (2, "B", "c", "p4", None), (3, "C", "u", "p5", None)]))
    d.stage_state("pipe", {"pos": "p5"})
    d.commit()
    assert _rows(db, "SELECT id, v FROM t ORDER BY id") == [(2, "B"), (3, "C")]
    assert [r[1] for r in _rows(db, "PRAGMA table_info(t)")] == ["id", "v"]
    assert SqliteDestination(f"sqlite:///{db}").committed_state("pipe") == {"pos": "p5"}
    assert SqliteDestination(f"sqlite:///{db}").committed_state("other") is None


def test_append_keeps_the_change_log_and_abort_drops_the_checkpoint(tmp_path):
    db = tmp_path / "a.db"
    d = SqliteDestination(f"sqlite:///{db}")
    d.open(SCHEMA, mode="append", table="log")
    d.write(batch_from_pylist(SCHEMA, [(1, "a", "c", "p1", None), (1, None, "d", "p2", None)]))
    d.stage_state("pipe", {"pos": "p2"})
    d.commit()
    assert _rows(db, "SELECT id, _op, _pos FROM log") == [(1, "c", "p1"), (1, "d", "p2")]
    d = SqliteDestination(f"sqlite:///{db}")
    d.open(SCHEMA, mode="append", table="log")
    d.write(batch_from_pylist(SCHEMA, [(9, "z", "c", "p3", None)]))
    d.stage_state("pipe", {"pos": "p3"})
    d.abort()
    assert d.committed_state("pipe") == {"pos": "p2"}
    assert len(_rows(db, "SELECT * FROM log")) == 2
