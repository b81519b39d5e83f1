"""Alert thresholds: a warning once per crossing, ``nebula_alert_active`` while crossed, cleared when back under."""

from __future__ import annotations

import itertools
import logging
import re
import subprocess
import sys
import threading

import pytest

import nebula
from nebula import metrics
from nebula.connectors.destinations.memory import MemoryDestination
from nebula.errors import ConfigError
from nebula.pipeline.observe import Alerts, PipelineMeter

_ids = itertools.count()


def active(pipeline: str, alert: str) -> float | None:
    return metrics.sample("nebula_alert_active", {"pipeline": pipeline, "alert": alert})


def fired(pipeline: str, alert: str) -> float:
    return metrics.sample("nebula_alerts_total", {"pipeline": pipeline, "alert": alert}) or 0.0


def alert_lines(caplog, level=logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "nebula.alerts" and r.levelno == level]


def test_fires_once_per_crossing_and_clears(caplog):
    caplog.set_level(logging.INFO, logger="nebula.alerts")
    p = f"unit-{next(_ids)}"
    a = Alerts(p, {"batch_seconds": 1.5})
    assert active(p, "batch_seconds") == 0
    a.update("batch_seconds", 1.0)
    assert not alert_lines(caplog) and active(p, "batch_seconds") == 0
    a.update("batch_seconds", 2.0)
    a.update("batch_seconds", 3.0)  # still crossed: no second warning
    assert alert_lines(caplog) == [f"alert batch_seconds: pipeline {p}: batch_seconds is 2, over the threshold 1.5"]
    assert active(p, "batch_seconds") == 1 and fired(p, "batch_seconds") == 1 and a.active == {"batch_seconds": 3.0}
    a.update("batch_seconds", 1.5)  # back to the threshold: not over it
    assert active(p, "batch_seconds") == 0 and a.active == {}
    assert alert_lines(caplog, logging.INFO) == [f"alert batch_seconds cleared: pipeline {p}: batch_seconds is 1.5, "
                                                 "back under 1.5"]
    a.update("batch_seconds", 9)
    assert fired(p, "batch_seconds") == 2 and len(alert_lines(caplog)) == 2
    a.update("rejected_rows", 10**9)  # no threshold for it: nothing
    assert active(p, "rejected_rows") is None


def test_retries_within_the_last_minute():
    p = f"retries-{next(_ids)}"
    a = Alerts(p, {"retries": 2})
    t0 = a._retries[0][0]
    for _ in range(3):
        metrics.record_retry(f"http://127.0.0.1:1/{p}", "ConnectionFailed")
    a.check_retries(t0 + 1)
    assert active(p, "retries") == 1
    a.check_retries(t0 + 30)
    assert active(p, "retries") == 1
    a.check_retries(t0 + 62)  # the three retries are more than a minute old
    assert active(p, "retries") == 0 and fired(p, "retries") == 1


class _Probe(MemoryDestination):
    """Keeps what /healthz said at each write and at commit."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict] = []

    def write(self, batch):
        self.seen.append(metrics.current().health())
        return super().write(batch)

    def commit(self):
        self.seen.append(metrics.current().health())
        super().commit()


def test_rejected_ratio_fires_and_clears_within_a_run(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="nebula.alerts")
    src = tmp_path / "r.csv"
    rows = [f"{i},{'bad' if i <= 50 else i}" for i in range(1, 2001)]  # all the rejects in the first batch
    src.write_text("id,qty\n" + "\n".join(rows) + "\n")
    name = f"ratio-{next(_ids)}"
    dst = _Probe()
    r = nebula.copy(str(src), dst, name=name, columns={"qty": "int64"}, on_error="skip", batch_rows=100, threads=1,
                    alerts={"rejected_ratio": 0.1})
    assert (r.rows_written, r.rows_rejected) == (1950, 50)
    assert fired(name, "rejected_ratio") == 1 and active(name, "rejected_ratio") == 0
    (line,) = alert_lines(caplog)
    assert re.search(r"rejected_ratio is 0\.(4|5)\d*, over the threshold 0.1$", line), line
    assert len(alert_lines(caplog, logging.INFO)) == 1
    # status also reflects circuit breakers, which are process-wide (other tests leave some): look at alerts
    states = [bool(d["alerts"]) for d in dst.seen]
    assert states[0] is False and True in states and states[-1] is False
    deg = next(d for d in dst.seen if d["alerts"])
    assert deg["status"] in ("degraded", "failing")
    assert [(a["alert"], a["threshold"]) for a in deg["alerts"]] == [("rejected_ratio", 0.1)]
    assert deg["alerts"][0]["value"] > 0.4


def test_rejected_rows_alert_from_yaml_stays_until_the_run_ends(tmp_path, caplog):
    from nebula.config import load_config

    src = tmp_path / "r.csv"
    src.write_text("id,qty\n" + "\n".join(f"{i},{'x' if i % 3 == 0 else i}" for i in range(1, 301)) + "\n")
    name = f"yaml-{next(_ids)}"
    cfg = load_config(f"""
pipelines:
  - name: {name}
    source: {src}
    destination: {tmp_path}/o.parquet
    columns: {{qty: int64}}
    on_error: skip
    alerts:
      rejected_rows: 10
      cdc_lag_bytes: 1000000
""")
    assert cfg.pipelines[0].to_options()["alerts"] == {"rejected_rows": 10, "cdc_lag_bytes": 1000000}
    p = nebula.Pipeline.from_config(cfg.pipelines[0])
    seen = []
    real_finish = PipelineMeter.finish

    def finish(self):
        seen.append(self.health())
        real_finish(self)

    PipelineMeter.finish = finish
    try:
        r = p.run(progress="none", audit_log=False, batch_rows=64)
    finally:
        PipelineMeter.finish = real_finish
    assert r.rows_rejected == 100
    assert seen[0]["status"] in ("degraded", "failing") and seen[0]["alerts"][0]["alert"] == "rejected_rows"
    assert fired(name, "rejected_rows") == 1 and active(name, "rejected_rows") == 0  # cleared at the end


def test_cdc_lag_alert_follows_the_stream(src_db, caplog):
    from nebula.connectors.sources.postgres_cdc import PostgresCdcSource

    caplog.set_level(logging.INFO, logger="nebula.alerts")
    dsn, c = src_db
    c.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    name = f"lag-{next(_ids)}"
    src = PostgresCdcSource(dsn, options={"cdc": True, "tables": "public.t", "slot": "obs_alert"})
    meter = PipelineMeter(name, source=src, alerts={"cdc_lag_bytes": 200_000})
    src.describe()
    src.resume(None)
    src.open()
    stop = threading.Event()
    try:
        assert src.next_round(max_changes=10_000, max_seconds=1, stop=stop).snapshot
        meter.cdc_round(src, min_interval=0)
        assert active(name, "cdc_lag_bytes") == 0
        c.execute("INSERT INTO t SELECT g, repeat('z', 100) FROM generate_series(1, 5000) g")
        meter.cdc_round(src, min_interval=0)
        assert meter.cdc_lag_bytes > 200_000 and active(name, "cdc_lag_bytes") == 1
        assert metrics.sample("nebula_cdc_lag_bytes", {"pipeline": name}) == meter.cdc_lag_bytes
        assert meter.health()["status"] in ("degraded", "failing")  # failing only if a breaker is open
        c.execute("SELECT pg_logical_emit_message(true, 'nebula', 'END')")
        for _ in range(50):  # consume the stream: the lag falls back
            src.next_round(max_changes=100_000, max_seconds=0.5, stop=stop)
            meter.cdc_round(src, min_interval=0)
            if active(name, "cdc_lag_bytes") == 0:
                break
        assert active(name, "cdc_lag_bytes") == 0 and meter.cdc_lag_bytes < 200_000
        assert fired(name, "cdc_lag_bytes") == 1 and len(alert_lines(caplog, logging.INFO)) == 1
    finally:
        src.close()


@pytest.mark.parametrize("block, key, message", [
    ("alerts: {rejectd_rows: 5}", "pipelines[0].alerts.rejectd_rows", "did you mean 'rejected_rows'"),
    ("alerts:\n      rejected_ratio: 2", "pipelines[0].alerts.rejected_ratio", "less than or equal to 1"),
    ("alerts: 5", "pipelines[0].alerts", "valid dictionary"),
])
def test_bad_alerts_config_names_key_and_line(block, key, message):
    from nebula.config import load_config

    text = f"pipelines:\n  - name: a\n    source: a.csv\n    destination: b.parquet\n    {block}\n"
    with pytest.raises(ConfigError) as e:
        load_config(text)
    assert e.value.key == key and message in str(e.value) and e.value.line in (5, 6)


def test_bad_alerts_option_of_the_library():
    with pytest.raises(ConfigError, match="alerts.bogus: unknown alert"):
        nebula.copy("a.csv", "b.parquet", alerts={"bogus": 1})
    with pytest.raises(ConfigError, match="alerts.batch_seconds"):
        nebula.copy("a.csv", "b.parquet", alerts={"batch_seconds": -1})


def test_cli_run_logs_the_alert_on_stderr(tmp_path):
    src = tmp_path / "r.csv"
    src.write_text("id,qty\n1,1\n2,x\n3,3\n")
    (tmp_path / "p.yml").write_text(f"pipelines:\n  - name: cli\n    source: {src}\n"
                                    f"    destination: {tmp_path}/o.parquet\n    columns: {{qty: int64}}\n"
                                    "    on_error: skip\n    alerts: {rejected_rows: 0}\n")
    r = subprocess.run([sys.executable, "-m", "nebula.cli", "run", "p.yml", "--json", "--no-audit"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "alert rejected_rows: pipeline cli: rejected_rows is 1, over the threshold 0" in r.stderr
