"""The metrics registry: names, labels and the text exposition."""

import threading

import pytest

from nebula import metrics


def test_retry_and_circuit_samples():
    before = metrics.sample("nebula_retries_total", {"endpoint": "t-ep", "error": "ConnectionFailed"}) or 0
    metrics.record_retry("t-ep", "ConnectionFailed")
    metrics.set_circuit_state("t-ep", "open")
    assert metrics.sample("nebula_retries_total", {"endpoint": "t-ep", "error": "ConnectionFailed"}) == before + 1
    assert metrics.sample("nebula_circuit_state", {"endpoint": "t-ep"}) == 1
    metrics.set_circuit_state("t-ep", "half-open")
    assert metrics.sample("nebula_circuit_state", {"endpoint": "t-ep"}) == 2
    assert metrics.sample("nebula_circuit_transitions_total", {"endpoint": "t-ep", "state": "open"}) >= 1
    text = metrics.render().decode()
    assert 'nebula_retries_total{endpoint="t-ep",error="ConnectionFailed"}' in text
    assert "# TYPE nebula_batch_duration_seconds histogram" in text


def test_registry_created_once_under_threads():
    regs = []
    ts = [threading.Thread(target=lambda: regs.append(metrics.registry())) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len({id(r) for r in regs}) == 1


def test_import_nebula_does_not_load_prometheus():
    import subprocess
    import sys

    code = "import sys, nebula, nebula.metrics; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_families_by_keyword_or_position_totals_and_breakers():
    fam = metrics.get("retries")
    fam.labels(endpoint="t-kw", error="E").inc(2)
    fam.labels("t-kw", "E").inc()
    assert fam.labels(error="E", endpoint="t-kw").value == 3
    assert metrics.total("retries") >= 3
    metrics.set_circuit_state("t-brk", "open")
    assert "t-brk" in metrics.breakers("open") and "t-brk" not in metrics.breakers("half-open")
    metrics.set_circuit_state("t-brk", "closed")
    assert "t-brk" not in metrics.breakers("open")
    with pytest.raises(ValueError, match="takes labels"):
        fam.labels("only-one")


def test_histogram_buckets_are_cumulative():
    h = metrics.get("batch_duration").labels("t-hist", "parse")
    for s in (0.0001, 0.003, 0.003, 7.0, 1000.0):
        h.observe(s)
    get = metrics.sample
    base = {"pipeline": "t-hist", "stage": "parse"}
    assert get("nebula_batch_duration_seconds_bucket", {**base, "le": "0.0005"}) == 1
    assert get("nebula_batch_duration_seconds_bucket", {**base, "le": "0.005"}) == 3
    assert get("nebula_batch_duration_seconds_bucket", {**base, "le": "10.0"}) == 4
    assert get("nebula_batch_duration_seconds_bucket", {**base, "le": "+Inf"}) == 5
    assert get("nebula_batch_duration_seconds_count", base) == 5
    assert abs(get("nebula_batch_duration_seconds_sum", base) - 1007.0061) < 1e-9
