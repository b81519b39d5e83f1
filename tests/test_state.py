from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading

import pytest

from nebula.errors import ConfigError, NebulaError
from nebula.state import StateStore


def test_round_trip_and_overwrite(tmp_path):
    store = StateStore(tmp_path / "a" / "b" / "state.db")
    assert (tmp_path / "a" / "b" / "state.db").exists()
    assert store.get("orders") is None
    store.set("orders", {"offset": 10, "files": ["x.csv"], "lsn": "0/16B3748"})
    assert store.get("orders") == {"offset": 10, "files": ["x.csv"], "lsn": "0/16B3748"}
    store.set("orders", {"offset": 20})
    assert store.get("orders") == {"offset": 20}
    names = [(n, v) for n, v, _ in store.list()]
    assert names == [("orders", {"offset": 20})]
    assert store.list()[0][2].startswith("20")


def test_delete(tmp_path):
    store = StateStore(tmp_path / "s.db")
    store.set("a", {"x": 1})
    store.set("b", {"x": 2})
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert store.get("a") is None
    assert [n for n, _, _ in store.list()] == ["b"]


def test_wal_mode(tmp_path):
    StateStore(tmp_path / "s.db")
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_bad_values_rejected(tmp_path):
    store = StateStore(tmp_path / "s.db")
    with pytest.raises(ConfigError, match="JSON"):
        store.set("a", {"x": object()})
    with pytest.raises(ConfigError, match="dict"):
        store.set("a", [1, 2])  # type: ignore[arg-type]
    assert store.get("a") is None


def test_persistence_after_reopen(tmp_path):
    path = tmp_path / "s.db"
    StateStore(path).set("p", {"cursor": "2025-01-01"})
    assert StateStore(path).get("p") == {"cursor": "2025-01-01"}


def test_default_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    StateStore().set("x", {"a": 1})
    assert (tmp_path / ".nebula" / "state.db").exists()


def test_runs(tmp_path):
    store = StateStore(tmp_path / "s.db")
    r1 = store.record_run("orders", status="success", started_at="2025-01-01T00:00:00+00:00",
                          finished_at="2025-01-01T00:00:05+00:00", rows_read=10, rows_written=9,
                          rows_rejected=1, bytes_read=100, summary={"seconds": 5.0})
    r2 = store.record_run("orders", status="failed", started_at="2025-01-02T00:00:00+00:00")
    store.record_run("users", status="success", started_at="2025-01-03T00:00:00+00:00")
    runs = store.runs("orders")
    assert [r["run_id"] for r in runs] == [r2, r1]
    assert runs[1]["summary"] == {"seconds": 5.0}
    assert runs[1]["rows_written"] == 9 and runs[1]["rows_rejected"] == 1
    assert runs[0]["finished_at"] is not None
    assert len(store.runs()) == 3
    assert len(store.runs(limit=1)) == 1
    assert store.runs()[0]["name"] == "users"


def test_concurrent_threads(tmp_path):
    store = StateStore(tmp_path / "s.db")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(25):
                store.set(f"t{i}", {"j": j})
                store.set("shared", {"by": i, "j": j})
                store.get("shared")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(store.get(f"t{i}") == {"j": 24} for i in range(8))


def _process_writer(path: str, tag: int, n: int) -> None:
    store = StateStore(path)
    for j in range(n):
        store.set(f"p{tag}", {"j": j})
        store.set("shared", {"by": tag, "j": j})
        store.record_run(f"p{tag}", status="success", rows_read=j)


def test_concurrent_processes(tmp_path):
    path = str(tmp_path / "s.db")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(path, i, 60)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    store = StateStore(path)
    assert store.get("p0") == {"j": 59} and store.get("p1") == {"j": 59}
    assert len(store.runs(limit=1000)) == 120


def test_corrupt_file(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is definitely not a sqlite database, just some text" * 100)
    with pytest.raises(NebulaError) as info:
        StateStore(path)
    assert isinstance(info.value, ConfigError)
    assert str(path) in str(info.value)
    assert "not a readable SQLite database" in str(info.value)


def test_path_is_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        StateStore(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_set_in_commits_with_caller(tmp_path):
    db = tmp_path / "dest.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE orders (id INTEGER)")
    conn.commit()
    # rolled back together with the data
    conn.execute("INSERT INTO orders VALUES (1)")
    StateStore.set_in(conn, "orders", {"offset": 1})
    conn.rollback()
    assert StateStore.get_in(conn, "orders") is None
    assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 0
    # committed together
    conn.execute("INSERT INTO orders VALUES (1)")
    StateStore.set_in(conn, "orders", {"offset": 1})
    conn.commit()
    conn.close()
    store = StateStore(db)
    assert store.get("orders") == {"offset": 1}
    StateStore.set_in(c := sqlite3.connect(db), "orders", {"offset": 2})
    c.commit()
    c.close()
    assert store.get("orders") == {"offset": 2}


def test_set_in_sqlalchemy(tmp_path):
    sa = pytest.importorskip("sqlalchemy")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    with engine.begin() as conn:
        StateStore.set_in(conn, "x", {"a": 1})
    with engine.connect() as conn:
        assert StateStore.get_in(conn, "x") == {"a": 1}
    assert StateStore(tmp_path / "d.db").get("x") == {"a": 1}
