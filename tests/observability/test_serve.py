"""``--metrics-port``: /metrics and /healthz scraped from a real ``nebula`` process while it runs."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from ..objectstore.conftest import free_port

NEBULA = [sys.executable, "-m", "nebula.cli"]


def get(port: int, path: str, timeout: float = 2.0) -> tuple[int, str]:
    """``(status, body)`` of ``http://127.0.0.1:port/path``; ``(0, reason)`` when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (OSError, http.client.HTTPException) as e:  # nothing listens, or the process ended mid-answer
        return 0, str(e)


def families(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(text: str, name: str, **labels) -> float | None:
    for fam in families(text).values():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def wait_for(what: str, fn, proc: subprocess.Popen, timeout: float = 60.0):
    """Poll ``fn`` until it returns something truthy (the process must stay alive meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"nebula exited ({proc.returncode}) before {what}: {err[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (SO_REUSEADDR, as servers do: closed connections may
    linger in TIME_WAIT, a listening socket may not)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_scrape_a_running_copy(big_orders_csv, tmp_path):
    port = free_port()
    out = tmp_path / "o.parquet"
    proc = subprocess.Popen([*NEBULA, "copy", str(big_orders_csv), str(out), "--name", "scraped", "--threads", "1",
                             "--batch-rows", "16384", "--metrics-port", str(port), "--json", "--no-audit",
                             "--state", str(tmp_path / "s.db")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        def health():
            code, body = get(port, "/healthz")
            return (code, json.loads(body)) if code else None

        code, doc = wait_for("/healthz answers", health, proc)
        assert code == 200 and doc["status"] in ("ok", "degraded") and doc["pipeline"] in ("scraped", None)
        seen: list[float] = []
        docs = []
        while proc.poll() is None:  # scrape as fast as it answers, for as long as the run lasts
            code, text = get(port, "/metrics")
            if code != 200:
                break
            v = sample(text, "nebula_rows_written_total", pipeline="scraped", connector="parquet")
            if v is not None and (not seen or v != seen[-1]):
                seen.append(v)
            code, body = get(port, "/healthz")
            if code == 200:
                docs.append(json.loads(body))
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["rows_written"] == 1_200_000
    moving = [v for v in seen if 0 < v < 1_200_000]
    assert len(moving) >= 2, seen  # the counter moved while the run was going
    assert seen == sorted(seen) and seen[-1] <= summary["rows_written"]
    running = [d for d in docs if d["pipeline"] == "scraped" and 0 < d["rows_written"] < 1_200_000]
    assert running, docs[:3]
    d = running[-1]
    assert d["status"] == "ok" and d["stage"] in ("write", "commit") and d["last_batch_at"] and d["alerts"] == []
    assert d["open_breakers"] == [] and d["rows_read"] >= d["rows_written"]
    assert port_is_free(port)  # released at the end


def test_cdc_stream_counters_equal_the_final_summary(src_db, tmp_path):
    """A stream without --until-caught-up serves for its whole life; after SIGTERM the summary equals the scrape."""
    dsn, c = src_db
    c.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
    c.execute("INSERT INTO orders SELECT g, 'n' || g FROM generate_series(1, 2000) g")
    port = free_port()
    proc = subprocess.Popen([*NEBULA, "copy", dsn, f"sqlite:///{tmp_path}/o.db", "--cdc", "--tables", "public.orders",
                             "--mode", "merge", "--name", "stream", "--metrics-port", str(port), "--json",
                             "--no-progress", "--no-audit", "--state", str(tmp_path / "s.db")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def written(n):
            def probe():
                code, text = get(port, "/metrics")
                return code == 200 and sample(text, "nebula_rows_written_total", pipeline="stream",
                                              connector="sqlite") == n and text
            return probe

        wait_for("the snapshot's 2000 rows", written(2000), proc)
        c.execute("INSERT INTO orders SELECT g, 'n' || g FROM generate_series(2001, 2500) g")
        c.execute("UPDATE orders SET note = 'u' WHERE id <= 100")
        text = wait_for("500 inserts and 100 updates streamed", written(2600), proc)
        assert sample(text, "nebula_rows_read_total", pipeline="stream", connector="postgresql") == 2600
        lag = sample(text, "nebula_cdc_lag_bytes", pipeline="stream")
        assert lag is not None and lag >= 0
        assert sample(text, "nebula_batch_duration_seconds_count", pipeline="stream", stage="commit") >= 2
        code, body = get(port, "/healthz")
        doc = json.loads(body)
        assert code == 200 and doc["pipeline"] == "stream" and doc["rows_written"] == 2600
        assert doc["stage"] in ("cdc-wait", "write", "commit", "open") and doc["cdc_lag_bytes"] is not None
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert json.loads(stdout)["rows_written"] == 2600
    assert port_is_free(port)


def test_port_in_use_is_a_usage_error_naming_the_port(tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("id\n1\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([*NEBULA, "copy", str(src), str(tmp_path / "o.parquet"), "--metrics-port", str(port),
                            "--no-audit", "--state", str(tmp_path / "s.db")], capture_output=True, text=True,
                           timeout=120)
    assert r.returncode == 2
    assert f"--metrics-port {port}" in r.stderr and "already in use" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_library_copy_serves_and_releases_the_port(orders_csv, tmp_path):
    """``nebula.copy(metrics_port=N)``: the server is up during the run (scraped from a destination hook)."""
    import nebula
    from nebula.connectors.destinations.memory import MemoryDestination

    port = free_port()
    scraped = {}

    class Scraping(MemoryDestination):
        def commit(self):
            scraped["metrics"] = get(port, "/metrics")
            scraped["healthz"] = get(port, "/healthz")
            super().commit()

    r = nebula.copy(str(orders_csv), Scraping(), name="lib", metrics_port=port, batch_rows=8192)
    code, text = scraped["metrics"]
    assert code == 200
    assert sample(text, "nebula_rows_written_total", pipeline="lib", connector="memory") == r.rows_written == 30_000
    code, body = scraped["healthz"]
    doc = json.loads(body)
    assert doc["stage"] == "commit" and doc["rows_written"] == 30_000 and doc["alerts"] == []
    assert (code, doc["status"]) == ((503, "failing") if doc["open_breakers"] else (200, doc["status"]))
    assert port_is_free(port)
    assert get(port, "/metrics")[0] == 0


def test_yaml_metrics_port_and_not_found(tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("id\n1\n2\n")
    port = free_port()
    cfg = tmp_path / "p.yml"
    cfg.write_text(f"pipelines:\n  - name: y\n    source: {src}\n    destination: {tmp_path}/o.parquet\n"
                   f"    metrics_port: {port}\n")
    import nebula
    from nebula.config import load_config

    p = nebula.Pipeline.from_config(load_config(str(cfg)).pipelines[0])
    assert p.opts["metrics_port"] == port
    assert p.run(progress="none", audit_log=False).rows_written == 2
    from nebula.pipeline.serve import MetricsServer

    with MetricsServer(0) as srv:
        assert get(srv.port, "/nope")[0] == 404
        assert get(srv.port, "/healthz")[0] == 200


def test_run_command_metrics_port_flag_reaches_each_pipeline(tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("id\n1\n")
    (tmp_path / "p.yml").write_text(f"pipelines:\n  - {{name: r, source: {src}, destination: {tmp_path}/o.parquet}}\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([*NEBULA, "run", "p.yml", "--metrics-port", str(port), "--no-audit"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and f"--metrics-port {port}: 127.0.0.1:{port} is already in use" in r.stderr
    r = subprocess.run([*NEBULA, "run", "p.yml", "--metrics-port", "70000"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "70000" in r.stderr
