"""The pipeline's metrics: counters equal the run summary, one latency per batch and stage, gauges, CDC lag."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

import nebula
from nebula import metrics

_ids = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def value(name: str, **labels) -> float:
    v = metrics.sample(name, labels)
    return 0.0 if v is None else v


def test_counters_match_the_run_summary(orders_csv, tmp_path):
    name = unique("csv2pq")
    r = nebula.copy(str(orders_csv), str(tmp_path / "o.parquet"), name=name, batch_rows=4096, threads=2)
    assert r.rows_written == 30_000
    assert value("nebula_rows_read_total", pipeline=name, connector="csv") == r.rows_read == 30_000
    assert value("nebula_rows_written_total", pipeline=name, connector="parquet") == r.rows_written
    assert value("nebula_bytes_read_total", pipeline=name, connector="csv") == r.bytes_read == orders_csv.stat().st_size
    assert value("nebula_bytes_written_total", pipeline=name, connector="parquet") == r.bytes_written > 0
    assert value("nebula_rows_rejected_total", pipeline=name, connector="csv") == 0
    batches = -(-30_000 // 4096)
    for stage in ("read", "parse", "write"):
        assert value("nebula_batch_duration_seconds_count", pipeline=name, stage=stage) >= batches, stage
        assert value("nebula_batch_duration_seconds_sum", pipeline=name, stage=stage) > 0, stage
    assert value("nebula_batch_duration_seconds_count", pipeline=name, stage="parse") == batches
    assert value("nebula_batch_duration_seconds_count", pipeline=name, stage="commit") == 1
    inf = value("nebula_batch_duration_seconds_bucket", pipeline=name, stage="parse", le="+Inf")
    assert inf == batches
    from nebula.connectors.destinations.files import ParquetDestination

    held = ParquetDestination(str(tmp_path / "x.parquet")).holds_batches(4096)  # encoded in place, not copied
    assert 0 < held <= 48
    assert value("nebula_pool_capacity", pipeline=name) == 2 + 2 + held  # threads + 2 + what the destination keeps
    assert value("nebula_pool_in_use", pipeline=name) == 0  # the run is over
    assert value("nebula_queue_depth", pipeline=name, queue="chunks") == 0


def test_counters_add_up_over_runs_and_rejects_are_counted(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("id,qty\n" + "".join(f"{i},{'x' if i % 10 == 0 else i}\n" for i in range(1, 1001)))
    name = unique("rejects")
    for _ in range(2):
        r = nebula.copy(str(src), f"sqlite:///{tmp_path}/o.db", table="t", name=name, columns={"qty": "int64"},
                        on_error="skip", mode="replace", state=str(tmp_path / "s.db"))
        assert (r.rows_written, r.rows_rejected) == (900, 100)
    assert value("nebula_rows_rejected_total", pipeline=name, connector="csv") == 200
    assert value("nebula_rows_read_total", pipeline=name, connector="csv") == 2000
    assert value("nebula_rows_written_total", pipeline=name, connector="sqlite") == 1800


def test_a_failed_run_counts_its_error_type(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("id,qty\n1,2\n2,oops\n")
    name = unique("fails")
    with pytest.raises(nebula.errors.DataError):
        nebula.copy(str(src), str(tmp_path / "o.parquet"), name=name, columns={"qty": "int64"})
    assert value("nebula_errors_total", pipeline=name, type="TypeCoercionError") == 1
    h = metrics.current().health()
    assert h["pipeline"] == name and h["status"] == "failing" and "cannot read" in h["error"]


def test_connector_kind_names(orders_csv, tmp_path):
    from nebula.api import CopyOptions, make_destination, make_source
    from nebula.connectors.destinations.memory import MemoryDestination
    from nebula.connectors.sources.postgres_cdc import PostgresCdcSource

    o = CopyOptions.build()
    assert metrics.connector_kind(make_destination("x/out/", o)) == "directory"
    assert metrics.connector_kind(make_destination("x.jsonl", o)) == "jsonl"
    assert metrics.connector_kind(make_destination("sqlite:///x.db", o)) == "sqlite"
    assert metrics.connector_kind(MemoryDestination()) == "memory"
    assert metrics.connector_kind(PostgresCdcSource("postgresql://u@127.0.0.1:1/d", options={"cdc": True})) == \
        "postgresql"
    assert metrics.connector_kind(make_source(str(orders_csv), o)) == "csv"
    (tmp_path / "a.jsonl").write_text('{"a": 1}\n')
    (tmp_path / "a.json").write_text('[{"a": 1}]\n')
    assert metrics.connector_kind(make_source(str(tmp_path / "a.jsonl"), o)) == "jsonl"
    assert metrics.connector_kind(make_source(str(tmp_path / "a.json"), o)) == "json"


def test_text_exposition_parses(orders_csv, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    name = unique("parse")
    nebula.copy(str(orders_csv), str(tmp_path / "o.jsonl"), name=name)
    fams = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    assert fams["nebula_batch_duration_seconds"].type == "histogram"
    assert fams["nebula_rows_written"].type == "counter"
    written = [s for s in fams["nebula_rows_written"].samples
               if s.name == "nebula_rows_written_total" and s.labels["pipeline"] == name]
    assert [(s.labels["connector"], s.value) for s in written] == [("jsonl", 30_000)]
    assert fams["nebula_pool_in_use"].type == "gauge"


def test_a_run_without_scrape_does_not_import_prometheus_client(orders_csv, tmp_path):
    code = ("import sys, nebula; r = nebula.copy(sys.argv[1], sys.argv[2]); from nebula import metrics; "
            "print(r.rows_written, metrics.get('rows_written').labels(r.name, 'parquet').value, "
            "'prometheus_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(orders_csv), str(tmp_path / "o.parquet")],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["30000", "30000.0", "False"]


def test_postgres_cdc_rounds_publish_lag_and_counters(src_db, tmp_path):
    dsn, c = src_db
    c.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
    c.execute("INSERT INTO orders SELECT g, repeat('x', 50) FROM generate_series(1, 3000) g")
    name = unique("pgcdc")
    r = nebula.copy(dsn, f"sqlite:///{tmp_path}/o.db", cdc=True, until_caught_up=True, tables="public.orders",
                    mode="merge", name=name, state=str(tmp_path / "s.db"))
    assert r.rows_written == 3000
    assert value("nebula_rows_written_total", pipeline=name, connector="sqlite") == 3000
    assert value("nebula_rows_read_total", pipeline=name, connector="postgresql") == r.rows_read
    lag1 = metrics.sample("nebula_cdc_lag_bytes", {"pipeline": name})
    assert lag1 is not None and 0 <= lag1 < 1_000_000  # caught up: at most the WAL written since
    c.execute("INSERT INTO orders SELECT g, repeat('y', 200) FROM generate_series(3001, 13000) g")
    c.execute("SELECT pg_logical_emit_message(true, 'nebula', 'END')")
    r2 = nebula.copy(dsn, f"sqlite:///{tmp_path}/o.db", cdc=True, until_caught_up=True, tables="public.orders",
                     mode="merge", name=name, state=str(tmp_path / "s.db"))
    assert r2.rows_written == 10_000
    assert value("nebula_rows_written_total", pipeline=name, connector="sqlite") == 13_000
    assert value("nebula_bytes_read_total", pipeline=name, connector="postgresql") >= r2.bytes_read > 2_000_000


def test_postgres_cdc_source_lag_counts_unread_wal(src_db, tmp_path):
    """The probe itself: WAL written after the source's position is lag, whether or not it was streamed."""
    from nebula.connectors.sources.postgres_cdc import PostgresCdcSource

    dsn, c = src_db
    c.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    src = PostgresCdcSource(dsn, options={"cdc": True, "tables": "public.t", "slot": "obs_lag"})
    src.describe()
    src.resume(None)
    src.open()
    try:
        before = src.lag_bytes()
        c.execute("INSERT INTO t SELECT g, repeat('z', 100) FROM generate_series(1, 5000) g")
        after = src.lag_bytes()
        assert before is not None and after is not None
        assert after - before > 5000 * 100
    finally:
        src.close()


def test_mysql_source_lag_counts_binlog_after_its_position(db, tmp_path):
    from nebula.connectors.sources.mysql import MysqlSource

    dsn, c = db
    with c.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        cur.execute("INSERT INTO t VALUES (1, 'a')")
    src = MysqlSource(dsn, options={"cdc": True, "tables": "t"})
    src.describe()
    src.resume(None)
    src.open()
    try:
        rnd = src.next_round(max_changes=1000, max_seconds=1, stop=__import__("threading").Event())
        assert rnd.snapshot
        before = src.lag_bytes()
        with c.cursor() as cur:
            cur.execute("INSERT INTO t SELECT seq, repeat('m', 300) FROM seq_2_to_2001")
        after = src.lag_bytes()
        assert before is not None and after - before > 2000 * 300
    finally:
        src.close()
